"""Every write to a tracking database: runs as they start and finish, runs logged by hand,
tags, deletions, moving a peer's inline images out of line, and indexing keys left unindexed."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ploomber_like.errors import DatabaseError
from ploomber_like.record import Blob, Input, Record, Status, new_created
from ploomber_like.store.connections import connect, in_chunks, reading, upgrade, writing
from ploomber_like.store.indexes import index_numeric_keys, last_rowid
from ploomber_like.store.migrations import (
    MOVE_INLINE_IMAGES,
    InlineMigration,
    move_inline_images_in,
)
from ploomber_like.store.reads import RUN_COLUMNS, decode_run, select_list
from ploomber_like.store.run_detail import load_inputs, read_run_detail
from ploomber_like.store.schema import load_json, table_columns, table_names, to_json


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
        row = encode_run(record)
        row["driver"] = self.driver
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "uuid")
        blobs = dict(record.blobs)
        blobs[record.source_sha256] = Blob("text/x-python", record.source.encode())

        with self.transaction():
            self._insert_blobs(blobs.values())
            self.conn.execute(
                f"INSERT INTO experiments ({columns}) VALUES ({marks}) "
                f"ON CONFLICT (uuid) DO UPDATE SET {updates}",
                list(row.values()),
            )
            _write_leaves(self.conn, record)

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
        with writing(self.conn, self.path):
            before = last_rowid(self.conn)
            yield
            # A key this transaction wrote first gets its index now, while the table is locked.
            index_numeric_keys(self.conn, written_after=before)

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

    def done_inputs(self, fingerprints: Iterable[str]) -> dict[str, list[list[Input]]]:
        """The inputs of each run recorded ``ok`` or ``pruned`` (a pruned run would be pruned
        again) under one of ``fingerprints``, by fingerprint (a run that read nothing has an
        empty list): what a resumed sweep may reuse."""
        wanted = list(dict.fromkeys(fingerprints))
        runs: dict[str, list[str]] = {}
        for marks, chunk in in_chunks(wanted):
            for fingerprint, uuid in self.conn.execute(
                f"SELECT fingerprint, uuid FROM experiments "
                f"WHERE status IN (?, ?) AND fingerprint IN ({marks})",
                [Status.OK, Status.PRUNED, *chunk],
            ):
                runs.setdefault(fingerprint, []).append(uuid)
        inputs = load_inputs(self.conn, [u for uuids in runs.values() for u in uuids])
        return {f: [inputs.get(u, []) for u in uuids] for f, uuids in runs.items()}

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
        # A trial run several times (replicates) is as good as its mean.
        row = self.conn.execute(
            f"SELECT min(uuid), avg(objective) AS mean FROM experiments WHERE search = ? "
            f"AND status = ? AND objective IS NOT NULL GROUP BY trial "
            f"ORDER BY mean {order}, trial LIMIT 1",
            (search, Status.OK),
        ).fetchone()
        if row is None:
            return None
        record = self.load_record(row[0])
        assert record.trial is not None
        record.trial.objective = row[1]
        return record

    def load_record(self, uuid: str) -> Record:
        """The stored run ``uuid`` as a :class:`Record` (rich values stay blob references)."""
        row = self.conn.execute(
            f"SELECT {select_list(RUN_COLUMNS)} FROM experiments WHERE uuid = ?", (uuid,)
        ).fetchone()
        run = decode_run(row)
        detail = read_run_detail(self.conn, uuid)
        return Record(
            uuid=run.uuid, created=run.created or "", path=run.source_path or "",
            source=detail.source or "", parameters=run.parameters, overrides=detail.overrides,
            status=Status(run.status), values=run.values, error=run.error,
            duration=run.duration, group_durations=detail.group_durations,
            stdout=detail.stdout, stderr=detail.stderr, environment=run.environment,
            comment=run.comment_text, reproduces=detail.reproduces,
            fingerprint=detail.fingerprint, trial=detail.trial,
            pruned_step=run.pruned_step, replicate=run.replicate,
            replicate_group=run.replicate_group,
        )

    def mark_orphans_interrupted(self, alive: Callable[[int], bool]) -> int:
        """Close ``running`` rows left by a driver on this host that no longer exists:
        ``alive(pid)`` says whether the process of that id still runs."""
        host = socket.gethostname()
        rows = self.conn.execute(
            "SELECT uuid, driver FROM experiments WHERE status = ? AND driver LIKE ?",
            (Status.RUNNING, f"{host}:%"),
        ).fetchall()
        orphans = [uuid for uuid, driver in rows if not alive(int(driver.rsplit(":", 1)[1]))]
        if orphans:
            with writing(self.conn, self.path):
                self.conn.executemany(
                    "UPDATE experiments SET status = ?, error_type = 'Interrupted', "
                    "error_message = 'the tracking process ended before the run finished' "
                    "WHERE uuid = ? AND status = ?",
                    [(Status.INTERRUPTED, uuid, Status.RUNNING) for uuid in orphans],
                )
        return len(orphans)


    def set_tags(self, tags_by_uuid: dict[str, list[str]]) -> None:
        """Replace the tags of each run (one transaction); an empty list clears them."""

        with writing(self.conn, self.path):
            self.conn.executemany(
                "UPDATE experiments SET tags = ? WHERE uuid = ?",
                [(to_json(tags) if tags else None, uuid) for uuid, tags in tags_by_uuid.items()],
            )

    def delete_runs(self, uuids: Iterable[str]) -> Deletion:
        """Delete these runs, every row keyed by their uuid in other tables (metrics, artifacts...)
        and the blobs they used that no remaining row references, in one transaction."""
        wanted = list(dict.fromkeys(uuids))
        deletion = Deletion(runs=[], blobs=0)
        used: set[str] = set()
        with writing(self.conn, self.path):
            for marks, chunk in in_chunks(wanted):
                deletion.runs += [
                    row[0] for row in self.conn.execute(
                        f"SELECT uuid FROM experiments WHERE uuid IN ({marks})", chunk
                    )
                ]
                used.update(row[0] for row in self.conn.execute(
                    "SELECT sha256 FROM blob_uses WHERE run IN "
                    f"(SELECT rowid FROM experiments WHERE uuid IN ({marks})) "
                    f"UNION SELECT sha256 FROM artifacts WHERE uuid IN ({marks})",
                    [*chunk, *chunk],
                ))
                for table in _tables_keyed_by_run(self.conn):
                    self.conn.execute(f'DELETE FROM "{table}" WHERE uuid IN ({marks})', chunk)
            deletion.blobs = delete_orphan_blobs(self.conn, sorted(used))
        return deletion


@dataclass
class Deletion:
    """What :meth:`Store.delete_runs` removed: the runs' uuids and how many blobs."""

    runs: list[str]
    blobs: int


#: Where rows name the blobs they need: table, and its column holding a blob's sha256 (with an
#: index on it). A table that stores blob hashes adds itself here, and
#: :func:`delete_orphan_blobs` keeps its blobs. Tables missing from a database are skipped.
BLOB_REFERENCES: dict[str, str] = {
    # source texts, executed notebooks and plots referenced from parameters, kept by triggers
    # on experiments (see ploomber_like.store.indexes)
    "blob_uses": "sha256",
    # files the runs wrote
    "artifacts": "sha256",
}


def delete_orphan_blobs(conn: sqlite3.Connection, candidates: Sequence[str] | None = None) -> int:
    """Delete the blobs no row references (see :data:`BLOB_REFERENCES`), among ``candidates``
    (default: every blob); returns how many. Runs inside the caller's transaction."""
    tables = table_names(conn)
    unused = " AND ".join(
        f'NOT EXISTS (SELECT 1 FROM "{table}" WHERE "{column}" = blobs.sha256)'
        for table, column in BLOB_REFERENCES.items() if table in tables
    ) or "1"
    if candidates is None:
        return conn.execute(f"DELETE FROM blobs WHERE {unused}").rowcount
    deleted = 0
    for marks, chunk in in_chunks(list(candidates)):
        deleted += conn.execute(
            f"DELETE FROM blobs WHERE sha256 IN ({marks}) AND {unused}", chunk
        ).rowcount
    return deleted


def _tables_keyed_by_run(conn: sqlite3.Connection) -> list[str]:
    """``experiments`` and every other table with a ``uuid`` column (a run's metrics, artifacts,
    notebook): deleting a run deletes its rows there too."""
    return sorted(name for name in table_names(conn) if "uuid" in table_columns(conn, name))


def move_inline_images(path: str | os.PathLike[str]) -> InlineMigration:
    """Move images stored inline in ``parameters`` (by sklearn-evaluation or ploomber-engine)
    into ``blobs``, leaving a reference in their place; adds our columns to the table too.

    Opening a peer's database to write does this once, as a migration; this reports what it
    moved, and moves images a peer stored since. One transaction: the database ends either
    fully migrated or untouched, with every row.
    """
    path = _existing_tracking_database(path)
    conn = connect(path, migrate=False)
    try:
        applied = upgrade(conn, path)
        if MOVE_INLINE_IMAGES in applied:
            return applied[MOVE_INLINE_IMAGES]
        with writing(conn, path):
            return move_inline_images_in(conn)
    finally:
        conn.close()


# --- metrics and artifacts: what a run leaves beyond its values ------------------------------


def _write_leaves(conn: sqlite3.Connection, record: Record) -> None:
    """Replace the run's series, file list and inputs, inside the transaction writing its
    row."""
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
    conn.execute("DELETE FROM inputs WHERE uuid = ?", (record.uuid,))
    conn.executemany(
        "INSERT OR REPLACE INTO inputs (uuid, kind, path, size, sha256) VALUES (?, ?, ?, ?, ?)",
        [(record.uuid, i.kind, i.path, i.size, i.sha256) for i in record.inputs],
    )


def encode_run(record: Record) -> dict[str, Any]:
    """The row of ``experiments`` holding ``record``, by column (the inverse of
    :func:`~ploomber_like.store.reads.decode_run`)."""
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
        "pruned_step": record.pruned_step,
        "replicate": record.replicate,
        "replicate_group": record.replicate_group,
        "recording_options": to_json(record.options.stored()) if record.options else None,
    }




def index_every_numeric_key(path: str | os.PathLike[str]) -> list[str]:
    """Build the expression index of each numeric key that lacks one, whatever the number of
    runs (up to :data:`~ploomber_like.store.indexes.MAX_INDEXED_KEYS` keys); their JSON paths.

    A key that first appears in a large table is left unindexed by the write that shows it
    (:data:`~ploomber_like.store.indexes.INDEX_ON_WRITE_ROWS`): this builds it, with progress.
    """
    path = _existing_tracking_database(path)
    conn = connect(path)
    try:
        with writing(conn, path):
            return index_numeric_keys(conn, at_any_size=True)
    finally:
        conn.close()


def _existing_tracking_database(path: str | os.PathLike[str]) -> Path:
    """``path``, once a read-only open found an ``experiments`` table in it: a mistyped path
    must not create an empty database."""
    path = Path(path)
    with reading(path) as check:
        if "experiments" not in table_names(check):
            raise DatabaseError(f"not a tracking database (no experiments table): {path}")
    return path
