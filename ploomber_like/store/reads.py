"""Reading stored runs back: rows of ``experiments`` decoded (the inverse of the writer's
encoding), their series, files, output and blobs."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ploomber_like.errors import DatabaseError, TrackerError
from ploomber_like.record import Artifact, Blob, Environment, RunError
from ploomber_like.store.connections import in_chunks, reading
from ploomber_like.store.schema import experiment_columns, load_json

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
    #: The options the run recorded with (see ``record.RECORDED_OPTIONS``); empty for a run
    #: recorded before they were stored.
    recording_options: dict[str, Any]


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
        # A database read-only to us may be of a version from before the options were stored.
        options = "recording_options" if "recording_options" in columns else "NULL"
        source_sha256, source_path, overrides, parameters, recorded = conn.execute(
            f"SELECT source_sha256, source_path, overrides, parameters, {options} "
            "FROM experiments WHERE uuid = ?", (uuid,),
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
            json.loads(parameters or "{}"), json.loads(recorded or "{}"),
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatabaseError(f"run {uuid} has an unreadable stored source: {exc}") from None


def load_metrics(conn: sqlite3.Connection, uuids: list[str]) -> list[tuple[Any, ...]]:
    """Rows ``(uuid, key, step, value)`` of the series of ``uuids``, in order."""
    rows: list[tuple[Any, ...]] = []
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'metrics'").fetchone():
        return rows  # a database made before series were kept
    for marks, chunk in in_chunks(uuids):
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

