"""PromQL at two scopes, and Grafana's template variables in it.

A dashboard query filters every selector on the dashboard's `job` and `instance` variables and
aggregates away what the panel does not show; a rule keeps every job and instance apart instead.
`Scope` writes both from one definition. `substitute` replaces Grafana's variables the way
Grafana does before it sends a query, so that a test (or a preview) can run the very text a
dashboard holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Every dashboard selector carries these matchers; `$job` defaults to this scrape job.
DEFAULT_JOB = "metrics-exporter"
RATE_INTERVAL = "$__rate_interval"


@dataclass(frozen=True)
class Scope:
    """Matchers added to every selector, and labels every aggregation keeps."""

    matchers: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()

    def sel(self, metric: str, *matchers: str) -> str:
        """A vector selector: `metric{scope matchers, matchers}`."""
        inner = ", ".join((*self.matchers, *matchers))
        return f"{metric}{{{inner}}}" if inner else metric

    def labels(self, *labels: str) -> str:
        """The label list of an aggregation or a vector match, scope labels first."""
        return ", ".join((*self.keep, *labels))

    def agg(self, operator: str, expr: str, *labels: str) -> str:
        """`operator by (kept, labels) (expr)`, or without `by` when there is nothing to keep."""
        kept = self.labels(*labels)
        return f"{operator} by ({kept}) ({expr})" if kept else f"{operator}({expr})"

    def sum(self, expr: str, *labels: str) -> str:
        """`sum by (...) (expr)`."""
        return self.agg("sum", expr, *labels)

    def rate(self, metric: str, window: str, *matchers: str) -> str:
        """`rate(selector[window])`."""
        return f"rate({self.sel(metric, *matchers)}[{window}])"

    def increase(self, metric: str, window: str, *matchers: str) -> str:
        """`increase(selector[window])`."""
        return f"increase({self.sel(metric, *matchers)}[{window}])"


def eq(label: str, value: str) -> str:
    """An equality matcher."""
    return f'{label}="{value}"'


# A dashboard: filtered on its variables. A rule: every target, kept apart.
DASHBOARD = Scope(matchers=('job=~"$job"', 'instance=~"$instance"'))
RULES = Scope(keep=("job", "instance"))


def rate_interval(interval_s: float, scrape_s: float) -> float:
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval)."""
    return max(interval_s + scrape_s, 4 * scrape_s)


# `$1` in a label_replace replacement is a capture group, never a variable.
_NAME = r"([A-Za-z_]\w*)"
_VARIABLE = re.compile(rf"\$\{{{_NAME}(?::\w+)?\}}|\[\[{_NAME}\]\]|\${_NAME}")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace `$name`, `${name}`, `${name:format}` and `[[name]]` as Grafana does; every
    variable must have a value (Grafana's own `$__...` ones included)."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no value for the variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def variables_in(expr: str) -> set[str]:
    """The names of the template variables an expression uses."""
    return {next(group for group in m.groups() if group) for m in _VARIABLE.finditer(expr)}
