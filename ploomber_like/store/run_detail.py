"""What a stored run left beyond its row's parameters and values: the one reader of its source
text, stdout and stderr, output-scalar series, files, executed notebook and the columns a
rerun, a resumed sweep or a search reads back.

Databases of every age are read: a column or table an older schema (ours, sklearn-evaluation's,
ploomber-engine's) lacks gives an empty value, never an error. The rest of a run (parameters,
values, status, error and where it happened, environment, name, tags) is
:func:`~ploomber_like.store.reads.decode_run`'s.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ploomber_like.errors import DatabaseError, TrackerError
from ploomber_like.record import Artifact, Input, MetricPoint, SearchTrial
from ploomber_like.store.connections import in_chunks, reading
from ploomber_like.store.reads import load_blob, select_list
from ploomber_like.store.schema import experiment_columns, load_json, table_names

#: Columns of ``experiments`` :class:`RunDetail` is read from (NULL where a schema lacks them).
DETAIL_COLUMNS = (
    "source_sha256", "overrides", "group_durations", "stdout", "stderr", "workdir", "notebook",
    "reproduces", "fingerprint", "kernel_wait", "search", "trial", "objective", "trial_error",
    "recording_options",
)


@dataclass
class RunDetail:
    """What a run left beyond its values, as stored; empty values where the database has none."""

    uuid: str
    #: The source text the run executed (None: not stored, e.g. a run logged by hand).
    source: str | None = None
    #: The values the caller passed.
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Seconds each group took.
    group_durations: list[float] = field(default_factory=list)
    #: The stdout and stderr kept (a long output's head and tail).
    stdout: str = ""
    stderr: str = ""
    #: Series of the ``name: number`` lines the run printed, by key, step and order.
    metrics: list[MetricPoint] = field(default_factory=list)
    #: Files the run created or changed, by path.
    artifacts: list[Artifact] = field(default_factory=list)
    #: What the run read: files and user modules, by kind and path (see
    #: :mod:`ploomber_like.inputs`).
    inputs: list[Input] = field(default_factory=list)
    #: sha256 of the executed notebook's blob, when it was saved.
    notebook: str | None = None
    #: The directory the run worked in.
    workdir: str | None = None
    #: uuid of the run this one reruns.
    reproduces: str | None = None
    #: Identity of the run for resuming sweeps.
    fingerprint: str | None = None
    #: Seconds the run waited for its kernel.
    kernel_wait: float | None = None
    #: The search trial the run is, if it belongs to a search.
    trial: SearchTrial | None = None
    #: The options the run recorded with (see ``record.RECORDED_OPTIONS``); empty for a run
    #: recorded before they were stored.
    recording_options: dict[str, Any] = field(default_factory=dict)


def read_run_detail(conn: sqlite3.Connection, uuid: str) -> RunDetail:
    """The :class:`RunDetail` of run ``uuid`` (an empty one for a run the database lacks)."""
    present = experiment_columns(conn)
    wanted = [column for column in DETAIL_COLUMNS if column in present]
    row = None
    if wanted:
        row = conn.execute(
            f"SELECT {', '.join(wanted)} FROM experiments WHERE uuid = ?", (uuid,)
        ).fetchone()
    data = dict.fromkeys(DETAIL_COLUMNS) | (dict(zip(wanted, row, strict=True)) if row else {})
    source = load_blob(conn, data["source_sha256"]) if data["source_sha256"] else None
    trial = None
    if data["search"] is not None:
        trial = SearchTrial(data["search"], data["trial"], data["objective"], data["trial_error"])
    overrides = load_json(data["overrides"])
    durations = load_json(data["group_durations"])
    recorded = load_json(data["recording_options"])
    return RunDetail(
        uuid=uuid,
        source=source.data.decode("utf-8", errors="replace") if source else None,
        overrides=overrides if isinstance(overrides, dict) else {},
        group_durations=durations if isinstance(durations, list) else [],
        stdout=data["stdout"] or "",
        stderr=data["stderr"] or "",
        metrics=[MetricPoint(*point[1:]) for point in load_metrics(conn, [uuid])],
        artifacts=load_artifacts(conn, uuid),
        inputs=load_inputs(conn, [uuid]).get(uuid, []),
        notebook=data["notebook"] or None,
        workdir=data["workdir"],
        reproduces=data["reproduces"],
        fingerprint=data["fingerprint"],
        kernel_wait=data["kernel_wait"],
        trial=trial,
        recording_options=recorded if isinstance(recorded, dict) else {},
    )


@dataclass
class StoredSource:
    """What rerunning a run needs: its source text, path and overrides, and what it recorded."""

    source: str
    source_path: str
    overrides: dict[str, Any]
    #: The ``parameters`` column: parameters and values, outputs as blob references.
    values: dict[str, Any]
    #: The options the run recorded with (see :attr:`RunDetail.recording_options`).
    recording_options: dict[str, Any]


def read_source(path: str | os.PathLike[str], uuid: str) -> StoredSource:
    """The stored source of run ``uuid`` with its overrides and values.

    Raises a :class:`~ploomber_like.errors.TrackerError` for a run without a stored source (a
    database not written by a tracked run, or a run logged by hand) and a
    :class:`DatabaseError` for one whose values cannot be decoded.
    """
    with reading(path) as conn:
        detail = read_run_detail(conn, uuid)
        row = conn.execute(
            f"SELECT {select_list(experiment_columns(conn), ('source_path', 'parameters'))} "
            "FROM experiments WHERE uuid = ?", (uuid,),
        ).fetchone()
    source_path, parameters = row or (None, None)
    if not source_path or not detail.source:
        raise TrackerError(
            f"run {uuid} has no stored source (logged by hand or by another tracker): "
            "nothing to rerun"
        )
    values = load_json(parameters or "{}")
    if not isinstance(values, dict):
        raise DatabaseError(f"run {uuid} has unreadable values: {str(parameters)[:80]!r}")
    return StoredSource(
        detail.source, source_path, detail.overrides, values, detail.recording_options
    )


def load_metrics(conn: sqlite3.Connection, uuids: list[str]) -> list[tuple[Any, ...]]:
    """Rows ``(uuid, key, step, value, time)`` of the series of ``uuids``, in order of run, key,
    step and writing (none for a database made before series were kept)."""
    rows: list[tuple[Any, ...]] = []
    if "metrics" not in table_names(conn):
        return rows
    for marks, chunk in in_chunks(uuids):
        rows += conn.execute(
            f"SELECT uuid, key, step, value, time FROM metrics WHERE uuid IN ({marks}) "
            "ORDER BY uuid, key, step, rowid",
            chunk,
        ).fetchall()
    return rows


def load_artifacts(conn: sqlite3.Connection, uuid: str) -> list[Artifact]:
    """The files run ``uuid`` left, by path (none for a database made before they were kept)."""
    if "artifacts" not in table_names(conn):
        return []
    return [
        Artifact(path, size, sha256, bool(stored))
        for path, size, sha256, stored in conn.execute(
            "SELECT path, size, sha256, stored FROM artifacts WHERE uuid = ? ORDER BY path",
            (uuid,),
        )
    ]


def load_inputs(conn: sqlite3.Connection, uuids: list[str]) -> dict[str, list[Input]]:
    """What each of ``uuids`` read (see :mod:`ploomber_like.inputs`), by kind and path; runs
    that read nothing, and every run of a database made before inputs were kept, are absent."""
    found: dict[str, list[Input]] = {}
    if "inputs" not in table_names(conn):
        return found
    for marks, chunk in in_chunks(uuids):
        for uuid, kind, path, size, sha256 in conn.execute(
            f"SELECT uuid, kind, path, size, sha256 FROM inputs WHERE uuid IN ({marks}) "
            "ORDER BY uuid, kind, path",
            chunk,
        ):
            found.setdefault(uuid, []).append(Input(kind, path, size, sha256))
    return found
