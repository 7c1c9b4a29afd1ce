"""How simulated tasks behave: phase duration distributions and failure probabilities."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DISTRIBUTIONS = ("constant", "uniform", "exponential", "lognormal")


@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution of durations in seconds: constant, uniform, exponential or lognormal.

    `mean` is the mean for every kind; `spread` is the half-width of a uniform distribution and
    the sigma of the underlying normal of a lognormal one.
    """

    kind: str = "constant"
    mean: float = 0.0
    spread: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.kind!r}; use one of {DISTRIBUTIONS}")
        if self.mean < 0 or self.spread < 0:
            raise ValueError("mean and spread must not be negative")
        if self.kind == "uniform" and self.spread > self.mean:
            raise ValueError("a uniform spread cannot exceed its mean")

    def sample_us(self, rng: random.Random) -> int:
        """Draw one duration, in whole microseconds."""
        return int(self._sample(rng) * 1_000_000)

    def _sample(self, rng: random.Random) -> float:
        if self.kind == "constant" or self.mean == 0:
            return self.mean
        if self.kind == "uniform":
            return rng.uniform(self.mean - self.spread, self.mean + self.spread)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        # Choose mu so that the lognormal's mean is `mean`.
        mu = math.log(self.mean) - self.spread**2 / 2
        return rng.lognormvariate(mu, self.spread)


def constant(seconds: float) -> Distribution:
    """A distribution that always yields `seconds`."""
    return Distribution("constant", seconds)


@dataclass(frozen=True, slots=True)
class TaskProfile:
    """Phase durations and failure odds for the tasks of one session."""

    creation: Distribution = field(default_factory=lambda: constant(0.005))
    queue: Distribution = field(default_factory=lambda: constant(0.002))
    acquisition: Distribution = field(default_factory=lambda: constant(0.003))
    fetch: Distribution = field(default_factory=lambda: constant(0.002))
    processing: Distribution = field(default_factory=lambda: constant(0.05))
    finalize: Distribution = field(default_factory=lambda: constant(0.004))
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    cancel_rate: float = 0.0
    lost_rate: float = 0.0
    subtask_depth: int = 0
    subtask_children: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "timeout_rate", "cancel_rate", "lost_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.subtask_depth < 0 or self.subtask_children < 0:
            raise ValueError("subtask_depth and subtask_children must not be negative")
