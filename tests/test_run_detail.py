"""What a run left beyond its values, read through one reader (``store.RunDetail``) and exposed
lazily on ``Run``: for a run we recorded, and for databases whose schema lacks the tables and
columns it is read from (a peer's, an older version of ours). Databases are written by the
real ``Store`` from real ``Record`` objects, no kernels."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from tracking_databases import build_anchor_database, png

from ploomber_like import SQLiteTracker
from ploomber_like.cli import cli
from ploomber_like.output_notebook import BLOB_PREFIX, NOTEBOOK_MIMETYPE
from ploomber_like.record import (
    Artifact,
    Blob,
    MetricPoint,
    Record,
    SearchTrial,
    new_created,
)
from ploomber_like.store import Store

SOURCE = "epochs = 2\n\nfor epoch in range(epochs):\n    print(f'loss: {1 / (epoch + 1)}')\n"
UUID = "d7d7d7d7-left"


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Record]:
    """A database holding one finished run with everything a run can leave."""
    plot = Blob("image/png", png("loss"))
    model = Blob("text/plain", b"weights")
    notebook = Blob(NOTEBOOK_MIMETYPE, json.dumps(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("epochs = 2"),
        nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": BLOB_PREFIX + plot.sha256, "text/plain": "fig"},
        )]),
    ])).encode())
    record = Record(
        uuid=UUID, created=new_created(), path="fit.py", source=SOURCE,
        parameters={"epochs": 2}, overrides={"epochs": 2}, status="ok",
        values={"final": 0.5, "plot": plot.reference()},
        blobs={b.sha256: b for b in (plot, model, notebook)},
        duration=1.5, group_durations=[0.5, 1.0],
        stdout="loss: 1.0\nloss: 0.5\n", stderr="a warning\n",
        metrics=[MetricPoint("loss", 0, 1.0, 1e9), MetricPoint("loss", 1, 0.5, 1e9 + 1)],
        artifacts=[Artifact("model/weights.txt", 7, model.sha256),
                   Artifact("huge.bin", 10**9, "0" * 64, stored=False)],
        notebook=notebook.sha256, reproduces="c0ffee00-original",
        trial=SearchTrial("tune", 3, 0.5),
    )
    path = tmp_path / "runs.db"
    with Store(path) as writer:
        writer.finish(record)
    return path, record


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every database connection opened from now on, by the location it was opened with."""
    opened: list[str] = []
    real = sqlite3.connect

    def counting(database, *args, **kwargs):
        opened.append(str(database))
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting)
    return opened


def test_a_recorded_run_reads_what_it_left_on_first_use_through_one_connection(
    recorded, connections
):
    path, record = recorded
    run = SQLiteTracker(path).get(UUID[:8])
    connections.clear()

    assert run.source == SOURCE
    assert len(connections) == 1  # everything else came with the source
    assert run.stdout == record.stdout and run.stderr == record.stderr
    assert run.metrics == record.metrics
    assert run.artifacts == sorted(record.artifacts, key=lambda a: a.path)  # by path
    assert run.detail.overrides == {"epochs": 2}
    assert run.detail.group_durations == [0.5, 1.0]
    assert run.detail.reproduces == "c0ffee00-original"
    assert run.detail.trial == SearchTrial("tune", 3, 0.5)
    assert len(connections) == 1

    notebook = nbformat.reads(run.notebook, as_version=4)
    nbformat.validate(notebook)
    shown = notebook.cells[1].outputs[0].data["image/png"]
    assert shown.startswith("iVBOR")  # the PNG itself, base64 as Jupyter keeps it
    assert len(connections) == 2  # the notebook's outputs are loaded when asked for


def test_detail_read_with_the_run_opens_no_other_connection(recorded, connections):
    path, record = recorded
    tracker = SQLiteTracker(path)
    connections.clear()
    run = tracker.get(UUID, detail=True)
    assert (run.source, run.stdout, run.metrics) == (SOURCE, record.stdout, record.metrics)
    assert len(connections) == 1


def test_export_writes_the_plots_and_export_files_the_files_and_notebook(recorded, tmp_path):
    path, record = recorded
    run = SQLiteTracker(path).get(UUID)

    plots = run.export(tmp_path / "plots")
    assert plots == [tmp_path / "plots" / "plot.png"]
    assert plots[0].read_bytes() == record.blobs[record.values["plot"]["$blob"]].data

    files = run.export_files(tmp_path / "files")
    # The file over the size limit has no stored content: listed, not written.
    assert files == [tmp_path / "files" / "model" / "weights.txt",
                     tmp_path / "files" / f"{UUID}.ipynb"]
    assert files[0].read_bytes() == b"weights"
    assert nbformat.read(files[1], as_version=4).cells[0].source == "epochs = 2"


def test_an_anchor_database_lacking_every_detail_table_and_column_reads_empty(tmp_path):
    path = tmp_path / "anchor.db"
    build_anchor_database(path)  # four columns, no blobs, metrics or artifacts tables
    run = SQLiteTracker(path, create=False).get("a1b2c3d4")

    assert run.source is None and run.notebook is None
    assert (run.stdout, run.stderr, run.metrics, run.artifacts) == ("", "", [], [])
    assert run.detail.overrides == {} and run.detail.trial is None
    assert run.export_files(tmp_path / "out") == []


def test_an_older_database_of_ours_without_series_files_or_streams_reads_empty(recorded):
    path, _ = recorded
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE metrics; DROP TABLE artifacts; "
        "ALTER TABLE experiments DROP COLUMN stdout; ALTER TABLE experiments DROP COLUMN search;"
    )
    conn.close()
    run = SQLiteTracker(path).get(UUID)

    assert run.source == SOURCE  # what is there is still read
    assert (run.stdout, run.metrics, run.artifacts, run.detail.trial) == ("", [], [], None)
    assert run.stderr == "a warning\n"


def test_show_opens_the_database_once(recorded, connections):
    path, _ = recorded
    connections.clear()
    shown = CliRunner().invoke(cli, ["show", UUID[:8], "-d", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "loss" in shown.output and "model/weights.txt" in shown.output
    assert "a warning" in shown.output and "print(f'loss" not in shown.output
    assert len(connections) == 1, connections


def test_show_on_an_anchor_database_shows_the_run(tmp_path):
    path = tmp_path / "anchor.db"
    build_anchor_database(path)
    shown = CliRunner().invoke(cli, ["show", "e5f6a7b8", "-d", str(path), "--export",
                                     str(tmp_path / "out")])
    assert shown.exit_code == 0, shown.output
    assert "accuracy" in shown.output and "0.9" in shown.output
    assert "stdout" not in shown.output and "series" not in shown.output


def test_a_search_reads_its_best_trial_back_through_the_same_reader(recorded):
    path, record = recorded
    with Store(path) as writer:
        best = writer.best_trial("tune", maximize=True)
    assert best is not None
    assert (best.source, best.stdout, best.overrides) == (SOURCE, record.stdout, {"epochs": 2})
    assert (best.reproduces, best.trial) == (record.reproduces, record.trial)
