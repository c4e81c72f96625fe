"""What a run read: the files it opened for reading and the user modules it imported, recorded
by the kernel's audit hook, hashed with a cache, and used by resume, ``diff``, ``show``,
``rerun`` and the MLflow export."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, write_script

from ploomber_like import SQLiteTracker, track_execution
from ploomber_like.caches import cache_home
from ploomber_like.capture.inputs import ReadRecorder
from ploomber_like.inputs import file_hash

#: Reads data.csv (with open and with numpy), imports utils.py next to it, a stdlib module and
#: a site-packages one; writes a file and reads it back; reads a file outside its folders.
SCRIPT = """
# parameters
factor = 1
outside = ""

import csv
import json
import numpy as np
from utils import scale

with open("data.csv") as file:
    rows = list(csv.reader(file))
column = np.loadtxt("data.csv", delimiter=",", skiprows=1, usecols=0)
with open("out.txt", "w") as file:
    file.write(json.dumps(rows))
with open("out.txt") as file:
    written = file.read()
if outside:
    with open(outside) as file:
        file.read()
total = scale(float(column.sum())) * factor
total
"""

UTILS = "def scale(x):\n    return 2 * x\n"
DATA = "a,b\n1,2\n3,4\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "utils.py").write_text(UTILS)
    (tmp_path / "data.csv").write_text(DATA)
    write_script(tmp_path, SCRIPT, "fit.py")
    return tmp_path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.kernel
@pytest.mark.parametrize("preload", [True, False], ids=["forked", "fresh"])
def test_a_run_records_the_files_it_read_and_the_user_modules_it_imported(
    project: Path, tmp_path_factory: pytest.TempPathFactory, preload: bool
):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.txt"
    elsewhere.write_text("not an input")

    record = track_execution(
        project / "fit.py", {"outside": str(elsewhere)}, "runs.db", quiet=True, preload=preload
    )

    assert record.ok, record.error
    inputs = SQLiteTracker("runs.db").inputs(record.uuid[:8])
    assert list(inputs.columns) == ["kind", "path", "size", "sha256"]
    # Not numpy's or the stdlib's files, not the file it wrote (out.txt), not one outside.
    assert inputs.values.tolist() == [
        ["file", "data.csv", len(DATA), sha256(project / "data.csv")],
        ["module", "utils.py", len(UTILS), sha256(project / "utils.py")],
    ]

    shown = cli("show", record.uuid[:8], "-d", "runs.db", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "data.csv" in shown.stdout and "utils.py" in shown.stdout
    assert sha256(project / "data.csv")[:12] in shown.stdout


@pytest.mark.kernel
def test_a_changed_module_or_data_file_reruns_resumed_points_and_diff_names_it(project: Path):
    sweep = ("fit.py", "-g", "factor=1,2", "-w", "2", "-d", "runs.db")
    first = cli(*sweep, cwd=project)
    assert first.returncode == 0, first.stderr
    again = cli(*sweep, cwd=project)
    assert "skipping 2 of 2 points" in again.stdout + again.stderr

    (project / "utils.py").write_text(UTILS.replace("2 * x", "3 * x"))
    edited = cli(*sweep, cwd=project)
    assert edited.returncode == 0, edited.stderr
    assert "utils.py: changed" in edited.stdout + edited.stderr
    assert "skipping" not in edited.stdout + edited.stderr

    (project / "data.csv").write_text(DATA.replace("3,4", "5,4"))
    replaced = cli(*sweep, cwd=project)
    assert "data.csv: changed" in replaced.stdout + replaced.stderr
    assert "skipping" not in replaced.stdout + replaced.stderr

    runs = SQLiteTracker("runs.db").runs(where="json_extract(parameters, '$.factor') = 1")
    newest, middle, oldest = [run.uuid for run in runs]  # most recent first
    assert len(SQLiteTracker("runs.db").runs()) == 6
    diff = cli("diff", oldest[:8], middle[:8], "-d", "runs.db", cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert "utils.py: changed" in diff.stdout and "data.csv" not in diff.stdout
    diff = cli("diff", oldest[:8], newest[:8], "-d", "runs.db", cwd=project)
    assert "utils.py: changed" in diff.stdout and "data.csv: changed" in diff.stdout
    assert SQLiteTracker("runs.db").diff(middle, newest).inputs[0].path == "data.csv"


@pytest.mark.kernel
def test_rerun_warns_when_an_input_changed_since_the_run(project: Path):
    record = track_execution(project / "fit.py", None, "runs.db", quiet=True)
    unchanged = cli("rerun", record.uuid[:8], "-d", "runs.db", cwd=project)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "inputs changed" not in unchanged.stderr

    (project / "data.csv").write_text(DATA.replace("3,4", "5,4"))
    done = cli("rerun", record.uuid[:8], "-d", "runs.db", cwd=project)

    assert f"warning: inputs changed since run {record.uuid[:8]}: data.csv: changed" in done.stderr
    assert done.returncode == 1  # and the value it computed from them differs


@pytest.mark.kernel
def test_the_mlflow_export_logs_the_inputs(project: Path):
    mlflow = pytest.importorskip("mlflow")
    record = track_execution(project / "fit.py", None, "runs.db", quiet=True)
    uri = f"sqlite:///{project / 'mlflow.db'}"

    done = cli("export", "mlflow", "--tracking-uri", uri, "-d", "runs.db", cwd=project)

    assert done.returncode == 0, done.stderr
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("ploomber_like")
    [run] = client.search_runs([experiment.experiment_id])
    logged = {
        d.dataset.name: (d.dataset.digest, [t.value for t in d.tags])
        for d in run.inputs.dataset_inputs
    }
    assert logged == {
        "data.csv": (sha256(project / "data.csv")[:32], ["file"]),
        "utils.py": (sha256(project / "utils.py")[:32], ["module"]),
    }
    assert SQLiteTracker("runs.db").inputs(record.uuid).path.tolist() == ["data.csv", "utils.py"]


def test_a_file_is_hashed_once_per_size_and_modification_time(tmp_path: Path):
    data = tmp_path / "big.bin"
    data.write_bytes(b"a" * 1000)
    stamp = data.stat()
    size, digest = file_hash(data)
    assert (size, digest) == (1000, hashlib.sha256(b"a" * 1000).hexdigest())

    # Same size and modification time: another process reads the hash from the disk cache
    # rather than the file (which it would find changed).
    data.write_bytes(b"b" * 1000)
    os.utime(data, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    code = "import sys; from ploomber_like.inputs import file_hash; print(file_hash(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(data)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == repr((1000, digest))
    conn = sqlite3.connect(cache_home() / "file_hashes.db")
    try:
        assert conn.execute(
            "SELECT sha256 FROM hashes WHERE path = ?", (str(data.resolve()),)
        ).fetchone() == (digest,)
    finally:
        conn.close()

    # A new modification time: hashed again.
    os.utime(data, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert file_hash(data) == (1000, hashlib.sha256(b"b" * 1000).hexdigest())
    assert file_hash(tmp_path / "missing.csv") == (None, None)


def test_the_recorder_keeps_reads_under_its_folders_only(tmp_path: Path):
    """The audit hook's filter, fed events as the interpreter sends them (no kernel)."""
    (tmp_path / "data.csv").write_text(DATA)
    (tmp_path / "log.txt").write_text("")
    (tmp_path / "utils.py").write_text(UTILS)
    library = tmp_path / "lib"
    library.mkdir()
    (library / "pkg.py").write_text("")
    recorder = ReadRecorder()
    recorder.audit("open", (str(tmp_path / "data.csv"), "r", os.O_RDONLY))
    assert recorder.opened == {}  # not active: a template's, or after the run

    recorder.active = True
    recorder.audit("open", (str(tmp_path / "data.csv"), "rb", os.O_RDONLY))
    recorder.audit("open", (os.fsencode(tmp_path / "utils.py"), "r", os.O_RDONLY))
    recorder.audit("open", (str(tmp_path / "log.txt"), None, os.O_RDONLY))
    recorder.audit("open", (str(tmp_path / "log.txt"), "a", os.O_WRONLY | os.O_APPEND))
    recorder.audit("open", (str(library / "pkg.py"), "r", os.O_RDONLY))
    recorder.audit("open", ("/etc/hostname", "r", os.O_RDONLY))
    recorder.audit("open", (3, "r", os.O_RDONLY))
    recorder.audit("exec", ("anything",))

    found = recorder.inputs(
        [str(tmp_path)], {"utils": str(tmp_path / "utils.py")}, [str(library)]
    )
    assert found == [
        ("module", str((tmp_path / "utils.py").resolve())),
        ("file", str((tmp_path / "data.csv").resolve())),
    ]


def test_inputs_are_real_paths_through_linked_folders_and_files(tmp_path: Path):
    # Folders are resolved once each, then each file: a link at either level is followed.
    project, library = tmp_path / "project", tmp_path / "library"
    (project / "data").mkdir(parents=True)
    library.mkdir()
    (project / "data" / "a.csv").write_text(DATA)
    (project / "b.csv").write_text(DATA)
    (project / "e.csv").write_text(DATA)
    (library / "c.csv").write_text(DATA)
    (tmp_path / "linked").symlink_to(project / "data")
    (library / "b_link.csv").symlink_to(project / "b.csv")
    (project / "c_link.csv").symlink_to(library / "c.csv")
    recorder = ReadRecorder()
    recorder.active = True
    for path in ["linked/a.csv", "library/b_link.csv", "project/c_link.csv", "linked/../e.csv"]:
        recorder.audit("open", (str(tmp_path / path), "r", os.O_RDONLY))

    found = recorder.inputs([str(project)], {}, [str(library)])

    # `linked/..` is project/, the parent of the link's target, as the system resolves it.
    assert found == [
        ("file", str((project / "data" / "a.csv").resolve())),
        ("file", str((project / "b.csv").resolve())),
        ("file", str((project / "e.csv").resolve())),
    ]


@pytest.mark.kernel
def test_settings_read_from_a_home_folder_the_run_works_in_are_not_inputs(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HOME", str(project))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (project / ".config").mkdir()
    (project / ".config" / "tool.cfg").write_text("verbose = 1")
    write_script(project, (
        "import os\n\n"
        "with open(os.path.expanduser('~/.config/tool.cfg')) as file:\n"
        "    settings = file.read()\n"
        "with open('data.csv') as file:\n"
        "    data = file.read()\n"
    ), "tool.py")

    record = track_execution(project / "tool.py", None, "runs.db", quiet=True, preload=False)

    assert record.ok, record.error
    assert [i.path for i in record.inputs] == ["data.csv"]
