"""Exporting runs to an MLflow tracking store (a local ``sqlite:///`` file or an ``mlflow
server``), so a team can look at everyone's runs in ``mlflow ui``.

Each of our runs becomes one MLflow run: the parameters cell's values as params, numeric shown
values as metrics (series from the ``metrics`` table with their steps), plots and files as
artifacts with the source text, stdout and stderr, and tags naming our uuid. The uuid tag is
written last: a run it marks was exported completely, and exporting again skips it.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ploomber_like import store
from ploomber_like.errors import DatabaseError, TrackerError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ploomber_like.results import Run

#: Tag holding our uuid: how a later export finds the runs already exported.
UUID_TAG = "ploomber_like.uuid"
DEFAULT_EXPERIMENT = "ploomber_like"

#: Our statuses as MLflow's (``running`` rows are not exported: they are not over yet).
_MLFLOW_STATUS = {
    "ok": "FINISHED",
    "failed": "FAILED",
    "timeout": "FAILED",
    "crashed": "FAILED",
    "interrupted": "KILLED",
    # Stopped on purpose by pruning: MLflow's word for a run ended early.
    "pruned": "KILLED",
}
#: MLflow's limits per ``log_batch`` call and per param value.
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}
_PARAM_VALUE_LIMIT = 6000


@dataclass
class MlflowExport:
    """What :func:`export_mlflow` did."""

    experiment_id: str
    #: Our uuid -> the new MLflow run id, for each run exported now.
    exported: dict[str, str] = field(default_factory=dict)
    #: Runs matching the condition that an earlier export already sent.
    already_exported: list[str] = field(default_factory=list)
    #: Runs still ``running``, left for a later export.
    running: list[str] = field(default_factory=list)


def export_mlflow(
    tracking_uri: str,
    database: str | os.PathLike[str] = "experiments.db",
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    where: str | None = None,
) -> MlflowExport:
    """Send the runs of ``database`` to the MLflow tracking store at ``tracking_uri``.

    Parameters
    ----------
    tracking_uri : str
        ``sqlite:///mlflow.db``, ``http://127.0.0.1:5000`` (an ``mlflow server``)...
    database : str or Path
        The tracking database to read.
    experiment : str
        The MLflow experiment to add the runs to; created if missing.
    where : str, optional
        A SQL condition on ``experiments`` selecting the runs to send, e.g.
        ``"status = 'ok' AND json_extract(parameters, '$.f1') > 0.8"``.

    Returns
    -------
    MlflowExport
        The runs exported now, those exported before (skipped), those still running.

    Raises
    ------
    TrackerError
        MLflow is not installed, the database or the condition is unusable, or the tracking
        store refuses the runs.

    Examples
    --------
    >>> export_mlflow("sqlite:///mlflow.db", "experiments.db")  # doctest: +SKIP
    """
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise TrackerError(
            "exporting to MLflow needs mlflow: pip install 'ploomber-like[mlflow]'"
        ) from None
    from ploomber_like.tracker import SQLiteTracker

    tracker = SQLiteTracker(database, create=False)
    condition = f"WHERE ({where})" if where and where.strip() else ""
    uuids = [
        row[0] for row in tracker.query(
            f"SELECT uuid FROM experiments {condition} ORDER BY created, rowid", as_frame=False
        ).rows
    ]
    try:
        # MLflow and alembic log INFO lines on creating a store: not the user's business.
        with _only_warnings_from(*CHATTY_LOGGERS):
            client = MlflowClient(tracking_uri=tracking_uri)
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            result = MlflowExport(experiment_id)
            done = _exported_uuids(client, experiment_id)
            with _extras(Path(database)) as extras:
                for uuid in uuids:
                    if uuid in done:
                        result.already_exported.append(uuid)
                        continue
                    run = tracker.get(uuid)
                    if run.status == "running":
                        result.running.append(uuid)
                        continue
                    result.exported[uuid] = _export_run(client, experiment_id, run, extras)
    except MlflowException as exc:
        raise TrackerError(f"MLflow at {tracking_uri}: {_first_line(exc.message)}") from None
    return result


#: Loggers that print INFO lines while we export (creating and migrating a sqlite store).
CHATTY_LOGGERS = ("mlflow", "alembic")


@contextmanager
def _only_warnings_from(*names: str) -> Iterator[None]:
    """Raise the level of the loggers ``names`` to WARNING while the block runs."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _exported_uuids(client: MlflowClient, experiment_id: str) -> set[str]:
    """Our uuids already in the experiment (also in deleted runs: they were exported once)."""
    from mlflow.entities import ViewType

    uuids: set[str] = set()
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.`{UUID_TAG}` != ''",
            run_view_type=ViewType.ALL, max_results=1000, page_token=token,
        )
        uuids.update(run.data.tags[UUID_TAG] for run in page)
        token = page.token
        if not token:
            return uuids


def _export_run(client: MlflowClient, experiment_id: str, run: Run, extras: _Extras) -> str:
    from mlflow.entities import Metric, Param, RunTag

    detail = extras.run(run.uuid)
    start = _millis(run.created)
    end = start + round((run.duration or 0.0) * 1000)
    source = Path(run.source_path) if run.source_path else None
    name = detail.name or (f"{source.stem}-{run.uuid[:8]}" if source else run.uuid[:8])
    created = client.create_run(experiment_id, start_time=start, run_name=name)
    run_id = created.info.run_id

    params = [Param(key, _param_text(value)) for key, value in run.flat_parameters().items()]
    metrics = [
        Metric(key, float(value), start, 0)
        for key, value in run.scalar_values().items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value)
    ]
    metrics += [
        Metric(key, value, _series_millis(time, start), step)
        for key, step, value, time in detail.metrics
        if value is not None and math.isfinite(value)
    ]
    environment = run.environment
    tags = {
        "ploomber_like.status": run.status or "",
        "ploomber_like.source_path": run.source_path,
        "mlflow.source.name": run.source_path,
        "mlflow.source.git.commit": environment.git_commit if environment else None,
        "mlflow.user": environment.user if environment else None,
        "mlflow.note.content": run.comment_text,
        "ploomber_like.comment": run.comment_text,
        "ploomber_like.error": run.error.summary() if run.error else None,
        "ploomber_like.reproduces": detail.reproduces,
        **detail.tags,
    }
    tag_list = [RunTag(key, str(value)) for key, value in tags.items() if value is not None]
    for kind, items in (("params", params), ("metrics", metrics), ("tags", tag_list)):
        size = _BATCH[kind]
        for offset in range(0, len(items), size):
            client.log_batch(run_id, **{kind: items[offset : offset + size]})

    with tempfile.TemporaryDirectory(prefix="ploomber-like-export-") as folder:
        files = Path(folder)
        if run.outputs():
            run.export(files / "outputs")
        if detail.source is not None and source is not None:
            (files / "source").mkdir()
            (files / "source" / source.name).write_text(detail.source, encoding="utf-8")
        for stream in ("stdout", "stderr"):
            text = getattr(detail, stream)
            if text:
                (files / f"{stream}.txt").write_text(text, encoding="utf-8")
        if run.error is not None and run.error.traceback:
            (files / "traceback.txt").write_text(run.error.traceback, encoding="utf-8")
        for relative, data in detail.files:
            target = files / "files" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if any(files.iterdir()):
            client.log_artifacts(run_id, str(files))

    # Last: only a completely exported run carries the tag that makes later exports skip it.
    client.set_tag(run_id, UUID_TAG, run.uuid)
    client.set_terminated(run_id, _MLFLOW_STATUS.get(run.status or "ok", "FINISHED"), end)
    return run_id


@dataclass
class _RunDetail:
    source: str | None
    stdout: str | None
    stderr: str | None
    name: str | None
    reproduces: str | None
    tags: dict[str, str]
    #: (key, step, value, time) rows of the ``metrics`` table.
    metrics: list[tuple[str, int, float, float | None]]
    #: (relative path, bytes) of the files the run left, from the ``artifacts`` table.
    files: list[tuple[str, bytes]]


class _Extras:
    """Reads what :class:`~ploomber_like.results.Run` does not hold: source, streams, series,
    files, name and tags, from whichever of those columns and tables the database has."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.columns = store.experiment_columns(conn)
        self.tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def run(self, uuid: str) -> _RunDetail:
        wanted = ("source_sha256", "stdout", "stderr", "name", "tags", "reproduces")
        selected = ", ".join(c if c in self.columns else f"NULL AS {c}" for c in wanted)
        sha, stdout, stderr, name, tags, reproduces = self.conn.execute(
            f"SELECT {selected} FROM experiments WHERE uuid = ?", (uuid,)
        ).fetchone()
        blob = store.load_blob(self.conn, sha) if sha else None
        return _RunDetail(
            source=blob.data.decode("utf-8", errors="replace") if blob and blob.data else None,
            stdout=stdout, stderr=stderr, name=name, reproduces=reproduces,
            tags=_tags(tags), metrics=self._metrics(uuid), files=self._files(uuid),
        )

    def _metrics(self, uuid: str) -> list[tuple[str, int, float, float | None]]:
        if "metrics" not in self.tables:
            return []
        return self.conn.execute(
            "SELECT key, step, value, time FROM metrics WHERE uuid = ? ORDER BY key, step",
            (uuid,),
        ).fetchall()

    def _files(self, uuid: str) -> list[tuple[str, bytes]]:
        if "artifacts" not in self.tables:
            return []
        rows = self.conn.execute(
            "SELECT a.path, b.data FROM artifacts AS a JOIN blobs AS b ON b.sha256 = a.sha256 "
            "WHERE a.uuid = ? ORDER BY a.path", (uuid,),
        ).fetchall()
        return [(_inside(path), bytes(data)) for path, data in rows]


@contextmanager
def _extras(database: Path) -> Iterator[_Extras]:
    conn = store.connect(database, readonly=True)
    try:
        yield _Extras(conn)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot read database {database}: {exc}") from None
    finally:
        conn.close()


def _inside(path: str) -> str:
    """``path`` as a relative path that stays inside the export folder (no root, no ``..``)."""
    parts = [part for part in PurePosixPath(path.replace("\\", "/")).parts
             if part not in ("/", "..", ".")]
    return "/".join(parts) or "unnamed"


def _tags(text: str | None) -> dict[str, str]:
    """The ``tags`` column (a JSON list or object) as MLflow tags."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"ploomber_like.tags": text}
    if isinstance(value, dict):
        return {str(k): json.dumps(v) if not isinstance(v, str) else v for k, v in value.items()}
    if isinstance(value, list):
        return {"ploomber_like.tags": ", ".join(map(str, value))}
    return {"ploomber_like.tags": str(value)}


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:_PARAM_VALUE_LIMIT]


def _millis(created: str | None) -> int:
    """``created`` (UTC, SQLite's layout) as milliseconds since the epoch."""
    if not created:
        return 0
    try:
        moment = datetime.fromisoformat(created).replace(tzinfo=timezone.utc)
    except ValueError:
        return 0
    return round(moment.timestamp() * 1000)


def _series_millis(time: float | None, start: int) -> int:
    # Seconds since the epoch; anything smaller is seconds since the run started.
    if time is None:
        return start
    return round(time * 1000) if time > 1e9 else start + round(time * 1000)


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else "error"
