"""Building blocks of the dashboards over grafana-foundation-sdk: variables, queries, panels.

Every panel reads the `datasource` variable and every query filters on `job` and `instance`
(promql.DASHBOARD); panels are placed left to right in rows of 24 columns by the SDK, and
numbered here so that ids are stable across generations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    heatmap,
    prometheus,
    stat,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from armonik_observe.dashboards.promql import DEFAULT_JOB

DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["armonik", "armonik-observe"]
TASKS_PER_S = "suffix: tasks/s"


@dataclass(frozen=True)
class Query:
    """One target of a panel: a PromQL expression and its legend."""

    expr: str
    legend: str = ""
    instant: bool = False


# -- variables ---------------------------------------------------------------------------------


def _all() -> models.VariableOption:
    return models.VariableOption(selected=True, text="All", value="$__all")


def datasource_variable() -> dashboard.DatasourceVariable:
    """The Prometheus data source every panel reads."""
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def job_variable() -> dashboard.QueryVariable:
    """The scrape job of the exporter; `metrics-exporter` (ArmoniK's KEDA job) by default."""
    default = models.VariableOption(selected=True, text=DEFAULT_JOB, value=DEFAULT_JOB)
    return (dashboard.QueryVariable("job").label("Job").datasource(DATASOURCE)
            .query("label_values(armonik_up, job)").current(default)
            .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(models.VariableSort.ALPHABETICAL_ASC))


def label_variable(name: str, label: str, query: str, *, multi: bool) -> dashboard.QueryVariable:
    """A variable listing a label's values; `multi` also offers All (as the regex .*)."""
    variable = (dashboard.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
                .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(models.VariableSort.ALPHABETICAL_ASC))
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*").current(_all())
    return variable


def instance_variable() -> dashboard.QueryVariable:
    """The exporters of the job (All by default)."""
    return label_variable("instance", "Instance", 'label_values(armonik_up{job=~"$job"}, '
                          "instance)", multi=True)


def scope_variables() -> list[Any]:
    """The variables every dashboard has: datasource, job, instance."""
    return [datasource_variable(), job_variable(), instance_variable()]


# -- panels ------------------------------------------------------------------------------------


def targets(queries: Sequence[Query], fmt: PromQueryFormat | None = None) -> list[Any]:
    """The panel's targets, A, B, C..."""
    built = []
    for ref, query in zip("ABCDEFGHIJ", queries, strict=False):
        target = (prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
                  .legend_format(query.legend or "__auto"))
        target = target.instant() if query.instant else target.range()
        built.append(target.format(fmt) if fmt else target)
    return built


def _common(panel: Any, title: str, description: str, width: int, height: int) -> Any:
    return (panel.title(title).description(description).datasource(DATASOURCE)
            .span(width).height(height))


def graph(title: str, description: str, queries: Sequence[Query], unit: str = "short", *,
          width: int = 12, height: int = 8, stack: bool = False, repeat: str = "",
          min_value: float | None = 0) -> timeseries.Panel:
    """A time series panel."""
    panel = _common(timeseries.Panel(), title, description, width, height)
    panel = (panel.targets(targets(queries)).unit(unit).fill_opacity(15 if stack else 8)
             .legend(common.VizLegendOptions().display_mode(common_models.LegendDisplayMode.LIST)
                     .placement(common_models.LegendPlacement.BOTTOM).show_legend(True)))
    if min_value is not None:
        panel = panel.min(min_value)
    if stack:
        panel = panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    if repeat:
        panel = panel.repeat(repeat).repeat_direction("h").max_per_row(2)
    return panel


def single(title: str, description: str, queries: Sequence[Query], unit: str = "short", *,
           width: int = 6, height: int = 4, mappings: Sequence[Any] = (),
           thresholds: Sequence[tuple[float | None, str]] = (), names: bool = False
           ) -> stat.Panel:
    """A stat panel: the last value, with a sparkline (or only the names, for info metrics)."""
    panel = _common(stat.Panel(), title, description, width, height)
    panel = (panel.targets(targets(queries)).unit(unit)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
             .graph_mode(common_models.BigValueGraphMode.NONE if names
                         else common_models.BigValueGraphMode.AREA)
             .text_mode(common_models.BigValueTextMode.NAME if names
                        else common_models.BigValueTextMode.AUTO)
             .color_mode(common_models.BigValueColorMode.NONE if names
                         else common_models.BigValueColorMode.VALUE))
    if mappings:
        panel = panel.mappings(list(mappings))
    if thresholds:
        steps = [models.Threshold(value=value, color=color) for value, color in thresholds]
        panel = panel.thresholds(dashboard.ThresholdsConfig()
                                 .mode(models.ThresholdsMode.ABSOLUTE).steps(steps))
    return panel


def bars(title: str, description: str, queries: Sequence[Query], unit: str = "short", *,
         width: int = 12, height: int = 8) -> bargauge.Panel:
    """A bar gauge of current values (instant queries)."""
    panel = _common(bargauge.Panel(), title, description, width, height)
    return (panel.targets(targets(queries)).unit(unit).min(0)
            .display_mode(common_models.BarGaugeDisplayMode.BASIC)
            .orientation(common_models.VizOrientation.HORIZONTAL)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])))


def buckets(title: str, description: str, query: Query, *, width: int = 6,
            height: int = 8) -> heatmap.Panel:
    """A heatmap of a histogram's buckets (already bucketed: nothing to calculate)."""
    panel = _common(heatmap.Panel(), title, description, width, height)
    return (panel.targets(targets([query], PromQueryFormat.HEATMAP)).calculate(False)
            .y_axis(heatmap.YAxisConfig().unit("s"))
            .color(heatmap.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME)
                   .scheme("Oranges").fill("dark-orange").exponent(0.5).steps(64)
                   .reverse(False)))


def states(values: dict[int, tuple[str, str]]) -> list[models.ValueMap]:
    """Value mappings: a number to a text and a color."""
    options = {str(number): models.ValueMappingResult(text=text, color=color, index=index)
               for index, (number, (text, color)) in enumerate(values.items())}
    return [models.ValueMap(options=options)]


def nan_as(text: str) -> models.SpecialValueMap:
    """A value mapping showing NaN as a word."""
    return models.SpecialValueMap(options=models.DashboardSpecialValueMapOptions(
        match=models.SpecialValueMatch.NA_N, result=models.ValueMappingResult(text=text)))


UP_DOWN = states({1: ("UP", "green"), 0: ("DOWN", "red")})


# -- dashboards --------------------------------------------------------------------------------


class Board:
    """One dashboard: its variables, then rows of panels placed left to right, ids stable."""

    def __init__(self, uid: str, title: str, description: str,
                 variables: Iterable[Any]) -> None:
        self._ids = count(1)
        self.builder = (dashboard.Dashboard(title).uid(uid).description(description)
                        .tags(TAGS).editable().time("now-1h", "now").refresh("30s")
                        .timezone("browser").tooltip(models.DashboardCursorSync.CROSSHAIR)
                        .timepicker(dashboard.TimePicker().refresh_intervals(
                            ["10s", "30s", "1m", "5m", "15m"])))
        for variable in variables:
            self.builder = self.builder.with_variable(variable)

    def row(self, title: str, repeat: str = "") -> Board:
        """Start a row."""
        row = dashboard.Row(title).id(next(self._ids))
        self.builder = self.builder.with_row(row.repeat(repeat) if repeat else row)
        return self

    def add(self, *panels: Any) -> Board:
        """Add panels to the current row."""
        for panel in panels:
            self.builder = self.builder.with_panel(panel.id(next(self._ids)))
        return self

    def json(self) -> str:
        """The dashboard as Grafana imports it."""
        model = json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))
        return json.dumps(model, indent=2, sort_keys=True) + "\n"
