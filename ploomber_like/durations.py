"""How long each point of a file's sweeps took, kept so that the next sweep of the file starts
its longest points first.

A grid runs its points in the order it lists them. Grids usually list a parameter's values in
increasing order (``n_estimators=10,50,100``), and the cost of a run grows with them: the sweep
then ends on its longest runs, one core busy while the others idle. Started longest first (the
rule ninja and batch schedulers use), the short runs fill in at the end instead. A run's
duration is only known once it ran, so a sweep notes the duration of every point that ended
``ok``, and the next sweep of the same file, with more than one worker, starts the points it
has seen longest first, points it has not seen before them all (they may be the long ones),
each set in the grid's order. One worker runs the grid's order: there the order changes nothing.

The durations are a cache file, ``$XDG_CACHE_HOME/ploomber_like/durations/<key>.json`` (``key``
from the script's resolved path), not a table of the database: they describe this machine and
the file, not the runs, and a sweep into a new database uses them too. A cache that cannot be
read or written (a read-only home) is ignored: the sweep keeps the grid's order.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ploomber_like.caches import cache_home, read_json, write_json

#: Points whose durations one file keeps: the oldest noted are dropped beyond it.
MAX_POINTS = 10_000

T = TypeVar("T")


class PointDurations:
    """The durations of the earlier runs of the script at ``script_path``, by their parameters.

    Parameters
    ----------
    script_path : str or Path
        The file the sweeps run.
    """

    def __init__(self, script_path: str | Path) -> None:
        key = hashlib.sha256(str(Path(script_path).resolve()).encode()).hexdigest()[:24]
        self.path = cache_home() / "durations" / f"{key}.json"
        stored = read_json(self.path)
        self._seconds: dict[str, float] = {
            point: float(seconds)
            for point, seconds in (stored.items() if isinstance(stored, dict) else ())
            if isinstance(seconds, int | float) and math.isfinite(seconds)
        }
        self._changed = False

    def longest_first(
        self, items: Sequence[T], parameters: Callable[[T], Mapping[str, Any]]
    ) -> list[T]:
        """``items`` in the order to start them: those never seen first, then the longest
        earlier run first; the grid's order among equals. ``parameters`` gives an item's."""
        def key(item: T) -> float:
            return -self._seconds.get(point_key(parameters(item)), math.inf)

        return sorted(items, key=key) if self._seconds else list(items)

    def note(self, parameters: Mapping[str, Any], seconds: float) -> None:
        """Keep that the run with ``parameters`` took ``seconds``."""
        point = point_key(parameters)
        self._seconds.pop(point, None)  # noted again: now the most recent
        self._seconds[point] = round(seconds, 3)
        while len(self._seconds) > MAX_POINTS:
            del self._seconds[next(iter(self._seconds))]
        self._changed = True

    def save(self) -> None:
        """Write what was noted to the cache file (nothing if nothing was noted)."""
        if self._changed:
            write_json(self.path, self._seconds)
            self._changed = False


def point_key(parameters: Mapping[str, Any]) -> str:
    """The text a point's durations are kept under: its parameters, in name order."""
    return json.dumps(dict(parameters), sort_keys=True, default=repr)
