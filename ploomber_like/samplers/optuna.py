"""Optuna's samplers (TPE by default) through its ask/tell interface: the ``[search]`` extra.

The study lives in memory: our database is the storage. A resumed search tells the new study
the trials recorded before (``add_trial``), so it learns from them as if it had run them.
Pruning goes through Optuna's own pruners: each point of the watched series a trial's run
prints is ``trial.report``-ed, ``trial.should_prune()`` decides, and a stopped run's trial is
told ``PRUNED`` (Optuna keeps its last reported value as the trial's value).
"""

from __future__ import annotations

from typing import Any

from ploomber_like.errors import ParameterError, TrackerError
from ploomber_like.pruning import PruneOptions, PruningRule
from ploomber_like.record import Record, Status
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
        #: The Optuna trial of each run in flight, by the run's uuid (for pruning).
        self._trials: dict[str, Any] = {}

    def pruning_rule(self, options: PruneOptions) -> PruningRule:
        """Optuna's ``MedianPruner`` or ``PatientPruner`` on this search's study."""
        if self.repeat > 1:
            raise ParameterError(
                "pruning a search with repeated trials is not supported: Optuna prunes a "
                "trial, not one of its replicates"
            )
        pruners = self._optuna.pruners
        if options.rule == "median":
            # Judged at a step once 2 complete trials reached it, as the median rule.
            pruner = pruners.MedianPruner(
                n_startup_trials=2, n_warmup_steps=options.min_steps, n_min_trials=2
            )
        else:
            pruner = pruners.PatientPruner(None, patience=options.patience)
        self._study.pruner = pruner
        # The study ranks reports in the objective's direction: the watched key is flipped
        # when it goes the other way.
        flip = options.maximize != (self.objective.direction == "maximize")
        return _OptunaPruning(self._trials, options.min_steps, flip)

    def begin(self, point: Point, record: Record) -> None:
        super().begin(point, record)
        self._trials[record.uuid] = point.handle

    def propose(self) -> Point:
        trial = self._study.ask(self._distributions)
        return Point(dict(trial.params), handle=trial)

    def learn(self, point: Point, value: float | None, record: Record) -> None:
        states = self._optuna.trial.TrialState
        self._trials.pop(record.uuid, None)
        if record.status == Status.PRUNED:
            self._study.tell(point.handle, state=states.PRUNED)
        elif value is None:
            self._study.tell(point.handle, state=states.FAIL)
        else:
            self._study.tell(point.handle, value)

    def learn_history(self, trials: list[RecordedTrial]) -> None:
        states = self._optuna.trial.TrialState
        for trial in trials:
            params = {name: trial.overrides.get(name) for name in self.space}
            try:
                if trial.status == Status.PRUNED:
                    state = states.PRUNED
                else:
                    state = states.COMPLETE if trial.objective is not None else states.FAIL
                frozen = self._optuna.trial.create_trial(
                    state=state,
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


class _OptunaPruning(PruningRule):
    """Reports a run's points to its Optuna trial and asks the study's pruner."""

    def __init__(self, trials: dict[str, Any], min_steps: int, flip: bool) -> None:
        self.trials = trials
        self.min_steps = min_steps
        self.flip = flip

    def report(self, run: str, step: int, value: float) -> str | None:
        trial = self.trials.get(run)
        if trial is None:
            return None
        trial.report(-value if self.flip else value, step)
        if step >= self.min_steps and trial.should_prune():
            pruner = type(trial.study.pruner).__name__
            return f"{value:g} at step {step}: Optuna's {pruner} pruned trial {trial.number}"
        return None
