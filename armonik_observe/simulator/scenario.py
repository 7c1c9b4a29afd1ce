"""Scenario specifications: partitions, pods, and sessions arriving with their task graphs.

A scenario is plain data. Built-in scenarios and YAML/TOML files go through the same loader, so
both are validated the same way; an error names the file and the field.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from armonik_observe.simulator.profile import Distribution, TaskProfile

GRAPH_KINDS = ("bag", "fanout", "chain", "subtasking", "stream")
SESSION_ACTIONS = ("pause", "resume", "cancel", "close", "purge", "delete")


class ScenarioError(ValueError):
    """A scenario that cannot be used, with the field at fault."""


@dataclass(frozen=True)
class PartitionSpec:
    """A partition and how many pods (each with `slots` workers) serve it."""

    id: str
    pods: int = 2
    slots: int = 1
    pod_max: int = 0
    pod_reserved: int = 1
    priority: int = 1
    preemption: int = 50

    def __post_init__(self) -> None:
        _require(bool(self.id), "id", "must not be empty")
        _require(self.pods >= 1, "pods", "must be at least 1")
        _require(self.slots >= 1, "slots", "must be at least 1")
        _require(0 <= self.preemption <= 100, "preemption", "must be between 0 and 100")


@dataclass(frozen=True)
class GraphSpec:
    """The shape of a session's work.

    bag: `tasks` independent tasks; fanout: one root, `tasks` children, one aggregator;
    chain: `tasks` tasks each reading the previous output; subtasking: `tasks` roots that submit
    `children` subtasks down to `depth` levels (unless the profile sets its own
    subtask_children); stream: `rate` tasks/s in batches of `batch` for `duration` seconds
    (0 means for ever). `batch` also splits a bag's submission.
    """

    kind: str = "bag"
    tasks: int = 10
    depth: int = 2
    children: int = 2
    rate: float = 100.0
    duration: float = 0.0
    batch: int = 100

    def __post_init__(self) -> None:
        _require(self.kind in GRAPH_KINDS, "kind", f"must be one of {', '.join(GRAPH_KINDS)}")
        _require(self.tasks >= 1, "tasks", "must be at least 1")
        _require(self.rate > 0, "rate", "must be positive")
        _require(self.batch >= 1, "batch", "must be at least 1")
        _require(self.duration >= 0, "duration", "must not be negative")
        _require(self.depth >= 1 and self.children >= 1, "depth",
                 "depth and children must be at least 1")


@dataclass(frozen=True)
class LifecycleStep:
    """A session operation `at` seconds after the session starts."""

    action: str
    at: float = 0.0

    def __post_init__(self) -> None:
        _require(self.action in SESSION_ACTIONS, "action",
                 f"must be one of {', '.join(SESSION_ACTIONS)}")
        _require(self.at >= 0, "at", "must not be negative")


@dataclass(frozen=True)
class Application:
    """Application task options."""

    name: str = "app"
    version: str = "1.0.0"
    namespace: str = "armonik.sim"
    service: str = "Worker"


@dataclass(frozen=True)
class SessionGroup:
    """`count` sessions of the same kind, the first at `start`, then one every `every` seconds.

    `count` None (`null` in a file) means for ever: a never-ending workload.
    """

    name: str
    partition: str
    count: int | None = 1
    start: float = 0.0
    every: float = 10.0
    graph: GraphSpec = field(default_factory=GraphSpec)
    application: Application = field(default_factory=Application)
    profile: TaskProfile = field(default_factory=TaskProfile)
    max_retries: int = 2
    max_duration: float = 3600.0
    priority: int = 1
    close_when_done: bool = True
    lifecycle: tuple[LifecycleStep, ...] = ()
    # Seconds after the session opens, written as its `deadline` task option (RFC 3339).
    deadline: float = 0.0

    @property
    def task_profile(self) -> TaskProfile:
        """How the group's tasks run: its profile, with a subtasking graph's depth and
        children when the profile sets no subtasks of its own."""
        graph, profile = self.graph, self.profile
        if graph.kind != "subtasking" or profile.subtask_children:
            return profile
        return replace(profile, subtask_depth=graph.depth, subtask_children=graph.children)

    def __post_init__(self) -> None:
        _require(self.count is None or self.count >= 1, "count",
                 "must be at least 1, or null for ever")
        _require(self.count is not None or self.every > 0, "every",
                 "must be positive when sessions repeat for ever")
        _require(self.deadline >= 0, "deadline", "must not be negative")
        _require(self.start >= 0 and self.every >= 0, "start", "times must not be negative")
        _require(self.max_retries >= 0, "max_retries", "must not be negative")
        _require(self.max_duration > 0, "max_duration", "must be positive")


@dataclass(frozen=True)
class Scenario:
    """A whole workload: partitions and session groups."""

    name: str
    partitions: tuple[PartitionSpec, ...]
    sessions: tuple[SessionGroup, ...]
    seed: int = 1

    def __post_init__(self) -> None:
        _require(len(self.partitions) >= 1, "partitions", "needs at least one partition")
        ids = [p.id for p in self.partitions]
        _require(len(set(ids)) == len(ids), "partitions", "ids must be unique")
        for index, group in enumerate(self.sessions):
            _require(group.partition in ids, f"sessions[{index}].partition",
                     f"unknown partition {group.partition!r}")


class _FieldError(ValueError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def _require(condition: bool, path: str, problem: str) -> None:
    if not condition:
        raise _FieldError(path, problem)


def scenario_from_dict(data: Any, source: str = "scenario") -> Scenario:
    """Build and validate a scenario from plain data; errors name `source` and the field."""
    try:
        return _build(Scenario, data, "")
    except _FieldError as error:
        raise ScenarioError(f"{source}: {error.path}: {error.problem}") from None


def load_scenario_file(path: Path) -> Scenario:
    """Load a scenario from a .yaml, .yml or .toml file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        first_line = str(error).splitlines()[0]
        raise ScenarioError(f"{path}: not valid {path.suffix.lstrip('.')}: {first_line}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return scenario_from_dict(data, str(path))


def _build(kind: Any, data: Any, path: str) -> Any:
    options = get_args(kind) if get_origin(kind) is UnionType else ()
    if type(None) in options:
        if data is None:
            return None
        (kind,) = (option for option in options if option is not type(None))
    if kind is Distribution:
        return _distribution(data, path)
    if is_dataclass(kind):
        return _dataclass(kind, data, path)
    origin = get_origin(kind)
    if origin is tuple:
        if not isinstance(data, list):
            raise _FieldError(path, "must be a list")
        item = get_args(kind)[0]
        return tuple(_build(item, v, f"{path}[{i}]") for i, v in enumerate(data))
    return _scalar(kind, data, path)


def _dataclass(kind: Any, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise _FieldError(path or kind.__name__, "must be a mapping")
    hints = get_type_hints(kind)
    names = {f.name for f in fields(kind)}
    for key in data:
        if key not in names:
            known = ", ".join(sorted(names))
            raise _FieldError(_join(path, key), f"unknown field (known: {known})")
    values = {key: _build(hints[key], value, _join(path, key)) for key, value in data.items()}
    try:
        return kind(**values)
    except _FieldError as error:
        raise _FieldError(_join(path, error.path), error.problem) from None
    except TypeError as error:
        raise _FieldError(path or kind.__name__, f"missing a required field ({error})") from None
    except ValueError as error:
        raise _FieldError(path or kind.__name__, str(error)) from None


def _distribution(data: Any, path: str) -> Distribution:
    if isinstance(data, int | float) and not isinstance(data, bool):
        data = {"kind": "constant", "mean": data}
    if not isinstance(data, dict):
        raise _FieldError(path, "must be a number of seconds or {kind, mean, spread}")
    return _dataclass(Distribution, data, path)


def _scalar(kind: Any, data: Any, path: str) -> Any:
    if kind is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if kind in (int, str, bool) and type(data) is kind:
        return data
    expected = getattr(kind, "__name__", str(kind))
    raise _FieldError(path, f"expected {expected}, got {type(data).__name__} {data!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
