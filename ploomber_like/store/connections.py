"""Opening tracking databases: files, read-only ones, in-memory ones, and write transactions.

A writable connection brings the database to the current schema when it opens (see
:mod:`~ploomber_like.store.migrations`); a read-only one changes nothing, and reads a database
on read-only storage too.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ploomber_like.errors import DatabaseError
from ploomber_like.record import new_uuid
from ploomber_like.store import indexes, migrations
from ploomber_like.store.schema import check_schema

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


def connect(
    path: str | os.PathLike[str], *, readonly: bool = False, migrate: bool = True
) -> sqlite3.Connection:
    """Open the database at ``path``, raising :class:`DatabaseError` with one line on failure.

    Read-only connections refuse every write at the SQLite level, so a mistyped ``DELETE`` in a
    query cannot destroy results. A writable connection creates the file and schema if needed
    (``migrate=False`` leaves that to the caller's :func:`upgrade`); an ``experiments`` table of
    another schema is refused before anything is changed, and so is a database that cannot be
    written (read-only storage, no permission).
    """
    if is_memory(path):
        return _connect_memory(str(path), readonly, migrate)
    path = Path(path)
    if readonly and not path.exists():
        raise DatabaseError(f"database not found: {path}")
    if path.is_dir():
        raise DatabaseError(f"database path is a directory: {path}")
    if not readonly:
        _check_writable(path)
    try:
        if readonly:
            conn = _connect_read_only(path)
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
        _prepare(conn, path, migrate)
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


@contextmanager
def writing(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> Iterator[None]:
    """One write transaction on ``conn``: committed at the end, rolled back on any exception.

    It waits for another process's transaction (retrying what SQLite's busy handler does not
    wait for), and a SQLite error is a one-line :class:`DatabaseError` naming ``path``.
    """
    try:
        # BEGIN IMMEDIATE takes the write lock at once, so a busy database fails here, before
        # any work, rather than at the first write of a transaction that has read meanwhile.
        retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield
            retry_busy(lambda: conn.execute("COMMIT"))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot write to database {display_name(path)}: {exc}") from None


def upgrade(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Bring the database of writable ``conn`` to the current schema; what each migration it
    applied returned, by name (empty when it was up to date: then one pragma read is all)."""
    if migrations.schema_version(conn) >= migrations.SCHEMA_VERSION:
        return {}
    # Checked first: even switching to WAL would change a file that is not ours.
    check_schema(conn, display_name(path))
    retry_busy(lambda: _enable_wal(conn))
    with writing(conn, path):
        return migrations.migrate(conn)


def in_chunks(values: Sequence[Any], size: int = 500) -> Iterator[tuple[str, Sequence[Any]]]:
    """``values`` in slices short enough for one ``IN (...)`` list (SQLite limits how many
    parameters a statement binds), each with its ``?, ?, ...`` marks."""
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        yield ", ".join("?" for _ in chunk), chunk


def retry_busy(action: Callable[[], object]) -> None:
    """Run ``action``, again while SQLite says the database is locked, up to the busy timeout."""
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


def _connect_read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        if not _on_read_only_storage(path):
            raise
    # Reading a WAL database needs its -shm file, which SQLite cannot create on read-only
    # storage. Nothing can write there either, so the file may be read as immutable: SQLite
    # then takes no locks and needs no -shm (https://www.sqlite.org/wal.html#readonly).
    conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=BUSY_TIMEOUT)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def _check_writable(path: Path) -> None:
    # A writer needs the file, and its folder for the -wal and -shm files SQLite creates there;
    # without this check a read-only database opens and fails at the first write, or later.
    folder = path.parent
    for target in (path, folder) if path.exists() else (folder,):
        if not os.access(target, os.W_OK):
            why = "it is on read-only storage" if _on_read_only_storage(target) else (
                f"no permission to write {target}"
            )
            raise DatabaseError(f"cannot write to database {path}: {why}")


def _on_read_only_storage(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _connect_memory(location: str, readonly: bool, migrate: bool) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            location + ("&mode=ro" if readonly else ""), uri=True, timeout=BUSY_TIMEOUT,
            isolation_level=None, check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the in-memory database: {exc}") from None
    if not readonly:
        _prepare(conn, Path(MEMORY), migrate)
    return conn


def _prepare(conn: sqlite3.Connection, path: Path, migrate: bool) -> None:
    try:
        # Not kept in the file, unlike the journal mode: set on every writing connection.
        conn.execute("PRAGMA synchronous=NORMAL")
        if migrate:
            upgrade(conn, path)
            # A peer, or SQL of the user's, may have dropped them or written keys unindexed.
            indexes.ensure_read_indexes(conn, lambda: writing(conn, path))
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(f"cannot prepare database {path}: {exc}") from None
    except DatabaseError:
        conn.close()
        raise


def _enable_wal(conn: sqlite3.Connection) -> None:
    # WAL lets readers query while a sweep writes; the mode is stored in the file once set.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
