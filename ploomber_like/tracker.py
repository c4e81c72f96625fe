"""The query side: :class:`SQLiteTracker` reads a tracking database, :class:`Results` shows a
query's rows in a notebook.

The API follows sklearn-evaluation's ``SQLiteTracker`` so users switch by changing one import.
Every read opens its own read-only connection, so a query cannot modify results and always sees
the runs a sweep has committed so far. Rich outputs are stored out of line (``blobs`` table) and
referenced from ``parameters``; they become :class:`RichOutput` objects, whose bytes load only
when shown or exported.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import sqlite3
import uuid as uuid_module
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like import render, store
from ploomber_like.errors import DatabaseError, ParameterError, QueryError, UnknownRunError
from ploomber_like.record import (
    BLOB_REF_KEY,
    STATUSES,
    Blob,
    Environment,
    Record,
    RunError,
    Status,
    is_blob_reference,
    new_created,
)
from ploomber_like.ui import DEFAULT_PORT

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ploomber_like.comparing import Comparison, RunDiff

#: Columns of ``experiments`` a :class:`Run` is built from (missing ones read as NULL, so
#: databases made by sklearn-evaluation, with only the first four, work too).
_RUN_COLUMNS = (
    "uuid", "created", "parameters", "comment", "status", "duration", "error_type",
    "error_message", "traceback", "error_group", "error_source", "parameter_keys",
    "environment", "source_path", "name", "tags",
)

#: Keys as :meth:`SQLiteTracker.get_parameters_keys` returns them: JSON path segments, plain
#: names or double-quoted labels, joined by dots.
_KEY_PATH = re.compile(r'(?:[A-Za-z_]\w*|"[^"]*")(?:\.(?:[A-Za-z_]\w*|"[^"]*"))*')
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")

#: File extensions for exported outputs.
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
    "text/html": ".html",
}


class SQLiteTracker:
    """Query the runs stored in a tracking database, and log runs by hand.

    Parameters
    ----------
    path
        The SQLite file. Reading a file that does not exist raises
        :class:`~ploomber_like.errors.DatabaseError`; logging creates it.

    Examples
    --------
    >>> tracker = SQLiteTracker("experiments.db")
    >>> tracker.query('''
    ... SELECT uuid, json_extract(parameters, '$.f1') AS f1
    ... FROM experiments ORDER BY f1 DESC LIMIT 3''')  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def query(
        self, sql: str, as_frame: bool = True, render_plots: bool = False
    ) -> pd.DataFrame | Results:
        """Run a read-only SQL query.

        Parameters
        ----------
        sql
            One SQL statement. Writes (``DELETE``, ``UPDATE``...) are refused by SQLite.
        as_frame
            Return a :class:`pandas.DataFrame`, indexed by ``uuid`` when that column is
            selected; otherwise a :class:`Results` that renders plots in a notebook.
        render_plots
            With ``as_frame=False``: show stored plots and HTML outputs, not ``[Plot]``.

        Raises
        ------
        QueryError
            SQLite rejected the query; carries SQLite's message and the query.
        """
        with _reading(self.path) as conn:
            try:
                cursor = conn.execute(sql)
                rows = cursor.fetchall()
            # sqlite3.Warning is what "You can only execute one statement at a time" raises.
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise QueryError(str(exc), sql) from None
            columns = [d[0] for d in cursor.description or ()]
        if not as_frame:
            return Results(columns, rows, render_plots, database=self.path)
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        return frame.set_index("uuid") if "uuid" in frame.columns else frame

    def get(self, uuid: str, unserialize_plots: bool = True) -> Run:
        """The run with this uuid (or unique uuid prefix): parameters, values, status, error.

        ``unserialize_plots`` is accepted for compatibility with sklearn-evaluation: plots are
        always :class:`RichOutput` objects, which display themselves in a notebook.

        Raises
        ------
        UnknownRunError
            No run has this uuid, or the prefix matches several runs.
        """
        with _reading(self.path) as conn:
            full = _resolve_uuid(conn, uuid, self.path)
            row = conn.execute(
                f"SELECT {_select_list(conn, self.path)} FROM experiments WHERE uuid = ?", (full,)
            ).fetchone()
        return _run_from_row(row, self.path)

    def runs(
        self,
        uuids: Sequence[str] | None = None,
        *,
        status: str | None = None,
        sort: str | None = None,
        ascending: bool = False,
        limit: int | None = None,
        tag: str | None = None,
        script: str | None = None,
        where: str | None = None,
    ) -> list[Run]:
        """Stored runs, most recent first unless ``sort`` is given.

        Parameters
        ----------
        uuids
            Only these runs (full uuids or unique prefixes), in this order unless ``sort``.
        status
            Keep only runs with this status (``ok``, ``failed``, ``timeout``...).
        sort
            A column of ``experiments`` (``duration``, ``created``...) or a key of
            ``parameters`` (``f1``, ``model.depth``) to sort by; runs without it come last.
        ascending
            Sort in ascending order (default: descending, best ``f1`` first).
        limit
            At most this many runs.
        tag
            Keep only runs with this tag (see :meth:`tag`).
        script
            Keep only runs of this file: its path as recorded, or its name (``fit.py``).
        where
            A SQL condition on ``experiments``, as after ``WHERE``:
            ``"json_extract(parameters, '$.f1') > 0.8"``.
        """
        if status is not None and status not in STATUSES:
            expected = ", ".join(STATUSES)
            raise ParameterError(f"unknown status {status!r}; expected one of {expected}")
        with _reading(self.path) as conn:
            columns = _table_columns(conn, self.path)
            if sort is None:
                order_by = "created DESC, rowid DESC"
            else:
                if sort in columns:
                    sort_sql = f'"{sort}"'
                elif sort in self._keys(conn):
                    sort_sql = f"json_extract(parameters, '{_sql_text(_json_path(sort))}')"
                else:
                    raise ParameterError(f"unknown sort key {sort!r}: no such column or key")
                direction = "ASC" if ascending else "DESC"
                order_by = f"{sort_sql} IS NULL, {sort_sql} {direction}, created DESC"
            full = None if uuids is None else [_resolve_uuid(conn, u, self.path) for u in uuids]
            conditions, params = _run_conditions(columns, full, status, tag, script, where)
            where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = (
                f"SELECT {_select_list(conn, self.path)} FROM experiments {where_sql} "
                f"ORDER BY {order_by} LIMIT ?"
            )
            params.append(-1 if limit is None or (full and sort is None) else limit)
            try:
                rows = conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise QueryError(str(exc), sql) from None
        runs = [_run_from_row(row, self.path) for row in rows]
        if full and sort is None:
            position = {uuid: i for i, uuid in enumerate(full)}
            runs = sorted(runs, key=lambda run: position[run.uuid])[:limit]
        return runs

    def to_frame(self, **filters: Any) -> pd.DataFrame:
        """A tidy DataFrame of runs: one column per parameter, then per scalar value.

        Indexed by uuid, with ``created``, ``status`` and ``duration`` first and the error and
        comment last. Takes the filters of :meth:`runs`.
        """
        return _runs_frame(self.runs(**filters), scalars_only=True)

    def recent(self, n: int = 5, normalize: bool = False) -> pd.DataFrame:
        """The ``n`` most recent runs as a DataFrame indexed by uuid.

        Parameters
        ----------
        n
            How many runs.
        normalize
            One column per key of ``parameters`` (plots as :class:`RichOutput` objects) instead
            of the ``parameters`` JSON text.
        """
        if normalize:
            return _runs_frame(self.runs(limit=n), scalars_only=False)
        import pandas as pd

        columns = ("uuid", "created", "status", "duration", "error_type", "error_message",
                   "parameters", "comment")
        with _reading(self.path) as conn:
            rows = conn.execute(
                f"SELECT {_select_list(conn, self.path, columns)} FROM experiments "
                "ORDER BY created DESC, rowid DESC LIMIT ?",
                (n,),
            ).fetchall()
        return pd.DataFrame.from_records(rows, columns=columns).set_index("uuid")

    def get_parameters_keys(self, limit: int | None = None) -> list[str]:
        """Every key stored in ``parameters`` across runs, in order of first appearance.

        Nested keys are dotted paths (``model.depth``); keys that are not identifiers are
        double-quoted as in a JSON path (``"f1-score"``). A plot counts as one key. ``limit``
        looks at the first ``limit`` runs only (sklearn-evaluation scans 100); default: all.
        """
        with _reading(self.path) as conn:
            _table_columns(conn, self.path)
            return self._keys(conn, limit)

    def get_sample_query(self, compatibility_mode: bool = True) -> str:
        """A query selecting every stored key as its own column.

        Parameters
        ----------
        compatibility_mode
            Use ``json_extract(parameters, '$.key')``, which every SQLite supports; when false
            and SQLite is 3.38 or newer, the shorter ``parameters ->> '$.key'``.
        """
        arrow = not compatibility_mode and sqlite3.sqlite_version_info >= (3, 38, 0)
        with _reading(self.path) as conn:
            _table_columns(conn, self.path)
            keys = self._keys(conn)
            selected = ["    uuid"]
            for key in keys:
                path = _sql_text(_json_path(key))
                if arrow:
                    extract = f"parameters ->> '{path}'"
                else:
                    extract = f"json_extract(parameters, '{path}')"
                selected.append(f"    {extract} AS {_alias(conn, key)}")
        return "SELECT\n" + ",\n".join(selected) + "\nFROM experiments\nLIMIT 10\n"

    def comment(self, uuid: str, text: str) -> None:
        """Set the comment of a run (given by uuid or unique uuid prefix)."""
        # Resolve first on a read-only connection: a typo'd uuid must not create the database.
        with _reading(self.path) as conn:
            full = _resolve_uuid(conn, uuid, self.path)
        conn = store.connect(self.path)
        try:
            conn.execute("UPDATE experiments SET comment = ? WHERE uuid = ?", (text, full))
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot write to database {self.path}: {exc}") from None
        finally:
            conn.close()

    def uuid_prefixes(self) -> dict[str, str]:
        """Each run's shortest unique uuid prefix (at least 8 characters): how views show uuids,
        and what every call taking a uuid accepts."""
        with _reading(self.path) as conn:
            _table_columns(conn, self.path)
            uuids = [row[0] for row in conn.execute("SELECT uuid FROM experiments")]
        return render.short_uuids(uuids)

    def compare(
        self,
        uuids: Sequence[str] | None = None,
        *,
        where: str | None = None,
        sort: str | None = None,
        ascending: bool = False,
        only_changed: bool = False,
        columns: Sequence[str] | None = None,
        status: str | None = None,
        tag: str | None = None,
        script: str | None = None,
        limit: int | None = None,
        precision: int = render.DEFAULT_PRECISION,
    ) -> Comparison:
        """Runs side by side: one row per run, one column per parameter and value.

        Takes the filters of :meth:`runs`. ``only_changed`` leaves out the parameters and values
        equal in every run; ``columns`` picks columns (``["n_estimators", "f1"]``); floats
        computed by the runs show ``precision`` decimals, parameters as given. The result prints
        as a table, renders in a notebook (plots included), and converts with ``to_frame()`` or
        ``format("csv" | "json" | "markdown")``.
        """
        from ploomber_like.comparing import compare_runs

        runs = self.runs(uuids, status=status, sort=sort, ascending=ascending, limit=limit,
                         tag=tag, script=script, where=where)
        return compare_runs(runs, self.uuid_prefixes(), only_changed=only_changed,
                            columns=columns, precision=precision)

    def diff(self, a: str, b: str, precision: int = render.DEFAULT_PRECISION) -> RunDiff:
        """What differs between runs ``a`` and ``b`` (uuids or unique prefixes): parameters,
        values, a unified diff of their source texts, and their environments."""
        from ploomber_like.comparing import diff_runs

        first, second = self.get(a), self.get(b)
        return diff_runs(first, second, self.path, self.uuid_prefixes(), precision)

    def tag(self, uuid: str, *tags: str) -> list[str]:
        """Add tags to a run (uuid or unique prefix); returns its tags."""
        run = self.get(uuid)
        for tag in tags:
            if not tag.strip() or tag != tag.strip():
                raise ParameterError(f"invalid tag {tag!r}: empty or surrounded by spaces")
        new = list(dict.fromkeys([*run.tags, *tags]))
        with store.Store(self.path) as writer:
            writer.set_tags({run.uuid: new})
        return new

    def untag(self, uuid: str, *tags: str) -> list[str]:
        """Remove tags from a run (all of them when none is given); returns its tags."""
        run = self.get(uuid)
        new = [t for t in run.tags if tags and t not in tags]
        with store.Store(self.path) as writer:
            writer.set_tags({run.uuid: new})
        return new

    def remove(
        self, uuids: Sequence[str] | None = None, *, where: str | None = None
    ) -> store.Deletion:
        """Delete runs, with their rows in other tables and the blobs (plots, sources) no
        remaining run references. Returns what was removed.

        Parameters
        ----------
        uuids
            The runs (uuids or unique prefixes).
        where
            A SQL condition selecting runs, as in :meth:`runs` (with ``uuids``: both must hold).
        """
        if not uuids and not (where and where.strip()):
            raise ParameterError("nothing to remove: give uuids or a where condition")
        runs = self.runs(uuids or None, where=where)
        with store.Store(self.path) as writer:
            return writer.delete_runs(run.uuid for run in runs)

    def report(
        self,
        output: str | os.PathLike[str] = "report.html",
        *,
        where: str | None = None,
        compare: Sequence[str] = (),
    ) -> Path:
        """Write the web UI's pages as one self-contained HTML file (needs the ``ui`` extra's
        plotly); see :func:`ploomber_like.ui.report.write_report`."""
        from ploomber_like.ui.report import write_report

        return write_report(self.path, output, where=where, compare=compare)

    def serve(self, port: int = DEFAULT_PORT) -> None:
        """Serve the web UI on 127.0.0.1:``port`` until interrupted (needs the ``ui`` extra)."""
        from ploomber_like.ui.app import create_app, serve

        serve(create_app(self.path), port)

    def new_experiment(self) -> Experiment:
        """Start a run logged by hand (status ``ok``); creates the database if needed."""
        return Experiment(self.path)

    # sklearn-evaluation's writing API, so code written for it runs unchanged. Each call is one
    # transaction; values are stored as they are logged (NumPy values as plain numbers/lists).

    def new(self) -> str:
        """Insert an empty run (status ``ok``) and return its uuid."""
        uuid = uuid_module.uuid4().hex
        self.insert(uuid, {})
        return uuid

    def insert(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Insert a run with these parameters; a uuid already stored is a ``DatabaseError``."""
        values = _loggable(parameters)
        with self._writing() as conn:
            if _stored_parameters(conn, uuid) is not None:
                raise DatabaseError(f"a run with uuid {uuid!r} already exists in {self.path}")
            _insert_row(conn, uuid, values)

    def insert_many(self, parameters_all: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert one run per mapping, all in one transaction; returns their new uuids."""
        rows = [(uuid_module.uuid4().hex, _loggable(p)) for p in parameters_all]
        with self._writing() as conn:
            for uuid, values in rows:
                _insert_row(conn, uuid, values)
        return [uuid for uuid, _ in rows]

    def update(
        self, uuid: str, parameters: Mapping[str, Any], allow_overwrite: bool = False
    ) -> None:
        """Add keys to a stored run; replacing a key it has needs ``allow_overwrite=True``."""
        values = _loggable(parameters)
        with self._writing() as conn:
            current = _stored_parameters(conn, uuid)
            if current is None:
                raise UnknownRunError(f"no run with uuid {uuid!r} in {self.path}")
            clash = [key for key in values if key in current]
            if clash and not allow_overwrite:
                raise ParameterError(
                    f"run {uuid} already has {', '.join(clash)}: pass allow_overwrite=True"
                )
            _update_row(conn, uuid, {**current, **values})

    def upsert(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Insert the run, or add these keys to it (replacing those it has)."""
        values = _loggable(parameters)
        with self._writing() as conn:
            current = _stored_parameters(conn, uuid)
            if current is None:
                _insert_row(conn, uuid, values)
            else:
                _update_row(conn, uuid, {**current, **values})

    def upsert_append(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Append each value to the list under its key (a single stored value becomes a list)."""
        values = _loggable(parameters)
        with self._writing() as conn:
            current = _stored_parameters(conn, uuid)
            merged = dict(current or {})
            for key, value in values.items():
                previous = merged.get(key, [])
                merged[key] = [*(previous if isinstance(previous, list) else [previous]), value]
            if current is None:
                _insert_row(conn, uuid, merged)
            else:
                _update_row(conn, uuid, merged)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        conn = store.connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot write to database {self.path}: {exc}") from None
        finally:
            conn.close()

    def __getitem__(self, uuid: str) -> Run:
        return self.get(uuid)

    def __len__(self) -> int:
        with _reading(self.path) as conn:
            _table_columns(conn, self.path)
            return conn.execute("SELECT count(*) FROM experiments").fetchone()[0]

    def __repr__(self) -> str:
        if not self.path.exists():
            return f"SQLiteTracker({str(self.path)!r}) (no database yet)"
        from rich.console import Console

        table = render.runs_text_table(
            self.runs(limit=5),
            short=self.uuid_prefixes(),
            title=f"SQLiteTracker({str(self.path)!r}): {len(self)} runs, most recent first",
        )
        console = Console(file=io.StringIO(), width=100, color_system=None)
        console.print(table)
        return console.file.getvalue().rstrip()

    def _repr_html_(self) -> str:
        if not self.path.exists():
            return f"<h4>SQLiteTracker</h4><p>{self.path} (no database yet)</p>"
        return (
            f"<h4>SQLiteTracker: {len(self)} runs</h4>"
            + render.runs_html(self.runs(limit=5), short=self.uuid_prefixes())
            + "<p>(most recent runs)</p>"
        )

    def _keys(self, conn: sqlite3.Connection, limit: int | None = None) -> list[str]:
        rows = conn.execute(
            """
            SELECT t.fullkey, t.path, t.type,
                   -- CASE, not AND: SQLite may evaluate both sides, and atoms are not JSON
                   CASE WHEN t.type = 'object'
                        THEN json_type(t.value, '$."$blob"') IS NOT NULL ELSE 0 END,
                   -- with one min(), SQLite takes the other columns from the row holding it:
                   -- t.id is then the key's position in the first run that has it
                   min(e.rowid) AS first_run, t.id AS position
            FROM (SELECT rowid, parameters FROM experiments WHERE json_valid(parameters)
                  ORDER BY rowid LIMIT ?) AS e,
                 json_tree(e.parameters) AS t
            -- object members only: not array elements, nor anything inside an array
            WHERE typeof(t.key) = 'text' AND instr(t.path, '[') = 0
            GROUP BY t.fullkey
            ORDER BY first_run, position
            """,
            (-1 if limit is None else limit,),
        ).fetchall()
        blobs = {fullkey for fullkey, _, _, is_blob, _, _ in rows if is_blob}
        return [
            _key_from_fullkey(fullkey)
            for fullkey, parent, kind, is_blob, _, _ in rows
            # nested objects are reached through their leaves; a plot's members are not keys
            if (kind != "object" or is_blob) and parent not in blobs
        ]


@dataclasses.dataclass(eq=False)
class RichOutput:
    """A plot or HTML output of a run, stored once in the ``blobs`` table.

    Displays itself in a notebook; :attr:`data` loads the bytes on first use.
    """

    mimetype: str
    sha256: str
    database: Path

    @cached_property
    def data(self) -> bytes:
        with _reading(self.database) as conn:
            blob = store.load_blob(conn, self.sha256)
        if blob is None:
            raise DatabaseError(f"output {self.sha256[:12]} is missing from {self.database}")
        return blob.data

    @property
    def extension(self) -> str:
        """File extension for :meth:`Run.export` (``.png``, ``.svg``, ``.html``...)."""
        return _EXTENSIONS.get(self.mimetype, ".txt")

    def _repr_html_(self) -> str:
        return render.rich_output_html(self.mimetype, self.data)

    def __repr__(self) -> str:
        return f"<RichOutput {self.mimetype} {self.sha256[:12]}>"


@dataclasses.dataclass(eq=False)
class Run:
    """One stored run. ``run[key]`` is a parameter or value (as with the anchor's
    ``Experiment``); plots are :class:`RichOutput` objects, other values plain Python."""

    uuid: str
    created: str | None
    status: str | None
    duration: float | None
    #: Inputs: the keys the ``parameter_keys`` column lists.
    parameters: dict[str, Any]
    #: Everything else in ``parameters``: captured or logged values.
    values: dict[str, Any]
    error: RunError | None
    environment: Environment | None
    source_path: str | None
    comment: str | None
    name: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)

    @property
    def error_type(self) -> str | None:
        return self.error.type if self.error else None

    @property
    def error_message(self) -> str | None:
        return self.error.message if self.error else None

    def flat_parameters(self) -> dict[str, Any]:
        """The parameters, nested keys flattened (``model.depth``)."""
        return _flatten(self.parameters)

    def flat_values(self) -> dict[str, Any]:
        """The values, nested keys flattened (``a.b``), plots included."""
        return _flatten(self.values)

    def scalar_values(self) -> dict[str, Any]:
        """Values that are numbers, text, booleans or null, nested keys flattened (``a.b``)."""
        return {
            k: v
            for k, v in _flatten(self.values).items()
            if v is None or isinstance(v, bool | int | float | str)
        }

    def outputs(self) -> dict[str, RichOutput]:
        """The plots and HTML outputs, by key."""
        return {k: v for k, v in self.values.items() if isinstance(v, RichOutput)}

    def export(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write each plot and HTML output to ``directory/<key><ext>``; returns the files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for key, output in self.outputs().items():
            target = directory / (re.sub(r"[^\w.-]", "_", key) + output.extension)
            target.write_bytes(output.data)
            written.append(target)
        return written

    def keys(self) -> list[str]:
        """Parameter keys, then value keys (so ``dict(run)`` works)."""
        return list({**self.parameters, **self.values})

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

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

    def __repr__(self) -> str:
        return f"Run({self.uuid!r}, status={self.status!r}, {dict(self.items())!r})"

    def _repr_html_(self) -> str:
        title = f"<h4>Run {self.uuid} ({self.status or 'status unknown'})</h4>"
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
        values = [_as_output(row[idx], self.database) for row in self.rows]
        return Tabs(labels, values, self.precision)

    def resolved_rows(self) -> list[list[Any]]:
        """The rows as shown: plots as :class:`RichOutput`, images stored inline by the anchor as
        :class:`~ploomber_like.render.HTML`, other values as SQLite returned them."""
        return [[_as_output(v, self.database) for v in row] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        from rich.console import Console

        console = Console(file=io.StringIO(), width=100, color_system=None)
        console.print(render.text_table(self.columns, self.resolved_rows(), self.precision))
        return console.file.getvalue().rstrip()

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


class Experiment:
    """A run logged by hand, as with sklearn-evaluation: ``exp.log("accuracy", 0.9)``.

    The object owns its row: each call writes the whole run again (its own transaction), so a
    comment set on the same run through :meth:`SQLiteTracker.comment` meanwhile is replaced.
    """

    def __init__(self, database: str | os.PathLike[str]) -> None:
        self._store_path = Path(database)
        self._record = Record(
            uuid=uuid_module.uuid4().hex,
            created=new_created(),
            path="",
            source="",
            parameters={},
            overrides={},
            status=Status.OK,
            # git_state looks at the folder of the given file: here, the working directory,
            # whose commit is what makes hand-logged numbers reproducible.
            environment=Environment.collect(Path.cwd() / "manual"),
        )
        self._write()

    @property
    def uuid(self) -> str:
        return self._record.uuid

    def log(self, key: str, value: Any) -> Any:
        """Store a JSON-serializable value (NumPy scalars and arrays too); returns it."""
        self._update({key: value})
        return value

    def log_dict(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """Store several values at once; returns them."""
        self._update(values)
        return values

    def log_figure(self, key: str, figure: Figure) -> None:
        """Store a matplotlib figure as a PNG, out of line in the ``blobs`` table."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        blob = Blob("image/png", buffer.getvalue())
        self._record.blobs[blob.sha256] = blob
        self._update({key: blob.reference()})

    def comment(self, text: str) -> None:
        """Set the run's comment."""
        self._record.comment = text
        self._write()

    def __repr__(self) -> str:
        return f"Experiment({self.uuid!r}, {self._record.values!r})"

    def _update(self, values: Mapping[str, Any]) -> None:
        self._record.values.update(_loggable(values))
        self._write()

    def _write(self) -> None:
        with store.Store(self._store_path) as writer:
            writer.finish(self._record)


def _loggable(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` ready to store as JSON, or a :class:`ParameterError` naming the problem."""
    if not isinstance(values, Mapping):
        raise ParameterError(f"expected a dict of values, got {type(values).__name__}")
    # NumPy and pandas values have tolist(); json cannot encode most of them as they are.
    converted = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in values.items()}
    try:
        store.to_json(converted)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"cannot log {', '.join(map(str, values))}: {exc}") from None
    return converted


def _stored_parameters(conn: sqlite3.Connection, uuid: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT parameters FROM experiments WHERE uuid = ?", (uuid,)).fetchone()
    if row is None:
        return None
    stored = _load_json(row[0])
    return stored if isinstance(stored, dict) else {}


def _insert_row(conn: sqlite3.Connection, uuid: str, values: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO experiments (uuid, created, parameters, status, parameter_keys) "
        "VALUES (?, ?, ?, ?, '[]')",
        (uuid, new_created(), store.to_json(values), Status.OK),
    )


def _update_row(conn: sqlite3.Connection, uuid: str, values: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE experiments SET parameters = ? WHERE uuid = ?", (store.to_json(values), uuid)
    )


# --- reading rows -------------------------------------------------------------------------


@contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    conn = store.connect(path, readonly=True)
    try:
        yield conn
    except sqlite3.Error as exc:
        # e.g. a row whose parameters are not JSON: still a one-line error, not a traceback
        raise DatabaseError(f"cannot read database {path}: {exc}") from None
    finally:
        conn.close()


def _table_columns(conn: sqlite3.Connection, path: Path) -> set[str]:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(experiments)")}
    if not columns:
        raise DatabaseError(f"not a tracking database (no experiments table): {path}")
    return columns


def _select_list(
    conn: sqlite3.Connection, path: Path, columns: Sequence[str] = _RUN_COLUMNS
) -> str:
    """``columns`` for a SELECT, with NULL for the ones an older schema lacks."""
    present = _table_columns(conn, path)
    return ", ".join(c if c in present else f"NULL AS {c}" for c in columns)


def _run_conditions(
    columns: set[str],
    uuids: Sequence[str] | None,
    status: str | None,
    tag: str | None,
    script: str | None,
    where: str | None,
) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) selecting runs for :meth:`SQLiteTracker.runs`."""
    conditions: list[str] = []
    params: list[Any] = []
    if uuids is not None:
        conditions.append(f"uuid IN ({', '.join('?' for _ in uuids) or 'NULL'})")
        params += uuids
    if status is not None:
        conditions.append("status = ?")
        params.append(status)
    if tag is not None:
        if "tags" not in columns:
            return ["0"], []  # a database nobody has tagged: no run has the tag
        conditions.append(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(tags) THEN tags END) "
            "WHERE value = ?)"
        )
        params.append(tag)
    if script is not None:
        # "fit.py" finds runs of "examples/fit.py" too.
        conditions.append("(source_path = ? OR source_path LIKE ? ESCAPE '\\')")
        escaped = script.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [script, f"%/{escaped}"]
    if where is not None and where.strip():
        conditions.append(f"({where})")
    return conditions, params


def _resolve_uuid(conn: sqlite3.Connection, uuid: str, path: Path) -> str:
    """The full uuid of the run ``uuid`` names exactly or as a unique prefix."""
    _table_columns(conn, path)
    if conn.execute("SELECT 1 FROM experiments WHERE uuid = ?", (uuid,)).fetchone():
        return uuid
    matches = [
        row[0]
        for row in conn.execute(
            "SELECT uuid FROM experiments WHERE substr(uuid, 1, length(?)) = ? LIMIT 3",
            (uuid, uuid),
        )
    ] if uuid else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownRunError(f"uuid prefix {uuid!r} matches several runs: {', '.join(matches)}...")
    raise UnknownRunError(f"no run with uuid {uuid!r} in {path}")


def _run_from_row(row: Sequence[Any], database: Path) -> Run:
    data = dict(zip(_RUN_COLUMNS, row, strict=True))
    merged = _load_json(data["parameters"]) or {}
    if not isinstance(merged, dict):
        merged = {"parameters": merged}
    merged = {k: _as_output(v, database) for k, v in merged.items()}
    parameter_keys = _load_json(data["parameter_keys"]) or []
    error = None
    if data["error_type"] is not None:
        error = RunError(
            type=data["error_type"],
            message=data["error_message"] or "",
            traceback=data["traceback"] or "",
            group=data["error_group"],
            group_source=data["error_source"],
        )
    return Run(
        uuid=data["uuid"],
        created=data["created"],
        status=data["status"],
        duration=data["duration"],
        parameters={k: merged[k] for k in parameter_keys if k in merged},
        values={k: v for k, v in merged.items() if k not in parameter_keys},
        error=error,
        environment=_environment(_load_json(data["environment"])),
        source_path=data["source_path"],
        comment=data["comment"],
        name=data["name"],
        tags=_load_json(data["tags"]) or [],
    )


def _environment(data: Any) -> Environment | None:
    if not isinstance(data, dict):
        return None
    known = {f.name for f in dataclasses.fields(Environment)}
    try:
        return Environment(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        # Written by another version with required fields we lack: not worth failing a read.
        return None


def _load_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_output(value: Any, database: Path) -> Any:
    """A cell or value as shown: blob references become :class:`RichOutput`, images the anchor
    stored inline become :class:`render.HTML`, anything else stays as it is."""
    # A reference selected with json_extract arrives as JSON text, not as an object.
    if isinstance(value, str) and value.startswith("{") and BLOB_REF_KEY in value:
        value = _load_json(value)
    if is_blob_reference(value):
        return RichOutput(value["mimetype"], value[BLOB_REF_KEY], database)
    image = store.inline_image(value)
    if image is not None:
        # Drawn again from the decoded bytes: the peers' tags (line breaks in the base64, a
        # space after the comma) are not the strict data URI that renders.
        return render.HTML(render.rich_output_html(image.mimetype, image.data))
    return value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _runs_frame(runs: Sequence[Run], scalars_only: bool) -> pd.DataFrame:
    """One row per run: parameter columns (across all runs) before value columns."""
    import pandas as pd

    parameters = [run.flat_parameters() for run in runs]
    values = [run.scalar_values() if scalars_only else _flatten(run.values) for run in runs]
    parameter_columns = dict.fromkeys(k for p in parameters for k in p)
    value_columns = dict.fromkeys(k for v in values for k in v if k not in parameter_columns)
    records = [
        {
            "uuid": run.uuid,
            "created": run.created,
            "status": run.status,
            "duration": run.duration,
            **run_parameters,
            **run_values,
            "error_type": run.error_type,
            "error_message": run.error_message,
            "comment": run.comment,
        }
        for run, run_parameters, run_values in zip(runs, parameters, values, strict=True)
    ]
    columns = ["uuid", "created", "status", "duration", *parameter_columns, *value_columns,
               "error_type", "error_message", "comment"]
    return pd.DataFrame.from_records(records, columns=columns).set_index("uuid")


# --- writing queries ----------------------------------------------------------------------


def _json_path(key: str) -> str:
    """The JSON path of a key: ``$...`` paths as they are, keys as listed by
    ``get_parameters_keys`` under ``$.``, anything else as one quoted label."""
    if key.startswith("$"):
        return key
    if _KEY_PATH.fullmatch(key):
        return f"$.{key}"
    return f'$."{key}"'


def _key_from_fullkey(fullkey: str) -> str:
    """``$."n_estimators".depth`` -> ``n_estimators.depth``: SQLite quotes any key with an
    underscore, but only labels that are not identifiers need it."""
    segments = re.findall(r'"[^"]*"|[^.]+', fullkey[2:])
    return ".".join(
        s[1:-1] if s.startswith('"') and _IDENTIFIER.fullmatch(s[1:-1]) else s for s in segments
    )


def _alias(conn: sqlite3.Connection, key: str) -> str:
    """A column alias for a key: ``model.depth`` -> ``model_depth``, quoted when SQLite would not
    take it bare (not an identifier, or a keyword such as ``order``)."""
    alias = "_".join(part.strip('"') for part in re.findall(r'"[^"]*"|[^.]+', key))
    if _IDENTIFIER.fullmatch(alias):
        try:
            # SQLite's parser is the one authority on which words are reserved.
            conn.execute(f"SELECT 1 AS {alias}")
            return alias
        except sqlite3.Error:
            pass
    return '"' + alias.replace('"', '""') + '"'


def _sql_text(text: str) -> str:
    """``text`` ready to sit between single quotes in SQL."""
    return text.replace("'", "''")


def _unique(labels: list[str]) -> list[str]:
    """Labels made distinct (``a``, ``a (2)``) so no tab hides another."""
    counts: dict[str, int] = {}
    unique = []
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        unique.append(label if counts[label] == 1 else f"{label} ({counts[label]})")
    return unique
