"""Searching a parameter space: ``track_search``, a sweep whose sampler learns from results.

The objective is a value the file already shows (``f1``): the script never imports us. Each
trial is a run like any other, in its own kernel, recorded in its own row with the search's
name, its trial number and the objective (columns ``search``, ``trial``, ``objective``,
``trial_error``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ploomber_like.errors import ParameterError
from ploomber_like.notebook import validate_parameters
from ploomber_like.options import RunOptions
from ploomber_like.pruning import DEFAULT_MIN_STEPS, PruneOptions, prune_options
from ploomber_like.record import DEFAULT_MAX_ARTIFACT_BYTES, Record
from ploomber_like.samplers.optuna import OPTUNA_SAMPLERS, OptunaSampler
from ploomber_like.samplers.random import RandomSampler
from ploomber_like.samplers.space import search_space
from ploomber_like.samplers.trials import Direction, Objective, SearchSampler
from ploomber_like.store import Store
from ploomber_like.sweep import run_sweep
from ploomber_like.sweep_report import SweepSummary

#: Values of ``sampler`` (and ``--sampler``) that name a sampler.
SAMPLERS = ("random", *OPTUNA_SAMPLERS)


@dataclass
class SearchSummary(SweepSummary):
    """How a search went: a :class:`~ploomber_like.sweep.SweepSummary` and the best trial.

    ``total``, ``ok`` and ``failed`` count this call's runs; ``trials`` every trial of the
    search recorded so far, earlier calls included.
    """

    search: str = ""
    objective: str = ""
    direction: str = "maximize"
    trials: int = 0
    #: The record of the best complete trial of the whole search, or None if there is none.
    best: Record | None = None


def track_search(
    path: str | os.PathLike[str],
    space: Mapping[str, Any],
    *,
    objective: str,
    direction: Direction = "maximize",
    trials: int = 20,
    database: str | os.PathLike[str] = "experiments.db",
    sampler: Any = "tpe",
    seed: int | None = None,
    workers: int | None = None,
    fixed: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    executor: Any = None,
    preload: bool = True,
    quiet: bool = False,
    comment: str | None = None,
    name: str | None = None,
    output_scalars: bool | str = True,
    save_notebook: bool = False,
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    prune: str | PruneOptions | None = None,
    prune_on: str | None = None,
    min_steps: int = DEFAULT_MIN_STEPS,
    repeat: int = 1,
    seed_param: str | None = None,
    search_name: str | None = None,
) -> SearchSummary:
    """Search ``space`` for the parameters of ``path`` that optimize the value ``objective``.

    Parameters
    ----------
    path : str or Path
        The script or notebook, as for :func:`~ploomber_like.track_execution`.
    space : dict
        Parameter name -> a list (a choice among its values) or an Optuna distribution
        (``IntDistribution(10, 200)``, ``FloatDistribution(1e-4, 1e-1, log=True)``...).
    objective : str
        A value the file shows (``f1``): the trial's result. A run that fails, or does not show
        it as a finite number, is a failed trial.
    direction : {"maximize", "minimize"}
        Which way is better.
    trials : int
        Trials the search should have, counting those recorded by earlier calls of the same
        search: calling again continues it until there are ``trials``.
    database : str or Path
        SQLite file to write.
    sampler : {"tpe", "random"} or optuna.samplers.BaseSampler
        ``"tpe"`` (default) and Optuna sampler objects need Optuna (the ``[search]`` extra);
        ``"random"`` does not.
    seed : int, optional
        Seed of the sampler: with ``workers=1`` the sequence of points is reproducible.
    workers : int, optional
        Trials at once (each asked before the earlier ones are told); default: the cores.
    fixed : dict, optional
        Parameters given to every trial (not searched).
    timeout : float, optional
        Seconds each run may take.
    executor : optional
        Where the trials run, as for :func:`~ploomber_like.track_grid`.
    preload : bool
        Fork kernels from a warm template, as for :func:`~ploomber_like.track_grid` (default);
        ``False`` starts a fresh kernel per trial.
    quiet : bool
        No progress bar, warnings or summary.
    comment : str, optional
        Stored in every trial's ``comment`` column.
    name : str, optional
        Stored in every trial's ``name`` column: a label for the runs, as for
        :func:`~ploomber_like.track_grid`.
    search_name : str, optional
        The search's name (its identity, in the ``search`` column); default: one derived from
        the file's content, the space, the objective, the direction, ``fixed``, the sampler and
        the seed, so the same call continues the same search and a changed one starts another.
    output_scalars, save_notebook, max_artifact_bytes
        As for :func:`~ploomber_like.track_execution`; trials that may run at once each work
        in a directory of their own, as in :func:`~ploomber_like.track_grid`.
    prune, prune_on, min_steps
        Stop bad trials early, as for :func:`~ploomber_like.track_grid`; ``prune_on`` defaults
        to the objective (printed as a series, ``val_loss: 0.4`` per epoch) and its direction.
        Optuna samplers decide with Optuna's pruners (``MedianPruner``, ``PatientPruner``) and
        their trials end ``PRUNED``; a pruned trial counts toward ``trials``.
    repeat, seed_param
        Runs of each trial, as for :func:`~ploomber_like.track_grid`: the trial's value is the
        mean of its replicates' objectives.

    Returns
    -------
    SearchSummary

    Raises
    ------
    TrackerError
        For a bad space, objective, direction, sampler or ``trials``, or a missing Optuna,
        before anything runs or is written.
    """
    options = RunOptions(
        workers=workers, timeout=timeout, executor=executor, preload=preload, quiet=quiet,
        comment=comment, name=name, output_scalars=output_scalars, save_notebook=save_notebook,
        max_artifact_bytes=max_artifact_bytes,
    )
    return run_search(
        path, space, database, options, objective=objective, direction=direction,
        trials=trials, sampler=sampler, seed=seed, fixed=fixed, search_name=search_name,
        prune=prune, prune_on=prune_on, min_steps=min_steps, repeat=repeat, seed_param=seed_param,
    )


def run_search(
    path: str | os.PathLike[str],
    space: Mapping[str, Any],
    database: str | os.PathLike[str],
    options: RunOptions,
    *,
    objective: str,
    direction: Direction = "maximize",
    trials: int = 20,
    sampler: Any = "tpe",
    seed: int | None = None,
    fixed: Mapping[str, Any] | None = None,
    search_name: str | None = None,
    prune: str | PruneOptions | None = None,
    prune_on: str | None = None,
    min_steps: int = DEFAULT_MIN_STEPS,
    repeat: int = 1,
    seed_param: str | None = None,
) -> SearchSummary:
    """:func:`track_search` with its run options built (the CLI builds them from its own)."""
    dimensions = search_space(space)
    goal = Objective(objective, direction)
    pruning = prune_options(
        prune, prune_on, min_steps, default_on=(objective, direction == "maximize")
    )
    fixed = validate_parameters(fixed or {})
    overlap = sorted(set(fixed) & set(dimensions))
    if overlap:
        raise ParameterError(f"parameters both searched and fixed: {', '.join(overlap)}")
    search = search_name or default_search_name(path, dimensions, goal, fixed, sampler, seed)
    chosen = _sampler(sampler, dimensions, goal, search, trials, seed)
    summary = run_sweep(
        path, chosen, database, options, fixed=fixed, prune=pruning, repeat=repeat,
        seed_param=seed_param,
    )
    with Store(database) as store:
        best = store.best_trial(search, maximize=direction == "maximize")
    return SearchSummary(
        **vars(summary), search=search, objective=objective, direction=direction,
        trials=chosen.counted, best=best,
    )


def default_search_name(
    path: str | os.PathLike[str],
    dimensions: Mapping[str, Any],
    objective: Objective,
    fixed: Mapping[str, Any],
    sampler: Any,
    seed: int | None,
) -> str:
    """``fit-f1-1a2b3c4d``: the file's stem, the objective, a hash of what defines the search."""
    try:
        content = Path(path).read_bytes()
    except OSError:
        content = b""  # a missing file is reported, in one line, by the sweep itself
    identity = json.dumps(
        {
            "source": hashlib.sha256(content).hexdigest(),
            "space": {name: d.describe() for name, d in sorted(dimensions.items())},
            "objective": [objective.name, objective.direction],
            "fixed": fixed,
            "sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
            "seed": seed,
        },
        sort_keys=True, default=repr,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"{Path(path).stem}-{objective.name}-{digest}"


def _sampler(
    sampler: Any,
    dimensions: dict[str, Any],
    objective: Objective,
    search: str,
    trials: int,
    seed: int | None,
) -> SearchSampler:
    if sampler == "random":
        return RandomSampler(dimensions, objective, search, trials, seed)
    if isinstance(sampler, str) and sampler not in OPTUNA_SAMPLERS:
        raise ParameterError(
            f"unknown sampler {sampler!r}: use {', '.join(repr(s) for s in SAMPLERS)}, "
            "or an Optuna sampler object"
        )
    return OptunaSampler(dimensions, objective, search, trials, sampler, seed)
