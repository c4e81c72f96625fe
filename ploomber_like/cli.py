"""The command line: a thin layer over the Python API.

``python -m tracker FILE -p a=1`` runs a file (the default command); ``ls``, ``show``, ``query``,
``keys``, ``sample-query``, ``compare``, ``diff``, ``ui`` and ``report`` read the database;
``comment``, ``tag``, ``untag`` and ``rm`` change it.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import click

from ploomber_like.comparing import FORMATS, TOP_RUNS
from ploomber_like.errors import TrackerError
from ploomber_like.record import DEFAULT_MAX_ARTIFACT_BYTES, STATUSES
from ploomber_like.ui import DEFAULT_PORT

DEFAULT_DATABASE = "experiments.db"


class _DefaultToRun(click.Group):
    """A group whose first word, when it names a file, runs it: ``tracker fit.py`` is
    ``tracker run fit.py``. Any other unknown word is a mistyped command (``lss``), which click
    reports with the close command it suggests."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and _looks_like_file(args[0]):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _looks_like_file(word: str) -> bool:
    if word in ("--help", "-h"):
        return False
    path = Path(word)
    return word.startswith("-") or bool(path.suffix) or os.sep in word or "/" in word \
        or path.exists()


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
@click.option("-q", "--quiet", is_flag=True, help="No warnings, no progress bar.")
@click.option("--timeout", type=float, help="Seconds each run may take.")
@click.option("-w", "--workers", type=int, help="Runs at once in a sweep (default: cores).")
@click.option("--force", is_flag=True, help="Rerun sweep points already recorded ok.")
@click.option("--no-preload", is_flag=True,
              help="Start a fresh kernel per run instead of forking a warm template.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the sweep on the Dask scheduler at ADDRESS (tcp://host:8786).")
@click.option("--comment", help="Text stored in the comment column.")
@click.option("--name", help="A label stored with the run (every run of a sweep).")
@click.option("--no-output-scalars", is_flag=True,
              help="Do not record 'name: number' lines of stdout as series.")
@click.option("--output-scalars", "scalars_pattern", metavar="REGEX",
              help="Read series with this pattern instead: groups (?P<key>..) and (?P<value>..).")
@click.option("--save-notebook", is_flag=True,
              help="Store each run's executed notebook (show UUID --export DIR writes it).")
@click.option("--max-artifact-bytes", type=click.IntRange(min=0), metavar="BYTES",
              default=DEFAULT_MAX_ARTIFACT_BYTES, show_default=True,
              help="Store files a run writes up to this size; larger ones by size and hash only.")
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
    quiet: bool,
    timeout: float | None,
    workers: int | None,
    force: bool,
    no_preload: bool,
    dask_address: str | None,
    comment: str | None,
    name: str | None,
    no_output_scalars: bool,
    scalars_pattern: str | None,
    save_notebook: bool,
    max_artifact_bytes: int,
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
    if no_output_scalars and scalars_pattern:
        raise click.UsageError("--no-output-scalars and --output-scalars exclude each other")
    leaves = {
        "output_scalars": False if no_output_scalars else scalars_pattern or True,
        "save_notebook": save_notebook,
        "max_artifact_bytes": max_artifact_bytes,
    }
    if search or maximize or minimize:
        if grid or grid_file or force:
            raise click.UsageError("-g, --grid-file and --force do not apply to a search (-s)")
        _run_search(path, search, maximize, minimize, fixed, trials, sampler, seed,
                    search_name, database, quiet, timeout, workers, not no_preload,
                    dask_address, comment, leaves)
        return
    if not (grid or grid_file):
        if workers or force or dask_address:
            raise click.UsageError("-w, --force and --dask apply to grids (-g) and searches (-s)")
        _run_single(path, fixed, database, quiet, timeout, comment, name, not no_preload, leaves)
        return

    from ploomber_like.samplers.grid import Grid, load_grid_file
    from ploomber_like.sweep import track_grid

    # Crossed lazily: a grid is read point by point as the sweep goes, never expanded.
    dimensions = Grid(dict(parse_grid_option(text) for text in grid)) if grid else None
    points = Grid(load_grid_file(grid_file)) if grid_file else dimensions
    if grid_file and dimensions is not None:
        points = Grid.crossed(points, dimensions)
    summary = track_grid(
        path, points, database=database, fixed=fixed, workers=workers, timeout=timeout,
        force=force, preload=not no_preload, quiet=quiet, comment=comment,
        executor=dask_address, name=name, **leaves,
    )
    sys.exit(0 if summary.failed == 0 else 1)


def _run_search(path, specs, maximize, minimize, fixed, trials, sampler, seed, name,
                database, quiet, timeout, workers, preload, dask_address, comment, leaves) -> None:
    from ploomber_like.arguments import parse_search_option
    from ploomber_like.search import track_search

    if not specs:
        raise click.UsageError("--maximize/--minimize need the parameters to search: -s NAME=SPEC")
    if (maximize is None) == (minimize is None):
        raise click.UsageError("a search needs one objective: --maximize NAME or --minimize NAME")
    space = dict(parse_search_option(text) for text in specs)
    if len(space) < len(specs):
        raise click.UsageError("a parameter is searched twice (-s)")
    summary = track_search(
        path, space, objective=maximize or minimize,
        direction="maximize" if maximize else "minimize", trials=trials, database=database,
        sampler=sampler, seed=seed, workers=workers, fixed=fixed, timeout=timeout,
        executor=dask_address, preload=preload, quiet=quiet, comment=comment, name=name,
        **leaves,
    )
    if not quiet:
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


def _run_single(
    path, parameters, database, quiet, timeout, comment, name, preload, leaves
) -> None:
    import warnings

    from ploomber_like.render import print_record_summary
    from ploomber_like.tracking import track_execution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = track_execution(
            path, parameters, database, quiet=quiet, timeout=timeout, comment=comment,
            name=name, keep_warm=False, preload=preload, **leaves,
        )
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    print_record_summary(record)
    sys.exit(0 if record.ok else 1)


# --- reading the database: see ploomber_like.tracker ----------------------------------------


def _database_option(command):
    return click.option(
        "-d", "--database", default=DEFAULT_DATABASE, show_default=True,
        help="SQLite file to read.",
    )(command)


def _tracker(database: str):
    from ploomber_like.tracker import SQLiteTracker

    # Reading a mistyped name must say so, not create an empty database.
    return SQLiteTracker(database, create=False)


def _print(renderable: object) -> None:
    from rich.console import Console

    Console(highlight=False).print(renderable)


def _filter_options(command):
    """--status, --tag, --script and --where: the run filters of ``ls``, ``compare``, ``ui``."""
    for option in reversed((
        click.option("--status", metavar="STATUS[,STATUS...]",
                     help=f"Only runs with this status, or any of several: {', '.join(STATUSES)}."),
        click.option("--tag", help="Only runs with this tag."),
        click.option("--script", metavar="PATH",
                     help="Only runs of this file (its recorded path, or its name: fit.py)."),
        click.option("--where", metavar="SQL_CONDITION",
                     help="Only runs matching a SQL condition on experiments: "
                          "\"json_extract(parameters, '$.f1') > 0.8\"."),
    )):
        command = option(command)
    return command


def _precision_option(command):
    from ploomber_like.render import DEFAULT_PRECISION

    return click.option(
        "--precision", type=click.IntRange(0, 17), default=DEFAULT_PRECISION, show_default=True,
        help="Decimals shown for floats the runs computed (parameters show as given).",
    )(command)


@cli.command("ls")
@_database_option
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="At most this many runs.")
@_filter_options
@click.option("--sort", metavar="KEY",
              help="Sort by a key (f1) or column (duration), highest first.")
@click.option("--asc", is_flag=True, help="With --sort: lowest first.")
@_precision_option
def ls_command(
    database: str, limit: int, status: str | None, tag: str | None, script: str | None,
    where: str | None, sort: str | None, asc: bool, precision: int,
) -> None:
    """List runs, most recent first: parameters, values, status, duration.

    \b
    python -m tracker ls --sort f1 --limit 3
    python -m tracker ls --status failed,crashed --tag baseline --script fit.py
    """
    from ploomber_like import render

    tracker = _tracker(database)
    runs = tracker.runs(status=status, sort=sort, ascending=asc, limit=limit, tag=tag,
                        script=script, where=where)
    if not runs:
        click.echo("no runs")
        return
    short = tracker.uuid_prefixes(run.uuid for run in runs)
    _print(render.runs_text_table(runs, precision=precision, short=short))


@cli.command("compare")
@click.argument("uuids", nargs=-1)
@_database_option
@_filter_options
@click.option("--sort", metavar="KEY", help="Sort by a key (f1) or column, highest first.")
@click.option("--asc", is_flag=True, help="With --sort: lowest first.")
@click.option("--only-changed", is_flag=True,
              help="Leave out parameters and values equal in every run.")
@click.option("--columns", metavar="K1,K2,...", help="Only these columns, in this order.")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many runs.")
@click.option("-f", "--format", "output_format", type=click.Choice(FORMATS), default="table",
              show_default=True,
              help="table fits the terminal; csv and json hold every value in full.")
@_precision_option
def compare_command(
    uuids: tuple[str, ...], database: str, status: str | None, tag: str | None,
    script: str | None, where: str | None, sort: str | None, asc: bool, only_changed: bool,
    columns: str | None, limit: int | None, output_format: str, precision: int,
) -> None:
    """Compare runs side by side: one row per run, a column per parameter and value.

    UUIDS (or unique prefixes) pick runs; without them, every run the filters keep.

    \b
    python -m tracker compare --only-changed --sort f1
    python -m tracker compare 09e7b217 d12c1c39 --columns n_estimators,f1 -f csv
    """
    tracker = _tracker(database)
    # Every run of a large database would not fit a terminal, nor be read in a second: the
    # table without a filter shows the top ones (csv and json export them all).
    top = not (uuids or status or tag or script or where) and output_format == "table"
    if top and limit is None:
        limit = TOP_RUNS
    comparison = tracker.compare(
        list(uuids) or None, where=where, sort=sort, ascending=asc, only_changed=only_changed,
        columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        status=status, tag=tag, script=script, limit=limit, precision=precision,
    )
    if not len(comparison):
        click.echo("no runs")
        return
    width = shutil.get_terminal_size().columns if output_format == "table" else None
    click.echo(comparison.format(output_format, width=width), nl=False)
    more = len(tracker) - len(comparison) if top and len(comparison) == limit else 0
    if more:
        click.echo(f"{more} more run{'s' if more != 1 else ''} match: -n/--limit shows more, "
                   "--where picks some")


@cli.command("diff")
@click.argument("a")
@click.argument("b")
@_database_option
@_precision_option
def diff_command(a: str, b: str, database: str, precision: int) -> None:
    """Show what differs between runs A and B: parameters, values, source, environment.

    \b
    python -m tracker diff 09e7b217 d12c1c39
    """
    diff = _tracker(database).diff(a, b, precision=precision)
    click.echo(diff.to_text(width=shutil.get_terminal_size().columns), nl=False)


@cli.command("tag")
@click.argument("uuid")
@click.argument("tags", nargs=-1, required=True)
@_database_option
def tag_command(uuid: str, tags: tuple[str, ...], database: str) -> None:
    """Add TAGS to run UUID (or a unique prefix).

    \b
    python -m tracker tag 09e7b217 baseline best
    python -m tracker ls --tag best
    """
    tracker = _tracker(database)
    now = tracker.tag(uuid, *tags)
    click.echo(f"{tracker.get(uuid).uuid}: {', '.join(now)}")


@cli.command("untag")
@click.argument("uuid")
@click.argument("tags", nargs=-1)
@_database_option
def untag_command(uuid: str, tags: tuple[str, ...], database: str) -> None:
    """Remove TAGS from run UUID (every tag when none is given).

    \b
    python -m tracker untag 09e7b217 best
    """
    tracker = _tracker(database)
    now = tracker.untag(uuid, *tags)
    click.echo(f"{tracker.get(uuid).uuid}: {', '.join(now) or '(no tags)'}")


@cli.command("rm")
@click.argument("uuids", nargs=-1)
@_database_option
@click.option("--where", metavar="SQL_CONDITION",
              help="Remove the runs matching a SQL condition: \"status = 'failed'\".")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
def rm_command(uuids: tuple[str, ...], database: str, where: str | None, yes: bool) -> None:
    """Delete runs, and the plots and sources no remaining run uses.

    Lists the runs and asks before deleting, unless --yes.

    \b
    python -m tracker rm 09e7b217 d12c1c39
    python -m tracker rm --where "status = 'failed'" --yes
    """
    from ploomber_like import render
    from ploomber_like.errors import ParameterError

    if not uuids and not where:
        raise ParameterError("nothing to remove: give uuids or --where")
    tracker = _tracker(database)
    runs = tracker.runs(list(uuids) or None, where=where)
    if not runs:
        click.echo("no runs match: nothing removed")
        return
    short = tracker.uuid_prefixes(run.uuid for run in runs)
    if not yes:
        _print(render.runs_text_table(runs, short=short))
        try:
            confirmed = click.confirm(
                f"Delete {len(runs)} run{'s' if len(runs) != 1 else ''}?", default=False
            )
        except click.Abort:  # no answer (stdin closed): the safe choice
            confirmed = False
        if not confirmed:
            click.echo("nothing removed")
            sys.exit(1)
    removed = tracker.remove([run.uuid for run in runs])
    click.echo(
        f"removed {len(removed.runs)} run{'s' if len(removed.runs) != 1 else ''} "
        f"({', '.join(short[u] for u in removed.runs)}) and {removed.blobs} "
        f"unused blob{'s' if removed.blobs != 1 else ''}"
    )


@cli.command("show")
@click.argument("uuid")
@_database_option
@click.option("--export", "export_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the run's plots and HTML outputs, the files it wrote (by their relative "
                   "paths) and its saved notebook (<uuid>.ipynb) to DIR.")
@click.option("--stdout", "all_output", is_flag=True,
              help="Print all of the run's stdout and stderr, not only their last lines.")
def show_command(uuid: str, database: str, export_dir: str | None, all_output: bool) -> None:
    """Show every value of run UUID (or a unique prefix), its series, files, output, error and
    environment."""
    from ploomber_like import render

    tracker = _tracker(database)
    run = tracker.get(uuid)
    exported = {}
    files_written = []
    if export_dir is not None:
        from ploomber_like.artifacts import export_run_files
        from ploomber_like.store import connect

        exported = dict(zip(run.outputs(), run.export(export_dir), strict=True))
        conn = connect(database, readonly=True)
        try:
            files_written = export_run_files(conn, run.uuid, export_dir)
        finally:
            conn.close()
    header = [
        ("uuid", run.uuid), ("created", run.created), ("status", run.status),
        ("duration", None if run.duration is None else f"{run.duration:.2f} s"),
        ("source", run.source_path), ("name", run.name),
        ("tags", ", ".join(run.tags) or None), ("comment", run.comment_text),
    ]
    _print(render.text_table(["run", ""], [row for row in header if row[1] is not None]))
    if run.parameters:
        parameters = [(k, render.parameter_text(v)) for k, v in run.flat_parameters().items()]
        _print(render.text_table(["parameter", "value"], parameters))
    values = [
        (key, str(exported[key]) if key in exported else value)
        for key, value in run.values.items()
    ]
    if values:
        _print(render.text_table(["value", ""], values))
    _show_leaves(tracker, run.uuid, database, all_output)
    for path in files_written:
        click.echo(f"exported {path}")
    if run.error is not None:
        click.echo(f"error: {run.error.summary()}")
        if run.error.group_source:
            number = "" if run.error.group is None else f" {run.error.group + 1}"
            click.echo(f"in group{number}:\n" + run.error.group_source.rstrip())
        if run.error.traceback:
            click.echo(run.error.traceback.rstrip())
    if run.environment is not None:
        environment = dataclasses.asdict(run.environment)
        packages = environment.pop("packages")
        rows = [(k, v) for k, v in environment.items() if v is not None]
        rows += [(name, version) for name, version in packages.items()]
        _print(render.text_table(["environment", ""], rows))


#: Lines of stdout and stderr ``show`` prints without --stdout.
OUTPUT_TAIL_LINES = 20


def _show_leaves(tracker, uuid: str, database: str, all_output: bool) -> None:
    """The parts of ``show`` for what a run left: its series, its files, its output's tail."""
    from ploomber_like import render
    from ploomber_like.store import connect, load_output

    metrics = tracker.metrics(uuid)
    if len(metrics):
        rows = [
            (key, len(series), series["step"].iloc[-1], series["value"].iloc[-1],
             series["value"].min(), series["value"].max())
            for key, series in metrics.groupby("key", sort=False)
        ]
        _print(render.text_table(["series", "points", "last step", "last", "min", "max"], rows))
    artifacts = tracker.artifacts(uuid)
    if artifacts:
        rows = [
            (a.path, f"{a.size:,}", a.sha256[:12], "" if a.stored else "over the limit: not stored")
            for a in artifacts
        ]
        _print(render.text_table(["file", "bytes", "sha256", ""], rows))
    conn = connect(database, readonly=True)
    try:
        outputs = load_output(conn, uuid)
    finally:
        conn.close()
    for name, text in zip(("stdout", "stderr"), outputs, strict=True):
        if not text:
            continue
        lines = text.rstrip("\n").splitlines()
        if all_output or len(lines) <= OUTPUT_TAIL_LINES:
            click.echo(f"{name}:")
        else:
            lines = lines[-OUTPUT_TAIL_LINES:]
            click.echo(f"{name} (last {OUTPUT_TAIL_LINES} lines; all with --stdout):")
        click.echo("\n".join(lines))


@cli.command("query")
@click.argument("sql")
@_database_option
@click.option("-f", "--format", "output_format",
              type=click.Choice(["table", "csv", "json", "html"]), default="table",
              show_default=True,
              help="html: a standalone page with the plots and HTML outputs rendered.")
def query_command(sql: str, database: str, output_format: str) -> None:
    """Run a read-only SQL query.

    \b
    python -m tracker query "SELECT uuid, json_extract(parameters, '$.f1') AS f1
        FROM experiments ORDER BY f1 DESC LIMIT 3"
    python -m tracker query "SELECT ..." -f html > top3.html
    """
    from ploomber_like import render

    results = _tracker(database).query(
        sql, as_frame=False, render_plots=output_format == "html"
    )
    if output_format == "html":
        click.echo(render.html_page(results._repr_html_(), title=" ".join(sql.split())))
    elif output_format == "table":
        _print(render.text_table(results.columns, results.resolved_rows()))
    elif output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(results.columns)
        writer.writerows([_plain(v) for v in row] for row in results.rows)
    else:
        rows = [dict(zip(results.columns, map(_plain, row), strict=True)) for row in results.rows]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))


def _plain(value: object) -> object:
    # A BLOB column (e.g. SELECT data FROM blobs) has no CSV or JSON form but base64.
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


@cli.command("keys")
@_database_option
def keys_command(database: str) -> None:
    """List every key stored in parameters (nested ones as a.b)."""
    for key in _tracker(database).get_parameters_keys():
        click.echo(key)


@cli.command("sample-query")
@_database_option
@click.option("--arrow", is_flag=True, help="Use parameters ->> '$.key' (SQLite 3.38+).")
def sample_query_command(database: str, arrow: bool) -> None:
    """Print a query selecting every stored key as a column."""
    click.echo(_tracker(database).get_sample_query(compatibility_mode=not arrow), nl=False)


@cli.command("comment")
@click.argument("uuid")
@click.argument("text")
@_database_option
def comment_command(uuid: str, text: str, database: str) -> None:
    """Set the comment of run UUID (or a unique prefix)."""
    tracker = _tracker(database)
    tracker.comment(uuid, text)
    click.echo(f"{tracker.get(uuid).uuid}: {text}")


@cli.command("ui")
@_database_option
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port on 127.0.0.1 to serve on.")
def ui_command(database: str, port: int) -> None:
    """Serve a web UI of the runs on 127.0.0.1 (read-only): table, charts, run pages.

    \b
    python -m tracker ui -d experiments.db --port 8500
    """
    _require_ui_extra(("starlette", "uvicorn", "plotly"))
    from ploomber_like.ui.app import HOST, create_app, listen, serve

    app = create_app(database)  # a database that cannot be read fails here, in one line
    sock = listen(port)  # and so does a port already taken
    click.echo(f"serving {database} on http://{HOST}:{port} (Ctrl-C stops)")
    serve(app, sock)


@cli.command("report")
@_database_option
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--where", metavar="SQL_CONDITION", help="Only the runs matching a SQL condition.")
@click.option("--compare", "compare", multiple=True, metavar="UUID",
              help="Include the compare page of these 2 to 4 runs (repeat the option).")
def report_command(database: str, output: str, where: str | None, compare: tuple[str, ...]) -> None:
    """Write the UI's pages as one self-contained HTML file, no server needed.

    \b
    python -m tracker report -o report.html
    python -m tracker report -o best.html --where "status = 'ok'" --compare 09e7 --compare d12c
    """
    _require_ui_extra(("plotly",))
    from ploomber_like.ui.report import write_report

    path = write_report(database, output, where=where, compare=compare)
    click.echo(f"wrote {path}")


def _require_ui_extra(modules: tuple[str, ...]) -> None:
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise TrackerError(
            f"this command needs {', '.join(missing)}: pip install 'ploomber-like[ui]'"
        )


# --- reproducing and sharing runs: see ploomber_like.reproduction and .mlflow_export -----


@cli.command("rerun")
@click.argument("uuid")
@_database_option
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-9, show_default=True,
              help="Relative tolerance for numbers; strings compare exactly.")
@click.option("--timeout", type=float, help="Seconds the rerun may take.")
def rerun_command(uuid: str, database: str, rtol: float, timeout: float | None) -> None:
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
        result = rerun(uuid, database, rtol=rtol, timeout=timeout)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(f"rerun {result.record.uuid} ({result.record.status}) of {result.original}")
    if result.differences:
        rows = [(d.key, _shown(d.recorded), _shown(d.rerun)) for d in result.differences]
        _print(render.text_table(["differs", "recorded", "rerun"], rows, precision=12))
    changed = [o for o in result.outputs if not o.identical]
    if changed:
        rows = [(o.key, (o.recorded or "-")[:12], (o.rerun or "-")[:12]) for o in changed]
        _print(render.text_table(["output differs by content", "recorded", "rerun"], rows))
    same = len(result.outputs) - len(changed)
    click.echo(
        f"{len(result.differences)} value(s) differ (rtol {rtol:g}); "
        f"outputs: {same} identical, {len(changed)} with other bytes"
    )
    sys.exit(0 if result.reproduced else 1)


def _shown(value: object) -> object:
    # An empty cell would read as "nothing to compare"; None (a null or a missing key) is a value.
    return "None" if value is None else value


@cli.group("export")
def export_group() -> None:
    """Send runs to another tracking system.

    \b
    python -m tracker export mlflow --tracking-uri sqlite:///mlflow.db
    """


@export_group.command("mlflow")
@click.option("--tracking-uri", required=True, metavar="URI",
              help="sqlite:///mlflow.db, or http://127.0.0.1:5000 for an mlflow server.")
@click.option("--experiment", default="ploomber_like", show_default=True,
              help="MLflow experiment to add the runs to (created if missing).")
@click.option("--where", metavar="SQL_CONDITION",
              help="Only runs matching this condition on experiments: \"status = 'ok'\".")
@_database_option
def export_mlflow_command(
    tracking_uri: str, experiment: str, where: str | None, database: str
) -> None:
    """Export runs to MLflow: params, metrics, plots and files, tags; runs already exported
    (found by their uuid tag) are skipped.

    \b
    python -m tracker export mlflow --tracking-uri sqlite:///mlflow.db
    python -m tracker export mlflow --tracking-uri http://127.0.0.1:5000 \\
        --experiment fit --where "json_extract(parameters, '$.f1') > 0.8"
    """
    from ploomber_like.mlflow_export import export_mlflow

    result = export_mlflow(tracking_uri, database, experiment=experiment, where=where)
    click.echo(
        f"exported {len(result.exported)} run(s) to experiment {experiment!r} "
        f"(id {result.experiment_id}); {len(result.already_exported)} already there"
        + (f", {len(result.running)} still running (not exported)" if result.running else "")
    )


@cli.command("migrate")
@click.option("-d", "--database", default=DEFAULT_DATABASE, show_default=True,
              help="SQLite file to migrate in place.")
def migrate_command(database: str) -> None:
    """Move plots stored inline (sklearn-evaluation, ploomber-engine) out of line into blobs.

    One transaction: every row is kept, and an interrupted migration changes nothing.

    \b
    python -m tracker migrate -d old.db
    """
    from ploomber_like.store import move_inline_images

    result = move_inline_images(database)
    click.echo(
        f"moved {result.images_moved} inline image(s) out of {result.runs_changed} of "
        f"{result.runs} run(s) into blobs"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tracker``, ``python -m ploomber_like.tracking`` and the script."""
    try:
        cli.main(args=argv, prog_name="tracker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted: runs in flight were recorded as 'interrupted'", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except TrackerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
