"""Bringing a database to the current schema, one named step per version.

The version is SQLite's ``PRAGMA user_version``: 0 for a database made by sklearn-evaluation,
ploomber-engine or a version of ours from before versions were kept; after migration
:data:`SCHEMA_VERSION`. Opening an up-to-date database reads that one pragma and changes
nothing. A new step is appended to :data:`MIGRATIONS`, never inserted: a database records how
many of them it has had.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ploomber_like.record import Blob
from ploomber_like.store.indexes import build_read_indexes
from ploomber_like.store.schema import create_tables_and_columns, to_json


@dataclass
class InlineMigration:
    """What :func:`move_inline_images_in` did."""

    runs: int
    runs_changed: int
    images_moved: int


def move_inline_images_in(conn: sqlite3.Connection) -> InlineMigration:
    """Move images stored inline in ``parameters`` (by sklearn-evaluation or ploomber-engine)
    into ``blobs``, leaving a reference in their place; inside the caller's transaction."""
    runs = conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
    # Only rows whose text holds an <img> tag are parsed: a million of ours have none.
    rows = conn.execute(
        "SELECT rowid, parameters FROM experiments WHERE instr(parameters, 'img') > 0"
    )
    changed = moved = 0
    for rowid, text in rows.fetchall():
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
    return InlineMigration(runs, changed, moved)


@dataclass(frozen=True)
class Migration:
    """One step from a schema version to the next; ``apply`` runs inside a write transaction."""

    name: str
    apply: Callable[[sqlite3.Connection], Any]


#: The name of the step whose outcome ``tracker migrate`` reports.
MOVE_INLINE_IMAGES = "move inline images"

#: Every step, in order: a database at version ``n`` has had the first ``n``.
MIGRATIONS: tuple[Migration, ...] = (
    # The tables, and our columns on a peer's (or an older version's) ``experiments``.
    Migration("create tables and columns", create_tables_and_columns),
    # Peers store plots inline as base64 <img> tags, which every json_extract would parse.
    Migration(MOVE_INLINE_IMAGES, move_inline_images_in),
    # Adds the columns created since (kernel_wait): the step is idempotent, so it is reused.
    Migration("add kernel_wait", create_tables_and_columns),
    # The table of what each run read (ploomber_like.inputs); the same idempotent step.
    Migration("add inputs", create_tables_and_columns),
    # Pruned runs' step, replicates' index and group: the same idempotent step again.
    Migration("add pruned_step, replicate, replicate_group", create_tables_and_columns),
    # The options a run recorded with, so a rerun records the same way.
    Migration("add recording_options", create_tables_and_columns),
    # Keys, blob uses and expression indexes, so that reads need not scan every run.
    Migration("index shown values", build_read_indexes),
)

#: The ``user_version`` of a database with every migration applied.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``user_version``: how many of :data:`MIGRATIONS` it has had."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> dict[str, Any]:
    """Apply the steps the database lacks, inside the caller's write transaction; what each
    step returned, by name (empty when another process migrated it first)."""
    version = schema_version(conn)
    done = {migration.name: migration.apply(conn) for migration in MIGRATIONS[version:]}
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return done


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
