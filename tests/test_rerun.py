"""``rerun UUID``: the stored source, the stored parameters, the original directory; exit 0/1/2."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pytest
from conftest import cli, read_row, write_script

from ploomber_like import SQLiteTracker, TrackerError, rerun, track_execution
from ploomber_like.reproduction import ReproductionWarning, compare_values

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
# parameters
n = 3
label = "a"

from pathlib import Path
import matplotlib.pyplot as plt

total = n * 1.5 + len(Path("data.txt").read_text())
total
label
name = Path(__file__).name
name
plt.plot([1, n])
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the script and the data file it reads by a relative path."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    folder = tmp_path / "project"
    folder.mkdir()
    write_script(folder, SCRIPT, "train.py")
    (folder / "data.txt").write_text("four")
    return folder


def count_rows(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        return conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.kernel
def test_rerun_runs_the_stored_source_from_the_original_directory(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(project)
    database = tmp_path / "runs.db"
    original = track_execution("train.py", {"n": 4}, database, quiet=True)
    assert original.values["total"] == 10.0
    # The file changes on disk afterwards, and we rerun from elsewhere: neither matters.
    (project / "train.py").write_text("total = 0\ntotal\n")
    monkeypatch.chdir(tmp_path)

    result = rerun(original.uuid[:8], database)

    assert result.reproduced and result.differences == []
    assert result.original == original.uuid
    assert result.record.values["total"] == 10.0
    assert result.record.values["name"] == "train.py"  # __file__ is the original path
    assert [o.key for o in result.outputs] == ["plot"]
    row = read_row(database, result.record.uuid)
    assert row["reproduces"] == original.uuid
    assert row["parameters"]["n"] == 4 and row["parameters"]["label"] == "a"
    assert row["source_sha256"] == read_row(database, original.uuid)["source_sha256"]
    assert row["environment"]["cwd"] == str(project)


@pytest.mark.kernel
def test_rerun_lists_values_that_differ_and_exits_1(project: Path, tmp_path: Path):
    database = tmp_path / "runs.db"
    assert cli("train.py", "-p", "n=2", "-d", str(database), "-q", cwd=project).returncode == 0
    (uuid,) = [run.uuid for run in SQLiteTracker(database).runs()]
    (project / "data.txt").write_text("a longer text")  # the script reads it: total changes

    done = cli("rerun", uuid, "-d", str(database), cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert "total" in done.stdout and "7.0" in done.stdout and "16.0" in done.stdout
    assert "1 value(s) differ" in done.stdout
    assert count_rows(database) == 2


@pytest.mark.kernel
def test_rerun_exits_0_when_everything_reproduces(project: Path, tmp_path: Path):
    database = tmp_path / "runs.db"
    assert cli("train.py", "-d", str(database), "-q", cwd=project).returncode == 0
    (uuid,) = [run.uuid for run in SQLiteTracker(database).runs()]

    done = cli("rerun", uuid[:8], "-d", str(database), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 value(s) differ" in done.stdout and "outputs: 1 identical" in done.stdout


@pytest.mark.kernel
def test_rerun_warns_when_the_directory_is_gone_and_runs_from_here(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(project)
    database = tmp_path / "runs.db"
    original = track_execution("train.py", None, database, quiet=True)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(project, elsewhere)
    shutil.rmtree(project)
    monkeypatch.chdir(elsewhere)

    with pytest.warns(ReproductionWarning, match="no longer exists: running from"):
        result = rerun(original.uuid, database)

    assert result.reproduced
    assert read_row(database, result.record.uuid)["environment"]["cwd"] == str(elsewhere)


@pytest.mark.kernel
def test_rerun_names_python_and_package_versions_that_differ(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(project)
    database = tmp_path / "runs.db"
    original = track_execution("train.py", None, database, quiet=True)
    assert "matplotlib" in original.environment.packages
    # As if recorded on another machine.
    environment = {**original.environment_dict(), "python": "3.9.0"}
    environment["packages"] = {**environment["packages"], "matplotlib": "0.1"}
    conn = sqlite3.connect(database)
    conn.execute("UPDATE experiments SET environment = ? WHERE uuid = ?",
                 (json.dumps(environment), original.uuid))
    conn.commit()
    conn.close()

    with pytest.warns(ReproductionWarning) as caught:
        result = rerun(original.uuid, database)

    (message,) = [str(w.message) for w in caught]
    assert "python" in message and "(recorded 3.9.0)" in message
    assert "matplotlib" in message and "(recorded 0.1)" in message
    assert result.warnings == [message]


@pytest.mark.kernel
def test_rerun_of_a_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("k = 2", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("# squares"),
        nbformat.v4.new_code_cell("squares = [i * i for i in range(k)]\nsquares"),
    ])
    nbformat.write(notebook, "nb.ipynb")
    database = tmp_path / "runs.db"
    original = track_execution("nb.ipynb", {"k": 4}, database, quiet=True)
    Path("nb.ipynb").unlink()

    result = rerun(original.uuid, database)

    assert result.reproduced
    assert result.record.values["squares"] == [0, 1, 4, 9]


def test_rerun_bad_input_exits_2_and_writes_nothing(tmp_path: Path):
    database = tmp_path / "runs.db"
    tracker = SQLiteTracker(database)
    hand_logged = tracker.new()  # the anchor's API: no source to rerun

    unknown = cli("rerun", "nope", "-d", str(database), cwd=tmp_path)
    no_source = cli("rerun", hand_logged, "-d", str(database), cwd=tmp_path)
    missing_db = cli("rerun", "abc", "-d", str(tmp_path / "none.db"), cwd=tmp_path)

    for done in (unknown, no_source, missing_db):
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "no stored source" in no_source.stderr
    assert count_rows(database) == 1
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(TrackerError, match="rtol"):
        rerun(hand_logged, database, rtol=-1)


def test_compare_values_numbers_within_rtol_strings_exactly_outputs_apart():
    plot = {"$blob": "a" * 64, "mimetype": "image/png"}
    redrawn = {"$blob": "b" * 64, "mimetype": "image/png"}
    recorded = {"f1": 0.5, "n": 3, "name": "x", "curve": [1.0, 2.0], "flag": True, "roc": plot}
    again = {"f1": 0.5 * (1 + 1e-12), "n": 3, "name": "x ", "curve": [1.0, 2.5], "flag": 1,
             "roc": redrawn, "extra": None}

    differences, outputs = compare_values(recorded, again, rtol=1e-9)

    assert [d.key for d in differences] == ["name", "curve", "flag", "extra"]
    assert [(o.key, o.identical) for o in outputs] == [("roc", False)]
    strict, _ = compare_values(recorded, again, rtol=0)
    assert "f1" in [d.key for d in strict]


@pytest.mark.kernel
def test_rerun_of_the_example_sweep_reproduces_every_number(tmp_path: Path):
    """The README's sweep, smaller: every ok run of fit.py reruns to the same numbers."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    database = tmp_path / "experiments.db"
    sweep = cli("examples/fit.py", "-g", "max_depth=3,None", "-p", "n_estimators=5",
                "-p", "n_samples=600", "-d", str(database), "-q", "-w", "2", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    runs = SQLiteTracker(database).runs(status="ok")
    assert len(runs) == 2

    for run in runs:
        done = cli("rerun", run.uuid, "-d", str(database), cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 value(s) differ" in done.stdout
    reruns = SQLiteTracker(database).query(
        "SELECT reproduces FROM experiments WHERE reproduces IS NOT NULL", as_frame=False
    )
    assert sorted(row[0] for row in reruns.rows) == sorted(run.uuid for run in runs)


@pytest.mark.kernel
def test_rerun_records_the_way_the_original_run_was_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Series, the saved notebook and the artifact limit come from the original run's options:
    before, a rerun recorded with the defaults (series on, no notebook, 100 MB)."""
    write_script(tmp_path, """
        # parameters
        n = 2

        from pathlib import Path
        print(f"loss: {n}")
        Path("out.txt").write_text("x" * 50)
        n
        """, "leaves.py")
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "leaves.db"
    original = track_execution(
        tmp_path / "leaves.py", {"n": 3}, database, quiet=True, output_scalars=False,
        save_notebook=True, max_artifact_bytes=10,
    )
    assert original.ok and not original.metrics and original.notebook is not None
    assert [a.stored for a in original.artifacts] == [False]

    again = rerun(original.uuid, database, quiet=True)

    assert again.reproduced, again.differences
    record = again.record
    assert record.metrics == [] and record.notebook is not None
    assert [(a.path, a.stored) for a in record.artifacts] == [("out.txt", False)]
    assert read_row(database, record.uuid)["recording_options"] == read_row(
        database, original.uuid
    )["recording_options"] == '{"output_scalars": false, "save_notebook": true, ' \
        '"max_artifact_bytes": 10}'
