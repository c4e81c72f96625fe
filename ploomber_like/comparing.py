"""Runs side by side: :class:`Comparison` (one row per run, one column per parameter and value,
``tracker compare``) and :class:`RunDiff` (what differs between two runs, ``tracker diff``).

Both are built from :class:`~ploomber_like.results.Run` objects already read (see
:mod:`ploomber_like.query`); a diff reads their source texts through them.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import html
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ploomber_like import render
from ploomber_like.errors import ParameterError
from ploomber_like.inputs import InputChange, compare_inputs
from ploomber_like.record import BLOB_REF_KEY
from ploomber_like.reprs import without_addresses

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from ploomber_like.results import Run

#: Formats of :meth:`Comparison.format` (and ``tracker compare --format``).
FORMATS = ("table", "csv", "json", "markdown")

#: Columns describing the run itself, before its parameters and values.
RUN_COLUMNS = ("uuid", "name", "status", "tags", "created", "duration")
#: Of those, the ones a comparison shows by default (name and tags when some run has them).
DEFAULT_RUN_COLUMNS = ("uuid", "name", "status", "tags")

#: A text column is cut to this many characters when the terminal is narrow.
NARROW_COLUMN = 12

#: Runs ``compare`` shows without a filter: the top ones by its sort, the rest counted.
TOP_RUNS = 20


@dataclass(frozen=True)
class Column:
    """A column of a comparison: ``kind`` is ``run``, ``parameter`` or ``value``."""

    key: str
    kind: str


@dataclass
class Comparison:
    """Runs side by side: one row per run, one column per parameter and value.

    Parameters show as given, computed floats at ``precision`` decimals, plots as ``[Plot]``
    in text (rendered in a notebook), uuids as their shortest unique prefix.
    """

    runs: list[Run]
    columns: list[Column]
    #: The prefix shown for each uuid (at least 8 characters, unique in the database).
    short: dict[str, str]
    precision: int = render.DEFAULT_PRECISION
    #: The key the runs are sorted by: the table view shows it right after the run's columns.
    sort_key: str | None = None
    #: Whether the table view may reorder and collapse columns (not when they were picked).
    arrange: bool = True
    #: Each run's flattened parameters and values, by uuid and kind: flattened once, not per
    #: cell (thousands of runs in the UI's charts).
    _flat: dict[tuple[str, str], dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def keys(self) -> list[str]:
        """The column names, in order."""
        return [column.key for column in self.columns]

    def value(self, run: Run, column: Column) -> Any:
        """The raw value of one cell (a :class:`RichOutput` for a plot, None when missing)."""
        if column.kind == "run":
            return getattr(run, column.key) if column.key != "tags" else ", ".join(run.tags)
        source = self._flat.get((run.uuid, column.kind))
        if source is None:
            source = run.flat_parameters() if column.kind == "parameter" else run.flat_values()
            self._flat[(run.uuid, column.kind)] = source
        return source.get(column.key)

    def text(self, run: Run, column: Column) -> str:
        """One cell as people read it: uuid prefixes, parameters as given, values rounded."""
        value = self.value(run, column)
        if column.key == "uuid":
            return self.short.get(run.uuid, run.uuid)
        if column.key == "duration" and value is not None:
            return f"{value:.1f}s"
        if column.key == "created" and value is not None:
            return str(value)[:19]  # to the second: microseconds only keep the order
        if column.kind == "parameter":
            return render.parameter_text(value)
        return render.cell_text(value, self.precision)

    def rows_text(self) -> list[list[str]]:
        return [[self.text(run, column) for column in self.columns] for run in self.runs]

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame indexed by the full uuid, values as stored (plots as RichOutput)."""
        import pandas as pd

        records = [[self.value(run, c) for c in self.columns] for run in self.runs]
        return pd.DataFrame.from_records(records, columns=self.keys).set_index("uuid")

    def to_records(self) -> list[dict[str, Any]]:
        """Every cell in full, as JSON would hold it: full uuids, floats unrounded, plots as
        their ``{"$blob": sha256, "mimetype": ...}`` reference."""
        return [
            {c.key: _plain(self.value(run, c)) for c in self.columns} for run in self.runs
        ]

    def format(self, output_format: str = "table", width: int | None = None) -> str:
        """The comparison as ``table`` (fitted to ``width`` columns), ``csv``, ``json`` or
        ``markdown``."""
        if output_format == "table":
            return _console_text(self.to_table(width), width)
        if output_format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(self.keys)
            for record in self.to_records():
                writer.writerow(_csv_cell(v) for v in record.values())
            return buffer.getvalue()
        if output_format == "json":
            return json.dumps(self.to_records(), indent=2, ensure_ascii=False) + "\n"
        if output_format == "markdown":
            return _markdown(self.keys, self.rows_text())
        raise ParameterError(f"unknown format {output_format!r}; expected one of "
                             + ", ".join(FORMATS))

    def to_table(self, width: int | None = None) -> Table:
        """A rich table fitting ``width`` columns: cells cut with an ellipsis, never wrapped;
        the columns that do not fit at all are left out and named in the caption."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        columns, same = self.table_columns()
        rows = [[self.text(run, column) for column in columns] for run in self.runs]
        widths = _column_widths(columns, rows, width)
        shown = list(widths)
        hidden = len(columns) - len(shown)
        notes = []
        if same:
            pairs = ", ".join(f"{c.key}={self.text(self.runs[0], c)}" for c in same)
            notes.append(f"same in every run: {pairs}")
        if hidden:
            notes.append(f"+{hidden} columns: see --columns, -f csv")
        # A pair wider than the terminal is cut, never folded into pieces.
        caption = Text("\n".join(notes), overflow="ellipsis") if notes else None
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                      collapse_padding=True, caption=caption, caption_justify="left")
        for i in shown:
            column = columns[i]
            is_uuid = column.key == "uuid"
            table.add_column(
                column.key, no_wrap=True, overflow="ellipsis", max_width=widths[i],
                min_width=widths[i] if is_uuid else None,
                justify="right" if _numeric(self.runs, self, column) else "left",
            )
        for row in rows:
            table.add_row(*(Text(row[i]) for i in shown))
        return table

    def table_columns(self) -> tuple[list[Column], list[Column]]:
        """The columns of the table view, and those it collapses into one line.

        The run's columns come first, then the sort key, then the parameters and the values that
        differ between runs (numbers before plots); those equal in every run are only named,
        with their value, under the table. Picked columns keep their order.
        """
        if not self.arrange or len(self.runs) < 2:
            return list(self.columns), []
        first = [c for c in self.columns if c.kind == "run"]
        first += [c for c in self.columns if c.kind != "run" and c.key == self.sort_key]
        varying, same = [], []
        for column in self.columns:
            if column in first:
                continue
            cells = [self.value(run, column) for run in self.runs]
            first_identity = _identity(cells[0])
            differ = any(_identity(v) != first_identity for v in cells[1:])
            plots = any(render.is_displayable(v) for v in cells)
            (varying if differ else same).append((column.kind != "parameter", plots, column))
        varying.sort(key=lambda item: item[:2])  # stable: same kind keeps its order
        return [*first, *(c for *_, c in varying)], [c for *_, c in same]

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        return self.format("table", width=100).rstrip()

    def _repr_html_(self) -> str:
        html_rows = []
        for run in self.runs:
            cells = []
            for column in self.columns:
                value = self.value(run, column)
                # A plot renders itself; every other cell is its text, escaped by table_html.
                cells.append(value if render.is_displayable(value) else self.text(run, column))
            html_rows.append(cells)
        return render.table_html(self.keys, html_rows, self.precision, render_plots=True)


def compare_runs(
    runs: Sequence[Run],
    short: Mapping[str, str],
    *,
    only_changed: bool = False,
    columns: Sequence[str] | None = None,
    precision: int = render.DEFAULT_PRECISION,
    run_columns: Sequence[str] = DEFAULT_RUN_COLUMNS,
    sort: str | None = None,
) -> Comparison:
    """The :class:`Comparison` of ``runs``.

    Parameters
    ----------
    runs
        The runs, one row each, in this order.
    short
        The uuid prefix to show for each run.
    only_changed
        Leave out the parameters and values equal in every run.
    columns
        Only these columns (parameter or value keys, or ``uuid``, ``name``, ``status``, ``tags``,
        ``created``, ``duration``), in this order; ``uuid`` is always first.
    precision
        Decimals of computed floats.
    run_columns
        Without ``columns``: the columns about the run shown (among :data:`RUN_COLUMNS`);
        ``name`` and ``tags`` only when some run has them.
    sort
        The key the runs were sorted by: the table view keeps it in sight.
    """
    runs = list(runs)
    parameters = dict.fromkeys(k for run in runs for k in run.flat_parameters())
    values = dict.fromkeys(
        k for run in runs for k in run.flat_values() if k not in parameters
    )
    available = {
        **{key: Column(key, "run") for key in RUN_COLUMNS},
        **{key: Column(key, "parameter") for key in parameters},
        **{key: Column(key, "value") for key in values},
    }
    if columns:
        unknown = [key for key in columns if key not in available]
        if unknown:
            raise ParameterError(
                f"unknown column {', '.join(map(repr, unknown))}: not a parameter or value of "
                "the selected runs"
            )
        chosen = [available["uuid"]] + [available[k] for k in dict.fromkeys(columns) if
                                         k != "uuid"]
    else:
        defaults = [
            key for key in run_columns
            if key not in ("name", "tags") or any(getattr(run, key) for run in runs)
        ]
        if sort in RUN_COLUMNS and sort not in defaults:
            defaults.append(sort)  # --sort duration shows the durations it sorted by
        chosen = [available[key] for key in [*defaults, *parameters, *values]]
    comparison = Comparison(
        runs, chosen, dict(short), precision, sort_key=sort, arrange=not columns
    )
    if only_changed and len(runs) > 1:
        comparison.columns = [
            column for column in chosen
            if column.kind == "run"
            or len({_identity(comparison.value(run, column)) for run in runs}) > 1
        ]
    return comparison


@dataclass
class Change:
    """A key whose value differs between two runs (``None`` where a run lacks it)."""

    key: str
    a: Any
    b: Any


@dataclass
class RunDiff:
    """What differs between runs ``a`` and ``b``: parameters, values, inputs, source text,
    environment.

    ``str(diff)`` is what ``tracker diff`` prints.
    """

    a: Run
    b: Run
    short: dict[str, str]
    parameters: list[Change] = field(default_factory=list)
    values: list[Change] = field(default_factory=list)
    #: A unified diff of the two source texts; empty when they are the same.
    source: str = ""
    environment: list[Change] = field(default_factory=list)
    precision: int = render.DEFAULT_PRECISION
    #: The files read and user modules imported that differ: ``data.csv: changed``.
    inputs: list[InputChange] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (
            self.parameters or self.values or self.source or self.environment or self.inputs
        )

    def to_text(self, width: int | None = 100) -> str:
        a, b = self.short.get(self.a.uuid, self.a.uuid), self.short.get(self.b.uuid, self.b.uuid)
        parts = []
        for title, changes, show in self._sections():
            if changes:
                rows = [(c.key, show(c.a), show(c.b)) for c in changes]
                parts.append(_console_text(render.text_table((title, a, b), rows), width))
        if self.inputs:
            parts.append("inputs:\n" + "".join(f"  {change}\n" for change in self.inputs))
        if self.source:
            parts.append(self.source)
        if not parts:
            return f"{a} and {b}: same parameters, values, inputs, source and environment\n"
        return "\n".join(part.rstrip("\n") + "\n" for part in parts)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text().rstrip()

    def _repr_html_(self) -> str:
        a, b = self.short.get(self.a.uuid, self.a.uuid), self.short.get(self.b.uuid, self.b.uuid)
        parts = []
        for title, changes, show in self._sections():
            if changes:
                rows = [(c.key, show(c.a), show(c.b)) for c in changes]
                parts.append(render.table_html((title, a, b), rows, self.precision))
        if self.inputs:
            items = "".join(f"<li>{html.escape(str(change))}</li>" for change in self.inputs)
            parts.append(f"<p>inputs:</p><ul>{items}</ul>")
        if self.source:
            parts.append(f"<pre>{html.escape(render.truncate(self.source))}</pre>")
        if not parts:
            return f"<p>{html.escape(self.to_text().strip())}</p>"
        return "\n".join(parts)

    def _sections(self) -> list[tuple[str, list[Change], Callable[[Any], str]]]:
        return [
            ("parameter", self.parameters, render.parameter_text),
            ("value", self.values, lambda v: render.cell_text(v, self.precision)),
            ("environment", self.environment, render.parameter_text),
        ]


def diff_runs(
    a: Run,
    b: Run,
    short: Mapping[str, str],
    precision: int = render.DEFAULT_PRECISION,
) -> RunDiff:
    """The :class:`RunDiff` of two runs (their source texts and inputs read on first use)."""
    labels = [short.get(run.uuid, run.uuid) for run in (a, b)]
    source = "".join(
        difflib.unified_diff(
            (a.source or "").splitlines(keepends=True),
            (b.source or "").splitlines(keepends=True),
            fromfile=f"{labels[0]}/{a.source_path or 'source'}",
            tofile=f"{labels[1]}/{b.source_path or 'source'}",
        )
    )
    return RunDiff(
        a, b, dict(short),
        parameters=_changes(a.flat_parameters(), b.flat_parameters()),
        values=_changes(a.flat_values(), b.flat_values()),
        source=source,
        environment=_changes(_environment(a), _environment(b)),
        precision=precision,
        inputs=compare_inputs(a.inputs, b.inputs),
    )


def _changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    keys = dict.fromkeys([*a, *b])
    return [
        Change(key, a.get(key), b.get(key))
        for key in keys
        if _identity(a.get(key)) != _identity(b.get(key))
    ]


def _environment(run: Run) -> dict[str, Any]:
    """The environment as flat keys: ``python``, ``git_commit``, ``packages.numpy``..."""
    if run.environment is None:
        return {}
    environment = dataclasses.asdict(run.environment)
    packages = environment.pop("packages") or {}
    return {**environment, **{f"packages.{k}": v for k, v in packages.items()}}


def _identity(value: Any) -> str:
    """What makes two cells equal: a plot's content hash, any other value's JSON."""
    sha256 = getattr(value, "sha256", None)
    if sha256 is not None:
        return f"blob:{sha256}"
    # Values recorded before addresses were dropped: `<Legend at 0x7f..>` is the same in two runs.
    return without_addresses(json.dumps(value, sort_keys=True, default=repr))


def _plain(value: Any) -> Any:
    sha256 = getattr(value, "sha256", None)
    if sha256 is not None:
        return {BLOB_REF_KEY: sha256, "mimetype": value.mimetype}
    return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _numeric(runs: Sequence[Run], comparison: Comparison, column: Column) -> bool:
    values = [comparison.value(run, column) for run in runs]
    return any(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _column_widths(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None
) -> dict[int, int]:
    """The width of each column shown, by index: every column at its natural width when they
    all fit ``width``; otherwise each cut to :data:`NARROW_COLUMN` (uuids never cut), the first
    columns winning and those beyond the edge left out."""
    natural = [max([len(c.key), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    # The table's edges take a character each, and columns are two apart.
    if width is None or sum(natural) + 2 * len(natural) <= width:
        return dict(enumerate(natural))
    widths, used = {}, 0
    for i, column in enumerate(columns):
        need = natural[i] if column.key in ("uuid", "status") else min(natural[i], NARROW_COLUMN)
        if widths and used + need + 2 > width:
            break
        widths[i] = need
        used += need + 2
    return widths


def _console_text(renderable: Any, width: int | None) -> str:
    # render.to_text: inside Jupyter a plain Console would display the table itself.
    text = render.to_text(renderable, width or 10_000)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
