"""Commands that read the database: ``ls``, ``compare``, ``diff``, ``show``, ``query``, ``keys``
and ``sample-query``. See :mod:`ploomber_like.tracker`.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import shutil
import sys
from typing import TYPE_CHECKING

import click

from ploomber_like.cli.base import (
    cli,
    database_option,
    echo_rich,
    open_tracker,
    precision_option,
)
from ploomber_like.comparing import FORMATS, TOP_RUNS
from ploomber_like.record import STATUSES

if TYPE_CHECKING:
    from ploomber_like.record import MetricPoint
    from ploomber_like.results import Run


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


def _group_option(command):
    return click.option(
        "--group", is_flag=True,
        help="One row per replicate group: parameters, n, mean ± std of every value.",
    )(command)


@cli.command("ls")
@database_option
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="At most this many runs.")
@_filter_options
@click.option("--sort", metavar="KEY",
              help="Sort by a key (f1) or column (duration), highest first.")
@click.option("--asc", is_flag=True, help="With --sort: lowest first.")
@_group_option
@precision_option
def ls_command(
    database: str, limit: int, status: str | None, tag: str | None, script: str | None,
    where: str | None, sort: str | None, asc: bool, group: bool, precision: int,
) -> None:
    """List runs, most recent first: parameters, values, status, duration.

    \b
    python -m tracker ls --sort f1 --limit 3
    python -m tracker ls --status failed,crashed --tag baseline --script fit.py
    python -m tracker ls --group
    """
    from ploomber_like import render

    tracker = open_tracker(database)
    if group:
        # Every run the filters keep is read: a group is whole or not shown.
        _print_groups(tracker.runs(status=status, sort=sort, ascending=asc, tag=tag,
                                   script=script, where=where), "table", precision, limit)
        return
    runs = tracker.runs(status=status, sort=sort, ascending=asc, limit=limit, tag=tag,
                        script=script, where=where)
    if not runs:
        click.echo("no runs")
        return
    short = tracker.uuid_prefixes(run.uuid for run in runs)
    echo_rich(render.runs_text_table(runs, precision=precision, short=short))


@cli.command("compare")
@click.argument("uuids", nargs=-1)
@database_option
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
@_group_option
@precision_option
def compare_command(
    uuids: tuple[str, ...], database: str, status: str | None, tag: str | None,
    script: str | None, where: str | None, sort: str | None, asc: bool, only_changed: bool,
    columns: str | None, limit: int | None, output_format: str, group: bool, precision: int,
) -> None:
    """Compare runs side by side: one row per run, a column per parameter and value.

    UUIDS (or unique prefixes) pick runs; without them, every run the filters keep.

    \b
    python -m tracker compare --only-changed --sort f1
    python -m tracker compare 09e7b217 d12c1c39 --columns n_estimators,f1 -f csv
    python -m tracker compare --group
    """
    if group:
        if only_changed or columns:
            raise click.UsageError("--only-changed and --columns do not apply with --group")
        runs = open_tracker(database).runs(list(uuids) or None, status=status, sort=sort,
                                           ascending=asc, tag=tag, script=script, where=where,
                                           limit=limit)
        _print_groups(runs, output_format, precision)
        return
    tracker = open_tracker(database)
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


def _print_groups(runs, output_format: str, precision: int, limit: int | None = None) -> None:
    from ploomber_like.replicates import group_runs, groups_frame, groups_table

    groups = group_runs(runs)[:limit]
    if not groups:
        click.echo("no runs")
    elif output_format == "table":
        echo_rich(groups_table(groups, precision))
    elif output_format == "csv":
        click.echo(groups_frame(groups).to_csv(), nl=False)
    elif output_format == "json":
        click.echo(groups_frame(groups).reset_index().to_json(orient="records"))
    else:
        raise click.UsageError("--group shows a table, csv or json")


@cli.command("diff")
@click.argument("a")
@click.argument("b")
@database_option
@precision_option
def diff_command(a: str, b: str, database: str, precision: int) -> None:
    """Show what differs between runs A and B: parameters, values, inputs, source, environment.

    \b
    python -m tracker diff 09e7b217 d12c1c39
    """
    diff = open_tracker(database).diff(a, b, precision=precision)
    click.echo(diff.to_text(width=shutil.get_terminal_size().columns), nl=False)


@cli.command("show")
@click.argument("uuid")
@database_option
@click.option("--export", "export_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the run's plots and HTML outputs, the files it wrote (by their relative "
                   "paths) and its saved notebook (<uuid>.ipynb) to DIR.")
@click.option("--stdout", "all_output", is_flag=True,
              help="Print all of the run's stdout and stderr, not only their last lines.")
def show_command(uuid: str, database: str, export_dir: str | None, all_output: bool) -> None:
    """Show every value of run UUID (or a unique prefix), its series, files, inputs, output,
    error and environment."""
    from ploomber_like import render

    run = open_tracker(database).get(uuid, detail=True)
    exported = {}
    files_written = []
    if export_dir is not None:
        exported = dict(zip(run.outputs(), run.export(export_dir), strict=True))
        files_written = run.export_files(export_dir)
    header = [
        ("uuid", run.uuid), ("created", run.created), ("status", run.status),
        ("duration", None if run.duration is None else f"{run.duration:.2f} s"),
        ("source", run.source_path), ("name", run.name),
        ("tags", ", ".join(run.tags) or None), ("comment", run.comment_text),
    ]
    echo_rich(render.text_table(["run", ""], [row for row in header if row[1] is not None]))
    if run.parameters:
        parameters = [(k, render.parameter_text(v)) for k, v in run.flat_parameters().items()]
        echo_rich(render.text_table(["parameter", "value"], parameters))
    values = [
        (key, str(exported[key]) if key in exported else value)
        for key, value in run.values.items()
    ]
    if values:
        echo_rich(render.text_table(["value", ""], values))
    _show_leaves(run, all_output)
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
        echo_rich(render.text_table(["environment", ""], rows))


#: Lines of stdout and stderr ``show`` prints without --stdout.
OUTPUT_TAIL_LINES = 20


def _show_leaves(run: Run, all_output: bool) -> None:
    """The parts of ``show`` for what a run left: its series, its files, its output's tail."""
    from ploomber_like import render

    series: dict[str, list[MetricPoint]] = {}
    for point in run.metrics:
        series.setdefault(point.key, []).append(point)
    if series:
        rows = []
        for key, points in series.items():
            values = [p.value for p in points if p.value is not None]
            rows.append((key, len(points), points[-1].step, points[-1].value,
                         min(values, default=None), max(values, default=None)))
        echo_rich(render.text_table(["series", "points", "last step", "last", "min", "max"], rows))
    if run.artifacts:
        rows = [
            (a.path, f"{a.size:,}", a.sha256[:12], "" if a.stored else "over the limit: not stored")
            for a in run.artifacts
        ]
        echo_rich(render.text_table(["file", "bytes", "sha256", ""], rows))
    if run.inputs:
        # A file gone before it could be hashed has no size or hash.
        rows = [
            (i.path, i.kind, f"{i.size:,}", i.sha256[:12]) if i.sha256 is not None
            else (i.path, i.kind, "-", "gone")
            for i in run.inputs
        ]
        echo_rich(render.text_table(["input", "kind", "bytes", "sha256"], rows))
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr)):
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
@database_option
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

    results = open_tracker(database).query(
        sql, as_frame=False, render_plots=output_format == "html"
    )
    if output_format == "html":
        click.echo(render.html_page(results._repr_html_(), title=" ".join(sql.split())))
    elif output_format == "table":
        echo_rich(render.text_table(results.columns, results.resolved_rows()))
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
@database_option
def keys_command(database: str) -> None:
    """List every key stored in parameters (nested ones as a.b)."""
    for key in open_tracker(database).get_parameters_keys():
        click.echo(key)


@cli.command("sample-query")
@database_option
@click.option("--arrow", is_flag=True, help="Use parameters ->> '$.key' (SQLite 3.38+).")
def sample_query_command(database: str, arrow: bool) -> None:
    """Print a query selecting every stored key as a column."""
    click.echo(open_tracker(database).get_sample_query(compatibility_mode=not arrow), nl=False)
