"""sklearn-evaluation's SQLiteTracker writing API works unchanged on our tracker."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from ploomber_like import (
    DatabaseError,
    ParameterError,
    SQLiteTracker,
    UnknownRunError,
    track_execution,
)


def stored(db, uuid):
    conn = sqlite3.connect(db)
    try:
        (text,) = conn.execute(
            "SELECT parameters FROM experiments WHERE uuid = ?", (uuid,)
        ).fetchone()
    finally:
        conn.close()
    return None if text is None else json.loads(text)


def test_insert_update_upsert_and_append(tmp_path):
    db = tmp_path / "anchor.db"
    tracker = SQLiteTracker(db)
    uuid = tracker.new()
    assert stored(db, uuid) is None  # NULL, as sklearn-evaluation's new() leaves it
    assert tracker.get(uuid) == {}

    tracker.insert("run-a", {"n_estimators": 10, "f1": np.float64(0.75)})
    assert stored(db, "run-a") == {"n_estimators": 10, "f1": 0.75}
    with pytest.raises(DatabaseError, match="already exists"):
        tracker.insert("run-a", {"n_estimators": 11})

    with pytest.raises(ParameterError, match="non-empty"):
        tracker.update("run-a", {"f1": 0.9})
    tracker.update("run-a", {"f1": 0.9}, allow_overwrite=True)  # replaces every value
    assert stored(db, "run-a") == {"f1": 0.9}
    tracker.update(uuid, {"accuracy": 0.8})
    assert stored(db, uuid) == {"accuracy": 0.8}
    with pytest.raises(UnknownRunError):
        tracker.update("missing", {"f1": 1.0})

    tracker.upsert("run-b", {"f1": 0.5})
    tracker.upsert("run-b", {"f1": 0.6, "recall": 0.4})
    assert stored(db, "run-b") == {"f1": 0.6, "recall": 0.4}

    tracker.upsert_append("run-c", {"loss": 1.0})
    tracker.upsert_append("run-c", {"loss": 0.5})
    tracker.upsert_append("run-b", {"f1": 0.7})
    assert stored(db, "run-c") == {"loss": [1.0, 0.5]}
    assert stored(db, "run-b")["f1"] == [0.6, 0.7]

    uuids = tracker.insert_many([{"x": 1}, {"x": 2}])
    assert [stored(db, u) for u in uuids] == [{"x": 1}, {"x": 2}]

    # The anchor's reading calls, and its SQL, on the same rows.
    assert tracker.get(uuid)["accuracy"] == 0.8
    assert tracker.get("run-a", unserialize_plots=False)["f1"] == 0.9
    assert tracker.get_parameters_keys(limit=2) == ["accuracy", "f1"]
    frame = tracker.query(
        "SELECT uuid, json_extract(parameters, '$.f1') AS f1 FROM experiments "
        "WHERE uuid = 'run-a'"
    )
    assert frame.loc["run-a", "f1"] == 0.9
    assert len(tracker) == 6


def test_bad_values_write_nothing(tmp_path):
    db = tmp_path / "anchor.db"
    tracker = SQLiteTracker(db)
    tracker.insert("run", {"a": 1})
    with pytest.raises(ParameterError, match="cannot log"):
        tracker.upsert("run", {"a": object()})
    with pytest.raises(ParameterError, match="expected a dict"):
        tracker.insert_many([{"ok": 1}, 5])
    assert stored(db, "run") == {"a": 1}
    assert len(tracker) == 1


@pytest.mark.kernel
def test_values_logged_by_hand_join_tracked_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "fit.py"
    script.write_text("# parameters\nalpha = 1\n\nscore = alpha / 4\nscore\n")
    record = track_execution(script, {"alpha": 2}, database="runs.db", quiet=True)
    tracker = SQLiteTracker("runs.db")
    tracker.upsert(record.uuid, {"reviewed": True})
    run = tracker.get(record.uuid)
    assert run.parameters == {"alpha": 2}
    assert run.values == {"score": 0.5, "reviewed": True}
    assert run.status == "ok"
