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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ploomber_like.errors import ParameterError

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
