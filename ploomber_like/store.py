"""The SQLite schema and every write to it.

The table ``experiments`` keeps the columns of sklearn-evaluation's ``SQLiteTracker``
(``uuid``, ``created``, ``parameters``, ``comment``) so their SQL runs unchanged; the columns
after them are ours. Rich outputs and source texts live once in ``blobs``, keyed by sha256, and
``parameters`` holds a small reference to them (see :class:`ploomber_like.record.Blob`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import math
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ploomber_like.errors import DatabaseError, QueryError, TrackerError
from ploomber_like.kernels.processes import pid_alive
from ploomber_like.record import (
    Artifact,
    Blob,
    Environment,
    Record,
    RunError,
    SearchTrial,
    Status,
    new_created,
    new_uuid,
)

#: Columns of ``experiments`` after the anchor's four, with their SQL types.
EXTRA_COLUMNS: dict[str, str] = {
    "status": "TEXT",
    "duration": "REAL",
    "error_type": "TEXT",
    "error_message": "TEXT",
    "traceback": "TEXT",
    "error_group": "INTEGER",
    "error_source": "TEXT",
    # JSON array: which keys of ``parameters`` are inputs (the rest are captured values).
    "parameter_keys": "TEXT",
    # JSON object: the values the caller passed.
    "overrides": "TEXT",
    "group_durations": "TEXT",
    "source_path": "TEXT",
    "source_sha256": "TEXT",
    "environment": "TEXT",
    "stdout": "TEXT",
    "stderr": "TEXT",
    "fingerprint": "TEXT",
    # host:pid of the process writing the row: a later sweep spots orphaned ``running`` rows.
    "driver": "TEXT",
    # What a run leaves beyond its values (see the block "metrics and artifacts" below).
    "error_location": "TEXT",
    "workdir": "TEXT",
    "notebook": "TEXT",
    # The run's (or its sweep's) ``--name``, and a JSON array of tags (``tracker tag``).
    "name": "TEXT",
    "tags": "TEXT",

    # uuid of the run a rerun reproduces (ploomber_like.reproduction).
    "reproduces": "TEXT",

    # Searches (ploomber_like.search): the search a run is a trial of, its 0-based number, the
    # objective's value, and why the trial failed (NULL for a complete trial).
    "search": "TEXT",
    "trial": "INTEGER",
    "objective": "REAL",
    "trial_error": "TEXT",

    # Seconds a run waited for its kernel (started, forked, a warm template built), apart from
    # ``duration``, the run's own time.
    "kernel_wait": "REAL",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    uuid TEXT NOT NULL UNIQUE,
    created TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    parameters TEXT,
    comment TEXT
);
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    mimetype TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL,
    time REAL
);
CREATE INDEX IF NOT EXISTS metrics_uuid ON metrics (uuid, key, step);
CREATE TABLE IF NOT EXISTS artifacts (
    uuid TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    stored INTEGER NOT NULL,
    PRIMARY KEY (uuid, path)
);
"""

#: The anchor's columns: an ``experiments`` table without them is not a tracking database.
ANCHOR_COLUMNS = ("uuid", "created", "parameters", "comment")

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT = 60.0

#: What ``SQLiteTracker(":memory:")`` is given, as with ``sqlite3.connect``.
MEMORY = ":memory:"
# SQLite's memdb VFS: one database shared by every connection that names it in this process,
# freed when the last one closes (a plain ":memory:" would be a new database per connection).
_MEMORY_PREFIX = "file:/ploomber-like-memory-"


def new_memory_database() -> str:
    """The location of a new in-memory database, for :func:`connect`; it lives while at least
    one connection to it is open."""
    return f"{_MEMORY_PREFIX}{new_uuid()}?vfs=memdb"


def is_memory(path: str | os.PathLike[str]) -> bool:
    """True for a location made by :func:`new_memory_database`."""
    return str(path).startswith(_MEMORY_PREFIX)


def display_name(path: str | os.PathLike[str]) -> str:
    """How messages name a database: its path, or ``:memory:``."""
    return MEMORY if is_memory(path) else str(path)


def exists(path: str | os.PathLike[str]) -> bool:
    """True if the database at ``path`` exists (an in-memory one always does)."""
    return is_memory(path) or Path(path).exists()


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database at ``path``, raising :class:`DatabaseError` with one line on failure.

    Read-only connections refuse every write at the SQLite level, so a mistyped ``DELETE`` in a
    query cannot destroy results. A writable connection creates the file and schema if needed;
    an ``experiments`` table of another schema is refused before anything is changed.
    """
    if is_memory(path):
        return _connect_memory(str(path), readonly)
    path = Path(path)
    if readonly and not path.exists():
        raise DatabaseError(f"database not found: {path}")
    if path.is_dir():
        raise DatabaseError(f"database path is a directory: {path}")
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT
            )
        else:
            # Used by one thread at a time, but not always the one that opened it: from inside a
            # running event loop (Jupyter), sweeps run their loop in a worker thread.
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from None
    if not readonly:
        _prepare(conn, path)
    return conn


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A read-only connection, closed after use; a SQLite error while reading (a row whose
    ``parameters`` is not JSON...) becomes a one-line :class:`DatabaseError`."""
    conn = connect(path, readonly=True)
    try:
        yield conn
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read database {display_name(path)}: {exc}") from None
    finally:
        conn.close()


def run_query(path: str | os.PathLike[str], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL statement that may only read: the column names and the rows.

    Besides the read-only connection, an authorizer refuses what would still change something
    on disk (``ATTACH``, which also creates files, and ``VACUUM INTO``, which attaches its
    target) and every statement that writes, with a one-line :class:`QueryError`.
    """
    with reading(path) as conn:
        refused: list[str] = []
        conn.set_authorizer(functools.partial(_authorize_read, refused))
        try:
            cursor = conn.execute(sql)
            rows = cursor.fetchall()
        # sqlite3.Warning is what "You can only execute one statement at a time" raises.
        except (sqlite3.Error, sqlite3.Warning) as exc:
            if refused:
                message = f"{_refused_verb(sql, refused)} is refused: queries are read-only"
                raise QueryError(message, sql) from None
            raise QueryError(str(exc), sql) from None
        return [d[0] for d in cursor.description or ()], rows


#: Pragmas that take a table or index name and only describe it.
_DESCRIBING_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list",
})
#: Authorizer actions a query may never take, by name (read from sqlite3 at first use).
_REFUSED_ACTIONS = (
    "ATTACH", "DETACH", "INSERT", "DELETE", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "TRANSACTION", "SAVEPOINT", "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX",
    "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "CREATE_TRIGGER",
    "CREATE_VIEW", "CREATE_VTABLE", "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX",
    "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW",
    "DROP_VTABLE",
)


def _refused_verb(sql: str, refused: list[str]) -> str:
    """What to call a refused statement: its own first word when that is what writes
    (``VACUUM INTO`` shows to the authorizer as an ``ATTACH``), else the refused action."""
    words = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).split()
    verb = words[0].upper() if words else ""
    return verb if verb in _WRITING_VERBS else refused[0]


_WRITING_VERBS = frozenset({
    "VACUUM", "ATTACH", "DETACH", "CREATE", "DROP", "ALTER", "INSERT", "REPLACE", "UPDATE",
    "DELETE", "REINDEX", "ANALYZE", "BEGIN", "SAVEPOINT",
})


def _authorize_read(
    refused: list[str], action: int, arg1: str | None, arg2: str | None, *_: str | None
) -> int:
    name = _action_names().get(action)
    denied = (
        name in _REFUSED_ACTIONS
        # SQLite reports reading the schema as an update of sqlite_master: that one is fine.
        or (name == "UPDATE" and arg1 not in ("sqlite_master", "sqlite_temp_master"))
        # PRAGMA x = value sets something; a describing pragma's argument is a table name.
        or (name == "PRAGMA" and arg2 is not None and (arg1 or "").lower()
            not in _DESCRIBING_PRAGMAS)
    )
    if not denied:
        return sqlite3.SQLITE_OK
    what = f"PRAGMA {arg1}" if name == "PRAGMA" else str(name).replace("_", " ")
    refused.append(what)
    return sqlite3.SQLITE_DENY


@functools.cache
def _action_names() -> dict[int, str]:
    return {
        getattr(sqlite3, f"SQLITE_{name}"): name
        for name in (*_REFUSED_ACTIONS, "UPDATE", "PRAGMA")
        if hasattr(sqlite3, f"SQLITE_{name}")
    }


def _connect_memory(location: str, readonly: bool) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            location + ("&mode=ro" if readonly else ""), uri=True, timeout=BUSY_TIMEOUT,
            isolation_level=None, check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the in-memory database: {exc}") from None
    if not readonly:
        _prepare(conn, Path(MEMORY))
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # Checked first: even switching to WAL would change a file that is not ours.
        check_schema(conn, path)
        _retry_busy(lambda: _enable_wal(conn))
        _retry_busy(lambda: _migrate(conn))
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(f"cannot prepare database {path}: {exc}") from None
    except DatabaseError:
        conn.close()
        raise


def experiment_columns(conn: sqlite3.Connection) -> set[str]:
    """The column names of table ``experiments`` (empty if there is no such table)."""
    return {row[1] for row in conn.execute("PRAGMA table_info(experiments)")}


def check_schema(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> set[str]:
    """The columns of ``experiments`` (empty if there is no such table yet), or a
    :class:`DatabaseError` if the table lacks the anchor's columns."""
    columns = experiment_columns(conn)
    missing = [name for name in ANCHOR_COLUMNS if name not in columns]
    if columns and missing:
        raise DatabaseError(
            f"not a tracking database: table experiments in {path} has no column "
            f"{', '.join(missing)}"
        )
    return columns


def _enable_wal(conn: sqlite3.Connection) -> None:
    # WAL lets readers query while a sweep writes; the mode is stored in the file once set.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or add our columns to an anchor (sklearn-evaluation) database."""
    with _transaction(conn):
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        present = experiment_columns(conn)
        for name, sql_type in EXTRA_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE experiments ADD COLUMN {name} {sql_type}")
        conn.execute(
            "CREATE INDEX IF NOT EXISTS experiments_fingerprint "
            "ON experiments (fingerprint, status)"
        )


def _retry_busy(action) -> None:
    # Changing the journal mode does not wait on SQLite's busy handler, so two processes opening
    # a new database at once can see "database is locked": wait and try again instead.
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class RecordedTrial:
    """A search trial as stored: what a resumed search tells its sampler."""

    number: int
    status: Status
    #: The parameters the run was given (the trial's point and the search's fixed values).
    overrides: dict[str, Any]
    objective: float | None
    error: str | None


class Store:
    """The writing side of a tracking database. One transaction per record."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        self.driver = f"{socket.gethostname()}:{os.getpid()}"

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, record: Record) -> None:
        """Write the row of a run that is starting, with status ``running``."""
        self._write(record)

    def finish(self, record: Record) -> None:
        """Write a finished run: its blobs and its row, in one transaction."""
        self._write(record)

    def _write(self, record: Record) -> None:
        row = _row(record)
        row["driver"] = self.driver
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "uuid")
        blobs = dict(record.blobs)
        blobs[record.source_sha256] = Blob("text/x-python", record.source.encode())

        def transaction() -> None:
            with _transaction(self.conn):
                self._insert_blobs(blobs.values())
                self.conn.execute(
                    f"INSERT INTO experiments ({columns}) VALUES ({marks}) "
                    f"ON CONFLICT (uuid) DO UPDATE SET {updates}",
                    list(row.values()),
                )
                _write_leaves(self.conn, record)

        try:
            _retry_busy(transaction)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot write to database {self.path}: {exc}") from None

    def _insert_blobs(self, blobs: Iterable[Blob]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO blobs (sha256, mimetype, data) VALUES (?, ?, ?)",
            [(blob.sha256, blob.mimetype, blob.data) for blob in blobs],
        )

    # --- SQLiteTracker's writing API (manual logging): rows written value by value ----------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction around several calls below; a SQLite error is a one-line
        :class:`DatabaseError` and leaves the database as it was."""
        try:
            with _transaction(self.conn):
                yield
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot write to database {self.path}: {exc}") from None

    def stored_parameters(self, uuid: str) -> dict[str, Any] | None:
        """The ``parameters`` of run ``uuid`` (``{}`` if empty), or None if there is no such run."""
        row = self.conn.execute(
            "SELECT parameters FROM experiments WHERE uuid = ?", (uuid,)
        ).fetchone()
        if row is None:
            return None
        stored = load_json(row[0])
        return stored if isinstance(stored, dict) else {}

    def insert_parameters(
        self, uuid: str, values: Mapping[str, Any] | None, blobs: Iterable[Blob] = ()
    ) -> None:
        """Add a run logged by hand (status ``ok``, no inputs) holding ``values``; ``None``
        leaves ``parameters`` NULL: an empty run, as sklearn-evaluation's ``new()`` makes."""
        self._insert_blobs(blobs)
        self.conn.execute(
            "INSERT INTO experiments (uuid, created, parameters, status, parameter_keys, driver) "
            "VALUES (?, ?, ?, ?, '[]', ?)",
            (uuid, new_created(), None if values is None else to_json(values), Status.OK,
             self.driver),
        )

    def is_empty(self, uuid: str) -> bool:
        """True when run ``uuid`` has no ``parameters`` at all (NULL, not ``{}``)."""
        row = self.conn.execute(
            "SELECT parameters IS NULL FROM experiments WHERE uuid = ?", (uuid,)
        ).fetchone()
        return bool(row and row[0])

    def replace_parameters(
        self, uuid: str, values: Mapping[str, Any], blobs: Iterable[Blob] = ()
    ) -> None:
        """Store ``values`` as the whole ``parameters`` of run ``uuid``."""
        self._insert_blobs(blobs)
        self.conn.execute(
            "UPDATE experiments SET parameters = ? WHERE uuid = ?", (to_json(values), uuid)
        )

    def set_comment(self, uuid: str, text: str | None) -> None:
        """Set the ``comment`` column of run ``uuid``."""
        self.conn.execute("UPDATE experiments SET comment = ? WHERE uuid = ?", (text, uuid))

    def ok_fingerprints(self, fingerprints: Iterable[str]) -> set[str]:
        """The subset of ``fingerprints`` already recorded with status ``ok``."""
        wanted = list(dict.fromkeys(fingerprints))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.conn.execute(
                f"SELECT DISTINCT fingerprint FROM experiments "
                f"WHERE status = ? AND fingerprint IN ({marks})",
                [Status.OK, *chunk],
            )
            found.update(row[0] for row in rows)
        return found

    def search_trials(self, search: str) -> list[RecordedTrial]:
        """The trials of ``search`` recorded so far, by trial number."""
        rows = self.conn.execute(
            "SELECT trial, status, overrides, objective, trial_error FROM experiments "
            "WHERE search = ? ORDER BY trial",
            (search,),
        ).fetchall()
        return [
            RecordedTrial(number, Status(status), json.loads(overrides or "{}"), objective, error)
            for number, status, overrides, objective, error in rows
        ]

    def best_trial(self, search: str, maximize: bool) -> Record | None:
        """The record of the best complete trial of ``search`` (objective set, run ``ok``)."""
        order = "DESC" if maximize else "ASC"
        row = self.conn.execute(
            f"SELECT uuid FROM experiments WHERE search = ? AND status = ? "
            f"AND objective IS NOT NULL ORDER BY objective {order}, trial LIMIT 1",
            (search, Status.OK),
        ).fetchone()
        return None if row is None else self.load_record(row[0])

    def load_record(self, uuid: str) -> Record:
        """The stored run ``uuid`` as a :class:`Record` (rich values stay blob references)."""
        ours = (
            "overrides", "source_sha256", "group_durations", "stdout", "stderr", "reproduces",
            "fingerprint", "search", "trial", "objective", "trial_error",
        )
        row = self.conn.execute(
            f"SELECT {select_list(RUN_COLUMNS)}, {', '.join(ours)} FROM experiments "
            "WHERE uuid = ?",
            (uuid,),
        ).fetchone()
        run = decode_run(row[: len(RUN_COLUMNS)])
        extra = dict(zip(ours, row[len(RUN_COLUMNS) :], strict=True))
        source = load_blob(self.conn, extra["source_sha256"]) if extra["source_sha256"] else None
        trial = None
        if extra["search"] is not None:
            trial = SearchTrial(
                extra["search"], extra["trial"], extra["objective"], extra["trial_error"]
            )
        return Record(
            uuid=run.uuid, created=run.created or "", path=run.source_path or "",
            source=source.data.decode() if source else "",
            parameters=run.parameters, overrides=load_json(extra["overrides"]) or {},
            status=Status(run.status), values=run.values, error=run.error,
            duration=run.duration, group_durations=load_json(extra["group_durations"]) or [],
            stdout=extra["stdout"] or "", stderr=extra["stderr"] or "",
            environment=run.environment, comment=run.comment_text, reproduces=extra["reproduces"],
            fingerprint=extra["fingerprint"], trial=trial,
        )

    def mark_orphans_interrupted(self) -> int:
        """Close ``running`` rows left by a driver on this host that no longer exists."""
        host = socket.gethostname()
        rows = self.conn.execute(
            "SELECT uuid, driver FROM experiments WHERE status = ? AND driver LIKE ?",
            (Status.RUNNING, f"{host}:%"),
        ).fetchall()
        orphans = [uuid for uuid, driver in rows if not pid_alive(int(driver.rsplit(":", 1)[1]))]
        if orphans:
            with _transaction(self.conn):
                self.conn.executemany(
                    "UPDATE experiments SET status = ?, error_type = 'Interrupted', "
                    "error_message = 'the tracking process ended before the run finished' "
                    "WHERE uuid = ? AND status = ?",
                    [(Status.INTERRUPTED, uuid, Status.RUNNING) for uuid in orphans],
                )
        return len(orphans)


    def set_tags(self, tags_by_uuid: dict[str, list[str]]) -> None:
        """Replace the tags of each run (one transaction); an empty list clears them."""

        def transaction() -> None:
            with _transaction(self.conn):
                self.conn.executemany(
                    "UPDATE experiments SET tags = ? WHERE uuid = ?",
                    [(to_json(tags) if tags else None, uuid)
                     for uuid, tags in tags_by_uuid.items()],
                )

        self._retrying(transaction)

    def delete_runs(self, uuids: Iterable[str]) -> Deletion:
        """Delete these runs, every row keyed by their uuid in other tables (metrics, artifacts...)
        and the blobs no remaining row references, in one transaction."""
        wanted = list(dict.fromkeys(uuids))
        deletion = Deletion(runs=[], blobs=0)

        def transaction() -> None:
            with _transaction(self.conn):
                deletion.runs = []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ", ".join("?" for _ in chunk)
                    deletion.runs += [
                        row[0] for row in self.conn.execute(
                            f"SELECT uuid FROM experiments WHERE uuid IN ({marks})", chunk
                        )
                    ]
                    for table in _tables_keyed_by_run(self.conn):
                        self.conn.execute(f'DELETE FROM "{table}" WHERE uuid IN ({marks})', chunk)
                deletion.blobs = delete_orphan_blobs(self.conn)

        self._retrying(transaction)
        return deletion

    def _retrying(self, transaction: Callable[[], None]) -> None:
        try:
            _retry_busy(transaction)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot write to database {self.path}: {exc}") from None


@dataclass
class Deletion:
    """What :meth:`Store.delete_runs` removed: the runs' uuids and how many blobs."""

    runs: list[str]
    blobs: int


#: Queries selecting the sha256 of every blob some row still needs, by the table holding the
#: reference: a table that stores blob hashes adds its query here, and the orphan sweep of
#: :func:`delete_orphan_blobs` keeps its blobs. Tables missing from a database are skipped.
BLOB_REFERENCES: dict[str, str] = {
    # the source texts, the executed notebooks, and plots referenced from parameters
    "experiments": (
        "SELECT source_sha256 FROM experiments WHERE source_sha256 IS NOT NULL "
        "UNION SELECT notebook FROM experiments WHERE notebook IS NOT NULL "
        "UNION SELECT json_extract(t.value, '$.\"$blob\"') "
        "FROM experiments AS e, json_tree(e.parameters) AS t "
        "WHERE json_valid(e.parameters) AND t.type = 'object' "
        "AND json_extract(t.value, '$.\"$blob\"') IS NOT NULL"
    ),
    # files the runs wrote
    "artifacts": "SELECT sha256 FROM artifacts",
}


def delete_orphan_blobs(conn: sqlite3.Connection) -> int:
    """Delete the blobs no row references (see :data:`BLOB_REFERENCES`); returns how many.

    Runs inside the caller's transaction.
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    kept = " UNION ".join(sql for table, sql in BLOB_REFERENCES.items() if table in tables)
    cursor = conn.execute(f"DELETE FROM blobs WHERE sha256 NOT IN ({kept})")
    return cursor.rowcount


def _tables_keyed_by_run(conn: sqlite3.Connection) -> list[str]:
    """``experiments`` and every other table with a ``uuid`` column (a run's metrics, artifacts,
    notebook): deleting a run deletes its rows there too."""
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [
        name for name in names
        if any(column[1] == "uuid" for column in conn.execute(f'PRAGMA table_info("{name}")'))
    ]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # BEGIN IMMEDIATE takes the write lock at once, so a busy database fails here, before any
    # work, rather than at the first write of a transaction that has read meanwhile.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


#: An image stored inline as HTML, as sklearn-evaluation (``<img src="data:image/png;base64,..."
#: ></img>``, base64 with line breaks) and ploomber-engine (``...;base64, ..."/>``) store plots.
_INLINE_IMAGE = re.compile(
    r'\s*<img\s+src=(["\'])data:(image/(?:png|jpeg|gif|svg\+xml));base64,([A-Za-z0-9+/=\s]+)\1'
    r"\s*/?>\s*(?:</img>)?\s*",
)


def inline_image(value: Any) -> Blob | None:
    """The image a peer tracker stored inline in ``value`` (an ``<img>`` tag), or None."""
    if not isinstance(value, str) or not value.lstrip().startswith("<img"):
        return None
    found = _INLINE_IMAGE.fullmatch(value)
    if found is None:
        return None
    try:
        data = base64.b64decode(re.sub(r"\s", "", found.group(3)), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Blob(found.group(2), data) if data else None


@dataclass
class InlineMigration:
    """What :func:`move_inline_images` did."""

    runs: int
    runs_changed: int
    images_moved: int


def move_inline_images(path: str | os.PathLike[str]) -> InlineMigration:
    """Move images stored inline in ``parameters`` (by sklearn-evaluation or ploomber-engine)
    into ``blobs``, leaving a reference in their place; adds our columns to the table too.

    One transaction: the database ends either fully migrated or untouched, with every row.
    """
    path = Path(path)
    # Read-only first: a mistyped path must not create an empty database.
    check = connect(path, readonly=True)
    try:
        if not check.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'"
        ).fetchone():
            raise DatabaseError(f"not a tracking database (no experiments table): {path}")
    finally:
        check.close()
    conn = connect(path)
    try:
        def transaction() -> InlineMigration:
            with _transaction(conn):
                return _move_inline_images(conn)

        outcome: list[InlineMigration] = []
        _retry_busy(lambda: outcome.append(transaction()))
        return outcome[0]
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot migrate database {path}: {exc}") from None
    finally:
        conn.close()


def _move_inline_images(conn: sqlite3.Connection) -> InlineMigration:
    rows = conn.execute("SELECT rowid, parameters FROM experiments").fetchall()
    changed = moved = 0
    for rowid, text in rows:
        try:
            parameters = json.loads(text) if text else None
        except ValueError:
            continue  # not JSON: nothing of ours to move, and the row stays as it is
        if not isinstance(parameters, dict):
            continue
        blobs = []
        for key, value in parameters.items():
            blob = inline_image(value)
            if blob is not None:
                blobs.append(blob)
                parameters[key] = blob.reference()
        if not blobs:
            continue
        conn.executemany(
            "INSERT OR IGNORE INTO blobs (sha256, mimetype, data) VALUES (?, ?, ?)",
            [(blob.sha256, blob.mimetype, blob.data) for blob in blobs],
        )
        conn.execute(
            "UPDATE experiments SET parameters = ? WHERE rowid = ?", (to_json(parameters), rowid)
        )
        changed += 1
        moved += len(blobs)
    return InlineMigration(len(rows), changed, moved)


# --- metrics and artifacts: what a run leaves beyond its values ------------------------------


def _write_leaves(conn: sqlite3.Connection, record: Record) -> None:
    """Replace the run's series and file list, inside the transaction writing its row."""
    conn.execute("DELETE FROM metrics WHERE uuid = ?", (record.uuid,))
    conn.executemany(
        "INSERT INTO metrics (uuid, key, step, value, time) VALUES (?, ?, ?, ?, ?)",
        [
            (record.uuid, p.key, p.step, p.value if math.isfinite(p.value) else None, p.time)
            for p in record.metrics
        ],
    )
    conn.execute("DELETE FROM artifacts WHERE uuid = ?", (record.uuid,))
    conn.executemany(
        "INSERT OR REPLACE INTO artifacts (uuid, path, size, sha256, stored) "
        "VALUES (?, ?, ?, ?, ?)",
        [(record.uuid, a.path, a.size, a.sha256, int(a.stored)) for a in record.artifacts],
    )


def load_metrics(conn: sqlite3.Connection, uuids: list[str]) -> list[tuple[Any, ...]]:
    """Rows ``(uuid, key, step, value)`` of the series of ``uuids``, in order."""
    rows: list[tuple[Any, ...]] = []
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'metrics'").fetchone():
        return rows  # a database made before series were kept
    for start in range(0, len(uuids), 500):
        chunk = uuids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows += conn.execute(
            f"SELECT uuid, key, step, value FROM metrics WHERE uuid IN ({marks}) "
            "ORDER BY uuid, key, step, rowid",
            chunk,
        ).fetchall()
    return rows


def load_output(conn: sqlite3.Connection, uuid: str) -> tuple[str, str]:
    """The stdout and stderr kept for run ``uuid`` (empty for an anchor database)."""
    columns = experiment_columns(conn)
    if not {"stdout", "stderr"} <= columns:
        return "", ""
    row = conn.execute("SELECT stdout, stderr FROM experiments WHERE uuid = ?", (uuid,)).fetchone()
    return (row[0] or "", row[1] or "") if row else ("", "")


def load_artifacts(conn: sqlite3.Connection, uuid: str) -> list[Artifact]:
    """The files run ``uuid`` left, by path (none for a database made before they were kept)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'artifacts'").fetchone():
        return []
    return [
        Artifact(path, size, sha256, bool(stored))
        for path, size, sha256, stored in conn.execute(
            "SELECT path, size, sha256, stored FROM artifacts WHERE uuid = ? ORDER BY path",
            (uuid,),
        )
    ]


def load_blob(conn: sqlite3.Connection, sha256: str) -> Blob | None:
    """The blob stored under ``sha256``, or None."""
    row = conn.execute("SELECT mimetype, data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
    return Blob(row[0], bytes(row[1])) if row else None


def to_json(value: Any) -> str:
    """JSON text SQLite can parse: non-finite floats (NaN, infinities) become null."""
    return json.dumps(_json_safe(value), ensure_ascii=False)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        # SQLite before 3.42 rejects NaN/Infinity tokens and would fail json_extract on the row.
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _row(record: Record) -> dict[str, Any]:
    error = record.error
    return {
        "uuid": record.uuid,
        "created": record.created,
        "parameters": to_json(record.merged()),
        "comment": record.comment,
        "status": record.status,
        "duration": record.duration,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "traceback": error.traceback if error else None,
        "error_group": error.group if error else None,
        "error_source": error.group_source if error else None,
        "parameter_keys": to_json(list(record.parameters)),
        "overrides": to_json(record.overrides),
        "group_durations": to_json(record.group_durations),
        "source_path": record.path,
        "source_sha256": record.source_sha256,
        "environment": to_json(record.environment_dict()),
        "stdout": record.stdout,
        "stderr": record.stderr,
        "fingerprint": record.fingerprint,
        "error_location": error.location if error else None,
        "workdir": record.workdir,
        "notebook": record.notebook,
        "name": record.name,
        "reproduces": record.reproduces,
        "search": record.trial.search if record.trial else None,
        "trial": record.trial.number if record.trial else None,
        "objective": record.trial.objective if record.trial else None,
        "trial_error": record.trial.error if record.trial else None,
        "kernel_wait": record.kernel_wait,
    }


# --- reading rows back: the inverse of _row --------------------------------------------------

#: Columns a stored run is read from; those an older schema lacks (databases made by
#: sklearn-evaluation have only the anchor's four) are selected as NULL.
RUN_COLUMNS = (
    "uuid", "created", "parameters", "comment", "status", "duration", "error_type",
    "error_message", "traceback", "error_group", "error_source", "parameter_keys",
    "environment", "source_path", "error_location", "name", "tags",
)


@dataclass
class StoredRun:
    """A row of ``experiments`` decoded; rich values are still blob references."""

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
    #: The ``comment`` column (``comment`` itself is the method of a run view that sets it, as
    #: in sklearn-evaluation).
    comment_text: str | None
    name: str | None = None
    tags: list[str] = field(default_factory=list)


def select_list(present: Iterable[str], columns: Sequence[str] = RUN_COLUMNS) -> str:
    """``columns`` for a SELECT from a table with the ``present`` ones, NULL for the others."""
    present = set(present)
    return ", ".join(c if c in present else f"NULL AS {c}" for c in columns)


def decode_run(row: Sequence[Any]) -> StoredRun:
    """A row selected with :func:`select_list` (default columns) as a :class:`StoredRun`."""
    data = dict(zip(RUN_COLUMNS, row, strict=True))
    merged = load_json(data["parameters"]) or {}
    if not isinstance(merged, dict):
        merged = {"parameters": merged}
    parameter_keys = load_json(data["parameter_keys"]) or []
    if not isinstance(parameter_keys, list):
        parameter_keys = []
    error = None
    if data["error_type"] is not None:
        error = RunError(
            type=str(data["error_type"]),
            message=str(data["error_message"] or ""),
            traceback=str(data["traceback"] or ""),
            group=data["error_group"] if isinstance(data["error_group"], int) else None,
            group_source=data["error_source"],
            location=data["error_location"],
        )
    duration = data["duration"]
    return StoredRun(
        # Rows written by other tools may hold numbers where we write text.
        uuid=str(data["uuid"]),
        created=None if data["created"] is None else str(data["created"]),
        status=None if data["status"] is None else str(data["status"]),
        duration=float(duration) if isinstance(duration, int | float) else None,
        parameters={k: merged[k] for k in parameter_keys if k in merged},
        values={k: v for k, v in merged.items() if k not in parameter_keys},
        error=error,
        environment=_decode_environment(load_json(data["environment"])),
        source_path=data["source_path"],
        comment_text=data["comment"],
        name=None if data["name"] is None else str(data["name"]),
        tags=_decode_tags(load_json(data["tags"])),
    )


def _decode_tags(data: Any) -> list[str]:
    # Written by us as a JSON array of text; anything else (another tool's) means no tags.
    return [str(tag) for tag in data] if isinstance(data, list) else []


def _decode_environment(data: Any) -> Environment | None:
    if not isinstance(data, dict):
        return None
    known = {f.name for f in dataclasses.fields(Environment)}
    try:
        return Environment(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        # Written by another version with required fields we lack: not worth failing a read.
        return None


@dataclass
class StoredSource:
    """What rerunning a run needs: its source text, path and overrides, and what it recorded."""

    source: str
    source_path: str
    overrides: dict[str, Any]
    #: The ``parameters`` column: parameters and values, outputs as blob references.
    values: dict[str, Any]


def read_source(path: str | os.PathLike[str], uuid: str) -> StoredSource:
    """The stored source of run ``uuid`` with its overrides and values.

    Raises a :class:`~ploomber_like.errors.TrackerError` for a run without a stored source (a
    database not written by a tracked run, or a run logged by hand) and a
    :class:`DatabaseError` for one that cannot be decoded.
    """
    with reading(path) as conn:
        columns = experiment_columns(conn)
        if not {"source_sha256", "source_path", "overrides"} <= columns:
            raise TrackerError(
                f"run {uuid} has no stored source (the database was not written by a tracked "
                "run): nothing to rerun"
            )
        source_sha256, source_path, overrides, parameters = conn.execute(
            "SELECT source_sha256, source_path, overrides, parameters FROM experiments "
            "WHERE uuid = ?", (uuid,),
        ).fetchone()
        blob = load_blob(conn, source_sha256) if source_sha256 else None
    if not source_path or blob is None or not blob.data:
        raise TrackerError(
            f"run {uuid} has no stored source (logged by hand or by another tracker): "
            "nothing to rerun"
        )
    try:
        return StoredSource(
            blob.data.decode("utf-8"), source_path, json.loads(overrides or "{}"),
            json.loads(parameters or "{}"),
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatabaseError(f"run {uuid} has an unreadable stored source: {exc}") from None


def load_json(text: Any) -> Any:
    """A JSON column decoded; text that is not JSON (or a number) comes back as it is."""
    if not isinstance(text, str | bytes):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
