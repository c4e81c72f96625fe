"""The query engine under :class:`~ploomber_like.tracker.SQLiteTracker`, the web UI, the report
and ``compare``: which runs a filter selects and in which order, what a uuid prefix names, which
keys the runs hold, and how a key is written as a JSON path.

:class:`RunQuery` reads one tracking database. Every call opens its own read-only connection, so
it cannot modify results and always sees the runs a sweep has committed so far. Runs come back
as :class:`~ploomber_like.results.Run` objects; rich outputs stay in the ``blobs`` table until
shown.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ploomber_like import render, store
from ploomber_like.errors import DatabaseError, ParameterError, QueryError, UnknownRunError
from ploomber_like.record import STATUSES, Blob
from ploomber_like.results import Run
from ploomber_like.store.indexes import (
    has_read_indexes,
    json_path,
    key_from_fullkey,
    value_expression,
)

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")

RunT = TypeVar("RunT", bound=Run)

#: A sample draws from the rowids of the matching runs when fewer than one run in this many
#: matches (a random rowid would then rarely match).
_SPARSE = 20


class RunQuery:
    """Read the runs of the tracking database at ``database``, which must exist (an in-memory
    one included: see :func:`ploomber_like.store.new_memory_database`)."""

    def __init__(self, database: str | os.PathLike[str]) -> None:
        self.database = Path(database)
        #: The connection every read goes through while :meth:`holding`; None: one per read.
        self._held: sqlite3.Connection | None = None

    @classmethod
    def existing(cls, database: str | os.PathLike[str]) -> RunQuery:
        """The query of ``database``; a missing file is a :class:`DatabaseError`
        (``database not found``), so a mistyped name creates nothing."""
        if not store.exists(database):
            raise DatabaseError(f"database not found: {Path(database)}")
        return cls(database)

    @contextmanager
    def holding(self) -> Iterator[RunQuery]:
        """Inside, every read of this query (and :meth:`blob`) goes through one read-only
        connection: for many small reads in a row (a report's run pages), each of which would
        otherwise open the database and read its schema. For one thread only: a server's
        threads share a query without it."""
        with store.reading(self.database) as conn:
            self._held = conn
            try:
                yield self
            finally:
                self._held = None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if self._held is None:
            with store.reading(self.database) as conn:
                yield conn
            return
        try:
            yield self._held
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"cannot read database {store.display_name(self.database)}: {exc}"
            ) from None

    def blob(self, sha256: str) -> Blob | None:
        """The stored output ``sha256`` (its mimetype and bytes), or None."""
        with self._reading() as conn:
            return store.load_blob(conn, sha256)

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
        offset: int = 0,
        after: str | None = None,
    ) -> list[Run]:
        """Stored runs, most recent first unless ``sort`` is given: the filters of
        :meth:`SQLiteTracker.runs <ploomber_like.tracker.SQLiteTracker.runs>`. A page of a list
        (without uuids): those that come after the run ``after`` (a full uuid: the last run of
        the page before) in that order, read from there through an index however deep the page;
        ``offset`` skips that many more first (each one skipped is read)."""
        statuses = _statuses(status)
        with self._reading() as conn:
            columns = self._columns(conn)
            sort_sql = None if sort is None else self._sort_expression(conn, columns, sort)
            if uuids is None:
                cursor = None if after is None else _cursor(conn, sort_sql, after, self.database)
                rows = _select_runs(conn, columns, sort_sql, ascending, limit,
                                    _filters(columns, statuses, tag, script, where),
                                    offset=offset, selective=bool(where and where.strip()),
                                    cursor=cursor)
            else:
                full = self._resolve_all(conn, uuids)
                rows = self._rows_of(conn, columns, full, sort_sql, ascending, limit,
                                     _filters(columns, statuses, tag, script, where))
        return [Run.from_stored(store.decode_run(row), self.database) for row in rows]

    def sample(self, n: int, where: str | None = None, seed: int = 0) -> list[Run]:
        """Every run ``where`` selects, or, when there are more than ``n``, about ``n`` of them
        drawn at random (the same ones for the same ``seed`` while the runs do not change);
        most recent first. Reads only the rows it returns, plus their rowids when a condition
        selects a small share of the runs."""
        with self._reading() as conn:
            columns = self._columns(conn)
            filters = _filters(columns, None, None, None, where)
            conditions, params = filters
            where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            total = _scalar(conn, f"SELECT count(*) FROM experiments {where_sql}", params)
            if total <= n:
                rows = _select_runs(conn, columns, None, False, None, filters)
                return [Run.from_stored(store.decode_run(row), self.database) for row in rows]
            generator = random.Random(seed)
            last = _scalar(conn, "SELECT max(rowid) FROM experiments", [])
            if total * _SPARSE < last:
                # Few runs match: draw from their rowids rather than from every rowid.
                matching = [row[0] for row in conn.execute(
                    f"SELECT rowid FROM experiments {where_sql}", params
                )]
                drawn = generator.sample(matching, n)
            else:
                drawn = generator.sample(range(1, last + 1), min(last, n * last // total))
            rows = []
            for marks, chunk in store.in_chunks(sorted(drawn)):
                rows += _select_runs(conn, columns, None, False, None,
                                     ([*conditions, f"rowid IN ({marks})"], [*params, *chunk]),
                                     selective=True)
        rows.sort(key=lambda row: _sqlite_order(row[1]), reverse=True)
        return [Run.from_stored(store.decode_run(row), self.database) for row in rows[:n]]

    def run(self, uuid: str, *, detail: bool = False, kind: type[RunT] = Run) -> RunT:
        """The run ``uuid`` (a full uuid or unique prefix) names, as a ``kind`` (:class:`Run` or
        a subclass); with ``detail``, what it left (:attr:`Run.detail`) is read at once, in the
        same connection.

        Raises
        ------
        UnknownRunError
            No run has this uuid, or the prefix matches several runs.
        """
        with self._reading() as conn:
            stored = self._stored_run(conn, uuid)
            left = store.read_run_detail(conn, stored.uuid) if detail else None
        return kind.from_stored(stored, self.database, left)

    def full_uuids(self, uuids: Iterable[str]) -> list[str]:
        """The full uuid of each run named exactly or by a unique prefix, in order."""
        with self._reading() as conn:
            return self._resolve_all(conn, uuids)

    def uuid_prefixes(self, uuids: Iterable[str] | None = None) -> dict[str, str]:
        """Each run's shortest unique uuid prefix (at least 8 characters); with ``uuids``, only
        theirs, each found from its neighbours in the uuid index instead of every uuid."""
        with self._reading() as conn:
            self._columns(conn)
            if uuids is None:
                every = [str(row[0]) for row in conn.execute("SELECT uuid FROM experiments")]
                return render.unique_prefixes(every)
            short = {}
            for uuid in dict.fromkeys(uuids):
                # In sorted order, the uuids sharing the longest prefix with one are its
                # neighbours.
                neighbours = conn.execute(
                    "SELECT (SELECT max(uuid) FROM experiments WHERE uuid < ?), "
                    "(SELECT min(uuid) FROM experiments WHERE uuid > ?)",
                    (uuid, uuid),
                ).fetchone()
                near = [str(n) for n in neighbours if n is not None]
                short[uuid] = render.unique_prefixes([uuid, *near])[uuid]
            return short

    def recent_rows(self, n: int, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """The ``columns`` of the ``n`` most recent runs as stored (NULL for the columns an older
        schema lacks)."""
        with self._reading() as conn:
            return conn.execute(
                f"SELECT {store.select_list(self._columns(conn), columns)} FROM experiments "
                "ORDER BY created DESC, rowid DESC LIMIT ?",
                (n,),
            ).fetchall()

    def count(
        self,
        *,
        status: str | Sequence[str] | None = None,
        tag: str | None = None,
        script: str | None = None,
        where: str | None = None,
    ) -> int:
        """How many runs the database holds, or pass the filters of :meth:`runs` (a
        :class:`DatabaseError` if it is not a tracking database)."""
        with self._reading() as conn:
            columns = self._columns(conn)
            conditions, params = _filters(columns, _statuses(status), tag, script, where)
            where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = f"SELECT count(*) FROM experiments {where_sql}"
            try:
                return conn.execute(sql, params).fetchone()[0]
            except sqlite3.Error as exc:
                raise QueryError(str(exc), sql) from None

    def keys(self, limit: int | None = None) -> list[str]:
        """Every key stored in ``parameters`` across runs, in order of first appearance.

        Nested keys are dotted paths (``model.depth``); keys that are not identifiers are
        double-quoted as in a JSON path (``"f1-score"``). A plot counts as one key. ``limit``
        looks at the first ``limit`` runs only; default: all.
        """
        with self._reading() as conn:
            self._columns(conn)
            return _keys(conn, limit)

    def sample_query(self, arrow: bool = False) -> str:
        """A query selecting every stored key as its own column, with
        ``json_extract(parameters, '$.key')`` or, with ``arrow``, ``parameters ->> '$.key'``."""
        with self._reading() as conn:
            self._columns(conn)
            selected = ["    uuid"]
            for key in _keys(conn):
                path = _sql_text(json_path(key))
                if arrow:
                    extract = f"parameters ->> '{path}'"
                else:
                    extract = f"json_extract(parameters, '{path}')"
                selected.append(f"    {extract} AS {_alias(conn, key)}")
        return "SELECT\n" + ",\n".join(selected) + "\nFROM experiments\nLIMIT 10\n"

    def _stored_run(self, conn: sqlite3.Connection, uuid: str) -> store.StoredRun:
        full = self._resolve_all(conn, [uuid])[0]
        row = conn.execute(
            f"SELECT {store.select_list(self._columns(conn))} FROM experiments WHERE uuid = ?",
            (full,),
        ).fetchone()
        return store.decode_run(row)

    def _columns(self, conn: sqlite3.Connection) -> set[str]:
        columns = store.check_schema(conn, store.display_name(self.database))
        if not columns:
            raise DatabaseError(
                "not a tracking database (no experiments table): "
                f"{store.display_name(self.database)}"
            )
        return columns

    def _resolve_all(self, conn: sqlite3.Connection, uuids: Iterable[str]) -> list[str]:
        """The full uuid of each run named exactly or as a unique prefix: whole uuids are looked
        up together, so naming thousands of runs takes a few statements."""
        self._columns(conn)
        # sklearn-evaluation's users may have stored numbers as uuids
        wanted = [str(uuid) for uuid in uuids]
        stored: set[str] = set()
        for marks, chunk in store.in_chunks(list(dict.fromkeys(wanted))):
            found = conn.execute(f"SELECT uuid FROM experiments WHERE uuid IN ({marks})", chunk)
            stored.update(str(row[0]) for row in found)
        return [uuid if uuid in stored else self._resolve_prefix(conn, uuid) for uuid in wanted]

    def _resolve_prefix(self, conn: sqlite3.Connection, uuid: str) -> str:
        # The uuids a prefix starts are neighbours in the uuid index, from the first >= it.
        matches = [
            row[0]
            for row in conn.execute(
                "SELECT uuid FROM experiments WHERE uuid >= ? ORDER BY uuid LIMIT 3", (uuid,)
            )
            if str(row[0]).startswith(uuid)
        ] if uuid else []
        if not matches and uuid:
            # uuids stored as numbers (by sklearn-evaluation's users) sort before any text.
            matches = [
                row[0]
                for row in conn.execute(
                    "SELECT uuid FROM experiments WHERE typeof(uuid) != 'text' "
                    "AND substr(uuid, 1, length(?)) = ? LIMIT 3",
                    (uuid, uuid),
                )
            ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownRunError(
                f"uuid prefix {uuid!r} matches several runs: {', '.join(matches)}..."
            )
        raise UnknownRunError(f"no run with uuid {uuid!r} in {store.display_name(self.database)}")

    def _sort_expression(self, conn: sqlite3.Connection, columns: set[str], sort: str) -> str:
        if sort in columns:
            return f'"{sort}"'
        if sort in _keys(conn):
            return value_expression(sort)
        raise ParameterError(f"unknown sort key {sort!r}: no such column or key")

    def _rows_of(
        self,
        conn: sqlite3.Connection,
        columns: set[str],
        uuids: list[str],
        sort_sql: str | None,
        ascending: bool,
        limit: int | None,
        filters: tuple[list[str], list[Any]],
    ) -> list[tuple[Any, ...]]:
        """The rows of these runs that pass ``filters``: in the order given, or sorted."""
        conditions, params = filters
        rows: list[tuple[Any, ...]] = []
        # One statement per chunk: SQLite bounds how many parameters a statement binds.
        # Without a sort the order is the one given: the limit applies after it.
        chunk_limit = None if sort_sql is None else limit
        for marks, chunk in store.in_chunks(list(dict.fromkeys(uuids))):
            rows += _select_runs(
                conn, columns, sort_sql, ascending, chunk_limit,
                ([*conditions, f"uuid IN ({marks})"], [*params, *chunk]), sort_columns=True,
            )
        if sort_sql is None:
            position = {uuid: i for i, uuid in enumerate(uuids)}
            rows.sort(key=lambda row: position[row[0]])
        else:
            # Each chunk came sorted by SQLite: sort their union the same way, least
            # significant key first (Python's sort is stable).
            rows.sort(key=lambda row: _sqlite_order(row[-1]), reverse=True)  # created DESC
            rows.sort(key=lambda row: _sqlite_order(row[-2]), reverse=not ascending)
            rows.sort(key=lambda row: row[-2] is None)
            rows = [row[:-2] for row in rows]
        return rows[:limit]


# --- selecting rows -------------------------------------------------------------------------


def _select_runs(
    conn: sqlite3.Connection,
    columns: set[str],
    sort_sql: str | None,
    ascending: bool,
    limit: int | None,
    filters: tuple[list[str], list[Any]],
    sort_columns: bool = False,
    offset: int = 0,
    selective: bool = False,
    cursor: tuple[Any, Any, int] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows of :data:`store.RUN_COLUMNS` passing ``filters`` (conditions and their parameters),
    most recent first or by ``sort_sql``, after the ``cursor`` (the sort value, ``created`` and
    rowid of the row before them, see :func:`_cursor`), from the ``offset``-th; with
    ``sort_columns``, each row ends with its sort value and ``created``. ``selective``: the
    conditions select few runs, through an index of their own (a user's condition, a list of
    rowids)."""
    conditions, params = filters
    selected = store.select_list(columns)
    recent = "created DESC, rowid DESC"
    # Each part is read in an order an index serves (see store.indexes): a limit, or a cursor,
    # reads only the rows the page returns.
    after_row = "(created, rowid) < (?, ?)"
    if sort_sql is None:
        # Unary + keeps SQLite from walking the index on created and testing every run
        # against a condition an index of its own answers (3 s against 1 ms at 100k runs).
        order_by = "+created DESC, rowid DESC" if selective else recent
        parts = [([], [], order_by)]
        if cursor is not None:
            parts = [([after_row], list(cursor[1:]), order_by)]
    else:
        if sort_columns:
            selected += f", {sort_sql}, created"
        # Runs with a value first, then those without.
        direction, beyond = ("ASC", ">") if ascending else ("DESC", "<")
        valued = ([f"{sort_sql} IS NOT NULL"], [], f"{sort_sql} {direction}, {recent}")
        nulls = ([f"{sort_sql} IS NULL"], [], recent)
        if cursor is None:
            parts = [valued, nulls]
        elif cursor[0] is None:
            parts = [([f"{sort_sql} IS NULL", after_row], list(cursor[1:]), recent)]
        else:
            value, *rest = cursor
            ties = ([f"{sort_sql} = ?", after_row], [value, *rest], recent)
            further = ([f"{sort_sql} {beyond} ?"], [value], valued[2])
            parts = [ties, further, nulls]
    rows: list[tuple[Any, ...]] = []
    for extra, extra_params, order_by in parts:
        wanted = None if limit is None else limit - len(rows)
        if wanted == 0:
            break
        part = ([*conditions, *extra], [*params, *extra_params])
        found = _select(conn, selected, *part, order_by, wanted, offset)
        if offset and not found:
            # The offset reaches past this part: skip what it holds in the next.
            where_sql = " AND ".join(part[0])
            offset -= _scalar(conn, f"SELECT count(*) FROM experiments WHERE {where_sql}",
                              part[1])
            offset = max(offset, 0)
        elif found:
            offset = 0
        rows += found
    return rows


def _cursor(
    conn: sqlite3.Connection, sort_sql: str | None, uuid: str, database: Path
) -> tuple[Any, Any, int]:
    """What a page after the run ``uuid`` starts from: its sort value, ``created``, rowid."""
    row = conn.execute(
        f"SELECT {sort_sql or 'NULL'}, created, rowid FROM experiments WHERE uuid = ?", (uuid,)
    ).fetchone()
    if row is None:
        raise UnknownRunError(f"no run with uuid {uuid!r} in {store.display_name(database)}")
    return row


def _select(
    conn: sqlite3.Connection,
    selected: str,
    conditions: list[str],
    params: list[Any],
    order_by: str,
    limit: int | None,
    offset: int = 0,
) -> list[tuple[Any, ...]]:
    where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT {selected} FROM experiments {where_sql} ORDER BY {order_by} LIMIT ? OFFSET ?"
    try:
        return conn.execute(sql, [*params, -1 if limit is None else limit, offset]).fetchall()
    except sqlite3.Error as exc:
        raise QueryError(str(exc), sql) from None


def _scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    try:
        return conn.execute(sql, params).fetchone()[0]
    except sqlite3.Error as exc:
        raise QueryError(str(exc), sql) from None


def _filters(
    columns: set[str],
    statuses: list[str] | None,
    tag: str | None,
    script: str | None,
    where: str | None,
) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) selecting runs for :meth:`RunQuery.runs`."""
    conditions: list[str] = []
    params: list[Any] = []
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


def _sqlite_order(value: Any) -> tuple[int, Any]:
    """A sort key ordering values as SQLite does: NULL, then numbers, text, blobs."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


# --- keys -----------------------------------------------------------------------------------


def _keys(conn: sqlite3.Connection, limit: int | None = None) -> list[str]:
    if limit is None and has_read_indexes(conn):
        # Kept by every writer: reading it costs the same at ten runs or a million.
        rows = conn.execute(
            "SELECT fullkey, parent, type, is_blob FROM value_keys ORDER BY first_run, position"
        ).fetchall()
    else:
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
    blobs = {row[0] for row in rows if row[3]}
    return [
        key_from_fullkey(fullkey)
        for fullkey, parent, kind, is_blob, *_ in rows
        # nested objects are reached through their leaves; a plot's members are not keys
        if (kind != "object" or is_blob) and parent not in blobs
    ]


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
