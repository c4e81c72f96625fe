"""Random search: each trial draws every parameter independently; needs no Optuna.

Lists are drawn uniformly, ranges uniformly or log-uniformly. With a ``seed`` the sequence of
points is reproducible, also across a resumed search: the draws of the trials already recorded
are replayed before the next one.
"""

from __future__ import annotations

import math
import random

from ploomber_like.samplers.base import Point
from ploomber_like.samplers.space import Choice, Dimension, FloatRange, IntRange
from ploomber_like.samplers.trials import Objective, SearchSampler
from ploomber_like.store import RecordedTrial


class RandomSampler(SearchSampler):
    """Independent random draws over the space (``sampler="random"``)."""

    def __init__(
        self,
        space: dict[str, Dimension],
        objective: Objective,
        search: str,
        trials: int,
        seed: int | None = None,
    ) -> None:
        super().__init__(space, objective, search, trials)
        self._random = random.Random(seed)

    def learn_history(self, trials: list[RecordedTrial]) -> None:
        # Replay the draws of every trial numbered so far, so a resumed search goes on with the
        # points an uninterrupted one would have drawn next.
        for _ in range(max((t.number for t in trials), default=-1) + 1):
            self.propose()

    def propose(self) -> Point:
        return Point({name: draw(self._random, dim) for name, dim in self.space.items()})


def draw(generator: random.Random, dimension: Dimension) -> object:
    """One value of ``dimension``."""
    if isinstance(dimension, Choice):
        return generator.choice(dimension.values)
    if isinstance(dimension, IntRange):
        if dimension.log:
            value = math.exp(generator.uniform(math.log(dimension.low), math.log(dimension.high)))
            return min(dimension.high, max(dimension.low, round(value)))
        steps = (dimension.high - dimension.low) // dimension.step
        return dimension.low + dimension.step * generator.randint(0, steps)
    assert isinstance(dimension, FloatRange)
    if dimension.log:
        return math.exp(generator.uniform(math.log(dimension.low), math.log(dimension.high)))
    if dimension.step:
        steps = int((dimension.high - dimension.low) // dimension.step)
        return dimension.low + dimension.step * generator.randint(0, steps)
    return generator.uniform(dimension.low, dimension.high)
