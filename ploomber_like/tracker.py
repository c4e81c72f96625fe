"""The read API: :class:`SQLiteTracker` queries a tracking database, and takes
sklearn-evaluation's writing calls too (see :mod:`ploomber_like.experiment`).

The API follows sklearn-evaluation's ``SQLiteTracker`` so users switch by changing one import.
Every read opens its own read-only connection, so a query cannot modify results and always sees
the runs a sweep has committed so far. Rows come back as the objects of
:mod:`ploomber_like.results`; rich outputs stay in the ``blobs`` table until shown.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like import experiment, render, store
from ploomber_like.errors import DatabaseError, ParameterError, QueryError, UnknownRunError
from ploomber_like.experiment import Experiment
from ploomber_like.record import STATUSES, Artifact
from ploomber_like.results import Results, RichOutput, Run, flatten
from ploomber_like.ui import DEFAULT_PORT

if TYPE_CHECKING:
    import pandas as pd

    from ploomber_like.comparing import Comparison, RunDiff

__all__ = ["Experiment", "Results", "RichOutput", "Run", "SQLiteTracker"]

#: Keys as :meth:`SQLiteTracker.get_parameters_keys` returns them: JSON path segments, plain
#: names or double-quoted labels, joined by dots.
_KEY_PATH = re.compile(r'(?:[A-Za-z_]\w*|"[^"]*")(?:\.(?:[A-Za-z_]\w*|"[^"]*"))*')
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


#: What an empty tracker's reprs say (sklearn-evaluation's words).
_NO_RUNS = "(No experiments saved yet)"


class SQLiteTracker:
    """Query the runs stored in a tracking database, and log runs by hand.

    Parameters
    ----------
    path
        The SQLite file; a missing one is created, as ``sqlite3.connect`` does.
        ``":memory:"`` keeps a private in-memory database for the life of this object.
    create
        With ``create=False`` a missing file is a :class:`~ploomber_like.errors.DatabaseError`
        (``database not found``) instead: what the command line's read commands use, so a
        mistyped name creates nothing.

    Examples
    --------
    >>> tracker = SQLiteTracker("experiments.db")
    >>> tracker.query('''
    ... SELECT uuid, json_extract(parameters, '$.f1') AS f1
    ... FROM experiments ORDER BY f1 DESC LIMIT 3''')  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        if str(path) == store.MEMORY:
            location = store.new_memory_database()
            # The database lives as long as one connection to it does: this one, held open.
            self._memory = store.connect(location)
            self.path = Path(location)
        else:
            self.path = Path(path)
            if not self.path.exists():
                if not create:
                    raise DatabaseError(f"database not found: {self.path}")
                store.connect(self.path).close()

    def query(
        self, sql: str, as_frame: bool = True, render_plots: bool = False
    ) -> pd.DataFrame | Results:
        """Run a read-only SQL query.

        Parameters
        ----------
        sql
            One SQL statement that reads. Writes (``DELETE``, ``UPDATE``...), ``ATTACH`` and
            ``VACUUM INTO`` are refused.
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
        columns, rows = store.run_query(self.path, sql)
        if not as_frame:
            return Results(columns, rows, render_plots, database=self.path)
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        return frame.set_index("uuid") if "uuid" in frame.columns else frame

    def get(self, uuid: str, unserialize_plots: bool = True) -> Experiment:
        """The run with this uuid (or unique uuid prefix): parameters, values, status, error.

        It compares equal to the dict of its parameters and values, and takes more values with
        ``log``/``log_dict`` and a comment with ``comment`` (see
        :class:`~ploomber_like.experiment.Experiment`). ``unserialize_plots`` is accepted for
        compatibility with sklearn-evaluation: plots are always
        :class:`~ploomber_like.results.RichOutput` objects, which display themselves.

        Raises
        ------
        UnknownRunError
            No run has this uuid, or the prefix matches several runs (also a ``ValueError``).
        """
        with store.reading(self.path) as conn:
            full = _resolve_uuid(conn, uuid, self.path)
            row = conn.execute(
                f"SELECT {_select_list(conn, self.path)} FROM experiments WHERE uuid = ?", (full,)
            ).fetchone()
        return Experiment.from_stored(store.decode_run(row), self.path)

    def runs(
        self,
        uuids: Sequence[str] | None = None,
        *,
        status: str | Sequence[str] | None = None,
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
            Keep only runs with this status (``ok``, ``failed``, ``timeout``...), or with any
            of several: a list, or names separated by commas (``"failed,crashed"``).
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
        statuses = _statuses(status)
        with store.reading(self.path) as conn:
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
            conditions, params = _run_conditions(columns, full, statuses, tag, script, where)
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
        runs = [Run.from_stored(store.decode_run(row), self.path) for row in rows]
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
        with store.reading(self.path) as conn:
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
        with store.reading(self.path) as conn:
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
        with store.reading(self.path) as conn:
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

    def metrics(self, uuids: str | Iterable[str]) -> pd.DataFrame:
        """The series runs printed as ``name: number`` lines (their output scalars).

        ``uuids`` is one uuid (or unique prefix) or several. Returns a DataFrame with columns
        ``uuid, key, step, value``, one row per point, ordered by run, key and step.
        """
        import pandas as pd

        wanted = [uuids] if isinstance(uuids, str) else list(uuids)
        with store.reading(self.path) as conn:
            full = [_resolve_uuid(conn, uuid, self.path) for uuid in wanted]
            rows = store.load_metrics(conn, list(dict.fromkeys(full)))
        return pd.DataFrame.from_records(rows, columns=["uuid", "key", "step", "value"])

    def artifacts(self, uuid: str) -> list[Artifact]:
        """The files run ``uuid`` (or unique prefix) created or changed, by path."""
        with store.reading(self.path) as conn:
            return store.load_artifacts(conn, _resolve_uuid(conn, uuid, self.path))

    def comment(self, uuid: str, text: str) -> None:
        """Set the comment of a run (given by uuid or unique uuid prefix)."""
        with store.reading(self.path) as conn:
            full = _resolve_uuid(conn, uuid, self.path)
        experiment.set_comment(self.path, full, text)

    def uuid_prefixes(self) -> dict[str, str]:
        """Each run's shortest unique uuid prefix (at least 8 characters): how views show uuids,
        and what every call taking a uuid accepts."""
        with store.reading(self.path) as conn:
            _table_columns(conn, self.path)
            uuids = [str(row[0]) for row in conn.execute("SELECT uuid FROM experiments")]
        return render.unique_prefixes(uuids)

    def compare(
        self,
        uuids: Sequence[str] | None = None,
        *,
        where: str | None = None,
        sort: str | None = None,
        ascending: bool = False,
        only_changed: bool = False,
        columns: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
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
                            columns=columns, precision=precision, sort=sort)

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
        from ploomber_like.ui.app import create_app, listen, serve

        serve(create_app(self.path), listen(port))

    # sklearn-evaluation's writing API, so code written for it runs unchanged: each call is one
    # transaction (see ploomber_like.experiment).

    def new_experiment(self) -> Experiment:
        """Start a run logged by hand (status ``ok``), to ``log`` values to."""
        return self.get(experiment.new_experiment(self.path))

    def new(self) -> str:
        """Insert an empty run (status ``ok``, no parameters) and return its uuid."""
        return experiment.new_empty(self.path)

    def insert(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Insert a run with these parameters; a uuid already stored is a ``DatabaseError``.
        Values may be NumPy values or matplotlib figures (stored as PNG)."""
        experiment.insert(self.path, uuid, parameters)

    def insert_many(self, parameters_all: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert one run per mapping, all in one transaction; returns their new uuids."""
        return experiment.insert_many(self.path, parameters_all)

    def update(
        self, uuid: str, parameters: Mapping[str, Any], allow_overwrite: bool = False
    ) -> None:
        """Set the values of a run made by :meth:`new`; replacing the values of a run that has
        some needs ``allow_overwrite=True`` (:meth:`upsert` adds keys instead)."""
        experiment.update(self.path, uuid, parameters, allow_overwrite)

    def upsert(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Insert the run, or add these keys to it (replacing those it has)."""
        experiment.upsert(self.path, uuid, parameters)

    def upsert_append(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Append each value to what the run has under its key (a list given is appended item
        by item; a single stored value becomes a list); keys it lacks are stored as given."""
        experiment.upsert_append(self.path, uuid, parameters)

    def __getitem__(self, uuid: str) -> pd.DataFrame:
        """The run's row (every column, ``parameters`` as JSON text) as a one-row DataFrame
        indexed by uuid, as sklearn-evaluation returns it; :meth:`get` gives the values."""
        import pandas as pd

        with store.reading(self.path) as conn:
            full = _resolve_uuid(conn, uuid, self.path)
            cursor = conn.execute("SELECT * FROM experiments WHERE uuid = ?", (full,))
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
        return pd.DataFrame.from_records(rows, columns=columns).set_index("uuid")

    def __len__(self) -> int:
        with store.reading(self.path) as conn:
            _table_columns(conn, self.path)
            return conn.execute("SELECT count(*) FROM experiments").fetchone()[0]

    def __repr__(self) -> str:
        name = f"SQLiteTracker({store.display_name(self.path)!r})"
        if not store.exists(self.path):
            return f"{name}\n(database deleted)"
        count = len(self)
        if not count:
            return f"{name}\n{_NO_RUNS}"
        # Full uuids, as sklearn-evaluation shows them: code and tests match them in the repr.
        table = render.runs_text_table(
            self.runs(limit=5), title=f"{name}: {count} runs, most recent first",
            shorten_uuids=False,
        )
        # Wider than other reprs by what the whole uuids take.
        return render.to_text(table, width=render.REPR_WIDTH + 24)

    def _repr_html_(self) -> str:
        name = f"<h4>SQLiteTracker: {render.cell_html(store.display_name(self.path))}</h4>"
        if not store.exists(self.path):
            return f"{name}<p>(database deleted)</p>"
        count = len(self)
        if not count:
            return f"{name}<p>{_NO_RUNS}</p>"
        return (
            f"{name}<p>{count} runs</p>"
            + render.runs_html(self.runs(limit=5))
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


# --- reading rows -------------------------------------------------------------------------


def _table_columns(conn: sqlite3.Connection, path: Path) -> set[str]:
    columns = store.check_schema(conn, store.display_name(path))
    if not columns:
        raise DatabaseError(
            f"not a tracking database (no experiments table): {store.display_name(path)}"
        )
    return columns


def _select_list(
    conn: sqlite3.Connection, path: Path, columns: Sequence[str] = store.RUN_COLUMNS
) -> str:
    """``columns`` for a SELECT, with NULL for the ones an older schema lacks."""
    return store.select_list(_table_columns(conn, path), columns)


def _statuses(status: str | Sequence[str] | None) -> list[str] | None:
    """The statuses a ``status`` filter names (None: no filter); unknown names are refused."""
    if status is None:
        return None
    names = status.split(",") if isinstance(status, str) else list(status)
    names = [name.strip() for name in names]
    for name in names:
        if name not in STATUSES:
            expected = ", ".join(STATUSES)
            raise ParameterError(f"unknown status {name!r}; expected one of {expected}")
    return names


def _run_conditions(
    columns: set[str],
    uuids: Sequence[str] | None,
    statuses: list[str] | None,
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
    if statuses is not None:
        conditions.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
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
    uuid = str(uuid)  # sklearn-evaluation's users may have stored numbers as uuids
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
    raise UnknownRunError(f"no run with uuid {uuid!r} in {store.display_name(path)}")


def _runs_frame(runs: Sequence[Run], scalars_only: bool) -> pd.DataFrame:
    """One row per run: parameter columns (across all runs) before value columns."""
    import pandas as pd

    parameters = [run.flat_parameters() for run in runs]
    values = [run.scalar_values() if scalars_only else flatten(run.values) for run in runs]
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
            "comment": run.comment_text,
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
