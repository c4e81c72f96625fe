"""What the sweep driver asks of a sampler: points to run, and to be told how they went."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ploomber_like.pruning import PruneOptions, PruningRule, rule_for
from ploomber_like.record import Record
from ploomber_like.store import Store


@dataclass
class Point:
    """Parameters to run, as a sampler proposed them."""

    parameters: dict[str, Any]
    #: The sampler's own handle on the point (an Optuna trial...), given back in ``tell``.
    handle: Any = field(default=None, repr=False)


class Sampler(ABC):
    """Proposes the points of a sweep; the driver runs them, writes them, and tells it.

    Several points are asked before earlier ones are told: one per free worker.
    """

    #: A plan fixed in advance (a grid): the driver may read points well ahead of the runs, and
    #: skips those already recorded ``ok`` for the same file and parameters. A search that
    #: learns from results is asked only for as many points as there are free workers.
    planned: ClassVar[bool] = False

    def resume(self, store: Store) -> None:
        """Learn what earlier sweeps of the same search recorded in ``store`` (default: nothing)."""
        return None

    @property
    @abstractmethod
    def total(self) -> int | None:
        """How many points this sweep will run (before skipping), if known."""

    @abstractmethod
    def ask(self, n: int) -> list[Point]:
        """Up to ``n`` points; an empty list when there are no more."""

    def replicated(self, repeat: int) -> None:
        """Each point will run ``repeat`` times, each run begun and told (default: nothing)."""
        return None

    def pruning_rule(self, options: PruneOptions) -> PruningRule:
        """The rule that stops this sweep's bad runs: by default the one ``options`` name."""
        return rule_for(options)

    def begin(self, point: Point, record: Record) -> None:
        """``point`` is about to run as ``record`` (written ``running`` next)."""
        return None

    def tell(self, point: Point, record: Record) -> None:
        """``point`` ended as ``record`` (written next); default: nothing to learn."""
        return None
