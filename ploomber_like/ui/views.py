"""What the pages of the web UI and the report show, as plain data for the templates and the
JSON the runs page polls. Reads only, through :class:`~ploomber_like.query.RunQuery` and
read-only connections; nothing here knows whether it feeds a server or a file.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from ploomber_like import render, store
from ploomber_like.comparing import Column, compare_runs
from ploomber_like.errors import ParameterError
from ploomber_like.record import Input

if TYPE_CHECKING:
    from ploomber_like.query import RunQuery
    from ploomber_like.results import RichOutput, Run

    #: How a page refers to a stored output: a URL (the server) or a data URI (the report).
    OutputSource = Callable[[RichOutput], str]

#: Columns about the run in the runs table, before its parameters and values.
TABLE_RUN_COLUMNS = ("uuid", "name", "status", "created", "duration", "tags")

#: The compare page takes this many runs at most: plots side by side stop being readable.
MAX_COMPARED = 4

#: Rows of the runs table the server sends at once.
PAGE_SIZE = 100

#: The charts draw at most this many runs: beyond, a random sample of them (what a browser
#: draws in a moment, and a reader can still follow).
CHART_SAMPLE = 500

@dataclass
class Output:
    """A plot or HTML output placed on a page."""

    key: str
    mimetype: str
    sha256: str
    #: For images: the ``src`` of the ``<img>``.
    src: str = ""
    #: For HTML outputs: the document shown in a sandboxed ``<iframe srcdoc>`` (no scripts).
    document: str = ""


@dataclass
class RunPage:
    """Everything the run page shows."""

    run: Run
    short: str
    parameters: list[tuple[str, str]]
    values: list[tuple[str, str]]
    outputs: list[Output]
    #: Metric series by key: ``{"step": [...], "value": [...]}`` (empty without a metrics table).
    metrics: dict[str, dict[str, list[Any]]]
    stdout: str
    stderr: str
    source: str
    environment: list[tuple[str, str]]
    packages: list[tuple[str, str]]
    #: Rows of the run's files, each a mapping of field (path, size, sha256, stored) to text.
    files: list[dict[str, str]] = field(default_factory=list)
    #: What the run read: files and user modules (see :mod:`ploomber_like.inputs`).
    inputs: list[Input] = field(default_factory=list)


@dataclass
class ComparePage:
    """Everything the compare page shows for 2 to 4 runs."""

    runs: list[Run]
    short: dict[str, str]
    #: Parameters that differ: key, then one text per run.
    parameters: list[list[str]]
    #: Every scalar value: key, then one text per run, and the index of the best (highest) run.
    values: list[tuple[list[str], int | None]]
    #: Plots by key, one output (or None) per run.
    outputs: list[tuple[str, list[Output | None]]]


def url_source(output: RichOutput) -> str:
    """Outputs served by the UI's ``/blob/<sha256>`` route."""
    return f"/blob/{output.sha256}"


def inline_source(output: RichOutput) -> str:
    """Outputs inlined as data URIs (the report: one file, no server)."""
    return _data_uri(output.mimetype, output.data)


def inline_source_through(query: RunQuery) -> OutputSource:
    """:func:`inline_source`, reading the outputs through ``query`` (in the one connection it
    holds, see :meth:`~ploomber_like.query.RunQuery.holding`, rather than one each)."""

    def source(output: RichOutput) -> str:
        blob = query.blob(output.sha256)
        # A missing output: its own read says so.
        return _data_uri(output.mimetype, blob.data if blob is not None else output.data)

    return source


def _data_uri(mimetype: str, data: bytes) -> str:
    return f"data:{mimetype};base64,{base64.b64encode(data).decode('ascii')}"


def runs_payload(
    query: RunQuery,
    *,
    where: str | None = None,
    precision: int = render.DEFAULT_PRECISION,
    run_href: str = "run/{uuid}",
    sort: str | None = None,
    ascending: bool = False,
    offset: int = 0,
    limit: int | None = None,
    brush: Mapping[str, Any] | None = None,
    charts: bool = True,
    after: str | None = None,
) -> dict[str, Any]:
    """The runs table, parallel coordinates and scatter data as JSON-able data.

    ``runs``: the table's rows, those ``where`` and ``brush`` select (``brush``: ranges by
    numeric key, ``{"f1": [[0.8, 1.0]]}``, as the parallel coordinates' axes are brushed), in
    the order of ``sort``, ``limit`` of them from the ``offset``-th (default: all); with
    ``after`` (the uuid of the last run of the page before, ``next`` in its payload), those
    after it, ``offset`` then only saying where the page starts; one object per run with its
    full and short uuid, status, link, replicate group, and per column the value (``v``,
    numbers and text only) and the text shown (``t``). ``total``: how many runs they are;
    ``next``: the uuid the next page is read after (None on the last page). ``complete``:
    true when ``runs`` holds every run ``where`` selects, and the page may sort and brush by
    itself; otherwise ``sample``: the runs the charts draw, at most
    :data:`CHART_SAMPLE` of those ``where`` selects (``sampled``: whether they are a random
    share), with the cells the charts use; without ``charts``, none (a page that keeps its
    charts while it sorts, pages or brushes the table) and the columns are judged on ``runs``.

    ``columns``: key, kind (``run``, ``parameter``, ``value``), whether numeric, and whether
    ``constant`` (the same in every run drawn: the table names it in one line instead); in the
    order of :meth:`~ploomber_like.comparing.Comparison.table_columns`, what differs first.
    """
    condition = _and(where, _brush_condition(query, brush))
    total = query.count(where=condition)
    # One run more than the page: whether a next page exists, however the page was reached.
    page = query.runs(where=condition, sort=sort, ascending=ascending,
                      limit=None if limit is None else limit + 1,
                      offset=0 if after else offset, after=after)
    following = page[limit:] if limit is not None else []
    page = page[:limit]
    complete = not brush and not after and offset == 0 and len(page) == total
    drawn = page if complete or not charts else query.sample(CHART_SAMPLE, where=where)
    known = {run.uuid for run in page}
    everything = [*page, *(run for run in drawn if run.uuid not in known)]
    comparison = compare_runs(
        everything, query.uuid_prefixes(run.uuid for run in everything), precision=precision,
        run_columns=TABLE_RUN_COLUMNS, sort=sort,
    )
    # Whether a column varies, is numeric, holds plots: judged on the runs drawn, which stand
    # for all of them (every one when the payload is complete).
    judged = dataclasses.replace(comparison, runs=drawn)
    varying, same = judged.table_columns()
    columns = []
    for column in [*varying, *same]:
        cells = [comparison.value(run, column) for run in drawn]
        numeric = column.kind != "run" and _numeric(cells)
        columns.append({
            "key": column.key,
            "kind": column.kind,
            "numeric": numeric or column.key == "duration",
            "plot": any(render.is_displayable(v) for v in cells),
            "constant": column in same,
        })
    charted = [c for c in comparison.columns if c.kind != "run" or c.key == "status"]

    def row(run: Run, chosen: Sequence[Column]) -> dict[str, Any]:
        cells = {}
        for column in chosen:
            value = comparison.value(run, column)
            cells[column.key] = {"v": _json_value(value), "t": comparison.text(run, column)}
            if render.is_displayable(value):
                cells[column.key]["s"] = value.sha256  # the table shows it as a thumbnail
        return {
            "uuid": run.uuid,
            "short": comparison.short.get(run.uuid, run.uuid),
            "status": run.status,
            "href": run_href.format(uuid=run.uuid),
            "cells": cells,
            # Replicates share a group (see ploomber_like.replicates); any other run is its own.
            "group": run.replicate_group or run.uuid,
        }

    runs = [row(run, comparison.columns) for run in page]
    signature = json.dumps([
        total, [[r["uuid"], r["status"], r["cells"].get("duration")] for r in runs],
        [] if complete else [run.uuid for run in drawn],
    ])
    payload = {
        "columns": columns,
        "runs": runs,
        "total": total,
        "offset": offset,
        # Where the next page starts: read after this run, through an index (no OFFSET).
        "next": page[-1].uuid if following else None,
        "complete": complete,
        "where": where or "",
        "missing": render.MISSING,
        # The page polls and redraws only when this changes (a run added, finished, removed).
        "signature": hashlib.sha256(signature.encode()).hexdigest()[:16],
    }
    if not complete and charts:
        payload["sample"] = [row(run, charted) for run in drawn]
        payload["sampled"] = len(drawn) < (query.count(where=where) if brush else total)
    return payload


def run_page(
    query: RunQuery,
    uuid: str,
    source: OutputSource,
    precision: int = render.DEFAULT_PRECISION,
) -> RunPage:
    """The run page of ``uuid`` (a full uuid or unique prefix)."""
    run = query.run(uuid, detail=True)
    environment, packages = [], []
    if run.environment is not None:
        data = dataclasses.asdict(run.environment)
        packages = sorted((name, str(version)) for name, version in data.pop("packages").items())
        environment = [(key, render.parameter_text(value)) for key, value in data.items()]
    return RunPage(
        run=run,
        short=query.uuid_prefixes([run.uuid])[run.uuid],
        parameters=[(k, render.parameter_text(v)) for k, v in run.flat_parameters().items()],
        values=[
            (k, render.cell_text(v, precision))
            for k, v in run.flat_values().items()
            if not render.is_displayable(v)
        ],
        outputs=[_output(query, key, value, source) for key, value in run.outputs().items()],
        metrics=_metrics(run),
        stdout=run.stdout,
        stderr=run.stderr,
        source=run.source or "",
        environment=environment,
        packages=packages,
        files=[
            {key: render.cell_text(value) for key, value in dataclasses.asdict(artifact).items()}
            for artifact in run.artifacts
        ],
        inputs=run.inputs,
    )


def compare_page(
    query: RunQuery,
    uuids: Sequence[str],
    source: OutputSource,
    precision: int = render.DEFAULT_PRECISION,
) -> ComparePage:
    """The compare page of 2 to 4 runs (uuids or unique prefixes)."""
    if not 2 <= len(uuids) <= MAX_COMPARED:
        raise ParameterError(f"compare takes 2 to {MAX_COMPARED} runs, got {len(uuids)}")
    compared = query.runs(list(uuids))
    short = query.uuid_prefixes(run.uuid for run in compared)
    changed = compare_runs(compared, short, only_changed=True, precision=precision)
    everything = compare_runs(compared, short, precision=precision)
    runs = everything.runs
    parameters = [
        [column.key, *(changed.text(run, column) for run in runs)]
        for column in changed.columns
        if column.kind == "parameter"
    ]
    values = []
    outputs = []
    for column in everything.columns:
        if column.kind != "value":
            continue
        cells = [everything.value(run, column) for run in runs]
        if any(render.is_displayable(v) for v in cells):
            outputs.append((
                column.key,
                [_output(query, column.key, v, source) if render.is_displayable(v) else None
                 for v in cells],
            ))
            continue
        numbers = [v if _is_number(v) else None for v in cells]
        best = None
        if sum(n is not None for n in numbers) > 1 and len(set(numbers) - {None}) > 1:
            best = max((i for i, n in enumerate(numbers) if n is not None),
                       key=lambda i: numbers[i])
        values.append(([column.key, *(everything.text(run, column) for run in runs)], best))
    return ComparePage(runs, everything.short, parameters, values, outputs)


def script_json(value: Any) -> Markup:
    """``value`` as JSON safe inside ``<script type="application/json">``: no ``</script>``
    or ``<!--`` can end the element early."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return Markup(
        text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    )


def _output(query: RunQuery, key: str, value: RichOutput, source: OutputSource) -> Output:
    if value.mimetype.startswith("image/"):
        return Output(key, value.mimetype, value.sha256, src=source(value))
    # HTML (a DataFrame) and anything else: a document in a sandboxed frame, text escaped. Read
    # through the query: in the connection it may hold (a missing output: its own read says so).
    blob = query.blob(value.sha256)
    text = (blob.data if blob is not None else value.data).decode("utf-8", errors="replace")
    if value.mimetype != "text/html":
        text = f"<pre>{Markup.escape(text)}</pre>"
    return Output(key, value.mimetype, value.sha256, document=text)


def _metrics(run: Run) -> dict[str, dict[str, list[Any]]]:
    """The run's metric series by key, as the page's charts take them."""
    series: dict[str, dict[str, list[Any]]] = {}
    for point in run.metrics:
        points = series.setdefault(point.key, {"step": [], "value": []})
        points["step"].append(point.step)
        points["value"].append(_json_value(point.value))
    return series


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def _numeric(values: Sequence[Any]) -> bool:
    """True when every present value is a number (and there is one)."""
    present = [v for v in values if v is not None]
    return bool(present) and all(_is_number(v) for v in present)


def _json_value(value: Any) -> Any:
    """A cell's value for the browser: numbers, text and booleans; anything else null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return None


def _and(*conditions: str | None) -> str | None:
    """The SQL conditions given (None for none) joined with AND."""
    present = [f"({c})" for c in conditions if c and c.strip()]
    return " AND ".join(present) or None


def _brush_condition(query: RunQuery, brush: Mapping[str, Any] | None) -> str | None:
    """SQL selecting the runs inside every brushed range: each key's value between the bounds
    of one of its ranges. Keys must be stored keys and bounds numbers (a ParameterError)."""
    if not brush:
        return None
    keys = set(query.keys())
    conditions = []
    for key, ranges in brush.items():
        if key not in keys:
            raise ParameterError(f"unknown key in the brush: {key!r}")
        if ranges and not isinstance(ranges[0], list | tuple):
            ranges = [ranges]
        try:
            bounds = [(float(low), float(high)) for low, high in ranges]
        except (TypeError, ValueError):
            raise ParameterError(f"a brush range of {key!r} is not two numbers") from None
        extract = store.value_expression(key)
        conditions.append(" OR ".join(
            f"{extract} BETWEEN {low!r} AND {high!r}" for low, high in bounds
            if math.isfinite(low) and math.isfinite(high)
        ) or "0")
    return _and(*conditions)
