"""Commands that run files: ``run`` (the default: ``tracker fit.py``) and ``rerun``.

See :mod:`ploomber_like.tracking`, :mod:`ploomber_like.sweep`, :mod:`ploomber_like.search` and
:mod:`ploomber_like.reproduction`.
"""

from __future__ import annotations

import dataclasses
import sys

import click

from ploomber_like.cli.base import (
    DEFAULT_DATABASE,
    cli,
    database_option,
    echo_rich,
)
from ploomber_like.cli.options import run_options
from ploomber_like.options import RunOptions
from ploomber_like.pruning import DEFAULT_MIN_STEPS


@cli.command("run")
@click.argument("path")
@click.option("-p", "--parameters", "parameters", multiple=True, metavar="NAME=VALUE,...",
              help="Parameters to inject, as Python literals: -p n_estimators=50,max_depth=None.")
@click.option("-g", "--grid", "grid", multiple=True, metavar="NAME=V1,V2,...",
              help="A grid dimension; repeat for a cartesian product: -g n=10,50 -g depth=5,None.")
@click.option("--grid-file", type=click.Path(dir_okay=False),
              help="A YAML or JSON grid: a mapping of lists, or a list of mappings.")
@click.option("-s", "--search", "search", multiple=True, metavar="NAME=SPEC",
              help="A searched parameter: int:LOW:HIGH[:log|:STEP], float:LOW:HIGH[:log|:STEP] "
                   "or V1,V2,... (choices); with --maximize or --minimize.")
@click.option("--maximize", metavar="NAME", help="Search for the highest value NAME shows.")
@click.option("--minimize", metavar="NAME", help="Search for the lowest value NAME shows.")
@click.option("--trials", type=int, default=20, show_default=True,
              help="Trials of the search in total (a rerun continues it up to this).")
@click.option("--sampler", type=click.Choice(["tpe", "random"]), default="tpe",
              show_default=True, help="tpe needs Optuna (the [search] extra); random does not.")
@click.option("--seed", type=int, help="Seed of the search's sampler.")
@click.option("--search-name", metavar="NAME",
              help="Name of the search (default: derived from the file and the options).")
@click.option("-d", "--database", default=DEFAULT_DATABASE, show_default=True,
              help="SQLite file to record the runs in.")
@run_options()
@click.option("--prune", metavar="median|patience:K",
              help="Stop runs early from a series they print: worse than the median of the "
                   "other runs at a step, or K steps without improvement.")
@click.option("--on", "prune_on", metavar="KEY[:min|max]",
              help="The printed series --prune reads (default for a search: the objective).")
@click.option("--min-steps", type=click.IntRange(min=0), default=DEFAULT_MIN_STEPS,
              show_default=True, help="No run is pruned before this step.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs of each point; replicates get seeds derived from the point's.")
@click.option("--seed-param", metavar="NAME",
              help="The seed parameter replicates vary (default: seed or random_state).")
def run_command(
    path: str,
    parameters: tuple[str, ...],
    grid: tuple[str, ...],
    grid_file: str | None,
    search: tuple[str, ...],
    maximize: str | None,
    minimize: str | None,
    trials: int,
    sampler: str,
    seed: int | None,
    search_name: str | None,
    database: str,
    options: RunOptions,
    prune: str | None,
    prune_on: str | None,
    min_steps: int,
    repeat: int,
    seed_param: str | None,
) -> None:
    """Run PATH (.py or .ipynb) once, over a grid, or as a search, recording every run.

    A single run echoes the script's output as it runs (unless -q); every run records it.

    \b
    python -m tracker fit.py -g n_estimators=10,50 -g max_depth=5,None
    python -m tracker fit.py -s n_estimators=int:10:200 -s max_depth=5,10,None \\
        --trials 30 --maximize f1
    """
    from ploomber_like.arguments import parse_grid_option, parse_parameter_options

    fixed = parse_parameter_options(parameters)
    sweeping = {
        "prune": prune, "prune_on": prune_on, "min_steps": min_steps, "repeat": repeat,
        "seed_param": seed_param,
    }
    if search or maximize or minimize:
        if grid or grid_file or options.force:
            raise click.UsageError("-g, --grid-file and --force do not apply to a search (-s)")
        _run_search(path, search, maximize, minimize, fixed, trials, sampler, seed,
                    search_name, database, options, sweeping)
        return
    if not (grid or grid_file):
        if (options.workers or options.force or options.executor or prune or prune_on
                or repeat > 1 or seed_param):
            raise click.UsageError(
                "-w, --force, --dask, --prune, --on, --repeat and --seed-param apply to grids "
                "(-g) and searches (-s)"
            )
        _run_single(path, fixed, database, options)
        return

    from ploomber_like.samplers.grid import Grid, GridSampler, load_grid_file
    from ploomber_like.sweep import run_sweep

    # Crossed lazily: a grid is read point by point as the sweep goes, never expanded.
    dimensions = Grid(dict(parse_grid_option(text) for text in grid)) if grid else None
    points = Grid(load_grid_file(grid_file)) if grid_file else dimensions
    if grid_file and dimensions is not None:
        points = Grid.crossed(points, dimensions)
    summary = run_sweep(path, GridSampler(points), database, options, fixed=fixed, **sweeping)
    sys.exit(0 if summary.failed == 0 else 1)


def _run_search(path, specs, maximize, minimize, fixed, trials, sampler, seed, search_name,
                database, options: RunOptions, sweeping: dict) -> None:
    from ploomber_like.arguments import parse_search_option
    from ploomber_like.search import run_search

    if not specs:
        raise click.UsageError("--maximize/--minimize need the parameters to search: -s NAME=SPEC")
    if (maximize is None) == (minimize is None):
        raise click.UsageError("a search needs one objective: --maximize NAME or --minimize NAME")
    space = dict(parse_search_option(text) for text in specs)
    if len(space) < len(specs):
        raise click.UsageError("a parameter is searched twice (-s)")
    summary = run_search(
        path, space, database, options, objective=maximize or minimize,
        direction="maximize" if maximize else "minimize", trials=trials, sampler=sampler,
        seed=seed, fixed=fixed, search_name=search_name, **sweeping,
    )
    if not options.quiet:
        if summary.best is None:
            click.echo(f"search {summary.search}: no complete trial yet", err=True)
        else:
            best = summary.best
            assert best.trial is not None
            chosen = ", ".join(f"{k}={best.overrides[k]!r}" for k in space if k in best.overrides)
            click.echo(
                f"search {summary.search}: {summary.trials} trials; best {summary.objective} = "
                f"{best.trial.objective:g} (trial {best.trial.number}, {chosen}, run {best.uuid})",
                err=True,
            )
    sys.exit(0 if summary.failed == 0 else 1)


def _run_single(path, parameters, database, options: RunOptions) -> None:
    import warnings

    from ploomber_like.kernels import kernel_started_ahead

    # The kernel starts first: its start-up overlaps importing the rest, reading the file and
    # opening the database.
    with kernel_started_ahead() as fresh, warnings.catch_warnings(record=True) as caught:
        # rich too (~0.1 CPU-s), which the summary needs: after the run, a quiet run's last
        # line would wait for it.
        import rich.console  # noqa: F401

        from ploomber_like.notebook import prepare_run
        from ploomber_like.render import print_record_summary
        from ploomber_like.tracking import track_prepared

        warnings.simplefilter("always")
        # A single call: no warm template kept for later ones.
        single = dataclasses.replace(options, keep_warm=False)
        record = track_prepared(prepare_run(path, parameters), database, single, fresh=fresh)

    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    print_record_summary(record)
    sys.exit(0 if record.ok else 1)


@cli.command("rerun")
@click.argument("uuid")
@database_option
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-9, show_default=True,
              help="Relative tolerance for numbers; strings compare exactly.")
@run_options("timeout")
def rerun_command(uuid: str, database: str, rtol: float, options: RunOptions) -> None:
    """Rerun run UUID from its stored source and parameters; list the values that differ.

    Exit 0 when every value reproduces, 1 when some differ. Plots are compared by content
    hash and listed apart: they do not decide the exit status.

    \b
    python -m tracker rerun 3b3b921d
    python -m tracker rerun 3b3b921d --rtol 1e-6
    """
    import warnings

    from ploomber_like import render
    from ploomber_like.reproduction import rerun

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = rerun(uuid, database, rtol=rtol, timeout=options.timeout)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(f"rerun {result.record.uuid} ({result.record.status}) of {result.original}")
    if result.differences:
        rows = [(d.key, _shown(d.recorded), _shown(d.rerun)) for d in result.differences]
        echo_rich(render.text_table(["differs", "recorded", "rerun"], rows, precision=12))
    changed = [o for o in result.outputs if not o.identical]
    if changed:
        rows = [(o.key, (o.recorded or "-")[:12], (o.rerun or "-")[:12]) for o in changed]
        echo_rich(render.text_table(["output differs by content", "recorded", "rerun"], rows))
    same = len(result.outputs) - len(changed)
    click.echo(
        f"{len(result.differences)} value(s) differ (rtol {rtol:g}); "
        f"outputs: {same} identical, {len(changed)} with other bytes"
    )
    sys.exit(0 if result.reproduced else 1)


def _shown(value: object) -> object:
    # An empty cell would read as "nothing to compare"; None (a null or a missing key) is a value.
    return "None" if value is None else value
