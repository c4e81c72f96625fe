"""Code written for ploomber-engine's tracker and sklearn-evaluation's SQLiteTracker keeps
working when only its imports change (docs/migrating.md lists the deliberate differences)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from ploomber_like import (
    Experiment,
    ParameterError,
    RichOutput,
    SQLiteTracker,
    UnknownRunError,
    track_execution,
)

matplotlib.use("Agg")

HEX_UUID = re.compile(r"[0-9a-f]{32}")


def test_memory_database_is_one_database_for_the_trackers_life(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = SQLiteTracker(":memory:")
    tracker.insert("first", {"a": 1})
    uuid = tracker.new()
    assert len(tracker) == 2
    assert tracker.query("SELECT uuid FROM experiments WHERE uuid = 'first'").index.tolist() == [
        "first"
    ]
    assert tracker.get(uuid) == {}
    # another tracker on ":memory:" is another database, and nothing went to disk
    assert len(SQLiteTracker(":memory:")) == 0
    assert list(tmp_path.iterdir()) == []
    assert repr(tracker).startswith("SQLiteTracker(':memory:')")


@pytest.mark.kernel
def test_track_execution_takes_the_file_as_filename(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "script.py").write_text("total = a + b\ntotal\n")
    record = track_execution(
        filename="script.py", parameters={"a": 1, "b": 2}, database="exps.db", quiet=True
    )
    assert HEX_UUID.fullmatch(record.uuid)
    results = SQLiteTracker("exps.db").query(
        "SELECT uuid, json_extract(parameters, '$.total') AS total FROM experiments",
        as_frame=False,
    )
    assert results.rows == [(record.uuid, 3)]


def test_get_compares_equal_to_its_values_and_takes_more(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    tracker.insert("run", {"a": 0, "b": 0})
    tracker.update("run", {"a": 1, "b": 2}, allow_overwrite=True)
    retrieved = tracker.get("run")
    assert retrieved == {"a": 1, "b": 2}
    assert retrieved != {"a": 1}
    assert retrieved._data == {"a": 1, "b": 2}  # what code written for the anchor reads

    assert retrieved.log("c", np.float64(0.5)) == 0.5
    retrieved.log_dict({"d": [1, 2]})
    retrieved.comment("checked")
    assert retrieved == {"a": 1, "b": 2, "c": 0.5, "d": [1, 2]}
    again = tracker.get("run")
    assert again == retrieved
    assert again.comment_text == "checked"
    assert isinstance(again.values["c"], float)


def test_new_experiment_logs_by_hand(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    experiment = tracker.new_experiment()
    assert isinstance(experiment, Experiment) and HEX_UUID.fullmatch(experiment.uuid)
    experiment.log("accuracy", 0.8)
    experiment.log_dict({"precision": 0.7, "recall": 0.6})
    assert tracker.get(experiment.uuid) == {"accuracy": 0.8, "precision": 0.7, "recall": 0.6}
    assert len(tracker) == 1


def test_confusion_matrix_and_classification_report_are_stored_as_plots(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    experiment = tracker.new_experiment()
    experiment.log_confusion_matrix([1, 1, 0, 0], [1, 0, 1, 0])
    experiment.log_classification_report([1, 1, 0, 0], [1, 0, 1, 0], target_names=["no", "yes"])
    retrieved = tracker.get(experiment.uuid)
    for key in ("confusion_matrix", "classification_report"):
        plot = retrieved[key]
        assert isinstance(plot, RichOutput) and plot.mimetype == "image/png"
        assert plot.data.startswith(b"\x89PNG")
    assert len(tracker) == 1


def test_getitem_is_the_row_as_a_one_row_frame(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    tracker.insert("some", {"a": 1})
    tracker.comment("some", "a note")
    frame = tracker["some"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 1
    assert frame.index.name == "uuid"
    assert frame.loc["some"].parameters == '{"a": 1}'
    assert frame.loc["some"].comment == "a note"


def test_upsert_append_extends_lists_item_by_item(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    tracker.insert("run", {"d": [4], "s": 1})
    tracker.upsert_append("run", {"d": [5, 6], "s": 2, "new": [7]})
    tracker.upsert_append("run", {"d": 8})
    assert tracker.get("run") == {"d": [4, 5, 6, 8], "s": [1, 2], "new": [7]}


def test_unknown_uuids_are_value_errors(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    with pytest.raises(ValueError, match="no run with uuid"):
        tracker.get("nope")
    with pytest.raises(UnknownRunError, match="does not exist"):
        tracker.update("nope", {"a": 1})
    with pytest.raises(ValueError):
        tracker["nope"]
    tracker.insert("run", {"a": 1})
    with pytest.raises(ValueError, match="non-empty"):
        tracker.update("run", {"a": 2})  # only a run made empty by new() takes update
    assert isinstance(ParameterError("x"), ValueError)


def test_insert_stores_a_figure_out_of_line(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    tracker = SQLiteTracker(tmp_path / "runs.db")
    tracker.insert("run", {"fig": fig, "n": np.int64(3)})
    plt.close(fig)
    stored = tracker.get("run")
    assert stored["n"] == 3 and stored["fig"].data.startswith(b"\x89PNG")
    conn = sqlite3.connect(tmp_path / "runs.db")
    (parameters,) = conn.execute("SELECT parameters FROM experiments").fetchone()
    (count,) = conn.execute("SELECT count(*) FROM blobs WHERE mimetype = 'image/png'").fetchone()
    conn.close()
    assert len(parameters) < 200 and count == 1


def test_uuids_made_by_every_path_have_one_format(tmp_path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    made = [tracker.new(), *tracker.insert_many([{"x": 1}]), tracker.new_experiment().uuid]
    assert all(HEX_UUID.fullmatch(uuid) for uuid in made)


def test_a_missing_file_is_created_but_the_cli_says_it_is_missing(tmp_path):
    SQLiteTracker(tmp_path / "new.db").insert("run", {"a": 1})
    assert len(SQLiteTracker(tmp_path / "new.db")) == 1

    result = subprocess.run(
        [sys.executable, "-m", "tracker", "ls", "-d", "typo.db"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr == "error: database not found: typo.db\n"
    assert not (tmp_path / "typo.db").exists()
