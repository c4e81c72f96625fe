"""Reading stored runs back: rows of ``experiments`` decoded (the inverse of the writer's
encoding) and blobs. What a run left beyond its row is :mod:`~ploomber_like.store.run_detail`'s."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ploomber_like.record import Blob, Environment, RunError
from ploomber_like.store.schema import load_json

#: Columns a stored run is read from; those an older schema lacks (databases made by
#: sklearn-evaluation have only the anchor's four) are selected as NULL.
RUN_COLUMNS = (
    "uuid", "created", "parameters", "comment", "status", "duration", "error_type",
    "error_message", "traceback", "error_group", "error_source", "parameter_keys",
    "environment", "source_path", "error_location", "name", "tags", "pruned_step", "replicate",
    "replicate_group",
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
    #: Pruning and replicates (see :class:`~ploomber_like.record.Record`).
    pruned_step: int | None = None
    replicate: int | None = None
    replicate_group: str | None = None


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
        pruned_step=_integer(data["pruned_step"]),
        replicate=_integer(data["replicate"]),
        replicate_group=None if data["replicate_group"] is None else str(data["replicate_group"]),
    )


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def load_blob(conn: sqlite3.Connection, sha256: str) -> Blob | None:
    """The blob stored under ``sha256``, or None."""
    row = conn.execute("SELECT mimetype, data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
    return Blob(row[0], bytes(row[1])) if row else None

