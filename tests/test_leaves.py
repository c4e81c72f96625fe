"""What a run leaves beyond its shown values: output scalars, files, live output, the executed
notebook, bounded output, and failures that point at the user's file."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import nbformat
import pytest
from conftest import cli, wait_for, write_script

from ploomber_like import SQLiteTracker, TrackerError, track_execution, track_grid
from ploomber_like.artifacts import LINK_SET_PREFIX, run_directory, write_file
from ploomber_like.capture import streams
from ploomber_like.capture.outputs import cap_text
from ploomber_like.capture.protocol import ScalarLines, split_stream
from ploomber_like.errors import ParameterError
from ploomber_like.kernels.processes import runs_folder
from ploomber_like.record import RecordOptions
from ploomber_like.scalars import DEFAULT_PATTERN, ScalarReader, scalar_pattern

TRAIN = """
# parameters
epochs = 3

import sys
for epoch in range(epochs):
    print(f"epoch: {epoch} loss: {1 / (epoch + 1):.3f} - val_loss: {2 / (epoch + 1):.3f}")
print("lr=0.01, momentum=0.9")
print("done", file=sys.stderr)
with open("model.txt", "w") as file:
    file.write(f"epochs={epochs}")
"""


# --- output scalars -------------------------------------------------------------------------


def test_keras_style_lines_give_series_with_steps():
    reader = ScalarReader(scalar_pattern(True))
    reader.feed("32/32 [====] - 1s 3ms/step - loss: 0.69 - accuracy: 0.52\n", 1.0)
    reader.feed("step=7, loss=0.5 acc: 0.9\nloss: 0.4\ntook 2ms at 12:30\nAccuracy: 95%", 2.0)
    points = [(p.key, p.step, p.value) for p in reader.finish(3.0)]
    assert points == [
        ("loss", 0, 0.69), ("accuracy", 0, 0.52),
        ("loss", 7, 0.5), ("acc", 7, 0.9), ("loss", 8, 0.4),
    ]


def test_a_bad_scalar_pattern_is_a_one_line_error(tmp_path):
    path = write_script(tmp_path, "x = 1\n")
    with pytest.raises(ParameterError, match="named groups"):
        track_execution(path, database=tmp_path / "runs.db", output_scalars=r"loss: (\d+)")
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.kernel
def test_output_scalars_files_and_notebook_of_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("unchanged")
    path = write_script(tmp_path, TRAIN, "train.py")
    record = track_execution(path, {"epochs": 2}, "runs.db", quiet=True, save_notebook=True)
    assert record.ok and record.workdir == str(tmp_path)

    tracker = SQLiteTracker("runs.db")
    metrics = tracker.metrics(record.uuid)
    assert list(metrics.columns) == ["uuid", "key", "step", "value"]
    loss = metrics[metrics.key == "loss"]
    assert loss.step.tolist() == [0, 1] and loss.value.tolist() == [1.0, 0.5]
    assert metrics[metrics.key == "lr"].value.tolist() == [0.01]
    # The last value of each series, next to the shown values, in plain SQL (as documented).
    conn = sqlite3.connect("runs.db")
    last = conn.execute(
        "SELECT e.uuid, json_extract(e.parameters, '$.epochs'), m.value FROM experiments e "
        "JOIN metrics m ON m.uuid = e.uuid AND m.key = 'loss' "
        "WHERE m.step = (SELECT max(step) FROM metrics WHERE uuid = e.uuid AND key = 'loss')"
    ).fetchall()
    assert last == [(record.uuid, 2, 0.5)]

    # Only what the run wrote is an artifact: not its inputs, not the database.
    artifacts = tracker.artifacts(record.uuid)
    assert [(a.path, a.size, a.stored) for a in artifacts] == [("model.txt", 8, True)]

    result = cli("show", record.uuid[:8], "-d", "runs.db", "--export", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "loss" in result.stdout and "val_loss" in result.stdout  # the series' summary
    assert "model.txt" in result.stdout and "done" in result.stdout  # files, stderr tail
    assert (tmp_path / "out" / "model.txt").read_text() == "epochs=2"
    notebook = nbformat.read(tmp_path / "out" / f"{record.uuid}.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert "injected-parameters" in notebook.cells[1].metadata["tags"]
    printed = "".join(
        o.get("text", "") for c in notebook.cells for o in c.outputs if o.output_type == "stream"
    )
    assert "epoch: 1 loss: 0.500" in printed


@pytest.mark.kernel
def test_the_exported_notebook_keeps_the_parameters_tag(tmp_path):
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# fit"),
        nbformat.v4.new_code_cell("epochs = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("epochs * 2"),
    ])
    path = tmp_path / "fit.ipynb"
    nbformat.write(source, path)
    record = track_execution(path, {"epochs": 3}, tmp_path / "runs.db", quiet=True,
                             save_notebook=True)
    assert record.ok, record.error
    done = cli("show", record.uuid, "-d", "runs.db", "--export", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    notebook = nbformat.read(tmp_path / "out" / f"{record.uuid}.ipynb", as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    assert tags == [["parameters"], ["injected-parameters"], []]


@pytest.mark.kernel
def test_no_output_scalars_and_a_user_pattern(tmp_path):
    path = write_script(tmp_path, 'print("loss: 1")\nprint("score -> 7")\n')
    off = track_execution(path, database=tmp_path / "runs.db", output_scalars=False, quiet=True)
    mine = track_execution(
        path, database=tmp_path / "runs.db", quiet=True,
        output_scalars=r"(?P<key>\w+) -> (?P<value>\d+)",
    )
    assert off.metrics == []
    assert [(p.key, p.value) for p in mine.metrics] == [("score", 7.0)]


@pytest.mark.kernel
def test_plots_in_the_saved_notebook_are_references_to_the_plot_blob(tmp_path):
    path = write_script(tmp_path, """
        import matplotlib.pyplot as plt

        def curve():
            plt.plot([1, 2, 3])

        curve()
    """)
    record = track_execution(path, database=tmp_path / "runs.db", save_notebook=True, quiet=True)
    conn = sqlite3.connect(tmp_path / "runs.db")
    blob = "SELECT data FROM blobs WHERE sha256 = ?"
    (stored,) = conn.execute(blob, (record.notebook,)).fetchone()
    png = record.values["curve"]["$blob"]
    assert f"ploomber-like-blob:{png}".encode() in stored and b"iVBOR" not in stored
    pngs = conn.execute("SELECT count(*) FROM blobs WHERE mimetype = 'image/png'").fetchone()
    assert pngs == (1,)


# --- files ----------------------------------------------------------------------------------


@pytest.mark.kernel
def test_parallel_sweep_runs_keep_their_own_files_and_read_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("10\n")
    write_script(tmp_path, """
        # parameters
        n = 1

        base = int(open("data.csv").read())
        with open("model.txt", "w") as file:
            file.write(str(base + n))
        print(f"score: {base + n}")
    """, "fit.py")
    summary = track_grid("fit.py", {"n": [1, 2, 3]}, "runs.db", workers=2, quiet=True)
    assert summary.ok == 3
    tracker = SQLiteTracker("runs.db")
    conn = sqlite3.connect("runs.db")
    contents = set()
    for uuid, _ in summary.runs:
        (artifact,) = tracker.artifacts(uuid)
        assert artifact.path == "model.txt"
        (data,) = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (artifact.sha256,))
        contents.add(data[0].decode())
        assert tracker.metrics(uuid).value.tolist() == [float(data[0].decode())]
    assert contents == {"11", "12", "13"}
    assert not (tmp_path / "model.txt").exists()  # nothing written in the shared folder


def _settle(folder):
    """Date ``folder`` an hour back, as a project folder not written during the sweep is."""
    an_hour_ago = time.time() - 3600
    os.utime(folder, (an_hour_ago, an_hour_ago))


def test_run_directories_link_each_entry_once_made_and_follow_the_folder(tmp_path):
    project = tmp_path / "project"
    (project / "inputs").mkdir(parents=True)
    (project / "data.csv").write_text("10\n")
    (project / ".git").mkdir()
    (project / "runs.db").write_text("")
    _settle(project)
    options = RecordOptions(linked_directory=str(project),
                            ignored_paths=(str(project / "runs.db"),))
    made = []

    def make():
        made.append(run_directory(options))
        return made[-1]

    try:
        first, second = make(), make()
        for directory in (first, second):
            assert sorted(os.listdir(directory)) == ["data.csv", "inputs"]
            for name in ("data.csv", "inputs"):
                assert os.readlink(directory / name) == str(project / name)
            assert (directory / "data.csv").read_text() == "10\n"
        # The links of a settled folder are made once and shared: a hard link costs no inode.
        assert (first / "data.csv").lstat().st_ino == (second / "data.csv").lstat().st_ino
        # A name a run removes or replaces is gone from its own directory only.
        (first / "data.csv").unlink()
        (first / "inputs").unlink()
        (first / "inputs").write_text("mine")
        assert (second / "data.csv").read_text() == "10\n"
        assert (second / "inputs").is_symlink()
        assert (project / "data.csv").read_text() == "10\n"
        # An entry added to the folder is in every directory made after.
        (project / "more.csv").write_text("1\n")
        recent = make()
        _settle(project)
        settled = make()
        for directory in (recent, settled):
            assert sorted(os.listdir(directory)) == ["data.csv", "inputs", "more.csv"]
            assert (directory / "more.csv").read_text() == "1\n"
        # A set removed from under the process (its runs' folder cleaned) is made again.
        (links,) = [path for path in runs_folder().glob(f"{LINK_SET_PREFIX}*")
                    if (path / "more.csv").is_symlink()
                    and os.readlink(path / "more.csv") == str(project / "more.csv")]
        shutil.rmtree(links)
        remade, shared = make(), make()
        assert sorted(os.listdir(remade)) == ["data.csv", "inputs", "more.csv"]
        assert (remade / "more.csv").lstat().st_ino == (shared / "more.csv").lstat().st_ino
    finally:
        for directory in made:
            shutil.rmtree(directory)


@pytest.mark.kernel
def test_sweep_runs_in_a_settled_folder_read_their_inputs_and_remove_only_their_own_links(
    tmp_path, monkeypatch
):
    project, databases = tmp_path / "project", tmp_path / "databases"
    project.mkdir()
    databases.mkdir()
    monkeypatch.chdir(project)
    (project / "data.csv").write_text("10\n")
    write_script(project, """
        # parameters
        n = 1

        import os
        base = int(open("data.csv").read())
        os.remove("data.csv")
        base + n
    """, "fit.py")
    _settle(project)  # its run directories share one set of links (run_directory)
    summary = track_grid("fit.py", {"n": [1, 2, 3, 4]}, databases / "runs.db", workers=2,
                         quiet=True)
    assert summary.ok == 4, summary
    shown = SQLiteTracker(databases / "runs.db").query(
        "SELECT parameters ->> '$.n' AS n, parameters ->> '$.\"base + n\"' AS v "
        "FROM experiments ORDER BY n"
    )
    assert shown.values.tolist() == [[1, 11], [2, 12], [3, 13], [4, 14]], shown
    assert (project / "data.csv").read_text() == "10\n"


@pytest.mark.kernel
def test_a_parallel_sweep_in_a_repository_leaves_only_the_database(tmp_path):
    repo, temp = tmp_path / "repo", tmp_path / "temp"
    repo.mkdir()
    temp.mkdir()
    (repo / "data.csv").write_text("10\n")
    (repo / "inputs").mkdir()
    (repo / "inputs" / "more.csv").write_text("1\n")
    write_script(repo, """
        # parameters
        n = 1

        base = int(open("data.csv").read())
        with open("model.txt", "w") as file:
            file.write(str(base + n))
        """, "fit.py")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "inputs"]):
        subprocess.run([*git, *args], cwd=repo, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "fit.py", "-g", "n=1,2,3", "-w", "2", "-q",
         "-d", "runs.db"],
        cwd=repo, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert done.returncode == 0, done.stderr
    left = {p.name for p in repo.iterdir()} - {".git", "fit.py", "data.csv", "inputs"}
    assert left <= {"runs.db", "runs.db-wal", "runs.db-shm"} and "runs.db" in left, left
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                            text=True, check=True)
    assert status.stderr == ""
    assert {line[3:] for line in status.stdout.splitlines()} <= {
        "runs.db", "runs.db-wal", "runs.db-shm"
    }
    assert not [p for p in temp.iterdir() if p.name.startswith("ploomber-like-")]
    # The files the runs wrote are stored with them.
    conn = sqlite3.connect(repo / "runs.db")
    stored = conn.execute(
        "SELECT data FROM artifacts JOIN blobs USING (sha256) WHERE path = 'model.txt'"
    ).fetchall()
    assert sorted(row[0] for row in stored) == [b"11", b"12", b"13"]


@pytest.mark.kernel
def test_files_over_the_limit_are_listed_not_stored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_script(tmp_path, 'open("big.bin", "wb").write(b"x" * 5000)\n')
    record = track_execution(path, database="runs.db", max_artifact_bytes=1000, quiet=True)
    (artifact,) = SQLiteTracker("runs.db").artifacts(record.uuid)
    assert (artifact.path, artifact.size, artifact.stored) == ("big.bin", 5000, False)
    assert "over the artifact limit" in record.stderr
    conn = sqlite3.connect("runs.db")
    stored = conn.execute("SELECT count(*) FROM blobs WHERE sha256 = ?", (artifact.sha256,))
    assert stored.fetchone() == (0,)


@pytest.mark.kernel
def test_files_a_run_writes_or_changes_at_any_depth_are_its_artifacts_and_links_never(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("outside")
    (tmp_path / "link.txt").symlink_to(outside)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "a.csv").write_text("1")
    (tmp_path / "data" / "b.csv").write_text("2")
    (tmp_path / ".git").mkdir()
    path = write_script(tmp_path, (
        "import os\n"
        "os.makedirs('out/nested', exist_ok=True)\n"
        "open('out/nested/model.txt', 'w').write('m')\n"
        "open('data/b.csv', 'a').write('3')\n"
        "open('.git/index', 'w').write('not an artifact')\n"
        "open('link.txt', 'a').write(' and more')\n"
    ))
    record = track_execution(path, database="runs.db", quiet=True)
    assert record.ok, record.error
    artifacts = SQLiteTracker("runs.db").artifacts(record.uuid)
    assert sorted(a.path for a in artifacts) == ["data/b.csv", "out/nested/model.txt"]


def test_export_never_writes_through_a_link_or_outside(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.txt").symlink_to(target)
    with pytest.raises(TrackerError):
        write_file(tmp_path / "out", "model.txt", b"new")
    with pytest.raises(TrackerError):
        write_file(tmp_path / "out", "../escape.txt", b"new")
    assert target.read_text() == "keep" and not (tmp_path / "escape.txt").exists()
    long_name = "k" * 300 + ".txt"
    written = write_file(tmp_path / "out", long_name, b"ok")
    assert written.read_bytes() == b"ok"
    assert written == write_file(tmp_path / "out", long_name, b"ok")  # the same short name


# --- live and bounded output ----------------------------------------------------------------


@pytest.mark.kernel
def test_a_single_cli_run_streams_its_output_unless_quiet(tmp_path):
    write_script(tmp_path, TRAIN, "train.py")
    loud = cli("train.py", "-d", "runs.db", cwd=tmp_path)
    quiet = cli("train.py", "-d", "runs.db", "-q", "--no-output-scalars", cwd=tmp_path)
    assert "epoch: 2 loss: 0.333" in loud.stdout and "done" in loud.stderr
    assert "epoch: 2" not in quiet.stdout and "done" not in quiet.stderr
    conn = sqlite3.connect(tmp_path / "runs.db")
    rows = conn.execute("SELECT uuid, stdout FROM experiments ORDER BY created").fetchall()
    assert all("epoch: 2 loss: 0.333" in stdout for _, stdout in rows)
    counts = [conn.execute("SELECT count(*) FROM metrics WHERE uuid = ?", (u,)).fetchone()[0]
              for u, _ in rows]
    assert counts == [8, 0]


HUGE_OUTPUT = """
import sys
print("loss: 1.5")
for i in range(300):
    sys.stdout.write(("y" * 99 + "\\n") * 1000)
    sys.stderr.write("e" * 10_000)
print("loss: 0.25")

print("the end")
"""


@pytest.mark.kernel
def test_huge_output_is_cut_in_the_kernel_to_the_stored_head_and_tail(tmp_path):
    write_script(tmp_path, HUGE_OUTPUT, "huge.py")
    run = cli("huge.py", "-d", "runs.db", cwd=tmp_path)  # not quiet: it echoes what it receives
    assert run.returncode == 0, run.stderr
    conn = sqlite3.connect(tmp_path / "runs.db")
    uuid, stdout, stderr, durations = conn.execute(
        "SELECT uuid, stdout, stderr, group_durations FROM experiments").fetchone()
    printed = "loss: 1.5\n" + ("y" * 99 + "\n") * 300_000 + "loss: 0.25\nthe end\n"
    # Cut in the first group by the kernel, stored as if the driver had seen all 30 MB.
    assert len(json.loads(durations)) >= 2
    assert stdout == cap_text(printed) and stdout.endswith("loss: 0.25\nthe end\n")
    assert stderr == cap_text("e" * 3_000_000)
    # The driver received the head and tail only, not 30 MB: its live output shows that much.
    assert len(run.stdout) < len(stdout) + 2_000 and "characters cut by" in run.stdout
    # Scalars of the lines that passed: the first line and one in the kept tail.
    points = conn.execute("SELECT step, value FROM metrics WHERE uuid = ? AND key = 'loss' "
                          "ORDER BY step", (uuid,)).fetchall()
    assert points == [(0, 1.5), (1, 0.25)]


CHATTY_LOOP = """
import sys
for i in range(3_000):
    print("y" * 99)
    if i % 10 == 0:
        print(f"loss: {i}")
        sys.stdout.write(f"epoch: {i} - val_lo")  # a line written in pieces
        sys.stdout.write(f"ss: {i / 2} - acc: 0.{i}\\n")
print("the end")
"""


@pytest.mark.kernel
def test_scalars_of_the_cut_middle_are_all_recorded(tmp_path):
    write_script(tmp_path, CHATTY_LOOP, "chatty.py")
    run = cli("chatty.py", "-d", "runs.db", cwd=tmp_path)  # not quiet: it echoes what it receives
    assert run.returncode == 0, run.stderr
    lines = []
    for i in range(3_000):
        lines.append("y" * 99)
        if i % 10 == 0:
            lines += [f"loss: {i}", f"epoch: {i} - val_loss: {i / 2} - acc: 0.{i}"]
    printed = "\n".join([*lines, "the end"]) + "\n"
    assert len(printed) > 300_000
    conn = sqlite3.connect(tmp_path / "runs.db")
    uuid, stdout = conn.execute("SELECT uuid, stdout FROM experiments").fetchone()
    # Stored stdout is still the head, the marker and the tail; the lines sent for their
    # scalars show neither there nor in the live output.
    assert stdout == cap_text(printed)
    assert "scalar lines" not in run.stdout and "\x02" not in run.stdout
    assert "characters cut by" in run.stdout and len(run.stdout) < len(stdout) + 2_000
    points = conn.execute("SELECT key, step, value FROM metrics WHERE uuid = ? "
                          "ORDER BY key, step", (uuid,)).fetchall()
    # Every point of every line, middle included: `loss: i` steps count 0, 1, 2...; on the
    # Keras-style lines (one written in two pieces) the epoch is the step.
    series = {key: [(s, v) for k, s, v in points if k == key]
              for key in ("loss", "val_loss", "acc")}
    assert series["loss"] == [(n, float(i)) for n, i in enumerate(range(0, 3_000, 10))]
    assert series["val_loss"] == [(i, i / 2) for i in range(0, 3_000, 10)]
    assert series["acc"] == [(i, float(f"0.{i}")) for i in range(0, 3_000, 10)]
    assert len(points) == 900


@pytest.mark.kernel
def test_scalars_of_the_cut_middle_follow_the_run_pattern(tmp_path):
    path = write_script(tmp_path, """
    for i in range(3_000):
        print("y" * 99)
        print(f"loss: {i}; score -> {i}")
    """)
    off = track_execution(path, database=tmp_path / "runs.db", output_scalars=False, quiet=True)
    mine = track_execution(
        path, database=tmp_path / "runs.db", quiet=True,
        output_scalars=r"(?P<key>\w+) -> (?P<value>\d+)",
    )
    assert off.metrics == [] and "characters cut by" in off.stdout
    assert [(p.key, p.step, p.value) for p in mine.metrics] == [
        ("score", i, float(i)) for i in range(3_000)
    ]


needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="reads memory sizes in /proc (Linux)"
)

# Two handshakes with the test (marker files in {folder}): the kernel names its process and
# waits, so both baselines are taken before it prints; after printing it waits while both peaks
# are read. The kernel takes each answer away, so a sweep's next run waits for its own.
BIG_OUTPUT = """
# parameters
n = 0

import os, sys, time
def handshake(said, answer):
    with open(said + ".part", "w") as file:
        file.write(str(os.getpid()))
    os.replace(said + ".part", said)
    deadline = time.monotonic() + 600
    while not os.path.exists(answer) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.unlink(answer)
handshake({folder!r} + "/started", {folder!r} + "/go")

print("start")
for _ in range(200):
    sys.stdout.write("x" * 999_999 + "\\n")
print("the end")

handshake({folder!r} + "/printed", {folder!r} + "/measured")
"""
BIG_PRINTED = "start\n" + ("x" * 999_999 + "\n") * 200 + "the end\n"
BIG_RUNS = {
    "cli": ["-m", "tracker", "big.py", "-d", "runs.db"],
    "cli -q": ["-m", "tracker", "big.py", "-d", "runs.db", "-q"],
    "track_execution": [
        "-c",
        "from ploomber_like import track_execution; track_execution('big.py', None, 'runs.db')",
    ],
    # Two runs: what the driver kept of the first would add to the second's.
    "sweep": ["-m", "tracker", "big.py", "-g", "n=1,2", "-w", "1", "-d", "runs.db"],
}


@pytest.mark.kernel
@needs_proc
@pytest.mark.parametrize("how", BIG_RUNS)
def test_200_mb_of_output_cost_neither_driver_nor_kernel_memory(tmp_path, how):
    write_script(tmp_path, BIG_OUTPUT.format(folder=str(tmp_path)), "big.py")
    runs = 2 if how == "sweep" else 1
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        driver = subprocess.Popen([sys.executable, *BIG_RUNS[how]], cwd=tmp_path, stdout=out,
                                  stderr=err)
    try:
        for _ in range(runs):
            kernel = int(wait_for_marker(tmp_path / "started", driver))
            baseline = {kernel: memory_kib(kernel, "VmRSS")}
            baseline.setdefault(driver.pid, memory_kib(driver.pid, "VmRSS"))
            (tmp_path / "go").touch()
            wait_for_marker(tmp_path / "printed", driver)
            # VmHWM: the highest the process was ever resident, so no peak is missed.
            grown = {pid: memory_kib(pid, "VmHWM") - baseline[pid] for pid in baseline}
            (tmp_path / "measured").touch()
            growth = f"driver +{grown[driver.pid]} KiB, kernel +{grown[kernel]} KiB"
            assert max(grown.values()) < 100 * 1024, growth
        assert driver.wait(timeout=300) == 0, (tmp_path / "err.txt").read_text()
    finally:
        driver.kill()
    conn = sqlite3.connect(tmp_path / "runs.db")
    stored = [stdout for (stdout,) in conn.execute("SELECT stdout FROM experiments")]
    assert stored == [cap_text(BIG_PRINTED)] * runs
    if how == "cli":  # the terminal shows the head, the cut marker and the tail
        assert cap_text(BIG_PRINTED) in (tmp_path / "out.txt").read_text()


@pytest.mark.kernel
@needs_proc
def test_a_kernel_holds_no_copy_of_the_output_of_earlier_groups(track):
    # Each group's output is cut to 2 x 200 kB; IPython 9 would keep all 100 groups' copies.
    resident = "int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    chatty = 'sys.stdout.write("x" * 1_000_000);\nsys.stderr.write("e" * 1_000_000);'
    script = "\n\n".join([f"import sys\nbefore = {resident}", *[chatty] * 100,
                          f"grown_kib = {resident} - before\ngrown_kib"])
    record = track(script, quiet=True).record
    assert record.ok and record.values == {"grown_kib": record.values["grown_kib"]}
    assert record.values["grown_kib"] < 20 * 1024


@pytest.mark.kernel
def test_values_sent_after_the_run_replied_are_kept(track):
    # A loaded kernel's I/O thread can send what a run showed after the run's reply: its flush
    # gives up after a while. Here the thread sleeps 6 s and the flush gives up at once.
    script = """
import time
import ipykernel.iostream
ipykernel.iostream.OutStream.flush_timeout = 0.1
get_ipython().kernel.iopub_thread.io_loop.add_callback(time.sleep, 6)
late = 2
late
"""
    record = track(script, quiet=True).record
    assert record.ok and record.values == {"late": 2}


def wait_for_marker(path, driver: subprocess.Popen) -> str:
    """The text of the marker file at ``path`` once it exists; the file is taken away."""

    def written() -> bool:
        assert driver.poll() is None, f"the run ended early: {driver.returncode}"
        return path.exists()

    wait_for(written, what=path.name)
    text = path.read_text()
    path.unlink()
    return text


def memory_kib(pid: int, field: str) -> int:
    """A process's ``VmRSS`` (resident now) or ``VmHWM`` (highest resident), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def test_the_kernel_sends_cut_scalar_lines_up_to_the_point_limit(monkeypatch):
    monkeypatch.setattr(streams, "MAX_POINTS", 5)
    written = io.StringIO()
    stream = streams.BoundedStream(written, limit=100)
    stream.read_scalars(DEFAULT_PATTERN)
    for i in range(100):
        stream.write(f"loss: {i}\n" + "y" * 30 + "\n")
    stream.end_cell()
    blocks = [p.text for p in split_stream(written.getvalue()) if isinstance(p, ScalarLines)]
    assert "".join(blocks).splitlines() == [f"loss: {i}" for i in range(2, 7)]


@pytest.mark.kernel
def test_an_output_under_the_limit_is_stored_whole(tmp_path):
    # Past its first half the kernel holds a group's output until the group ends.
    path = write_script(tmp_path, 'print("a\\tb", end="")\nprint(" c" * 75_000)\nprint(1)\n')
    record = track_execution(path, database=tmp_path / "runs.db", quiet=True)
    assert record.stdout == "a\tb" + " c" * 75_000 + "\n1\n"


@pytest.mark.kernel
def test_a_large_text_value_is_stored_out_of_line(tmp_path):
    path = write_script(tmp_path, 'big = "ab" * 1_000_000\nbig\n')
    record = track_execution(path, database=tmp_path / "runs.db", quiet=True)
    conn = sqlite3.connect(tmp_path / "runs.db")
    (parameters,) = conn.execute("SELECT parameters FROM experiments").fetchone()
    assert len(parameters) < 2_000
    reference = json.loads(parameters)["big"]
    assert reference["mimetype"] == "text/plain" and reference["preview"].startswith("abab")
    blob = "SELECT data FROM blobs WHERE sha256 = ?"
    (data,) = conn.execute(blob, (reference["$blob"],)).fetchone()
    assert len(data) == 2_000_000 and record.ok


# --- failures point at the file -------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["fit.py", "percent.py"])
def test_a_failure_names_the_file_and_line(tmp_path, name):
    header = "# %%\n" if name == "percent.py" else ""
    cell = "# %%\n" if name == "percent.py" else "\n"
    text = (
        f"{header}# parameters\nx = 0\n{cell}"
        f"def divide(a):\n    return 1 / a\n{cell}"
        f"y = 1\ndivide(x)\n"
    )
    path = tmp_path / name
    path.write_text(text)
    record = track_execution(path, database=tmp_path / "runs.db", quiet=True)
    lines = text.splitlines()
    inner = lines.index("    return 1 / a") + 1
    outer = lines.index("divide(x)") + 1
    assert record.error.location == f"{path}:{inner}"
    assert f"File {path}:{outer}" in record.error.traceback
    assert f"File {path}:{inner}, in divide(a)" in record.error.traceback
    assert f"----> {inner}     return 1 / a" in record.error.traceback
    assert record.error.summary().startswith("ZeroDivisionError in group 3 (")
    row = sqlite3.connect(tmp_path / "runs.db").execute(
        "SELECT error_location FROM experiments"
    ).fetchone()
    assert row == (f"{path}:{inner}",)


FAULTS = """\
import os
import sys
import time

# parameters
kind = "exit"

a = 1
a

if kind == "exit":
    b = 2
    sys.exit(3)  # exit
if kind == "os_exit":
    os._exit(4)  # os_exit
if kind == "segfault":
    import ctypes
    ctypes.string_at(0)  # segfault
if kind == "timeout":
    time.sleep(120)  # timeout
"""


@pytest.mark.kernel
@pytest.mark.parametrize(
    "kind, status", [("exit", "failed"), ("os_exit", "crashed"), ("segfault", "crashed"),
                     ("timeout", "timeout")],
)
def test_exits_crashes_and_timeouts_name_the_statements_line(tmp_path, kind, status):
    path = tmp_path / "faults.py"
    path.write_text(FAULTS)
    record = track_execution(path, {"kind": kind}, tmp_path / "runs.db", timeout=5, quiet=True)
    assert record.status == status
    line = FAULTS.splitlines().index(next(x for x in FAULTS.splitlines() if f"# {kind}" in x))
    assert record.error.location == f"{path}:{line + 1}", record.error.traceback
    assert record.error.group == 3  # still the group's index; its first line is line 11


@pytest.mark.kernel
def test_input_fails_at_once_rather_than_waiting_for_an_answer(tmp_path):
    # No one can answer a run's input(): it raises, as under nbclient, instead of waiting
    # for the timeout (a run's client has no stdin channel).
    path = write_script(tmp_path, "a = 1\na\n\nname = input('name? ')\n")
    record = track_execution(path, database=tmp_path / "runs.db", timeout=120, quiet=True)
    assert record.status == "failed"
    assert record.error.type == "StdinNotImplementedError"
    assert record.values == {"a": 1}


@pytest.mark.kernel
def test_a_notebook_failure_names_cell_and_line(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("x = 0"),
        nbformat.v4.new_code_cell("y = 1\n1 / x"),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook, path)
    record = track_execution(path, database=tmp_path / "runs.db", quiet=True)
    assert record.error.location == f"{path}:cell 3, line 2"
    assert f"File {path}:cell 3, line 2" in record.error.traceback
    assert "group 2" in record.error.summary()


@pytest.mark.kernel
def test_show_prints_the_failing_group_counted_from_1(tmp_path):
    write_script(tmp_path, "a = 1\n\nb = 0\n\na / b\n", "fail.py")
    result = cli("fail.py", "-d", "runs.db", "-q", cwd=tmp_path)
    assert result.returncode == 1
    assert "ZeroDivisionError in group 3 (fail.py:5)" in result.stdout
    uuid = sqlite3.connect(tmp_path / "runs.db").execute("SELECT uuid FROM experiments").fetchone()
    shown = cli("show", uuid[0], "-d", "runs.db", cwd=tmp_path)
    assert "in group 3:" in shown.stdout and "File fail.py:5" in shown.stdout
    assert os.path.exists(tmp_path / "runs.db")
