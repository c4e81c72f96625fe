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
import json
import math
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ploomber_like.errors import DatabaseError
from ploomber_like.record import Blob, Environment, Record, RunError, SearchTrial, Status

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

    # uuid of the run a rerun reproduces (ploomber_like.reproduction).
    "reproduces": "TEXT",

    # Searches (ploomber_like.search): the search a run is a trial of, its 0-based number, the
    # objective's value, and why the trial failed (NULL for a complete trial).
    "search": "TEXT",
    "trial": "INTEGER",
    "objective": "REAL",
    "trial_error": "TEXT",
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
"""

#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT = 60.0


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database at ``path``, raising :class:`DatabaseError` with one line on failure.

    Read-only connections refuse every write at the SQLite level, so a mistyped ``DELETE`` in a
    query cannot destroy results. A writable connection creates the file and schema if needed.
    """
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


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    try:
        _retry_busy(lambda: _enable_wal(conn))
        _retry_busy(lambda: _migrate(conn))
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(f"cannot prepare database {path}: {exc}") from None


def _enable_wal(conn: sqlite3.Connection) -> None:
    # WAL lets readers query while a sweep writes; the mode is stored in the file once set.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or add our columns to an anchor (sklearn-evaluation) database."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        present = {row[1] for row in conn.execute("PRAGMA table_info(experiments)")}
        for name, sql_type in EXTRA_COLUMNS.items():
            if name not in present:
                conn.execute(f"ALTER TABLE experiments ADD COLUMN {name} {sql_type}")
        conn.execute(
            "CREATE INDEX IF NOT EXISTS experiments_fingerprint "
            "ON experiments (fingerprint, status)"
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO blobs (sha256, mimetype, data) VALUES (?, ?, ?)",
                    [(sha, blob.mimetype, blob.data) for sha, blob in blobs.items()],
                )
                self.conn.execute(
                    f"INSERT INTO experiments ({columns}) VALUES ({marks}) "
                    f"ON CONFLICT (uuid) DO UPDATE SET {updates}",
                    list(row.values()),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

        try:
            _retry_busy(transaction)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot write to database {self.path}: {exc}") from None

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
        self.conn.row_factory = sqlite3.Row
        try:
            row = self.conn.execute("SELECT * FROM experiments WHERE uuid = ?", (uuid,)).fetchone()
        finally:
            self.conn.row_factory = None
        merged = json.loads(row["parameters"] or "{}")
        names = json.loads(row["parameter_keys"] or "[]")
        source = load_blob(self.conn, row["source_sha256"]) if row["source_sha256"] else None
        environment = json.loads(row["environment"] or "null")
        known = {f.name for f in dataclasses.fields(Environment)}
        error = None
        if row["error_type"] is not None:
            error = RunError(row["error_type"], row["error_message"] or "",
                             row["traceback"] or "", row["error_group"], row["error_source"])
        trial = None
        if row["search"] is not None:
            trial = SearchTrial(row["search"], row["trial"], row["objective"], row["trial_error"])
        return Record(
            uuid=row["uuid"], created=row["created"], path=row["source_path"] or "",
            source=source.data.decode() if source else "",
            parameters={k: merged[k] for k in names if k in merged},
            overrides=json.loads(row["overrides"] or "{}"),
            status=Status(row["status"]),
            values={k: v for k, v in merged.items() if k not in names},
            error=error, duration=row["duration"],
            group_durations=json.loads(row["group_durations"] or "[]"),
            stdout=row["stdout"] or "", stderr=row["stderr"] or "",
            environment=Environment(**{k: v for k, v in environment.items() if k in known})
            if environment else None,
            comment=row["comment"], reproduces=row["reproduces"],
            fingerprint=row["fingerprint"], trial=trial,
        )

    def mark_orphans_interrupted(self) -> int:
        """Close ``running`` rows left by a driver on this host that no longer exists."""
        host = socket.gethostname()
        rows = self.conn.execute(
            "SELECT uuid, driver FROM experiments WHERE status = ? AND driver LIKE ?",
            (Status.RUNNING, f"{host}:%"),
        ).fetchall()
        orphans = [uuid for uuid, driver in rows if not _pid_alive(int(driver.rsplit(":", 1)[1]))]
        if orphans:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "UPDATE experiments SET status = ?, error_type = 'Interrupted', "
                "error_message = 'the tracking process ended before the run finished' "
                "WHERE uuid = ? AND status = ?",
                [(Status.INTERRUPTED, uuid, Status.RUNNING) for uuid in orphans],
            )
            self.conn.execute("COMMIT")
        return len(orphans)


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
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = _move_inline_images(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result

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
        "reproduces": record.reproduces,
        "search": record.trial.search if record.trial else None,
        "trial": record.trial.number if record.trial else None,
        "objective": record.trial.objective if record.trial else None,
        "trial_error": record.trial.error if record.trial else None,
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
