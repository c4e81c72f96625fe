"""What every search sampler shares: numbered trials, reading the objective, resuming.

A trial is *complete* when its run ends ``ok`` and shows the objective as a finite number;
otherwise it is *failed*, and the row says why in ``trial_error``. A run that ends ``ok`` but
shows no number for the objective keeps status ``ok`` (the run itself went well, its values
are real) with ``objective`` NULL and ``trial_error`` set: it is a failed trial for the search.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import statistics
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from ploomber_like.errors import ObjectiveError, ParameterError
from ploomber_like.record import Record, SearchTrial, Status
from ploomber_like.samplers.base import Point, Sampler
from ploomber_like.samplers.space import Dimension
from ploomber_like.store import RecordedTrial, Store

Direction = Literal["maximize", "minimize"]

#: How a failed trial's ``trial_error`` starts when its run did not show the objective.
NOT_SHOWN = "the run did not show"
#: Names of the values a run showed listed when its objective is not among them, at most.
MAX_NAMES_LISTED = 12


@dataclass(frozen=True)
class Objective:
    """The value a search optimizes: a name the file shows, and which way is better."""

    name: str
    direction: Direction = "maximize"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError("a search needs an objective: the name of a value the file shows")
        if self.direction not in ("maximize", "minimize"):
            raise ParameterError(
                f"direction must be 'maximize' or 'minimize', got {self.direction!r}"
            )

    def read(self, record: Record) -> tuple[float | None, str | None]:
        """The objective's value in ``record``, or None and why the trial failed."""
        if record.status != Status.OK:
            return None, f"the run ended {record.status}"
        if self.name in record.values:
            value = record.values[self.name]
        elif self.name in record.parameters:
            value = record.parameters[self.name]
        else:
            return None, f"{NOT_SHOWN} {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None, f"{self.name!r} is {_short(value)}, not a number"
        if not math.isfinite(value):
            return None, f"{self.name!r} is {value}, not a finite number"
        return float(value), None

    def check_shown(self, record: Record) -> None:
        """Raise :class:`ObjectiveError` if ``record`` ended ``ok`` without showing the
        objective (a misspelled name): every trial would, and the search run for nothing."""
        if record.status != Status.OK or self.name in record.values:
            return
        if self.name in record.parameters:
            return
        shown = list(record.values)
        close = difflib.get_close_matches(self.name, [*shown, *record.parameters], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        names = ", ".join(shown[:MAX_NAMES_LISTED]) + (", ..." if len(shown) > MAX_NAMES_LISTED
                                                       else "")
        raise ObjectiveError(
            f"the objective {self.name!r} is not a value the file shows; run {record.uuid[:8]} "
            f"showed {names or 'no values'}{hint}"
        )

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` beats ``b``."""
        return a > b if self.direction == "maximize" else a < b


class SearchSampler(Sampler):
    """A sampler that numbers its trials, records the objective and resumes a named search.

    Subclasses propose parameters (:meth:`propose`) and learn results (:meth:`learn`).

    Parameters
    ----------
    space : dict of Dimension
        What to search (see :func:`~ploomber_like.samplers.space.search_space`).
    objective : Objective
        The value to optimize.
    search : str
        The search's name, stored in every trial's row; trials already recorded under it count.
    trials : int
        Trials the search should have in total, counting those recorded before.
    """

    def __init__(
        self, space: dict[str, Dimension], objective: Objective, search: str, trials: int
    ) -> None:
        if not isinstance(trials, int) or trials < 1:
            raise ParameterError(f"trials must be at least 1, got {trials!r}")
        self.space = space
        self.objective = objective
        self.search = search
        self.trials = trials
        #: Trials counted toward ``trials``: recorded before (complete or failed) and told since.
        self.counted = 0
        self._next_number = 0
        self._asked = 0
        #: A run of this search has shown the objective (or the search was stopped for it).
        self._objective_shown = False
        #: Runs of each trial (``repeat``): its value is the mean of their objectives.
        self.repeat = 1
        #: Trials in flight by their point: number and the records told so far.
        self._open: dict[int, tuple[int, list[Record]]] = {}

    def replicated(self, repeat: int) -> None:
        self.repeat = repeat

    def resume(self, store: Store) -> None:
        """Count and learn the trials recorded before; interrupted ones are run again."""
        recorded = store.search_trials(self.search)
        self._next_number = max((t.number for t in recorded), default=-1) + 1
        finished = [t for t in recorded if t.status not in (Status.RUNNING, Status.INTERRUPTED)]
        finished = _per_trial(finished)
        self.counted = len(finished)
        self._objective_shown = any(
            t.status == Status.OK and not (t.error or "").startswith(NOT_SHOWN) for t in finished
        )
        self.learn_history(finished)

    @property
    def total(self) -> int:
        return max(0, self.trials - self.counted)

    def ask(self, n: int) -> list[Point]:
        n = min(n, self.trials - self.counted - self._asked)
        points = [self.propose() for _ in range(max(0, n))]
        self._asked += len(points)
        return points

    def begin(self, point: Point, record: Record) -> None:
        # The replicates of a point are one trial: they share its number.
        if id(point) not in self._open:
            self._open[id(point)] = (self._next_number, [])
            self._next_number += 1
        record.trial = SearchTrial(self.search, self._open[id(point)][0])

    def tell(self, point: Point, record: Record) -> None:
        assert record.trial is not None
        if record.status == Status.INTERRUPTED:
            record.trial.error = "the run was interrupted"
        else:
            record.trial.objective, record.trial.error = self.objective.read(record)
        _, told = self._open[id(point)]
        told.append(record)
        if len(told) == self.repeat:
            del self._open[id(point)]
            self._asked -= 1
            self._learn_trial(point, told)
        if record.status != Status.INTERRUPTED:
            self._check_objective(record)

    def _learn_trial(self, point: Point, records: list[Record]) -> None:
        """Every replicate of ``point`` was told: learn the mean of their objectives."""
        if any(r.status == Status.INTERRUPTED for r in records):
            self.learn(point, None, records[-1])
            return  # not counted: a resumed search runs it again
        self.counted += 1
        values = [r.trial.objective for r in records if r.trial and r.trial.objective is not None]
        self.learn(point, statistics.fmean(values) if values else None, records[-1])

    def _check_objective(self, record: Record) -> None:
        # Until a run of the search has shown the objective, a complete run without it means
        # the name is wrong: stop. Once one has, a run that ends early without it (an early
        # sys.exit(0)) is only a failed trial.
        if not self._objective_shown:
            try:
                self.objective.check_shown(record)
            except ObjectiveError:
                # Raised once: the runs still in flight are told after it, on the way out.
                self._objective_shown = True
                raise
            self._objective_shown = record.status == Status.OK

    @abstractmethod
    def propose(self) -> Point:
        """The parameters of the next trial."""

    def learn(self, point: Point, value: float | None, record: Record) -> None:
        """A proposed trial ended with ``value`` (None: failed or interrupted)."""

    def learn_history(self, trials: list[RecordedTrial]) -> None:
        """Trials recorded by earlier runs of the same search, in trial order."""


def _per_trial(recorded: list[RecordedTrial]) -> list[RecordedTrial]:
    """One trial per number: the replicates of a trial merged, their objectives averaged."""
    numbers: dict[int, list[RecordedTrial]] = {}
    for trial in recorded:
        numbers.setdefault(trial.number, []).append(trial)
    merged = []
    for rows in numbers.values():
        values = [t.objective for t in rows if t.objective is not None]
        objective = statistics.fmean(values) if values else None
        merged.append(dataclasses.replace(rows[-1], objective=objective))
    return merged


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
