"""The tables of a tracking database, and how values are encoded in their JSON columns.

The table ``experiments`` keeps the columns of sklearn-evaluation's ``SQLiteTracker``
(``uuid``, ``created``, ``parameters``, ``comment``) so their SQL runs unchanged; the columns
after them are ours. Rich outputs and source texts live once in ``blobs``, keyed by sha256, and
``parameters`` holds a small reference to them (see :class:`ploomber_like.record.Blob`).

A database is brought to this schema by :mod:`~ploomber_like.store.migrations`: a column added
to :data:`EXTRA_COLUMNS` needs a migration that adds it to databases already at the current
version.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from typing import Any

from ploomber_like.errors import DatabaseError

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
    # What a run leaves beyond its values (the tables ``metrics`` and ``artifacts`` hold more).
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
    # Pruning and replicates (ploomber_like.pruning, ploomber_like.replicates): the step a
    # pruned run was stopped at, a run's replicate index and its group.
    "pruned_step": "INTEGER",
    "replicate": "INTEGER",
    "replicate_group": "TEXT",
    # JSON object: the options that decide what the run recorded (output scalars, notebook,
    # artifact limit; see record.RECORDED_OPTIONS), so a rerun records the same way.
    "recording_options": "TEXT",
}

TABLES = """
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
CREATE TABLE IF NOT EXISTS inputs (
    uuid TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    PRIMARY KEY (uuid, path)
);
"""

#: The anchor's columns: an ``experiments`` table without them is not a tracking database.
ANCHOR_COLUMNS = ("uuid", "created", "parameters", "comment")


def table_names(conn: sqlite3.Connection) -> set[str]:
    """The tables the database has: the one way to ask whether a table exists (an older or a
    peer's database lacks some of ours)."""
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table`` (empty if there is no such table): the one way to ask
    whether a column exists."""
    quoted = table.replace('"', '""')
    return {row[1] for row in conn.execute(f'PRAGMA table_info("{quoted}")')}


def experiment_columns(conn: sqlite3.Connection) -> set[str]:
    """The column names of table ``experiments`` (empty if there is no such table)."""
    return table_columns(conn, "experiments")


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


def create_tables_and_columns(conn: sqlite3.Connection) -> None:
    """Create the tables, or add our columns to an anchor (sklearn-evaluation) database."""
    for statement in TABLES.split(";"):
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


def load_json(text: Any) -> Any:
    """A JSON column decoded; text that is not JSON (or a number) comes back as it is."""
    if not isinstance(text, str | bytes):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
