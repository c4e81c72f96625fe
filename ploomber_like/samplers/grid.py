"""The grid sampler: every point of a parameter grid, streamed rather than expanded in memory.

A dict of lists is walked as its cartesian product one point at a time, so a 10^6-point grid
costs memory for the point being read, not for the whole grid.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ploomber_like.errors import ParameterError
from ploomber_like.samplers.base import Point, Sampler


class Grid:
    """The points of a grid in any accepted form, re-iterable, with its size when known.

    Parameters
    ----------
    grid : dict of lists, list of dicts, ParameterGrid, or iterable of dicts
        A dict of lists is its cartesian product; any other iterable of dicts is taken point by
        point (a one-shot iterator, such as a generator, is read once, as the sweep goes).

    Raises
    ------
    ParameterError
        For a grid of another shape, or an empty one (a dict of lists with no keys included).
    """

    def __init__(self, grid: Any) -> None:
        self._dimensions: dict[str, list[Any]] | None = None
        self._points: Iterable[Any] | None = None
        self._parts: tuple[Grid, Grid] | None = None
        if isinstance(grid, Mapping):
            for name, values in grid.items():
                if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
                    raise ParameterError(
                        f"grid values must be lists: {name!r} is {type(values).__name__}"
                    )
            if not grid:
                raise ParameterError("the grid is empty: it has no parameters to vary")
            self._dimensions = {name: list(values) for name, values in grid.items()}
            self.size: int | None = math.prod(len(v) for v in self._dimensions.values())
        elif isinstance(grid, str | bytes) or not isinstance(grid, Iterable):
            raise ParameterError(
                f"a grid must be a dict of lists or an iterable of dicts, got {type(grid).__name__}"
            )
        else:
            self._points = grid
            self.size = len(grid) if hasattr(grid, "__len__") else None
        if self.size == 0:
            raise ParameterError("the grid is empty: it has no points to run")

    @classmethod
    def crossed(cls, first: Grid, second: Grid) -> Grid:
        """Every point of ``first`` combined with every point of ``second`` (whose values win)."""
        grid = cls.__new__(cls)
        grid._dimensions = grid._points = None
        grid._parts = (first, second)
        sizes = (first.size, second.size)
        grid.size = None if None in sizes else sizes[0] * sizes[1]
        return grid

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._dimensions is not None:
            names = list(self._dimensions)
            for combo in itertools.product(*self._dimensions.values()):
                yield dict(zip(names, combo, strict=True))
        elif self._parts is not None:
            first, second = self._parts
            for point in first:
                for other in second:
                    yield {**point, **other}
        else:
            assert self._points is not None
            for point in self._points:
                if not isinstance(point, Mapping):
                    raise ParameterError(
                        f"every grid point must be a dict, got {type(point).__name__}: "
                        f"{point!r:.60}"
                    )
                yield dict(point)


class GridSampler(Sampler):
    """Proposes every point of a :class:`Grid`, in order."""

    planned = True

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._points = iter(grid)
        self._drawn = 0

    @property
    def total(self) -> int | None:
        return self.grid.size

    def ask(self, n: int) -> list[Point]:
        points = [Point(p) for p in itertools.islice(self._points, n)]
        self._drawn += len(points)
        if not self._drawn:
            raise ParameterError("the grid is empty: it has no points to run")
        return points


def expand_grid(grid: Any) -> list[dict[str, Any]]:
    """The points of ``grid`` as a list of dicts; raises :class:`ParameterError` if malformed.

    Sweeps stream their grid instead (:class:`Grid`); this is for looking at a small one.
    """
    points = list(Grid(grid))
    if not points:
        raise ParameterError("the grid is empty: it has no points to run")
    return points


def load_grid_file(path: str | os.PathLike[str]) -> Any:
    """A grid from a YAML or JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"grid file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ParameterError(f"cannot read grid file {path}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError and its many subclasses
        raise ParameterError(f"cannot read grid file {path}: {str(exc).splitlines()[0]}") from None
    raise ParameterError(f"grid file {path} must end in .yaml, .yml or .json")
