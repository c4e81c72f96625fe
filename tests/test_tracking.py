"""track_execution: inputs, parameters, execution context, the stored record, failures."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from conftest import run, write_script

from ploomber_like import InputFileError, ParameterError, track_execution
from ploomber_like.caches import cache_home
from ploomber_like.notebook import prepare_run
from ploomber_like.record import git_state
from ploomber_like.tracking import TrackingWarning

# --- inputs and the parameters cell ---------------------------------------------------------

LIGHT = """
# Notes about the script: a markdown cell, never executed.

before = globals().get("n", "unset")
before

# parameters
n = 1

doubled = n * 2
doubled
"""

PERCENT = """
# %% [markdown]
# Notes about the script: a markdown cell, never executed.

# %%
before = globals().get("n", "unset")
before

# %% tags=["parameters"]
n = 1

# %%
doubled = n * 2
doubled
"""


def _notebook_text() -> str:
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("Notes: `raise ValueError()` is not code."),
            nbformat.v4.new_code_cell('before = globals().get("n", "unset")\nbefore'),
            nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("doubled = n * 2\ndoubled"),
        ]
    )
    return nbformat.writes(notebook)


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["light.py", "percent.py", "notebook.ipynb"])
def test_formats_parameters_cell_and_injection(tmp_path, name):
    text = {"light.py": LIGHT, "percent.py": PERCENT}.get(name) or _notebook_text()
    with pytest.warns(TrackingWarning, match=r"injected anyway: extra$"):
        tracked = run(tmp_path, text, {"n": 3, "extra": "x"}, name=name)
    assert tracked.record.status == "ok", tracked.record.error
    # Injected right after the parameters cell: the group before it did not see the value.
    assert tracked.stored["before"] == "unset"
    assert tracked.stored["doubled"] == 6
    assert tracked.record.parameters == {"n": 3, "extra": "x"}
    # Markdown is skipped: three code groups ran.
    assert len(tracked.record.group_durations) == 3


@pytest.mark.kernel
def test_no_parameters_cell_injects_first_and_warns(track):
    with pytest.warns(TrackingWarning, match="no parameters cell"):
        tracked = track("doubled = n * 2\ndoubled\n", {"n": 4})
    assert tracked.stored["doubled"] == 8
    assert tracked.stored["n"] == 4


@pytest.mark.kernel
def test_a_parameter_shown_in_the_parameters_cell_is_recorded_once_with_its_given_value(track):
    # No blank line: the cell that assigns the parameters also shows them, and a value derived
    # from the default. Each name is one key, a parameter, holding what the run was given.
    tracked = track("# parameters\nn = 1\nhalf = n / 2\nn\nhalf\n\nn\n", {"n": 4})
    assert tracked.record.ok, tracked.record.error
    assert tracked.record.parameters == {"n": 4, "half": 0.5}
    # Shown again after the parameters cell, it is a value of its own, as before.
    assert tracked.stored["n_2"] == 4
    assert set(tracked.stored) == {"n", "half", "n_2"}


def test_parameters_are_checked_before_any_kernel_starts(tmp_path):
    script = write_script(tmp_path, "# parameters\nmodel = 1\n")
    database = tmp_path / "runs.db"
    with pytest.raises(ParameterError, match="'model'.*not a Python literal"):
        track_execution(script, {"model": object()}, database)
    for bad_name in ["not valid", "class", "1st"]:
        with pytest.raises(ParameterError, match="not a Python identifier"):
            track_execution(script, {bad_name: 1}, database)
    assert not database.exists()


def test_numpy_scalars_are_injected_as_plain_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    script = write_script(tmp_path, "# parameters\nlr = 1.0\nn = 1\n")
    prepared = prepare_run(script, {"lr": np.float64(0.5), "n": np.int64(3)})
    assert prepared.injected_source.splitlines()[1:] == ["lr = 0.5", "n = 3"]
    assert type(prepared.overrides["n"]) is int


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("script.txt", "x = 1\n", "unsupported file type '.txt'"),
        ("missing.py", None, "file not found"),
        ("broken.py", "x = 1\n\nif x\n    pass\n", "broken.py:3: syntax error in group 2"),
        ("broken.ipynb", "{not json", "cannot read"),
        ("cells.ipynb", '{"cells": 5}', "cannot read"),
    ],
)
def test_bad_input_files_raise_one_line_errors(tmp_path, name, text, message):
    path = tmp_path / name if text is None else write_script(tmp_path, text, name)
    with pytest.raises(InputFileError, match=re.escape(message)) as caught:
        track_execution(path, None, tmp_path / "runs.db")
    assert "\n" not in str(caught.value)


def read_in_a_new_process(path: Path) -> dict:
    """The group sources ``read_groups`` finds in ``path``, read by a new Python process, and
    whether that process imported jupytext to find them."""
    code = (
        "import json, sys\nfrom ploomber_like.notebook import is_plain_script, read_groups\n"
        f"path, text, groups, parameters = read_groups({str(path)!r})\n"
        "print(json.dumps({'groups': [g.source for g in groups], "
        "'parameters': groups[parameters].source, "
        "'plain': is_plain_script(text, path), "
        "'jupytext': 'jupytext' in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ["light.py", "notebook.ipynb"])
def test_a_file_read_before_is_not_parsed_again(tmp_path, name):
    # Parsing imports jupytext, which costs a single run more than its kernel's own start.
    text = LIGHT if name.endswith(".py") else _notebook_text()
    text = text.replace("Notes", f"Notes of {tmp_path}")  # a text no other test reads
    path = write_script(tmp_path, text, name)
    first = read_in_a_new_process(path)
    assert first["jupytext"] and first["parameters"].endswith("n = 1")
    assert first["plain"] == name.endswith(".py")
    assert read_in_a_new_process(path) == {**first, "jupytext": False}
    # An edited file is read afresh.
    path.write_text(text.replace("doubled = n * 2", "doubled = n * 3"))
    edited = read_in_a_new_process(path)
    assert edited["jupytext"] and any("n * 3" in group for group in edited["groups"])
    assert read_in_a_new_process(path)["groups"] == edited["groups"]
    # Damaged cache files are read afresh too.
    for cached in (cache_home() / "groups").glob("*.json"):
        cached.write_text('{"groups": [[1, "x"]]')
    assert read_in_a_new_process(path) == edited


# A new process: records, when the run's kernel has been started and the driver is about to
# wait for it to answer, whether nbclient (the run's client) is imported already.
OVERLAP = """
import json, sys
import ploomber_like.kernels.pool as pool

connect, seen = pool.connect_client, []

async def noting(handle, *args, **kwargs):
    seen.append({"nbclient": "nbclient" in sys.modules, "kernel started": handle.is_alive()})
    return await connect(handle, *args, **kwargs)

pool.connect_client = noting
from ploomber_like import track_execution
record = track_execution(sys.argv[1], None, sys.argv[2], quiet=True)
print(json.dumps({"seen": seen, "status": record.status, "values": record.values}))
"""


@pytest.mark.kernel
def test_a_single_run_imports_its_client_while_its_kernel_starts(tmp_path):
    # nbclient and nbformat take ~0.1 s to import: after the kernel answered, they were on a
    # single run's critical path; while it starts, the driver is idle.
    path = write_script(tmp_path, "x = 1\nx\n", "one.py")
    done = subprocess.run(
        [sys.executable, "-c", OVERLAP, str(path), str(tmp_path / "runs.db")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "ok" and outcome["values"] == {"x": 1}
    assert outcome["seen"] == [{"nbclient": True, "kernel started": True}]


@pytest.mark.kernel
def test_a_byte_order_mark_is_ignored_as_python_ignores_it(tmp_path):
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbf# parameters\nx = 1\n\ny = x + 1\ny\n")
    record = track_execution(path, {"x": 2}, tmp_path / "runs.db")
    assert record.ok and record.values == {"y": 3}


# --- execution context ----------------------------------------------------------------------


@pytest.mark.kernel
def test_cwd_is_the_callers_and_the_scripts_folder_is_importable(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    write_script(project, "VALUE = 'from the helper'\n", "helper.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quiet: the missing parameters cell is not reported
        tracked = run(
            project,
            "import os\nimport helper\n\ncwd = os.getcwd()\ncwd\nhelper.VALUE\n__file__\n",
            {"n": 1},
            quiet=True,
        )
    assert tracked.stored["cwd"] == str(elsewhere)
    assert tracked.stored["VALUE"] == "from the helper"
    # `__file__` is the script, as under `python script.py` (scripts find their data with it).
    assert tracked.stored["__file__"] == str(Path(tracked.record.path).resolve())


# --- the stored record ----------------------------------------------------------------------

RECORD_SCRIPT = """
import sys

import numpy

# parameters
size = 3

print("x" * 300_000)
print("to stderr", file=sys.stderr)

total = float(numpy.ones(size).sum())
total
"""


@pytest.mark.kernel
def test_record_of_a_run(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    script = write_script(repo, RECORD_SCRIPT)
    write_script(repo, "first version\n", "notes.txt")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert git_state(script) == (commit, False)
    write_script(repo, "edited\n", "notes.txt")  # a tracked file changed: the tree is dirty

    tracked = run(repo, RECORD_SCRIPT)
    record, row = tracked.record, tracked.row
    assert record.status == row["status"] == "ok"
    assert uuid.UUID(row["uuid"]).version == 4
    datetime.strptime(row["created"], "%Y-%m-%d %H:%M:%S.%f")
    assert row["error_type"] is None and record.error is None
    assert tracked.stored == {"size": 3, "total": 3.0}

    assert len(row["group_durations"]) == 5  # blank lines separate groups in light format
    assert row["duration"] >= sum(row["group_durations"]) > 0

    text = script.read_text()
    assert row["source_path"] == str(script)
    assert row["source_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    conn = sqlite3.connect(tracked.database)
    (source,) = conn.execute(
        "SELECT data FROM blobs WHERE sha256 = ?", (row["source_sha256"],)
    ).fetchone()
    assert bytes(source).decode() == text
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    environment = row["environment"]
    assert environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["platform"] and environment["host"] and environment["user"]
    assert environment["command"]
    assert environment["git_commit"] == commit and environment["git_dirty"] is True
    import numpy

    assert environment["packages"]["numpy"] == numpy.__version__

    assert "characters cut by ploomber_like" in row["stdout"]
    assert row["stdout"].startswith("xxx") and len(row["stdout"]) < 201_000
    assert "to stderr" in row["stderr"]


SLEEPER = """
import time

# parameters
seconds = 1

time.sleep(seconds)
slept = seconds
slept
"""


@pytest.mark.kernel
def test_running_rows_are_visible_and_concurrent_processes_lose_nothing(tmp_path):
    script = write_script(tmp_path, SLEEPER)
    database = tmp_path / "runs.db"
    code = (
        "import sys; from ploomber_like import track_execution; "
        "r = track_execution(sys.argv[1], {'seconds': float(sys.argv[3])}, sys.argv[2]); "
        "print(r.status)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(script), str(database), str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for seconds in (3, 3.5)
    ]
    seen_running = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        if database.exists():
            conn = sqlite3.connect(database, timeout=10)
            try:
                (count,) = conn.execute(
                    "SELECT count(*) FROM experiments WHERE status = 'running'"
                ).fetchone()
            except sqlite3.OperationalError:  # the schema is being created
                count = 0
            conn.close()
            seen_running = max(seen_running, count)
        time.sleep(0.1)
    outputs = [p.communicate(timeout=300) for p in processes]
    for (stdout, stderr), process in zip(outputs, processes, strict=True):
        assert process.returncode == 0, stderr
        assert stdout.strip() == "ok"
        assert "locked" not in stderr
    assert seen_running >= 1
    conn = sqlite3.connect(database)
    rows = conn.execute(
        "SELECT status, json_extract(parameters, '$.slept') FROM experiments ORDER BY 2"
    ).fetchall()
    assert rows == [("ok", 3.0), ("ok", 3.5)]


# --- failure is data ------------------------------------------------------------------------

FAILING = """
import ctypes
import os
import sys
import time

before = 1
before

# parameters
mode = "raise"

if mode == "raise":
    raise ValueError("boom")
elif mode == "exit":
    sys.exit(3)
elif mode == "exit0":
    sys.exit(0)
elif mode == "os_exit":
    os._exit(3)
elif mode == "segfault":
    ctypes.string_at(0)
elif mode == "sleep":
    time.sleep(600)

after = 2
after
"""


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("mode", "status", "error_type", "message"),
    [
        ("raise", "failed", "ValueError", "boom"),
        ("exit", "failed", "SystemExit", "3"),
        ("os_exit", "crashed", "KernelDied", "exited with status 3"),
        ("segfault", "crashed", "KernelDied", "SIGSEGV"),
        ("sleep", "timeout", "Timeout", "timeout of 6 s"),
    ],
)
def test_failures_are_recorded_runs(tmp_path, mode, status, error_type, message):
    # The timeout leaves the groups before the failing one time to run on a loaded machine.
    started = time.monotonic()
    tracked = run(tmp_path, FAILING, {"mode": mode}, timeout=6)
    assert time.monotonic() - started < 300  # the sleep was cut short
    record, row = tracked.record, tracked.row
    assert record.status == row["status"] == status
    assert record.error.type == row["error_type"] == error_type
    assert message in row["error_message"]
    assert row["error_group"] == 3  # 0-based among code groups: imports, before, parameters
    assert row["error_source"].startswith('if mode == "raise":')
    assert "\x1b" not in (row["traceback"] or "")
    # Values of earlier groups are kept; later groups never ran.
    assert tracked.stored["before"] == 1
    assert tracked.stored["mode"] == mode
    assert "after" not in tracked.stored
    assert len(row["group_durations"]) == 4


@pytest.mark.kernel
def test_a_segfault_leaves_the_crashing_python_frame_in_the_traceback(track):
    tracked = track(FAILING, {"mode": "segfault"})
    assert tracked.record.status == "crashed"
    assert "Fatal Python error: Segmentation fault" in tracked.row["traceback"]
    assert "string_at" in tracked.row["traceback"]


STARVED_ZEROMQ = """
import ctypes
import os
import threading
import time

# Every thread of the kernel on one CPU. This one and ipykernel's I/O thread, real-time, run
# whenever they can; ZeroMQ's only when nothing else there can: what ZeroMQ has not written
# when this one spins below never leaves the process.
time.sleep(0.5)  # the threads the kernel starts for a run have started
cpu = min(os.sched_getaffinity(0))
for tid in map(int, os.listdir("/proc/self/task")):
    try:
        os.sched_setaffinity(tid, {cpu})
        with open(f"/proc/self/task/{tid}/comm") as comm:
            if comm.read().startswith("ZMQbg"):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (FileNotFoundError, ProcessLookupError):  # a thread that has ended since
        pass
try:
    for thread in threading.enumerate():
        if thread.name == "IOPub":
            os.sched_setscheduler(thread.native_id, os.SCHED_FIFO, os.sched_param(1))
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(2))
    real_time = True
except PermissionError:
    real_time = False
real_time

before = 1
before

# parameters
spin = 0.3

end = time.monotonic() + spin
while time.monotonic() < end and real_time:
    pass
ctypes.string_at(0)
"""


@pytest.mark.kernel
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's scheduler calls")
def test_values_shown_before_a_segfault_leave_the_kernel_however_late_zeromq_runs(track):
    """A cell's end waits until ZeroMQ has written what the cell showed: without that wait, the
    values of the cells before a crash were lost whenever ZeroMQ's I/O thread had not run yet
    (every time in this script; once in a suite on a loaded machine)."""
    tracked = track(STARVED_ZEROMQ)
    if tracked.stored.get("real_time") is False:
        pytest.skip("no permission for a real-time thread (CAP_SYS_NICE)")
    assert tracked.record.status == "crashed"
    assert tracked.stored["real_time"] is True
    assert tracked.stored["before"] == 1


@pytest.mark.kernel
def test_traceback_names_the_failing_line(track):
    tracked = track(FAILING, {"mode": "raise"})
    assert 'raise ValueError("boom")' in tracked.row["traceback"]
    assert tracked.row["traceback"].rstrip().endswith("ValueError: boom")


@pytest.mark.kernel
def test_sys_exit_0_ends_the_run_ok(track):
    tracked = track(FAILING, {"mode": "exit0"})
    assert tracked.record.status == "ok"
    assert tracked.record.error is None
    assert tracked.stored["before"] == 1
    assert "after" not in tracked.stored


def test_kernels_start_without_the_debugger_which_a_run_may_still_import(track):
    """ipykernel's debugger (debugpy) is a third of a kernel's start-up and no run uses it: left
    out of the kernel, fresh (the first call) or forked (the next), not out of the run's reach."""
    for _ in range(2):
        tracked = track("import sys\nloaded = 'debugpy' in sys.modules\nloaded\n", quiet=True)
        assert tracked.record.values == {"loaded": False}
    tracked = track("import debugpy\nimported = debugpy.__name__\nimported\n", quiet=True)
    assert tracked.record.values == {"imported": "debugpy"}


# --- the examples ---------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["fit.py", "fit_percent.py", "fit.ipynb"])
def test_examples_record_metrics_and_plots(tmp_path, name):
    pytest.importorskip("sklearn")
    path = Path(__file__).parent.parent / "examples" / name
    record = track_execution(
        path, {"n_estimators": 5, "n_samples": 2000}, tmp_path / "runs.db"
    )
    assert record.status == "ok", record.error
    assert record.parameters == {
        "n_estimators": 5, "max_depth": None, "criterion": "gini", "random_state": 0,
        "n_samples": 2000,
    }
    assert list(record.values) == [
        "accuracy", "precision", "recall", "f1", "confusion_matrix", "precision_recall"
    ]
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert isinstance(record.values[metric], float) and 0.5 < record.values[metric] <= 1
    for plot in ("confusion_matrix", "precision_recall"):
        assert record.values[plot]["mimetype"] == "image/png"
        assert record.blobs[record.values[plot]["$blob"]].data.startswith(b"\x89PNG")


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("raised", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "crashed")]
)
def test_a_stopped_driver_does_not_leave_a_running_row(tmp_path, monkeypatch, raised, status):
    # Stands in for Ctrl-C or a bug of ours while the kernel runs, which no script can cause.
    async def stop(*args, **kwargs):
        raise raised("stopped")

    monkeypatch.setattr("ploomber_like.tracking.run_on_pool", stop)
    script = write_script(tmp_path, "x = 1\n")
    with pytest.raises(raised):
        track_execution(script, None, tmp_path / "runs.db")
    conn = sqlite3.connect(tmp_path / "runs.db")
    assert conn.execute("SELECT status FROM experiments").fetchall() == [(status,)]
