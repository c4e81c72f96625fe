"""Databases written by the peers, sklearn-evaluation's ``SQLiteTracker`` and ploomber-engine's
``track_execution``, made here by running them: they open, read, render (their inline plots
too), and ``migrate`` moves those plots into ``blobs`` keeping every row."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, rows, write_script
from tracking_databases import user_version

from ploomber_like import DatabaseError, SQLiteTracker
from ploomber_like.store import SCHEMA_VERSION, move_inline_images

pytest.importorskip("sklearn_evaluation")
pytest.importorskip("ploomber_engine")

#: What migrating must keep of every row.
PEER_COLUMNS = "SELECT uuid, created, comment FROM experiments ORDER BY uuid"
STRICT_IMAGE = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/]+=*">')

SKLEARN_EVALUATION = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn_evaluation import SQLiteTracker

tracker = SQLiteTracker("se.db")
for accuracy in (0.8, 0.9):
    exp = tracker.new_experiment()
    exp.log("accuracy", accuracy)
    exp.log_dict({"model": "svc", "C": [1, 10]})
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [accuracy, 1, 2])
    exp.log_figure("scatter", fig)
    exp.comment(f"accuracy {accuracy}")
tracker.insert("plain", {"accuracy": 0.5})
"""

PLOOMBER_ENGINE_SCRIPT = """
# parameters
n = 3

import matplotlib.pyplot as plt
score = n / 10

score

plt.plot([1, n])
"""


def run_python(code: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def sklearn_evaluation_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The peer's database, made once (~8 s: sklearn-evaluation's imports) for the module."""
    folder = tmp_path_factory.mktemp("sklearn-evaluation")
    run_python(SKLEARN_EVALUATION, folder)
    return folder / "se.db"


@pytest.fixture
def sklearn_evaluation_db(sklearn_evaluation_made: Path, tmp_path: Path) -> Path:
    """A copy of it for one test to read and migrate."""
    return Path(shutil.copy(sklearn_evaluation_made, tmp_path / "se.db"))


@pytest.fixture
def ploomber_engine_db(tmp_path: Path) -> Path:
    write_script(tmp_path, PLOOMBER_ENGINE_SCRIPT, "fit.py")
    run_python(
        "from ploomber_engine.tracking import track_execution\n"
        "for n in (2, 5):\n"
        "    track_execution('fit.py', parameters={'n': n}, database='pe.db', quiet=True)\n",
        tmp_path,
    )
    return tmp_path / "pe.db"


def stored_plot(path: Path, uuid: str, key: str) -> str:
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT parameters FROM experiments WHERE uuid = ?"
        (text,) = conn.execute(sql, (uuid,)).fetchone()
    finally:
        conn.close()
    value = json.loads(text)[key]
    return value if isinstance(value, str) else json.dumps(value)


def test_sklearn_evaluation_database_reads_renders_and_migrates(sklearn_evaluation_db: Path):
    tracker = SQLiteTracker(sklearn_evaluation_db)
    runs = tracker.runs(sort="accuracy")
    assert [run["accuracy"] for run in runs] == [0.9, 0.8, 0.5]
    uuid = runs[0].uuid
    # What the peer really stores: base64 with line breaks inside an <img> tag.
    assert stored_plot(sklearn_evaluation_db, uuid, "scatter").startswith(
        '<img src="data:image/png;base64,'
    )
    page = tracker.query("SELECT uuid, json_extract(parameters, '$.scatter') AS scatter "
                         "FROM experiments", as_frame=False, render_plots=True)._repr_html_()
    assert len(STRICT_IMAGE.findall(page)) == 2
    # The peer keeps no source, output, series or files: each reads empty, not as an error.
    left = runs[0]
    assert (left.source, left.stdout, left.metrics, left.artifacts, left.notebook) == (
        None, "", [], [], None
    )
    before = rows(sklearn_evaluation_db, PEER_COLUMNS)

    result = move_inline_images(sklearn_evaluation_db)

    assert (result.runs, result.runs_changed, result.images_moved) == (3, 2, 2)
    assert rows(sklearn_evaluation_db, PEER_COLUMNS) == before
    run = SQLiteTracker(sklearn_evaluation_db).get(uuid)
    assert run["scatter"].data.startswith(b"\x89PNG")
    assert run["C"] == [1, 10] and run.comment_text == "accuracy 0.9"
    assert json.loads(stored_plot(sklearn_evaluation_db, uuid, "scatter"))["$blob"]
    page = SQLiteTracker(sklearn_evaluation_db).query(
        "SELECT uuid, json_extract(parameters, '$.scatter') AS scatter FROM experiments",
        as_frame=False, render_plots=True)._repr_html_()
    assert len(STRICT_IMAGE.findall(page)) == 2
    again = move_inline_images(sklearn_evaluation_db)
    assert again.images_moved == 0


def test_ploomber_engine_database_reads_renders_and_migrates_from_the_cli(
    ploomber_engine_db: Path, tmp_path: Path
):
    tracker = SQLiteTracker(ploomber_engine_db)
    runs = tracker.runs(sort="score", ascending=True)
    assert [(run["n"], run["score"]) for run in runs] == [(2, 0.2), (5, 0.5)]
    # ploomber-engine writes "base64, " with a space, and a self-closing tag.
    assert stored_plot(ploomber_engine_db, runs[0].uuid, "plot").startswith(
        '<img src="data:image/png;base64, '
    )
    assert len(STRICT_IMAGE.findall(runs[0]._repr_html_())) == 1
    shown = cli("show", runs[0].uuid, "-d", str(ploomber_engine_db), cwd=tmp_path)
    assert shown.returncode == 0 and "score" in shown.stdout
    before = rows(ploomber_engine_db, PEER_COLUMNS)

    done = cli("migrate", "-d", str(ploomber_engine_db), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "moved 2 inline image(s) out of 2 of 2 run(s)" in done.stdout
    assert rows(ploomber_engine_db, PEER_COLUMNS) == before
    exported = cli("show", runs[0].uuid, "-d", str(ploomber_engine_db), "--export", "plots",
                   cwd=tmp_path)
    assert exported.returncode == 0
    assert (tmp_path / "plots" / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_migrate_bad_input_exits_2_and_creates_nothing(tmp_path: Path):
    missing = cli("migrate", "-d", "nope.db", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: database not found")
    assert not (tmp_path / "nope.db").exists()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(DatabaseError, match="no experiments table"):
        move_inline_images(other)


def test_a_sklearn_evaluation_database_migrates_on_its_first_write(sklearn_evaluation_db: Path):
    uuid = SQLiteTracker(sklearn_evaluation_db).runs(sort="accuracy")[0].uuid
    before = rows(sklearn_evaluation_db, PEER_COLUMNS)
    assert user_version(sklearn_evaluation_db) == 0

    SQLiteTracker(sklearn_evaluation_db).insert("ours", {"accuracy": 0.7})

    assert user_version(sklearn_evaluation_db) == SCHEMA_VERSION
    # The named migration moved the peer's inline plot out of line; every row is kept.
    assert json.loads(stored_plot(sklearn_evaluation_db, uuid, "scatter"))["$blob"]
    after = rows(sklearn_evaluation_db, PEER_COLUMNS)
    assert [row for row in after if row["uuid"] != "ours"] == before
    assert SQLiteTracker(sklearn_evaluation_db).get(uuid)["scatter"].data.startswith(b"\x89PNG")
    # Nothing left for the explicit command.
    assert move_inline_images(sklearn_evaluation_db).images_moved == 0
