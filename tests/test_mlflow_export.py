"""``export mlflow``: runs into a real MLflow tracking store in tmp_path, read back with
``MlflowClient.search_runs``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import cli, hidden_module, write_script

from ploomber_like import SQLiteTracker, TrackerError, track_execution
from ploomber_like.mlflow_export import UUID_TAG, export_mlflow

mlflow = pytest.importorskip("mlflow")

SCRIPT = """
# parameters
n = 3
label = "a"

import sys
import matplotlib.pyplot as plt
print("training")
print("careful", file=sys.stderr)
score = n / 4
score
label
assert n < 5, "n too large"
plt.plot([1, n])
"""


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two ok runs and a failed one, each with a plot (the failed one fails before it)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # MLflow puts a sqlite store's artifacts under ./mlruns: keep them in tmp_path.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "runs.db"
    script = write_script(tmp_path, SCRIPT, "train.py")
    for n in (2, 4, 8):
        track_execution(script, {"n": n}, path, quiet=True, comment=f"n is {n}")
    return path


def mlflow_runs(uri: str, experiment: str = "ploomber_like") -> dict[str, object]:
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    by_uuid = {run.data.tags[UUID_TAG]: run for run in runs}
    assert len(by_uuid) == len(runs)  # no duplicates
    return by_uuid


@pytest.mark.kernel
def test_export_sends_params_metrics_tags_artifacts_and_statuses(
    database: Path, tmp_path: Path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = SQLiteTracker(database).runs()

    done = cli("export", "mlflow", "--tracking-uri", uri, "-d", str(database), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "exported 3 run(s)" in done.stdout
    exported = mlflow_runs(uri)
    assert set(exported) == {run.uuid for run in runs}
    client = mlflow.MlflowClient(uri)
    for run in runs:
        mlflow_run = exported[run.uuid]
        n = run.parameters["n"]
        assert mlflow_run.data.params == {"n": str(n), "label": "a"}
        assert mlflow_run.data.metrics == {"score": n / 4}
        tags = mlflow_run.data.tags
        assert tags["ploomber_like.status"] == run.status
        assert tags["mlflow.note.content"] == f"n is {n}"
        assert tags["ploomber_like.source_path"] == run.source_path
        start = mlflow_run.info.start_time
        assert mlflow_run.info.end_time - start == pytest.approx(run.duration * 1000, abs=1)
        artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
        source = client.download_artifacts(mlflow_run.info.run_id, "source/train.py", str(
            tmp_path / "download" / run.uuid))
        assert Path(source).read_text() == (tmp_path / "train.py").read_text()
        stdout = client.download_artifacts(mlflow_run.info.run_id, "stdout.txt", str(
            tmp_path / "download" / run.uuid))
        assert Path(stdout).read_text() == "training\n"
        assert {"stderr.txt", "source"} <= artifacts
        if run.status == "ok":
            assert mlflow_run.info.status == "FINISHED"
            (plot,) = client.list_artifacts(mlflow_run.info.run_id, "outputs")
            assert plot.path == "outputs/plot.png"
            png = client.download_artifacts(mlflow_run.info.run_id, plot.path, str(
                tmp_path / "download" / run.uuid))
            assert Path(png).read_bytes() == run.values["plot"].data
        else:
            assert n == 8 and mlflow_run.info.status == "FAILED"
            assert tags["ploomber_like.error"].startswith("AssertionError")
            assert "traceback.txt" in artifacts and "outputs" not in artifacts


@pytest.mark.kernel
def test_export_again_adds_only_new_runs(database: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = export_mlflow(uri, database, experiment="fit")
    again = export_mlflow(uri, database, experiment="fit")
    assert len(first.exported) == 3 and again.exported == {}
    assert sorted(again.already_exported) == sorted(first.exported)

    new = track_execution(tmp_path / "train.py", {"n": 1}, database, quiet=True)
    third = export_mlflow(uri, database, experiment="fit")

    assert list(third.exported) == [new.uuid]
    assert len(mlflow_runs(uri, "fit")) == 4


@pytest.mark.kernel
def test_export_where_condition_selects_runs(database: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = export_mlflow(uri, database, where="status = 'ok' AND "
                           "json_extract(parameters, '$.score') > 0.6")
    (only,) = result.exported
    assert SQLiteTracker(database).get(only)["n"] == 4
    with pytest.raises(TrackerError, match="syntax error"):
        export_mlflow(uri, database, where="status =")


@pytest.mark.kernel
def test_export_metric_series_with_their_steps(database: Path, tmp_path: Path):
    run = SQLiteTracker(database).runs(status="ok")[0]
    # The table runs write their `name: number` stdout lines to (uuid, key, step, value, time).
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE IF NOT EXISTS metrics "
                 "(uuid TEXT, key TEXT, step INTEGER, value REAL, time REAL)")
    conn.executemany("INSERT INTO metrics (uuid, key, step, value, time) VALUES (?, ?, ?, ?, ?)",
                     [(run.uuid, "loss", step, 1 / (step + 1), step * 0.5) for step in range(3)])
    conn.commit()
    conn.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    export_mlflow(uri, database)

    client = mlflow.MlflowClient(uri)
    run_id = mlflow_runs(uri)[run.uuid].info.run_id
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 1.0), (1, 0.5), (2, 1 / 3)
    ]


@pytest.mark.kernel
def test_export_without_mlflow_says_so_in_one_line(database: Path, tmp_path: Path):
    env = hidden_module(tmp_path, "mlflow")
    target = tmp_path / "mlflow.db"

    done = cli("export", "mlflow", "--tracking-uri", f"sqlite:///{target}", "-d", str(database),
               cwd=tmp_path, env=env)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: exporting to MLflow needs mlflow: pip install 'ploomber-like[mlflow]'"
    ]
    assert not target.exists()


def test_export_bad_input_exits_2(tmp_path: Path):
    done = cli("export", "mlflow", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
               "-d", str(tmp_path / "missing.db"), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: database not found")
    assert not (tmp_path / "m.db").exists()


@pytest.mark.kernel
def test_export_prints_its_own_line_and_no_mlflow_log_lines(database: Path, tmp_path: Path):
    target = tmp_path / "quiet.db"
    done = cli("export", "mlflow", "--tracking-uri", f"sqlite:///{target}", "-d", str(database),
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported 3 run(s)")
    assert " INFO " not in done.stderr and "alembic" not in done.stderr, done.stderr
