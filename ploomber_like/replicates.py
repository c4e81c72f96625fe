"""Replicates: each point of a sweep run several times, and runs grouped to aggregate them.

With ``repeat=N`` every point runs ``N`` times. If the parameters cell defines ``seed`` or
``random_state`` (or the name given as ``seed_param``), replicate ``i`` of a point whose seed is
``s`` runs with ``s + i`` (``i`` when ``s`` is None): replicate 0 is the point itself, the
others are distinct and deterministic. Without a seed parameter, replicates differ only by the
script's own randomness.

Every run of a sweep records its replicate index and its *group*: a hash of the file's name and
the run's effective parameters without the seed, so replicates of a point (and runs of a grid
over the seed alone) share a group, which ``compare --group``, ``ls --group`` and
:meth:`~ploomber_like.SQLiteTracker.groups` aggregate to mean, standard deviation and count.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ploomber_like.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from ploomber_like.results import Run

#: Parameter names taken as the seed when the parameters cell defines them, in this order.
SEED_NAMES = ("seed", "random_state")


@dataclass(frozen=True)
class Replicates:
    """How many times each point runs, and which parameter is its seed."""

    repeat: int = 1
    #: The seed parameter's name given by the user; None: the first of :data:`SEED_NAMES` the
    #: parameters cell defines.
    seed_param: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise ParameterError(f"repeat must be a whole number >= 1, got {self.repeat!r:.60}")
        if self.seed_param is not None and not (
            isinstance(self.seed_param, str) and self.seed_param.isidentifier()
        ):
            raise ParameterError(
                f"seed_param must be a parameter name, got {self.seed_param!r:.60}"
            )

    def seed_name(self, defined: list[str]) -> str | None:
        """The seed parameter among the names the parameters cell ``defined``, if any."""
        if self.seed_param is not None:
            return self.seed_param
        return next((name for name in SEED_NAMES if name in defined), None)

    def expand(
        self, parameters: dict[str, Any], seed: str | None, defaults: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The parameters of each replicate of a point (``defaults``: the cell's literal ones)."""
        copies = [dict(parameters)]
        for i in range(1, self.repeat):
            copy = dict(parameters)
            if seed is not None:
                copy[seed] = replicate_seed(parameters.get(seed, defaults.get(seed)), i, seed)
            copies.append(copy)
        return copies


def replicate_seed(value: Any, replicate: int, name: str = "seed") -> int:
    """Seed of replicate ``replicate`` of a point whose seed is ``value``: ``value + i``
    (``i`` for None)."""
    if value is None:
        return replicate
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(
            f"{name} is {value!r:.40}: replicates need an int (or None) seed to derive theirs "
            "from (or name another parameter with seed_param / --seed-param)"
        )
    return value + replicate


def group_key(file_name: str, parameters: Mapping[str, Any], seed: str | None) -> str:
    """The replicate group of a run of ``file_name`` with effective ``parameters``."""
    kept = {name: value for name, value in parameters.items() if name != seed}
    identity = json.dumps({"file": file_name, "parameters": kept}, sort_keys=True, default=repr)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


@dataclass
class RunGroup:
    """Runs of one replicate group, aggregated: what ``compare --group`` shows per row."""

    key: str
    #: The parameters every run of the group shares (the seed, which differs, is left out).
    parameters: dict[str, Any]
    n: int
    #: Runs of the group by status (``{"ok": 3}``).
    statuses: dict[str, int]
    #: Numeric value -> (mean, standard deviation, runs that showed it); the deviation is the
    #: sample one, NaN for a single run.
    values: dict[str, tuple[float, float, int]]


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """``runs`` grouped by replicate group (a run recorded outside a sweep is its own group),
    in the order of each group's first run."""
    members: dict[str, list[Run]] = {}
    for run in runs:
        members.setdefault(run.replicate_group or run.uuid, []).append(run)
    groups = []
    for key, group in members.items():
        first = group[0].flat_parameters()
        shared = {
            name: value
            for name, value in first.items()
            if all(run.flat_parameters().get(name, _ABSENT) == value for run in group[1:])
        }
        numbers_by_key: dict[str, list[float]] = {}
        for run in group:
            for name, value in run.scalar_values().items():
                if isinstance(value, numbers.Real) and not isinstance(value, bool):
                    numbers_by_key.setdefault(name, []).append(float(value))
        values = {}
        for name, found in numbers_by_key.items():
            finite = [v for v in found if math.isfinite(v)]
            mean = statistics.fmean(finite) if finite else math.nan
            std = statistics.stdev(finite) if len(finite) > 1 else math.nan
            values[name] = (mean, std, len(finite))
        statuses: dict[str, int] = {}
        for run in group:
            statuses[str(run.status)] = statuses.get(str(run.status), 0) + 1
        groups.append(RunGroup(key, shared, len(group), statuses, values))
    return groups


def groups_frame(groups: Sequence[RunGroup]) -> pd.DataFrame:
    """One row per group, indexed by its key: the shared parameters, ``n``, and for every
    numeric value ``<key>_mean`` and ``<key>_std``."""
    import pandas as pd

    rows = []
    for group in groups:
        row: dict[str, Any] = {"group": group.key, **group.parameters, "n": group.n}
        for name, (mean, std, _) in group.values.items():
            row[f"{name}_mean"], row[f"{name}_std"] = mean, std
        rows.append(row)
    return pd.DataFrame.from_records(rows).set_index("group") if rows else pd.DataFrame()


def groups_table(groups: Sequence[RunGroup], precision: int) -> Table:
    """The groups for the terminal: parameters, ``n``, and ``mean ± std`` of every value."""
    from ploomber_like import render

    parameters = list(dict.fromkeys(name for g in groups for name in g.parameters))
    values = list(dict.fromkeys(name for g in groups for name in g.values))
    rows = []
    for group in groups:
        row = [group.key[:8], *(render.parameter_text(group.parameters.get(p)) for p in parameters)]
        row.append(str(group.n))
        for name in values:
            mean, std, _ = group.values.get(name, (math.nan, math.nan, 0))
            text = render.cell_text(mean, precision)
            if not math.isnan(std):
                text += f" ± {render.cell_text(std, precision)}"
            row.append(text)
        rows.append(row)
    return render.text_table(["group", *parameters, "n", *values], rows, precision)


_ABSENT = object()
