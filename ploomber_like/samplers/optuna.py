"""Optuna's samplers (TPE by default) through its ask/tell interface: the ``[search]`` extra.

The study lives in memory: our database is the storage. A resumed search tells the new study
the trials recorded before (``add_trial``), so it learns from them as if it had run them.
"""

from __future__ import annotations

from typing import Any

from ploomber_like.errors import TrackerError
from ploomber_like.record import Record
from ploomber_like.samplers.base import Point
from ploomber_like.samplers.space import Choice, Dimension, IntRange
from ploomber_like.samplers.trials import Objective, SearchSampler
from ploomber_like.store import RecordedTrial

#: Sampler names taken by ``track_search(sampler=...)`` and ``--sampler``, besides "random".
OPTUNA_SAMPLERS = ("tpe",)


class OptunaSampler(SearchSampler):
    """Trials proposed by an Optuna sampler (``sampler="tpe"``, or any Optuna sampler object).

    Raises
    ------
    TrackerError
        If Optuna is not installed.
    """

    def __init__(
        self,
        space: dict[str, Dimension],
        objective: Objective,
        search: str,
        trials: int,
        sampler: Any = "tpe",
        seed: int | None = None,
    ) -> None:
        super().__init__(space, objective, search, trials)
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial otherwise
        if sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed)
        self._optuna = optuna
        self._study = optuna.create_study(direction=objective.direction, sampler=sampler)
        self._distributions = {name: to_distribution(optuna, d) for name, d in space.items()}

    def propose(self) -> Point:
        trial = self._study.ask(self._distributions)
        return Point(dict(trial.params), handle=trial)

    def learn(self, point: Point, value: float | None, record: Record) -> None:
        states = self._optuna.trial.TrialState
        if value is None:
            self._study.tell(point.handle, state=states.FAIL)
        else:
            self._study.tell(point.handle, value)

    def learn_history(self, trials: list[RecordedTrial]) -> None:
        states = self._optuna.trial.TrialState
        for trial in trials:
            params = {name: trial.overrides.get(name) for name in self.space}
            try:
                frozen = self._optuna.trial.create_trial(
                    state=states.COMPLETE if trial.objective is not None else states.FAIL,
                    value=trial.objective, params=params, distributions=self._distributions,
                )
            except ValueError:
                continue  # a value outside today's space (a stored tuple read back as a list...)
            self._study.add_trial(frozen)


def import_optuna() -> Any:
    """The ``optuna`` module, or a one-line :class:`TrackerError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise TrackerError(
            "this search needs Optuna: pip install 'ploomber-like[search]' "
            "(or use sampler='random', which does not)"
        ) from None
    return optuna


def to_distribution(optuna: Any, dimension: Dimension) -> Any:
    """The Optuna distribution sampling ``dimension``."""
    distributions = optuna.distributions
    if isinstance(dimension, Choice):
        return distributions.CategoricalDistribution(list(dimension.values))
    if isinstance(dimension, IntRange):
        return distributions.IntDistribution(
            dimension.low, dimension.high, log=dimension.log, step=dimension.step
        )
    return distributions.FloatDistribution(
        dimension.low, dimension.high, log=dimension.log, step=dimension.step
    )
