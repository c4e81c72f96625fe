"""How query results look: HTML for notebooks (tables, tabs, rich outputs) and rich tables for
the terminal.

Cells hold plain values (numbers, text, None) or *displayable* objects, anything with a
``_repr_html_`` method such as :class:`ploomber_like.results.RichOutput`; this module only
decides how each kind is shown and never touches the database.

Stored values are data, never markup: text is escaped in every HTML view, and the only stored
HTML shown as such is an output captured as ``text/html``, inside a sandboxed frame. Every view
truncates long cells, so a huge value cannot flood a terminal or a page.
"""

from __future__ import annotations

import base64
import html
import io
import math
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ploomber_like.record import is_blob_reference

if TYPE_CHECKING:
    from rich.table import Table

    from ploomber_like.record import Record, RunError

#: What a plot shows as when it is not rendered; an HTML output (a DataFrame) is "[HTML]".
PLOT_PLACEHOLDER = "[Plot]"
HTML_PLACEHOLDER = "[HTML]"

#: Decimals shown for computed floats in tables (parameters are shown as given).
DEFAULT_PRECISION = 3

#: How a missing value (None, SQL NULL, NaN) reads in every human view; machine formats keep
#: their own null (JSON ``null``, an empty CSV field).
MISSING = "None"

#: Characters of a value shown in a table cell; the rest is cut with a note of how much.
MAX_CELL_CHARS = 1000
#: ... and in a ``key=value`` line of the run summary.
MAX_PAIR_CHARS = 120

#: Hex digits of a uuid shown in text views at least (every command takes such a prefix);
#: more where runs share the first ones (see :func:`unique_prefixes`).
UUID_CHARS = 8

#: Width of text reprs (``repr(tracker)``, ``repr(results)``).
REPR_WIDTH = 100

#: Images a browser shows from a ``data:`` URI; any other mimetype is never put in a ``src``.
IMAGE_MIMETYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")

#: Columns of the one-line-per-run summary (``tracker ls``, the tracker's own repr).
SUMMARY_COLUMNS = ("uuid", "created", "status", "duration", "parameters", "values")
#: Its short columns, which keep their width while the others wrap.
SUMMARY_NO_WRAP = ("uuid", "created", "status", "duration")


@dataclass(frozen=True)
class InlineImage:
    """An image a peer tracker stored inline as an ``<img>`` tag, decoded (see
    :func:`ploomber_like.store.inline_image`): shown by a tag drawn again from its bytes."""

    mimetype: str
    data: bytes

    def _repr_html_(self) -> str:
        return rich_output_html(self.mimetype, self.data)


class SummarizedRun(Protocol):
    """What the run summaries read of a run: a :class:`ploomber_like.results.Run` is one. Named
    here so this module, which results uses, does not depend on it in turn."""

    uuid: str
    created: str | None
    status: str | None
    duration: float | None
    name: str | None
    tags: list[str]
    error: RunError | None

    def flat_parameters(self) -> dict[str, Any]: ...

    def scalar_values(self) -> dict[str, Any]: ...


def is_displayable(value: Any) -> bool:
    """True for a plot or HTML output (anything Jupyter shows through ``_repr_html_``)."""
    return hasattr(value, "_repr_html_")


def rich_output_html(mimetype: str, data: bytes) -> str:
    """HTML showing a stored output safely.

    Images (SVG too) become ``<img src="data:...">``, where no script runs; captured HTML (a
    DataFrame's table) goes in a sandboxed ``<iframe srcdoc>``, which shows it without letting
    it script or style the page around it; anything else is escaped text.
    """
    if mimetype in IMAGE_MIMETYPES:
        encoded = base64.b64encode(data).decode("ascii")
        return f'<img src="data:{mimetype};base64,{encoded}">'
    text = data.decode("utf-8", errors="replace")
    if mimetype == "text/html":
        document = f"<!DOCTYPE html><meta charset=\"utf-8\">{text}"
        return (
            f'<iframe sandbox srcdoc="{html.escape(document, quote=True)}" '
            'style="width:100%;min-width:480px;height:320px;border:1px solid #ddd;'
            'resize:both;overflow:auto"></iframe>'
        )
    return f"<pre>{html.escape(truncate(text))}</pre>"


def truncate(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def short_uuids(uuids: Sequence[object]) -> list[str]:
    """The uuids as text views show them: a prefix every command accepts, unique among them."""
    prefixes = unique_prefixes(str(u) for u in uuids if u is not None)
    return [prefixes[str(u)] if u is not None else MISSING for u in uuids]


def unique_prefixes(uuids: Iterable[str], minimum: int = UUID_CHARS) -> dict[str, str]:
    """Each uuid's shortest prefix of at least ``minimum`` characters that no other uuid of
    ``uuids`` starts with: what views show, and what every command accepts back."""
    ordered = sorted(set(uuids))
    shortest = {}
    for index, run_id in enumerate(ordered):
        length = minimum
        # In sorted order, the uuids sharing the longest prefix with one are its neighbours.
        for neighbour in ordered[max(index - 1, 0) : index + 2]:
            if neighbour != run_id:
                length = max(length, _common_prefix(run_id, neighbour) + 1)
        shortest[run_id] = run_id[:length]
    return shortest


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def to_text(renderable: object, width: int = REPR_WIDTH) -> str:
    """A rich renderable as plain text, for ``__repr__``.

    Rendered on a private buffer: inside Jupyter a console would otherwise display the table
    itself, and the cell would show it twice (above the HTML repr).
    """
    from rich.console import Console

    console = Console(
        file=io.StringIO(), width=width, color_system=None, force_terminal=False,
        force_jupyter=False, force_interactive=False,
    )
    console.print(renderable)
    return console.file.getvalue().rstrip()


def html_page(body: str, title: str) -> str:
    """A standalone HTML document around ``body`` (a results table, tabs...)."""
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;"
        "vertical-align:top}th{background:#f4f4f4}img{max-width:480px}</style>"
        f"</head><body><h3>{html.escape(title)}</h3>\n{body}\n</body></html>\n"
    )


def cell_text(value: Any, precision: int = DEFAULT_PRECISION) -> str:
    """One cell as plain text: floats at fixed precision, plots as a placeholder, long text
    truncated, a missing value as :data:`MISSING`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        if value and abs(value) < 0.5 * 10**-precision:
            return f"{value:.{precision}g}"  # a learning rate of 1e-4 must not show as 0.000
        if abs(value) >= 1e15:
            return f"{value:.{precision}g}"  # 1e300 must not print 300 digits
        return f"{value:.{precision}f}"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if is_displayable(value):
        preview = getattr(value, "preview", None)
        if preview is not None:
            return f"{truncate(preview)}…"  # a long text stored out of line
        return placeholder(getattr(value, "mimetype", ""))
    return truncate(str(value))


def parameter_text(value: Any) -> str:
    """A parameter as the user gave it: floats in full (``0.12345``, not ``0.123``)."""
    if isinstance(value, float) and not math.isnan(value):
        return repr(value)
    return cell_text(value)


def cell_html(value: Any, precision: int = DEFAULT_PRECISION, render_plots: bool = False) -> str:
    """One cell as HTML: plots rendered, or the placeholder when ``render_plots`` is false."""
    if render_plots and is_displayable(value):
        return value._repr_html_()
    return html.escape(cell_text(value, precision)).replace("\n", "<br>")


def table_html(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    precision: int = DEFAULT_PRECISION,
    render_plots: bool = False,
) -> str:
    """An HTML table of ``rows``, each cell shown with :func:`cell_html`."""
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell_html(v, precision, render_plots)}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def tabs_html(labels: Sequence[str], panels: Sequence[str]) -> str:
    """Tabs in pure HTML and CSS (radio buttons): one label and one HTML panel per tab.

    No JavaScript, so it works in JupyterLab, classic Jupyter, VS Code and exported HTML alike.
    """
    # Several tab sets can share a page (one per output cell): ids must not collide.
    tabs_id = f"pl-tabs-{uuid.uuid4().hex[:12]}"
    shown = ", ".join(f"#{tabs_id}-{i}:checked ~ #{tabs_id}-panel-{i}" for i in range(len(labels)))
    style = (
        f"#{tabs_id} > input {{display: none;}}"
        f"#{tabs_id} > label {{display: inline-block; padding: 4px 12px; margin: 0 2px 0 0;"
        " border: 1px solid #bbb; border-bottom: none; border-radius: 4px 4px 0 0;"
        " background: #eee; cursor: pointer; font-family: monospace;}"
        f"#{tabs_id} > input:checked + label {{background: #fff; font-weight: bold;}}"
        f"#{tabs_id} > div {{display: none; border-top: 1px solid #bbb; padding: 8px 0;}}"
        + (f"{shown} {{display: block;}}" if labels else "")
    )
    buttons = "".join(
        f'<input type="radio" name="{tabs_id}" id="{tabs_id}-{i}"{" checked" if i == 0 else ""}>'
        f'<label for="{tabs_id}-{i}">{html.escape(label)}</label>'
        for i, label in enumerate(labels)
    )
    contents = "".join(
        f'<div id="{tabs_id}-panel-{i}">{panel}</div>' for i, panel in enumerate(panels)
    )
    return f'<div id="{tabs_id}"><style>{style}</style>{buttons}{contents}</div>'


def text_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    precision: int = DEFAULT_PRECISION,
    title: str | None = None,
    no_wrap: Collection[str] = (),
    shorten_uuids: bool = True,
    overflow: Literal["fold", "ellipsis"] = "fold",
) -> Table:
    """A rich table for the terminal; cells wrap so it stays readable in 80 columns, except in
    the columns named in ``no_wrap``; a ``uuid`` column is shortened unless ``shorten_uuids``
    is false. A word wider than its column is folded, or cut with an ellipsis when ``overflow``
    is ``"ellipsis"``."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # No vertical rules, no outer padding: in 80 columns every character goes to the cells.
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for name in columns:
        table.add_column(str(name), overflow=overflow, no_wrap=name in no_wrap)
    cells = [[cell_text(v, precision) for v in row] for row in rows]
    if "uuid" in columns and shorten_uuids:
        at = list(columns).index("uuid")
        for row, short in zip(cells, short_uuids([row[at] for row in cells]), strict=True):
            row[at] = short
    for row in cells:
        # Text, not str: a stored value such as "[red]" must show as is, not as rich markup.
        table.add_row(*(Text(cell) for cell in row))
    return table


def runs_text_table(
    runs: Sequence[SummarizedRun],
    title: str | None = None,
    shorten_uuids: bool = True,
    precision: int = DEFAULT_PRECISION,
    short: Mapping[str, str] | None = None,
) -> Table:
    """The runs for the terminal, one row each (``tracker ls``): each uuid as ``short`` maps it
    (prefixes unique in the database, see :meth:`SQLiteTracker.uuid_prefixes`), as a prefix
    unique among ``runs`` without it, or whole unless ``shorten_uuids``."""
    if shorten_uuids and short is None:
        short = unique_prefixes(run.uuid for run in runs)
    rows = [run_summary(run, precision, (short or {}).get(run.uuid)) for run in runs]
    # The uuid cells are final (a name and tags may follow the uuid): not shortened again.
    # A key=value pair wider than its column is cut, never folded: `n_estimators=5` over `0`
    # reads as another number.
    table = text_table(
        SUMMARY_COLUMNS, rows, title=title, no_wrap=SUMMARY_NO_WRAP, shorten_uuids=False,
        overflow="ellipsis",
    )
    table.show_edge = False  # two more characters for the pairs
    return table


def runs_html(runs: Sequence[SummarizedRun]) -> str:
    """The runs as an HTML table, one row each (whole uuids: a page has the room)."""
    return table_html(SUMMARY_COLUMNS, [run_summary(run) for run in runs])


def run_summary(
    run: SummarizedRun, precision: int = DEFAULT_PRECISION, label: str | None = None
) -> list[str]:
    """The cells of :data:`SUMMARY_COLUMNS` for one run: its uuid (``label`` if given, then its
    name and tags), parameters (as given) and scalar values (at ``precision``) each as
    ``key=value`` lines in one cell, so a narrow terminal wraps between pairs."""
    parameters = "\n".join(
        _pair(k, parameter_text(v)) for k, v in run.flat_parameters().items()
    )
    # A multi-line text (a pandas Series' repr) would fill the table: `show` has it.
    scalars = {k: v for k, v in run.scalar_values().items() if "\n" not in str(v)}
    values = "\n".join(_pair(k, cell_text(v, precision)) for k, v in scalars.items())
    if run.error is not None:
        values = f"{values}\n{run.error.summary()}".strip()
    duration = "" if run.duration is None else f"{run.duration:.1f}s"
    created = (run.created or "")[:16]
    uuid_cell = "\n".join(
        [label or run.uuid, *([run.name] if run.name else []), *(f"#{t}" for t in run.tags)]
    )
    return [uuid_cell, created, run.status or "", duration, parameters, values]


def _pair(key: str, text: str) -> str:
    return truncate(f"{key}={text}", MAX_PAIR_CHARS)


def print_record_summary(record: Record) -> None:
    """After ``tracker FILE``: the run's uuid and status, its scalar values, its error if any."""
    from rich.console import Console

    console = Console(highlight=False)
    style = "green" if record.ok else "red"
    duration = f" in {record.duration:.2f} s" if record.duration is not None else ""
    console.print(f"{record.uuid}  [{style}]{record.status}[/{style}]{duration}")
    rows = [(k, parameter_text(v), "parameter") for k, v in record.parameters.items()]
    rows += [(k, _record_cell(v), "") for k, v in record.values.items()]
    if rows:
        console.print(text_table(("key", "value", ""), rows))
    if record.error is not None:
        # Not wrapped: the location (fit.py:42) stays one piece to copy or click.
        console.print(
            f"[{style}]error:[/{style}] {record.error.summary()}", markup=True, soft_wrap=True
        )


def _record_cell(value: Any) -> Any:
    # Values of a fresh record hold blob references, not yet displayable outputs.
    return placeholder(value["mimetype"]) if is_blob_reference(value) else value


def placeholder(mimetype: str) -> str:
    """What an output not rendered shows as: ``[HTML]`` for HTML, ``[Plot]`` otherwise."""
    return HTML_PLACEHOLDER if mimetype == "text/html" else PLOT_PLACEHOLDER
