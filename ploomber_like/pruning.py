"""Pruning: stopping a sweep's bad runs early, from the series their output scalars print.

A run that prints ``val_loss: 0.52`` every epoch leaves a series (:mod:`ploomber_like.scalars`);
the sweep driver hands each point of the watched series to a :class:`PruningRule` as it is
printed, and stops the run when the rule says so. The rules are pure: they are handed
``(run, step, value)`` and keep the series they need, so they are tested without kernels.

- ``median``: at a step ``s >= min_steps``, a run whose value is worse than the median of the
  values of the other runs that reached ``s`` (at least 2 of them) is stopped.
- ``patience:K``: a run whose best value is ``K`` steps old (no improvement in ``K`` steps) at
  a step ``s >= min_steps`` is stopped.

A value that is not a finite number (a loss gone to ``nan``) is worse than any number.
"""

from __future__ import annotations

import math
import statistics
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ploomber_like.errors import ParameterError
from ploomber_like.record import MetricPoint

#: Steps a run goes before any rule may stop it, unless ``min_steps`` says otherwise.
DEFAULT_MIN_STEPS = 3
#: The rules ``prune=`` and ``--prune`` name.
RULES = ("median", "patience:K")


@dataclass(frozen=True)
class PruneOptions:
    """How a sweep prunes: the rule, the series it watches and which way is better.

    Build it with :func:`prune_options` from what the user typed.
    """

    #: ``"median"`` or ``"patience"``.
    rule: Literal["median", "patience"]
    #: The output scalar watched (``val_loss``).
    key: str
    #: Whether higher values of ``key`` are better.
    maximize: bool = False
    min_steps: int = DEFAULT_MIN_STEPS
    #: Steps without improvement a ``patience`` rule allows.
    patience: int = 0


def prune_options(
    prune: str | PruneOptions | None,
    on: str | None = None,
    min_steps: int = DEFAULT_MIN_STEPS,
    *,
    default_on: tuple[str, bool] | None = None,
) -> PruneOptions | None:
    """The checked options of ``prune="median"`` / ``--prune patience:5 --on acc:max``.

    Parameters
    ----------
    prune : str, PruneOptions or None
        ``"median"``, ``"patience:K"``, options already built, or None for no pruning.
    on : str, optional
        ``KEY`` or ``KEY:min`` / ``KEY:max``: the output scalar watched (``min`` by default).
    min_steps : int
        Steps before which no run is stopped.
    default_on : (str, bool), optional
        The key and whether to maximize it when ``on`` is not given (a search's objective).

    Raises
    ------
    ParameterError
        For an unknown rule, a bad ``K``, ``on`` or ``min_steps``, or no key to watch.
    """
    if prune is None and on is not None:
        raise ParameterError(f"prune_on / --on {on!r} needs a rule: --prune median, for one")
    if prune is None or isinstance(prune, PruneOptions):
        return prune
    if not isinstance(prune, str):
        raise ParameterError(f"prune must be one of {', '.join(RULES)}, got {prune!r:.60}")
    name, _, argument = prune.partition(":")
    patience = 0
    if name == "patience":
        try:
            patience = int(argument)
        except ValueError:
            patience = -1
        if patience < 1:
            raise ParameterError(f"prune {prune!r}: patience:K needs a whole number K >= 1")
    elif name != "median" or argument:
        raise ParameterError(f"unknown prune rule {prune!r}: use {' or '.join(RULES)}")
    if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 0:
        raise ParameterError(f"min_steps must be a whole number >= 0, got {min_steps!r:.60}")
    if on is None:
        if default_on is None:
            raise ParameterError(
                "pruning needs the output scalar to watch: prune_on='val_loss' / --on val_loss"
            )
        key, maximize = default_on
    else:
        key, maximize = _watched(on)
    return PruneOptions(name, key, maximize, min_steps, patience)  # type: ignore[arg-type]


def _watched(on: str) -> tuple[str, bool]:
    key, colon, direction = on.rpartition(":")
    if not colon:
        key, direction = on, "min"
    if not key or direction not in ("min", "max"):
        raise ParameterError(f"prune on {on!r}: use KEY, KEY:min or KEY:max")
    return key, direction == "max"


class PruningRule(ABC):
    """Decides, point by point, whether a run should stop; keeps the series it needs."""

    @abstractmethod
    def report(self, run: str, step: int, value: float) -> str | None:
        """``run`` printed ``value`` at ``step``: why it should stop now, or None."""


class MedianRule(PruningRule):
    """Stop a run worse than the median of the other runs at the same step."""

    def __init__(self, min_steps: int = DEFAULT_MIN_STEPS, maximize: bool = False) -> None:
        self.min_steps = min_steps
        self.maximize = maximize
        #: step -> run -> value, for every run seen (finished and stopped ones included).
        self._by_step: dict[int, dict[str, float]] = {}

    def report(self, run: str, step: int, value: float) -> str | None:
        values = self._by_step.setdefault(step, {})
        values[run] = value
        if step < self.min_steps:
            return None
        others = [v for r, v in values.items() if r != run]
        if len(others) < 2:
            return None
        median = statistics.median(_rank(v, self.maximize) for v in others)
        if _rank(value, self.maximize) > median:
            shown = -median if self.maximize else median
            return (
                f"{value:g} at step {step} is worse than the median {shown:g} of "
                f"{len(others)} other runs"
            )
        return None


class PatienceRule(PruningRule):
    """Stop a run whose best value is ``patience`` steps old."""

    def __init__(
        self, patience: int, min_steps: int = DEFAULT_MIN_STEPS, maximize: bool = False
    ) -> None:
        self.patience = patience
        self.min_steps = min_steps
        self.maximize = maximize
        #: run -> (best rank so far, the step it was printed at).
        self._best: dict[str, tuple[float, int]] = {}

    def report(self, run: str, step: int, value: float) -> str | None:
        rank = _rank(value, self.maximize)
        best = self._best.get(run)
        if best is None or rank < best[0]:
            self._best[run] = best = (rank, step)
        if step >= self.min_steps and step - best[1] >= self.patience:
            return f"no improvement in {step - best[1]} steps (best at step {best[1]})"
        return None


def rule_for(options: PruneOptions) -> PruningRule:
    """The pure rule ``options`` name."""
    if options.rule == "median":
        return MedianRule(options.min_steps, options.maximize)
    return PatienceRule(options.patience, options.min_steps, options.maximize)


def _rank(value: float, maximize: bool) -> float:
    """Lower is better: a maximized value negated, anything not finite last."""
    if not math.isfinite(value):
        return math.inf
    return -value if maximize else value


@dataclass(frozen=True)
class PruneDecision:
    """A run to stop: the step it printed last and why."""

    step: int
    reason: str


class RunPruner:
    """Feeds each run's points of the watched series to a rule as they are printed.

    Called from the thread driving the kernels while the sweep's own thread starts and ends
    runs: one lock around the rule.
    """

    def __init__(self, options: PruneOptions, rule: PruningRule) -> None:
        self.options = options
        self.rule = rule
        self._lock = threading.Lock()
        self._stopped: set[str] = set()

    def observe(self, run: str, points: Iterable[MetricPoint]) -> PruneDecision | None:
        """New points of ``run``'s series: the decision to stop it, at most once per run."""
        with self._lock:
            if run in self._stopped:
                return None
            for point in points:
                if point.key != self.options.key:
                    continue
                reason = self.rule.report(run, point.step, point.value)
                if reason is not None:
                    self._stopped.add(run)
                    return PruneDecision(point.step, f"{self.options.key} {reason}")
        return None


def time_saved(pruned: list[float], completed: list[float]) -> float | None:
    """Seconds of compute the pruned runs did not spend: each would have taken the mean
    duration of the completed runs; None without a completed run to estimate from."""
    if not completed:
        return None
    mean = statistics.fmean(completed)
    return sum(max(0.0, mean - duration) for duration in pruned)
