"""The command line: a thin layer over the Python API.

``python -m tracker FILE -p a=1`` runs a file (the default command); ``ls``, ``show``, ``query``,
``keys``, ``sample-query`` and ``comment`` read the database.
"""

from __future__ import annotations

import sys

import click

from ploomber_like.errors import TrackerError

DEFAULT_DATABASE = "experiments.db"


class _DefaultToRun(click.Group):
    """A group whose unknown first word is a file: ``tracker fit.py`` is ``tracker run fit.py``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Track runs of a script or notebook in SQLite, and query them.

    \b
    python -m tracker fit.py -p n_estimators=50,max_depth=10
    python -m tracker ls
    """


# --- running files: see ploomber_like.tracking and ploomber_like.sweep ----------------------


@cli.command("run")
@click.argument("path")
@click.option("-p", "--parameters", "parameters", multiple=True, metavar="NAME=VALUE,...",
              help="Parameters to inject, as Python literals: -p n_estimators=50,max_depth=None.")
@click.option("-g", "--grid", "grid", multiple=True, metavar="NAME=V1,V2,...",
              help="A grid dimension; repeat for a cartesian product: -g n=10,50 -g depth=5,None.")
@click.option("--grid-file", type=click.Path(dir_okay=False),
              help="A YAML or JSON grid: a mapping of lists, or a list of mappings.")
@click.option("-d", "--database", default=DEFAULT_DATABASE, show_default=True,
              help="SQLite file to record the runs in.")
@click.option("-q", "--quiet", is_flag=True, help="No warnings, no progress bar.")
@click.option("--timeout", type=float, help="Seconds each run may take.")
@click.option("-w", "--workers", type=int, help="Runs at once in a sweep (default: cores).")
@click.option("--force", is_flag=True, help="Rerun sweep points already recorded ok.")
@click.option("--no-preload", is_flag=True,
              help="Start a fresh kernel per run instead of forking a warm template.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the sweep on the Dask scheduler at ADDRESS (tcp://host:8786).")
@click.option("--comment", help="Text stored in the comment column.")
def run_command(
    path: str,
    parameters: tuple[str, ...],
    grid: tuple[str, ...],
    grid_file: str | None,
    database: str,
    quiet: bool,
    timeout: float | None,
    workers: int | None,
    force: bool,
    no_preload: bool,
    dask_address: str | None,
    comment: str | None,
) -> None:
    """Run PATH (.py or .ipynb) once, or over a grid, recording every run in the database."""
    from ploomber_like.arguments import parse_assignments, parse_grid_option

    fixed: dict[str, object] = {}
    for text in parameters:
        fixed.update(parse_assignments(text))
    if not (grid or grid_file):
        if workers or force or dask_address or no_preload:
            raise click.UsageError("-w, --force, --dask and --no-preload apply to grids (-g)")
        _run_single(path, fixed, database, quiet, timeout, comment)
        return

    from ploomber_like.sweep import load_grid_file, track_grid

    dimensions = dict(parse_grid_option(text) for text in grid)
    points = load_grid_file(grid_file) if grid_file else [{}]
    if dimensions:
        points = [{**point, **dimensions} for point in points]
    summary = track_grid(
        path, points, database=database, fixed=fixed, workers=workers, timeout=timeout,
        force=force, preload=not no_preload, quiet=quiet, comment=comment,
        executor=dask_address,
    )
    sys.exit(0 if summary.failed == 0 else 1)


def _run_single(path, parameters, database, quiet, timeout, comment) -> None:
    import warnings

    from ploomber_like.tracking import track_execution
    from ploomber_like.views import print_record_summary

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = track_execution(
            path, parameters, database, quiet=quiet, timeout=timeout, comment=comment
        )
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    print_record_summary(record)
    sys.exit(0 if record.ok else 1)


# --- reading the database: see ploomber_like.tracker ----------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tracker``, ``python -m ploomber_like.tracking`` and the script."""
    try:
        cli.main(args=argv, prog_name="tracker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except TrackerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
