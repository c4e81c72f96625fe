"""Exporting runs to an MLflow tracking store (a local ``sqlite:///`` file or an ``mlflow
server``), so a team can look at everyone's runs in ``mlflow ui``.

Each of our runs becomes one MLflow run: the parameters cell's values as params, numeric shown
values as metrics (series from the ``metrics`` table with their steps), plots, files and the
saved notebook as artifacts with the source text, stdout and stderr, the files it read and the
user modules it imported as dataset inputs (``run.inputs`` in MLflow), and tags naming our
uuid. The uuid tag is written last: a run it marks was exported completely, and exporting again
skips it. What a run left is read through :attr:`Run.detail
<ploomber_like.results.Run.detail>`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like.errors import TrackerError
from ploomber_like.record import Input

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
            for uuid in uuids:
                if uuid in done:
                    result.already_exported.append(uuid)
                    continue
                run = tracker.get(uuid, detail=True)
                if run.status == "running":
                    result.running.append(uuid)
                    continue
                result.exported[uuid] = _export_run(client, experiment_id, run)
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


def _export_run(client: MlflowClient, experiment_id: str, run: Run) -> str:
    from mlflow.entities import Metric, Param, RunTag

    start = _millis(run.created)
    end = start + round((run.duration or 0.0) * 1000)
    source = Path(run.source_path) if run.source_path else None
    name = run.name or (f"{source.stem}-{run.uuid[:8]}" if source else run.uuid[:8])
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
        Metric(point.key, point.value, _series_millis(point.time, start), point.step)
        for point in run.metrics
        if point.value is not None and math.isfinite(point.value)
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
        "ploomber_like.reproduces": run.detail.reproduces,
        "ploomber_like.tags": ", ".join(run.tags) or None,
    }
    tag_list = [RunTag(key, str(value)) for key, value in tags.items() if value is not None]
    for kind, items in (("params", params), ("metrics", metrics), ("tags", tag_list)):
        size = _BATCH[kind]
        for offset in range(0, len(items), size):
            client.log_batch(run_id, **{kind: items[offset : offset + size]})

    # A file gone before it could be hashed has no digest to give MLflow.
    hashed = [read for read in run.inputs if read.sha256 is not None]
    if hashed:
        client.log_inputs(run_id, datasets=[_dataset_input(read) for read in hashed])

    with tempfile.TemporaryDirectory(prefix="ploomber-like-export-") as folder:
        files = Path(folder)
        if run.outputs():
            run.export(files / "outputs")
        if run.source is not None and source is not None:
            (files / "source").mkdir()
            (files / "source" / source.name).write_text(run.source, encoding="utf-8")
        for stream in ("stdout", "stderr"):
            text = getattr(run, stream)
            if text:
                (files / f"{stream}.txt").write_text(text, encoding="utf-8")
        if run.error is not None and run.error.traceback:
            (files / "traceback.txt").write_text(run.error.traceback, encoding="utf-8")
        if not run.export_files(files / "files"):
            (files / "files").rmdir()
        if any(files.iterdir()):
            client.log_artifacts(run_id, str(files))

    # Last: only a completely exported run carries the tag that makes later exports skip it.
    client.set_tag(run_id, UUID_TAG, run.uuid)
    client.set_terminated(run_id, _MLFLOW_STATUS.get(run.status or "ok", "FINISHED"), end)
    return run_id


def _dataset_input(read: Input) -> Any:
    """An input of a run as an MLflow dataset input: named by its path, its content hash as
    the digest (MLflow's stores keep 36 characters of it; the profile has it whole), and its
    kind (``file``, ``module``) as the context MLflow shows next to it."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        name=read.path, digest=(read.sha256 or "")[:32], source_type="local", source=read.path,
        profile=json.dumps({"kind": read.kind, "size": read.size, "sha256": read.sha256}),
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", read.kind)])


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
