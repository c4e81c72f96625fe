"""A search space: each parameter a list of choices, or an integer or float range.

Users give lists and Optuna's distribution objects (``IntDistribution(10, 200)``); the command
line gives ``int:10:200``. Both become the dimensions below, so sampling at random needs no
Optuna, and the Optuna sampler converts them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ploomber_like.errors import ParameterError
from ploomber_like.notebook import python_literal, validate_parameters


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (a categorical parameter)."""

    values: tuple[Any, ...]

    def describe(self) -> str:
        return ",".join(python_literal(value) for value in self.values)


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]``, every ``step``-th from ``low``, or log-uniform."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def describe(self) -> str:
        return f"int:{self.low}:{self.high}" + (":log" if self.log else f":{self.step}")


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``, uniform, log-uniform, or every ``step`` from ``low``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def describe(self) -> str:
        tail = ":log" if self.log else (f":{self.step!r}" if self.step else "")
        return f"float:{self.low!r}:{self.high!r}{tail}"


Dimension = Choice | IntRange | FloatRange


def search_space(space: Mapping[str, Any]) -> dict[str, Dimension]:
    """Check ``space`` and turn each entry into a :data:`Dimension`.

    A list (or tuple) is a choice among its values; an Optuna ``IntDistribution``,
    ``FloatDistribution`` or ``CategoricalDistribution`` a range or choice; a
    :class:`Choice`, :class:`IntRange` or :class:`FloatRange` is kept. Raises
    :class:`ParameterError` with one line for anything else, an empty space, an empty list,
    a range whose low is above its high, or a log range that does not start above zero.
    """
    if not isinstance(space, Mapping):
        raise ParameterError(
            f"a search space must be a dict of name -> list or distribution, "
            f"got {type(space).__name__}"
        )
    if not space:
        raise ParameterError("the search space is empty: give at least one parameter to search")
    validate_parameters({name: None for name in space})  # names: identifiers
    return {name: check_dimension(name, _dimension(name, value)) for name, value in space.items()}


def check_dimension(name: str, dimension: Dimension) -> Dimension:
    """``dimension``, if it can be sampled; else a one-line :class:`ParameterError`."""
    if isinstance(dimension, Choice):
        if not dimension.values:
            raise ParameterError(f"parameter {name!r}: the list of choices is empty")
        for value in dimension.values:
            python_literal(value, name)
        return dimension
    numbers = (dimension.low, dimension.high, dimension.step or 1)
    if not all(math.isfinite(n) for n in numbers):
        raise ParameterError(f"parameter {name!r}: range bounds and step must be finite")
    if dimension.low > dimension.high:
        raise ParameterError(
            f"parameter {name!r}: low {dimension.low!r} is above high {dimension.high!r}"
        )
    if dimension.log and dimension.low <= 0:
        raise ParameterError(
            f"parameter {name!r}: a log range must start above 0, got low {dimension.low!r}"
        )
    if dimension.step is not None and dimension.step <= 0:
        raise ParameterError(f"parameter {name!r}: step must be above 0, got {dimension.step!r}")
    if dimension.log and dimension.step not in (None, 1):
        raise ParameterError(f"parameter {name!r}: a log range cannot also have a step")
    return dimension


def _dimension(name: str, value: Any) -> Dimension:
    if isinstance(value, Choice | IntRange | FloatRange):
        return value
    if isinstance(value, list | tuple):
        return Choice(tuple(value))
    kind = type(value).__name__
    # Optuna's classes are recognized by name, so a space of lists needs no Optuna installed.
    if type(value).__module__.startswith("optuna."):
        if kind == "IntDistribution":
            return IntRange(value.low, value.high, value.log, value.step)
        if kind == "FloatDistribution":
            return FloatRange(value.low, value.high, value.log, value.step)
        if kind == "CategoricalDistribution":
            return Choice(tuple(value.choices))
    raise ParameterError(
        f"parameter {name!r}: {kind} is not a search dimension (use a list of choices, or "
        "optuna.distributions.IntDistribution / FloatDistribution)"
    )
