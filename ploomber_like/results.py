"""What reading the database gives back: a :class:`Run`, its :class:`RichOutput` plots, and the
:class:`Results` of a query with its :class:`Tabs`.

These objects show themselves in a terminal (``repr``) and in a notebook (``_repr_html_``); the
rendering itself is :mod:`ploomber_like.render`'s. They read plots on demand and never write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import reprlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ploomber_like import render, store
from ploomber_like.artifacts import write_file
from ploomber_like.errors import DatabaseError
from ploomber_like.output_notebook import resolve_notebook
from ploomber_like.record import BLOB_REF_KEY, Artifact, Input, MetricPoint, is_blob_reference

#: File extensions for exported outputs.
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
    "text/html": ".html",
}

#: Longest exported file name, in bytes (file systems refuse past 255).
_MAX_NAME_BYTES = 120


@dataclasses.dataclass(frozen=True)
class RichOutput:
    """A plot, HTML output or long text of a run, stored once in the ``blobs`` table.

    Displays itself in a notebook; :attr:`data` loads the bytes on first use. Two outputs are
    equal when they hold the same content. A long text keeps a short :attr:`preview` in
    ``parameters``, which is what views show; :attr:`text` loads the whole of it.
    """

    mimetype: str
    sha256: str
    database: Path = dataclasses.field(compare=False)
    preview: str | None = dataclasses.field(default=None, compare=False)

    @cached_property
    def data(self) -> bytes:
        with store.reading(self.database) as conn:
            return _blob_data(conn, self.sha256, self.database)

    @property
    def text(self) -> str:
        """The content as text (a long text value whole)."""
        return self.data.decode("utf-8", errors="replace")

    @property
    def extension(self) -> str:
        """File extension for :meth:`Run.export` (``.png``, ``.svg``, ``.html``...)."""
        return _EXTENSIONS.get(self.mimetype, ".txt")

    def _repr_html_(self) -> str:
        return render.rich_output_html(self.mimetype, self.data)

    def __repr__(self) -> str:
        shown = f": {self.preview!r}…" if self.preview is not None else ""
        return f"<RichOutput {self.mimetype} {self.sha256[:12]}{shown}>"


@dataclasses.dataclass(eq=False)
class Run(store.StoredRun):
    """One stored run. ``run[key]`` is a parameter or value, and a run compares equal to the
    dict of them (as sklearn-evaluation's ``Experiment``); plots are :class:`RichOutput`
    objects, other values plain Python. Its fields are those of the decoded row
    (:class:`~ploomber_like.store.StoredRun`), blob references turned into outputs.

    What the run left beyond its values (:attr:`source`, :attr:`stdout`, :attr:`stderr`,
    :attr:`metrics`, :attr:`artifacts`, :attr:`notebook`) is read on first use, all of it at once
    through one connection (:attr:`detail`), and kept.
    """

    #: The database the run was read from, where its plots are loaded from.
    database: Path = dataclasses.field(kw_only=True)
    #: What the run left, once read (see :attr:`detail`).
    _detail: store.RunDetail | None = dataclasses.field(default=None, kw_only=True, repr=False)

    @classmethod
    def from_stored(
        cls, stored: store.StoredRun, database: Path, detail: store.RunDetail | None = None
    ) -> Run:
        """The run of a decoded row, blob references turned into :class:`RichOutput`; with
        ``detail`` already read (in the same connection as the row), :attr:`detail` is that."""
        fields = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
        return cls(**{
            **fields,
            "parameters": {k: as_output(v, database) for k, v in stored.parameters.items()},
            "values": {k: as_output(v, database) for k, v in stored.values.items()},
            "tags": list(stored.tags),
            "database": database,
            "_detail": detail,
        })

    @property
    def detail(self) -> store.RunDetail:
        """What the run left beyond its values (:class:`~ploomber_like.store.RunDetail`), read
        from the database on first use; empty parts where an older database lacks them."""
        if self._detail is None:
            with store.reading(self.database) as conn:
                self._detail = store.read_run_detail(conn, self.uuid)
        return self._detail

    @property
    def source(self) -> str | None:
        """The source text the run executed (None when none was stored: logged by hand, or by
        another tracker)."""
        return self.detail.source

    @property
    def stdout(self) -> str:
        """The run's stdout as kept (of a long one, its head and tail)."""
        return self.detail.stdout

    @property
    def stderr(self) -> str:
        """The run's stderr as kept."""
        return self.detail.stderr

    @property
    def metrics(self) -> list[MetricPoint]:
        """The series of ``name: number`` lines the run printed, by key, then step."""
        return self.detail.metrics

    @property
    def artifacts(self) -> list[Artifact]:
        """The files the run created or changed under its working directory, by path."""
        return self.detail.artifacts

    @property
    def inputs(self) -> list[Input]:
        """What the run read: files under its folders and the user modules it imported."""
        return self.detail.inputs

    @cached_property
    def notebook(self) -> str | None:
        """The executed notebook as ``.ipynb`` text, its outputs whole (None unless the run
        saved it)."""
        if self.detail.notebook is None:
            return None
        with store.reading(self.database) as conn:
            return _notebook_text(conn, self.detail.notebook)

    @property
    def error_type(self) -> str | None:
        return self.error.type if self.error else None

    @property
    def error_message(self) -> str | None:
        return self.error.message if self.error else None

    def flat_parameters(self) -> dict[str, Any]:
        """The parameters, nested keys flattened (``model.depth``)."""
        return flatten(self.parameters)

    def flat_values(self) -> dict[str, Any]:
        """The values, nested keys flattened (``a.b``), plots included."""
        return flatten(self.values)

    def scalar_values(self) -> dict[str, Any]:
        """Values that are numbers, text, booleans or null, nested keys flattened (``a.b``); a
        long text stored out of line as its preview followed by ``…``."""
        scalars = {}
        for key, value in flatten(self.values).items():
            if value is None or isinstance(value, bool | int | float | str):
                scalars[key] = value
            elif isinstance(value, RichOutput) and value.preview is not None:
                scalars[key] = f"{value.preview}…"
        return scalars

    def outputs(self) -> dict[str, RichOutput]:
        """The plots and HTML outputs, by key."""
        return {k: v for k, v in self.values.items() if isinstance(v, RichOutput)}

    def export(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write each plot and HTML output to ``directory/<key><ext>``; returns the files, in the
        order of :meth:`outputs`.

        A key that is not a safe file name is made one (long keys are cut and end with a short
        hash of the key, so names stay distinct and the same across exports). A file already
        there is replaced, but never through a symbolic link: that raises :class:`ExportError`.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        outputs = self.outputs()
        if not outputs:
            return written
        with store.reading(self.database) as conn:
            for key, output in outputs.items():
                name = _file_stem(key, {p.stem for p in written}) + output.extension
                data = _blob_data(conn, output.sha256, self.database)
                written.append(write_file(directory, name, data))
        return written

    def export_files(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write the files the run left (:attr:`artifacts` whose content was stored) under
        ``directory`` by their relative paths, and its executed notebook, if saved, as
        ``<uuid>.ipynb``; returns the files written. Never through a symbolic link, never
        outside ``directory`` (:class:`ExportError`)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        stored = [artifact for artifact in self.artifacts if artifact.stored]
        if not stored and self.detail.notebook is None:
            return []
        written = []
        with store.reading(self.database) as conn:
            for artifact in stored:
                blob = store.load_blob(conn, artifact.sha256)
                if blob is not None:
                    written.append(write_file(directory, artifact.path, blob.data))
            if self.detail.notebook is not None:
                text = _notebook_text(conn, self.detail.notebook)
                if text is not None:
                    written.append(write_file(directory, f"{self.uuid}.ipynb", text.encode()))
        return written

    def keys(self) -> list[str]:
        """Parameter keys, then value keys (so ``dict(run)`` works)."""
        return list({**self.parameters, **self.values})

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    @property
    def _data(self) -> dict[str, Any]:
        # sklearn-evaluation's Experiment has no public way to get its dict; code written for
        # it reads this attribute.
        return dict(self.items())

    def __getitem__(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        return self.parameters[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values or key in self.parameters

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Run):
            return self.uuid == other.uuid and self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, so not hashable either

    def __repr__(self) -> str:
        shown = _bounded_repr.repr(self._data)
        return f"{type(self).__name__}({self.uuid!r}, status={self.status!r}, {shown})"

    def _repr_html_(self) -> str:
        status = self.status or "status unknown"
        title = f"<h4>Run {render.cell_html(self.uuid)} ({render.cell_html(status)})</h4>"
        error = f"<pre>{render.cell_html(self.error.summary())}</pre>" if self.error else ""
        rows = [[key, value] for key, value in self.items()]
        return title + error + render.table_html(["key", "value"], rows, render_plots=True)


class Results:
    """The rows of a query, shown as an HTML table in a notebook.

    Parameters
    ----------
    columns, rows
        The query's column names and rows.
    render_plots
        Show plots and HTML outputs themselves instead of ``[Plot]``.
    database
        Where blob references are resolved.
    precision
        Decimals shown for floats.
    """

    def __init__(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        render_plots: bool = False,
        *,
        database: str | os.PathLike[str],
        precision: int = render.DEFAULT_PRECISION,
    ) -> None:
        self.columns = list(columns)
        self.rows = [tuple(row) for row in rows]
        self.render_plots = render_plots
        self.database = Path(database)
        self.precision = precision

    def __getitem__(self, column: str) -> Results:
        """The results with only ``column``."""
        idx = self._index(column)
        rows = [(row[idx],) for row in self.rows]
        return Results([column], rows, self.render_plots, database=self.database,
                       precision=self.precision)

    def get(self, column: str, index_by: str | None = None) -> Tabs:
        """One tab per row showing ``column`` (plots rendered), to flip between runs.

        Parameters
        ----------
        column
            The column to show, e.g. a plot selected with ``json_extract``.
        index_by
            The column labelling the tabs; the first column by default.
        """
        idx = self._index(column)
        label_idx = 0 if index_by is None else self._index(index_by)
        labels = _unique([render.cell_text(row[label_idx], self.precision) for row in self.rows])
        values = [as_output(row[idx], self.database) for row in self.rows]
        return Tabs(labels, values, self.precision)

    def resolved_rows(self) -> list[list[Any]]:
        """The rows as shown: plots as :class:`RichOutput`, images stored inline by the anchor as
        :class:`~ploomber_like.render.InlineImage`, other values as SQLite returned them."""
        return [[as_output(v, self.database) for v in row] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return render.to_text(
            render.text_table(self.columns, self.resolved_rows(), self.precision)
        )

    def _repr_html_(self) -> str:
        return render.table_html(
            self.columns, self.resolved_rows(), self.precision, self.render_plots
        )

    def _index(self, column: str) -> int:
        if column not in self.columns:
            raise KeyError(f"{column!r} is not a column of the results: {', '.join(self.columns)}")
        return self.columns.index(column)


class Tabs(Mapping[str, Any]):
    """Values shown as tabs in a notebook, one per label (see :meth:`Results.get`)."""

    def __init__(
        self,
        labels: Sequence[str],
        values: Sequence[Any],
        precision: int = render.DEFAULT_PRECISION,
    ) -> None:
        self._values = dict(zip(labels, values, strict=True))
        self._precision = precision

    def __getitem__(self, label: str) -> Any:
        return self._values[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Tabs({list(self._values)!r})"

    def _repr_html_(self) -> str:
        panels = [render.cell_html(v, self._precision, render_plots=True) for v in self.values()]
        return render.tabs_html(list(self._values), panels)


def as_output(value: Any, database: Path) -> Any:
    """A cell or value as shown: blob references become :class:`RichOutput`, images the anchor
    stored inline become :class:`~ploomber_like.render.InlineImage`, anything else stays."""
    # A reference selected with json_extract arrives as JSON text, not as an object.
    if isinstance(value, str) and value.startswith("{") and BLOB_REF_KEY in value:
        value = store.load_json(value)
    if is_blob_reference(value):
        preview = value.get("preview")
        return RichOutput(
            str(value["mimetype"]), str(value[BLOB_REF_KEY]), database,
            preview if isinstance(preview, str) else None,
        )
    image = store.inline_image(value)
    if image is not None:
        # Only that exact tag shape is an image, drawn again from the decoded bytes; any other
        # text, HTML-looking or not, is escaped by every view.
        return render.InlineImage(image.mimetype, image.data)
    return value


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings flattened to dotted keys: ``{"model": {"depth": 3}}`` -> ``model.depth``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# A run's repr lists its values: a huge one (a 50 MB string) must not make it unprintable.
_bounded_repr = reprlib.Repr()
_bounded_repr.maxstring = 200
_bounded_repr.maxother = 200
_bounded_repr.maxdict = 50
_bounded_repr.maxlist = 20


def _blob_data(conn: sqlite3.Connection, sha256: str, database: Path) -> bytes:
    blob = store.load_blob(conn, sha256)
    if blob is None:
        raise DatabaseError(f"output {sha256[:12]} is missing from {database}")
    return blob.data


def _notebook_text(conn: sqlite3.Connection, sha256: str) -> str | None:
    """The stored notebook ``sha256`` as ``.ipynb`` text with its outputs put back."""
    notebook = store.load_blob(conn, sha256)
    if notebook is None:
        return None
    return resolve_notebook(notebook.data, lambda sha: store.load_blob(conn, sha))


def _file_stem(key: str, taken: set[str]) -> str:
    """A file name for ``key``: safe characters only, at most :data:`_MAX_NAME_BYTES` bytes,
    distinct from the names in ``taken``; the same key always gets the same name."""
    stem = re.sub(r"[^\w.-]", "_", key).lstrip(".") or "output"
    if len(stem.encode()) > _MAX_NAME_BYTES or stem in taken:
        cut = stem.encode()[: _MAX_NAME_BYTES - 11].decode(errors="ignore")
        stem = f"{cut}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    return stem


def _unique(labels: list[str]) -> list[str]:
    """Labels made distinct (``a``, ``a (2)``) so no tab hides another."""
    counts: dict[str, int] = {}
    unique = []
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        unique.append(label if counts[label] == 1 else f"{label} ({counts[label]})")
    return unique
