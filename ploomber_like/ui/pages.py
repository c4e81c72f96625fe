"""The pages of the UI and the report as HTML text: jinja2 templates (autoescaped) filled from
:mod:`ploomber_like.ui.views`, and the static files (our script and style, plotly.js).

The server links its scripts and images (``/static/...``, ``/blob/...``); the report inlines
them, so one file holds everything.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ploomber_like import render
from ploomber_like.ui import views

if TYPE_CHECKING:
    import jinja2

    from ploomber_like.query import RunQuery

#: Static files and their media types; plotly.min.js comes from the plotly package.
ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "plotly.min.js": "text/javascript",
}

#: The report's table holds this many runs at most, the most recent: a file written in a
#: moment and opened at once, whatever the size of the database (it says how many it leaves out).
REPORT_TABLE_RUNS = 200

#: The report inlines the pages of this many runs at most, the most recent (each inlines its
#: images); the table's other rows link nowhere.
REPORT_RUN_PAGES = 10


def runs_html(query: RunQuery, live: bool, first: dict[str, Any] | None = None) -> str:
    """The runs page: table, parallel coordinates, scatter. Live: it loads and polls
    ``/api/runs``; ``first``, a payload of :func:`views.runs_payload`, is its table's first page,
    in the HTML as rows and as data."""
    config = {"mode": "live", "api": "/api/runs", "blob": "/blob/", "compare": "/compare"}
    if first is not None:
        config["data"] = first
    return _render(
        "runs.html", live=live, title=f"runs · {query.database.name}", database=str(query.database),
        config=config, first=first,
    )


def run_html(query: RunQuery, uuid: str, live: bool) -> str:
    """The page of one run."""
    page = views.run_page(query, uuid, views.url_source if live else views.inline_source)
    return _render(
        "run.html", live=live, title=f"run {page.short} · {query.database.name}",
        database=str(query.database), page=page, run_href=_href(live),
    )


def compare_html(query: RunQuery, uuids: Sequence[str], live: bool) -> str:
    """The page comparing 2 to 4 runs."""
    page = views.compare_page(query, uuids, views.url_source if live else views.inline_source)
    return _render(
        "compare.html", live=live, title=f"compare {len(page.runs)} runs",
        database=str(query.database), compare=page, run_href=_href(live),
    )


def report_html(
    query: RunQuery, where: str | None = None, compare: Sequence[str] = ()
) -> Iterator[str]:
    """The report, in pieces to write one after the other: the runs page with its data inlined
    (the :data:`REPORT_TABLE_RUNS` most recent runs ``where`` selects), the pages of the
    :data:`REPORT_RUN_PAGES` most recent, and the compare page of ``compare`` (2 to 4 runs) if
    given; plotly.js, styles and images inline."""
    # Some fifty small reads (the runs, each run page, each image): one connection for all.
    with query.holding():
        # The page does its own sorting and charts over the runs it holds: no sample to read.
        payload = views.runs_payload(
            query, where=where, run_href="#run-{uuid}", limit=REPORT_TABLE_RUNS, charts=False
        )
        source = views.inline_source_through(query)
        runs = payload["runs"][:REPORT_RUN_PAGES]
        pages = [views.run_page(query, run["uuid"], source) for run in runs]
        compared = views.compare_page(query, compare, source) if compare else None
    for run in payload["runs"][REPORT_RUN_PAGES:]:
        run["href"] = None  # no page of its own in the file
    total, held = payload["total"], len(payload["runs"])
    note = ""
    if total > held or held > len(pages):
        note = (f"This report holds the {held:,} most recent of {total:,} runs "
                f"({total - held:,} left out)" if total > held
                else f"This report holds all {total:,} runs")
        if held > len(pages):
            note += f", and the pages of the {len(pages):,} most recent"
        note += "."
    return _environment().get_template("report.html").generate(
        live=False, title=f"report · {query.database.name}", database=str(query.database),
        pages=pages, compare=compared, run_href=_href(False), first=None, report_note=note,
        config={"mode": "report", "data": payload, "compare": "#compare" if compared else ""},
        assets={name: _inline_script(name) for name in ASSETS}, **_globals(),
    )


def compile_templates() -> None:
    """Compile the server's templates now (a server's start) rather than on the first visit of
    each page: every template, also those a page includes or extends, which are compiled only
    when first rendered (30-80 ms of a run page's first visit)."""
    for name in _environment().list_templates():
        _environment().get_template(name)


def error_html(message: str) -> str:
    """A page saying what went wrong (an unknown uuid...)."""
    return _render("error.html", live=True, title="error", message=message, database="")


def asset(name: str) -> tuple[str, bytes] | None:
    """A static file's media type and bytes, or None for a name we do not serve."""
    if name not in ASSETS:
        return None
    return ASSETS[name], _asset_bytes(name)


@functools.cache
def _asset_bytes(name: str) -> bytes:
    if name == "plotly.min.js":
        try:
            path = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
        except ModuleNotFoundError:
            from ploomber_like.errors import TrackerError

            raise TrackerError(
                "the UI and report need plotly: pip install 'ploomber-like[ui]'"
            ) from None
        return path.read_bytes()
    return (importlib.resources.files("ploomber_like.ui") / "static" / name).read_bytes()


def _inline_script(name: str) -> str:
    # Inside <script>, "</script" would end the element: "<\/" means the same to JavaScript.
    return _asset_bytes(name).decode("utf-8").replace("</script", "<\\/script")


def _href(live: bool):
    return (lambda uuid: f"/run/{uuid}") if live else (lambda uuid: f"#run-{uuid}")


def _render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**_globals(), **context)


def _globals() -> dict[str, Any]:
    return {"status_class": _status_class, "missing": render.MISSING, "json": views.script_json}


def _status_class(status: str | None) -> str:
    return f"status status-{status or 'unknown'}"


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    from ploomber_like.caches import cache_home

    # Compiling the templates is ~90 ms of every `report` and server start: jinja keeps the
    # compiled code, keyed by each template's source, in our cache folder when it can be made.
    cache = cache_home() / "templates"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        compiled = jinja2.FileSystemBytecodeCache(str(cache)) if os.access(cache, os.W_OK) \
            else None
    except OSError:
        compiled = None
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ploomber_like.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=compiled,
    )
