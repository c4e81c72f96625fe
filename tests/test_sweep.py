"""Parameter-grid sweeps: grids, isolation between runs, failures, resume, interrupts."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import as_in_a_terminal, cli, rows, stored_values, wait_for, write_script

from ploomber_like import ParameterError, track_grid
from ploomber_like.kernels import KernelTemplate
from ploomber_like.kernels.processes import RUNTIME_PREFIX, descendants
from ploomber_like.sweep import expand_grid

COUNTER = """\
import json
import random

# parameters
x = 0

json.counter = getattr(json, "counter", 0) + 1
first = random.random()
random.seed(42)

json.counter
first
x * 10
__file__
"""


@pytest.mark.kernel
@pytest.mark.parametrize("preload", [True, False], ids=["warm-template", "fresh-kernels"])
def test_runs_share_no_state(tmp_path, preload):
    path = write_script(tmp_path, COUNTER, "job.py")
    db = tmp_path / "runs.db"
    summary = track_grid(path, {"x": [1, 2, 3, 4]}, db, workers=2, quiet=True, preload=preload)
    assert (summary.ok, summary.failed, summary.total) == (4, 0, 4)
    recorded = stored_values(db)
    assert sorted(v["x"] for v in recorded) == [1, 2, 3, 4]
    assert all(v["x * 10"] == v["x"] * 10 for v in recorded)
    assert {v["__file__"] for v in recorded} == {str(path.resolve())}
    # A module-level counter bumped by one run is never seen by the next.
    assert [v["counter"] for v in recorded] == [1, 1, 1, 1]
    # random state: not inherited from a template, nor from a previous run's seed(42).
    firsts = [v["first"] for v in recorded]
    assert len(set(firsts)) == 4
    assert random.Random(42).random() not in firsts


@pytest.mark.kernel
def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path):
    path = write_script(
        tmp_path,
        """\
        import os

        # parameters
        x = 0

        before = x + 100
        before

        if x == 1:
            raise ValueError("bad point")
        if x == 2:
            os._exit(3)
        after = x
        after
        """, "job.py",
    )
    db = tmp_path / "runs.db"
    summary = track_grid(path, {"x": [0, 1, 2, 3]}, db, workers=2, quiet=True)
    assert (summary.ok, summary.failed) == (2, 2)
    by_x = {json.loads(r["parameters"])["x"]: r for r in rows(db)}
    assert by_x[0]["status"] == by_x[3]["status"] == "ok"
    assert by_x[1]["status"] == "failed"
    assert by_x[1]["error_type"] == "ValueError"
    assert "bad point" in by_x[1]["error_message"]
    assert by_x[2]["status"] == "crashed"
    assert "exited with status 3" in by_x[2]["error_message"]
    # Values shown before the failure are kept.
    assert json.loads(by_x[1]["parameters"])["before"] == 101
    assert json.loads(by_x[2]["parameters"])["before"] == 102


@pytest.mark.kernel
def test_timeout_per_run(tmp_path):
    path = write_script(
        tmp_path,
        """\
        import time

        # parameters
        delay = 0

        time.sleep(delay)
        done = True
        done
        """, "job.py",
    )
    db = tmp_path / "runs.db"
    # Long enough for the quick point's code on a loaded machine.
    summary = track_grid(path, {"delay": [0, 600]}, db, timeout=6, quiet=True)
    assert (summary.ok, summary.failed) == (1, 1)
    statuses = {json.loads(r["parameters"])["delay"]: r["status"] for r in rows(db)}
    assert statuses == {0: "ok", 600: "timeout"}


@pytest.mark.kernel
def test_resume_skips_points_recorded_ok(tmp_path):
    path = write_script(tmp_path, "# parameters\nx = 0\n\nx\n", "job.py")
    db = tmp_path / "runs.db"
    first = track_grid(path, {"x": [1, 2, 3]}, db, quiet=True)
    assert (first.ok, first.skipped) == (3, 0)
    again = track_grid(path, {"x": [1, 2, 3, 4]}, db, quiet=True)
    assert (again.ok, again.skipped) == (1, 3)
    assert len(rows(db)) == 4
    forced = track_grid(path, {"x": [1, 2]}, db, quiet=True, force=True)
    assert (forced.ok, forced.skipped) == (2, 0)
    assert len(rows(db)) == 6
    # A changed file is another experiment: nothing is skipped.
    path.write_text("# parameters\nx = 0\n\nx + 1\n")
    changed = track_grid(path, {"x": [1, 2]}, db, quiet=True)
    assert changed.skipped == 0


@pytest.mark.kernel
def test_grid_forms(tmp_path):
    from sklearn.model_selection import ParameterGrid

    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert expand_grid([{"a": 1}, {"a": 2, "b": 3}]) == [{"a": 1}, {"a": 2, "b": 3}]
    assert expand_grid(ParameterGrid({"a": [1, 2]})) == [{"a": 1}, {"a": 2}]
    assert expand_grid({"a": i} for i in range(2)) == [{"a": 0}, {"a": 1}]

    path = write_script(tmp_path, "# parameters\na = 0\nb = 0\n\na + b\n", "job.py")
    db = tmp_path / "runs.db"
    summary = track_grid(path, ParameterGrid({"a": [1, 2]}), db, fixed={"b": 10}, quiet=True)
    assert summary.ok == 2
    assert sorted(v["a + b"] for v in stored_values(db)) == [11, 12]


@pytest.mark.parametrize(
    "grid, message",
    [
        (5, "dict of lists or an iterable of dicts"),
        ("a=1", "dict of lists or an iterable of dicts"),
        ({"a": 1}, "grid values must be lists: 'a' is int"),
        ({"a": []}, "the grid is empty"),
        ([], "the grid is empty"),
        ([1, 2], "every grid point must be a dict"),
        ({"a": [object()]}, "is not a Python literal"),
        ([{"not an identifier": 1}], "is not a Python identifier"),
    ],
)
def test_bad_grids_fail_before_anything_runs(tmp_path, grid, message):
    path = write_script(tmp_path, "# parameters\na = 0\n\na\n", "job.py")
    db = tmp_path / "runs.db"
    templates = templates_started_here()
    with pytest.raises(ParameterError, match=message):
        track_grid(path, grid, db, quiet=True)
    assert not db.exists()
    assert templates_started_here() == templates  # not even a template was started


def templates_started_here() -> set[int]:
    """Pids of the warm templates this process started (and of kernels forked from them) that
    still run."""
    found = set()
    for pid in descendants(os.getpid()):
        try:
            if b"serve_template" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue  # it ended meanwhile
    return found


NOTEBOOK_CELLS = [
    "import json",
    "# parameters\na = 0",
    "json.dumps(a)",
]


def notebook_text(cells: list[str]) -> str:
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [],
                   "execution_count": None, "id": f"c{i}"} for i, source in enumerate(cells)],
    })


@pytest.mark.kernel
@pytest.mark.parametrize(
    "name, text, early",
    [
        ("job.py", "import json\n\n# parameters\na = 0\n\njson.dumps(a)\n", True),
        ("job.ipynb", notebook_text(NOTEBOOK_CELLS), True),
        # A %magic is not Python: only jupytext (with IPython) reads the file's imports then.
        ("magic.ipynb", notebook_text(["%time b = 1", *NOTEBOOK_CELLS]), False),
    ],
)
def test_a_sweep_starts_its_template_while_jupytext_reads_the_file(
    tmp_path, monkeypatch, name, text, early
):
    import ploomber_like.sweep as sweep

    # A text no earlier test read: its groups are not cached yet.
    text = text.replace("import json", f"import json  # {tmp_path.name}")
    (tmp_path / name).write_text(text)
    before = templates_started_here()
    parse = sweep.groups_from_text
    seen = []

    def parse_once_the_template_runs(*args):
        # Reading the groups waits for the template: it must have started without them.
        with contextlib.suppress(AssertionError):  # not started within the wait
            seen.append(wait_for(lambda: templates_started_here() - before, 60 if early else 1))
        return parse(*args)

    monkeypatch.setattr(sweep, "groups_from_text", parse_once_the_template_runs)
    summary = track_grid(tmp_path / name, {"a": [1, 2]}, tmp_path / "runs.db", quiet=True)
    assert summary.ok == 2, summary
    assert bool(seen) == early
    assert sorted(v["dumps"] for v in stored_values(tmp_path / "runs.db")) == ["1", "2"]

    # Read before: its groups come from the cache, and with both points recorded nothing runs,
    # so no template is started for them.
    monkeypatch.undo()
    summary = track_grid(tmp_path / name, {"a": [1, 2]}, tmp_path / "runs.db", quiet=True)
    assert (summary.skipped, templates_started_here() - before) == (2, set())


@pytest.mark.kernel
def test_a_sweep_that_ends_before_its_first_run_leaves_no_template(tmp_path, monkeypatch):
    import ploomber_like.sweep as sweep
    from ploomber_like.errors import DatabaseError

    # scikit-learn: the template takes a second or more to import it.
    text = f"import sklearn.ensemble  # {tmp_path.name}\n\n# parameters\na = 0\n"
    path = write_script(tmp_path, text)
    (tmp_path / "folder.db").mkdir()
    before, folders = templates_started_here(), runtime_folders()
    parse = sweep.groups_from_text

    def parse_once_the_template_runs(*args):
        wait_for(lambda: templates_started_here() - before, 60, "the template's start")
        return parse(*args)

    monkeypatch.setattr(sweep, "groups_from_text", parse_once_the_template_runs)
    with pytest.raises(DatabaseError, match="is a directory"):
        track_grid(path, {"a": [1, 2]}, tmp_path / "folder.db", quiet=True)
    # The template still imports: the error did not wait for it...
    assert templates_started_here() - before
    # ... and it is closed once built, not kept, and so is its folder.
    wait_for(lambda: not templates_started_here() - before, 120, "the template's end")
    wait_for(lambda: not runtime_folders() - folders, 10, "the template's folder removed")


def runtime_folders() -> set[Path]:
    """The runtime folders of this process's kernels and templates."""
    return set(Path(tempfile.gettempdir()).glob(f"{RUNTIME_PREFIX}{os.getpid()}-*"))


def test_the_plain_python_of_a_file_is_found_without_jupytext():
    from ploomber_like.notebook import plain_sources

    script = "# %%\nimport json\n# parameters\na = 0\n"
    assert plain_sources(script, ".py") == [script]
    assert plain_sources("def broken(:\n", ".py") is None
    cells = ["import json", "# parameters\na = 0", ["x = 1\n", "x"]]
    notebook = json.dumps({"cells": [{"cell_type": "markdown", "source": "# title"}]
                           + [{"cell_type": "code", "source": c} for c in cells]})
    assert plain_sources(notebook, ".ipynb") == ["import json", "# parameters\na = 0", "x = 1\nx"]
    assert plain_sources(notebook_text(["%time b = 1"]), ".ipynb") is None
    assert plain_sources("not json", ".ipynb") is None
    assert plain_sources('{"cells": 5}', ".ipynb") is None


@pytest.mark.kernel
def test_cli_grid_options_and_files(tmp_path):
    write_script(tmp_path, "# parameters\na = 0\nb = 0\nmodel = 'x'\n\na * b\nmodel\n", "job.py")
    (tmp_path / "grid.yaml").write_text("a: [1, 2]\n")
    (tmp_path / "grid.json").write_text(json.dumps([{"a": 5}]))

    done = cli("job.py", "-g", "a=1,2", "-g", "b=10,20", "-p", "model=sklearn.svm.SVC",
                   "-w", "2", "-d", "g.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 ok" in done.stderr
    recorded = stored_values(tmp_path / "g.db")
    assert sorted(v["a * b"] for v in recorded) == [10, 20, 20, 40]
    assert {v["model"] for v in recorded} == {"sklearn.svm.SVC"}

    done = cli("job.py", "--grid-file", "grid.yaml", "-g", "b=3", "-q", "-d", "y.db",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(v["a * b"] for v in stored_values(tmp_path / "y.db")) == [3, 6]

    done = cli("job.py", "--grid-file", "grid.json", "-p", "b=2", "-q", "-d", "j.db",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [v["a * b"] for v in stored_values(tmp_path / "j.db")] == [10]

    again = cli("job.py", "-g", "a=1,2", "-g", "b=10,20", "-p", "model=sklearn.svm.SVC",
                    "-d", "g.db", cwd=tmp_path)
    assert again.returncode == 0
    assert "skipping 4 of 4 points" in again.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["-g", "a"], "expected name=value"),
        (["-g", "a=[1,2"], "unbalanced"),
        (["-g", "1a=1,2"], "not a Python identifier"),
        (["--grid-file", "missing.yaml"], "grid file not found"),
        (["--grid-file", "bad.yaml"], "cannot read grid file"),
        (["--grid-file", "scalar.json"], "dict of lists or an iterable of dicts"),
    ],
)
def test_cli_bad_grids_are_one_line_errors(tmp_path, args, message):
    write_script(tmp_path, "# parameters\na = 0\n\na\n", "job.py")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    (tmp_path / "scalar.json").write_text("3")
    done = cli("job.py", *args, "-d", "x.db", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


@pytest.mark.kernel
def test_cli_exit_status_1_when_a_point_fails(tmp_path):
    write_script(tmp_path, "# parameters\na = 0\n\n1 / a\n", "job.py")
    done = cli("job.py", "-g", "a=0,1", "-d", "f.db", cwd=tmp_path)
    assert done.returncode == 1
    assert "1 failed" in done.stderr
    assert "--status failed" in done.stderr


SLOW = """\
import time

# parameters
x = 0

time.sleep(1.5)
x
"""


def count(db: Path, status: str) -> int:
    if not db.exists():
        return 0
    try:
        sql = "SELECT count(*) AS n FROM experiments WHERE status = ?"
        return rows(db, sql, (status,))[0]["n"]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.kernel
def test_sigkill_of_the_driver_then_rerun_records_every_point_once(tmp_path):
    write_script(tmp_path, SLOW, "job.py")
    db = tmp_path / "k.db"
    args = [sys.executable, "-m", "tracker", "job.py", "-g", "x=1,2,3,4,5,6", "-w", "2",
            "-q", "-d", str(db)]
    driver = subprocess.Popen(args, cwd=tmp_path)
    wait_for(lambda: count(db, "ok") >= 2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert count(db, "ok") < 6

    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    sql = "SELECT json_extract(parameters, '$.x') AS x FROM experiments WHERE status = 'ok'"
    ok = rows(db, sql)
    assert sorted(r["x"] for r in ok) == [1, 2, 3, 4, 5, 6]
    # Rows the killed driver left `running` are closed, not left dangling.
    assert count(db, "running") == 0


@pytest.mark.kernel
def sleeping_job(tmp_path: Path) -> Path:
    """Write ``job.py``: each run shows ``shown = x * 2``, leaves ``started-<x>`` in the
    returned markers folder, then sleeps for 10 minutes."""
    markers = tmp_path / "markers"
    markers.mkdir()
    write_script(
        tmp_path,
        SLOW.replace(
            "time.sleep(1.5)",
            f"shown = x * 2\nshown\n\nopen(f'{markers}/started-{{x}}', 'w').close()\n"
            "time.sleep(600)",
        ), "job.py",
    )
    return markers


def sweep_waiting_on_two_runs(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A CLI sweep of 6 points on 2 workers (stderr piped, its temporary files in
    ``tmp_path / "temp"``), returned once both in-flight runs showed ``shown`` and sleep for 10
    minutes; and its database."""
    markers = sleeping_job(tmp_path)
    db = tmp_path / "c.db"
    (tmp_path / "temp").mkdir()
    driver = subprocess.Popen(
        [sys.executable, "-m", "tracker", "job.py", "-g", "x=1,2,3,4,5,6", "-w", "2",
         "-d", str(db)],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal,
        env={**os.environ, "TMPDIR": str(tmp_path / "temp")},
    )
    wait_for(lambda: len(list(markers.glob("started-*"))) == 2)
    return driver, db


def ended(driver: subprocess.Popen) -> str:
    """``driver``'s stderr once it ended; its stderr in the failure if it runs on."""
    try:
        return driver.communicate(timeout=300)[1]
    except subprocess.TimeoutExpired:
        driver.kill()
        raise AssertionError("the driver did not stop:\n" + driver.communicate()[1]) from None


def test_ctrl_c_stops_the_sweep_and_records_in_flight_runs(tmp_path):
    driver, db = sweep_waiting_on_two_runs(tmp_path)
    driver.send_signal(signal.SIGINT)
    stderr = ended(driver)
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Task was destroyed" not in stderr
    assert count(db, "interrupted") == 2
    assert count(db, "running") == 0
    assert len(rows(db)) == 2  # no new point started after Ctrl-C
    # What the interrupted runs showed before Ctrl-C is kept.
    assert sorted(v["shown"] for v in stored_values(db)) == [2, 4]
    # Counted by their own status, and the suggested command lists exactly them.
    assert "interrupted: 2 runs in" in stderr and "0 ok, 2 interrupted" in stderr, stderr
    assert "failed" not in stderr
    listed = suggested_listing(stderr, tmp_path)
    assert listed == {r["uuid"][:8] for r in rows(db)}
    # The runs' own directories, those of the kernels started ahead for the next points too,
    # are gone with them, and so is the folder that held them.
    assert not list((tmp_path / "temp").glob("ploomber-like-*"))


def test_ctrl_c_that_the_main_thread_does_not_see_still_stops_the_sweep(tmp_path):
    # SIGINT handed to another of the driver's threads trips Python's flag but does not wake a
    # main thread waiting on a lock; a KeyboardInterrupt raised in a finalizer is dropped.
    driver, db = sweep_waiting_on_two_runs(tmp_path)
    tasks = Path(f"/proc/{driver.pid}/task")
    thread = next(
        int(task.name) for task in sorted(tasks.iterdir())
        if int(task.name) != driver.pid and not sigint_blocked(task)
    )
    assert ctypes.CDLL(None, use_errno=True).tgkill(driver.pid, thread, signal.SIGINT) == 0
    stderr = ended(driver)
    assert driver.returncode == 130, stderr
    assert count(db, "interrupted") == 2 and len(rows(db)) == 2
    assert sorted(v["shown"] for v in stored_values(db)) == [2, 4]


SWALLOWING_DRIVER = """
import contextlib, sys, time
from pathlib import Path

from ploomber_like import track_grid
from ploomber_like.executors import register_executor
from ploomber_like.executors.local import LocalExecutor

markers = Path(sys.argv[1])


@register_executor
class Swallowing(LocalExecutor):
    # Code the driver calls (a finalizer, a library) catches the KeyboardInterrupt of Ctrl-C.
    name = "swallowing"
    swallowed = False

    @classmethod
    def accepts(cls, target):
        return target == cls.name

    def wait_some(self, timeout=None):
        if not self.swallowed and len(list(markers.glob("started-*"))) == 2:
            self.swallowed = True
            (markers / "waiting").touch()
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(60)
        return super().wait_some(timeout)


track_grid("job.py", {"x": [1, 2, 3, 4]}, "c.db", workers=2, executor="swallowing")
"""


def test_ctrl_c_whose_keyboardinterrupt_is_swallowed_still_stops_the_sweep(tmp_path):
    markers = sleeping_job(tmp_path)
    (tmp_path / "driver.py").write_text(SWALLOWING_DRIVER)
    driver = subprocess.Popen(
        [sys.executable, "driver.py", str(markers)], cwd=tmp_path, stderr=subprocess.PIPE,
        text=True, preexec_fn=as_in_a_terminal,
    )
    wait_for(lambda: (markers / "waiting").exists() or driver.poll() is not None)
    driver.send_signal(signal.SIGINT)
    stderr = ended(driver)
    assert driver.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    assert count(tmp_path / "c.db", "interrupted") == 2 and count(tmp_path / "c.db", "running") == 0


def sigint_blocked(task: Path) -> bool:
    """Whether the thread at ``/proc/<pid>/task/<tid>`` blocks SIGINT."""
    status = (task / "status").read_text()
    mask = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.MULTILINE).group(1), 16)
    return bool(mask >> (signal.SIGINT - 1) & 1)


def suggested_listing(stderr: str, cwd: Path) -> set[str]:
    """The uuid prefixes listed by the command the sweep's summary suggests."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("see them: ")]
    args = shlex.split(line.removeprefix("see them: "))
    assert args[:3] == ["python", "-m", "tracker"]
    done = cli(*args[3:], cwd=cwd)
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"^([0-9a-f]{8}) ", done.stdout, re.MULTILINE))


@pytest.mark.kernel
def test_a_grid_with_a_crash_and_a_timeout_is_summarised_by_status(tmp_path):
    write_script(tmp_path, """\
        import os
        import time

        # parameters
        x = 0

        if x == 1:
            raise ValueError("bad point")
        if x == 2:
            os._exit(3)
        if x == 3:
            time.sleep(120)
        x
        """, "job.py")
    earlier = cli("job.py", "-p", "x=1", "-d", "g.db", cwd=tmp_path)  # not this sweep's
    assert earlier.returncode == 1
    done = cli("job.py", "-g", "x=0,1,2,3", "-w", "2", "--timeout", "3", "-d", "g.db",
                   cwd=tmp_path)
    assert done.returncode == 1
    assert "done: 4 runs in" in done.stderr
    assert "1 ok, 1 failed, 1 timeout, 1 crashed" in done.stderr, done.stderr
    statuses = {r["uuid"][:8]: r["status"] for r in rows(tmp_path / "g.db")}
    listed = suggested_listing(done.stderr, tmp_path)
    assert sorted(statuses[uuid] for uuid in listed) == ["crashed", "failed", "timeout"]


@pytest.mark.kernel
def test_ls_takes_several_statuses(tmp_path):
    write_script(tmp_path, "# parameters\nx = 0\n\n1 / x\n", "job.py")
    cli("job.py", "-g", "x=0,1", "-w", "1", "-q", "-d", "s.db", cwd=tmp_path)
    both = cli("ls", "-d", "s.db", "--status", "failed,ok", cwd=tmp_path)
    assert len(re.findall(r"^[0-9a-f]{8} ", both.stdout, re.MULTILINE)) == 2, both.stdout
    bad = cli("ls", "-d", "s.db", "--status", "ok,fail", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown status 'fail'")


@pytest.mark.kernel
def test_plots_in_forked_kernels(tmp_path):
    path = write_script(
        tmp_path,
        """\
        import matplotlib.pyplot as plt

        # parameters
        n = 1

        plt.plot(range(n + 2))
        """, "job.py",
    )
    db = tmp_path / "p.db"
    summary = track_grid(path, {"n": [1, 2]}, db, quiet=True)
    assert summary.ok == 2
    for v in stored_values(db):
        assert v["plot"]["mimetype"] == "image/png"
    pngs = rows(db, "SELECT data FROM blobs WHERE mimetype = 'image/png'")
    assert len(pngs) == 2 and all(bytes(r["data"]).startswith(b"\x89PNG") for r in pngs)


def test_workers_must_be_positive(tmp_path):
    path = write_script(tmp_path, "# parameters\na = 0\n\na\n", "job.py")
    with pytest.raises(ParameterError, match="workers must be at least 1"):
        track_grid(path, {"a": [1]}, tmp_path / "w.db", workers=-1, quiet=True)
    assert os.path.exists(path)


@pytest.mark.kernel
def test_parallel_kernels_get_a_share_of_the_cores(tmp_path, monkeypatch):
    path = write_script(
        tmp_path,
        """\
        import os

        # parameters
        x = 0

        threads = os.environ.get("OMP_NUM_THREADS")
        threads
        """, "job.py",
    )
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = os.cpu_count() or 1
    track_grid(path, {"x": [1, 2]}, tmp_path / "t.db", workers=2, quiet=True)
    assert {v["threads"] for v in stored_values(tmp_path / "t.db")} == {str(max(1, cores // 2))}
    # A limit the user chose is kept.
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    track_grid(path, {"x": [1, 2]}, tmp_path / "u.db", workers=2, quiet=True)
    assert {v["threads"] for v in stored_values(tmp_path / "u.db")} == {"7"}


@pytest.mark.kernel
@pytest.mark.parametrize("then_sleep", [0, 3])
def test_a_killed_template_is_replaced_and_the_sweep_goes_on(tmp_path, then_sleep):
    # The first point kills the process its kernel was forked from (what the OOM killer
    # might do to the template); the points after it still get kernels.
    path = write_script(
        tmp_path,
        f"""\
        import os
        import signal
        import time

        # parameters
        x = 0

        x

        if x == 1:
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep({then_sleep})
        """, "job.py",
    )
    db = tmp_path / "k.db"
    track_grid(path, {"x": [1, 2, 3, 4]}, db, workers=1, quiet=True)
    statuses = {json.loads(r["parameters"])["x"]: r["status"] for r in rows(db)}
    # The kernel prefetched for the next point, forked before the template died, is replaced
    # too: it would end within a second, during the run it serves.
    assert [statuses[x] for x in (2, 3, 4)] == ["ok"] * 3, statuses
    # The first point's own kernel ends within a second of its template (ipykernel's parent
    # poller): a run that goes on that long crashes; one that ends at once is a race.
    assert statuses[1] in ({"ok", "crashed"} if then_sleep == 0 else {"crashed"}), statuses
    assert sorted(v["x"] for v in stored_values(db)) == [1, 2, 3, 4]


@pytest.mark.kernel
@pytest.mark.parametrize("workers", [1, 2])
def test_a_sweep_starts_one_kernel_per_run_and_none_beyond_its_last(
    tmp_path, monkeypatch, workers
):
    # Kernels are started ahead of the runs that need them; one started for a run that never
    # comes costs a kernel's start-up while the last runs compute, and the sweep waits for it.
    starts = []
    original = KernelTemplate.start

    def counted(template, script_path=None):
        kernel = original(template, script_path)
        starts.append(kernel.pid)
        return kernel

    monkeypatch.setattr(KernelTemplate, "start", counted)
    path = write_script(tmp_path, "x = 1\nx\n", "job.py")
    summary = track_grid(path, {"x": [1, 2, 3, 4, 5]}, tmp_path / "k.db",
                         workers=workers, quiet=True)
    assert summary.ok == 5
    assert len(starts) == 5


@pytest.mark.kernel
def test_tracking_from_inside_a_notebook(tmp_path, monkeypatch):
    # A notebook has a running event loop: the API must still work there. Running our own
    # tracker on a script that calls it is exactly that situation.
    monkeypatch.chdir(tmp_path)
    write_script(tmp_path, "x = 1\nx\n", name="inner.py")
    outer = write_script(
        tmp_path,
        """\
        from ploomber_like import track_execution, track_grid

        record = track_execution("inner.py", database="inner.db")
        status = record.status
        status

        summary = track_grid("inner.py", [{"a": 1}, {"a": 2}], database="inner.db", quiet=True)
        summary.ok
        """,
        name="outer.py",
    )
    summary = track_grid(outer, [{}], tmp_path / "outer.db", quiet=True)
    assert summary.ok == 1
    assert stored_values(tmp_path / "outer.db")[0] == {"status": "ok", "ok": 2}
    assert [r["status"] for r in rows(tmp_path / "inner.db")] == ["ok", "ok", "ok"]


@pytest.mark.kernel
def test_duration_is_the_runs_own_time_not_the_wait_for_the_template(tmp_path):
    # The template imports scikit-learn for the file before the first kernel can fork: seconds
    # the first runs wait, which their duration must not count.
    path = write_script(tmp_path, """\
        import time

        import sklearn.ensemble

        # parameters
        x = 0

        time.sleep(0.3)
        x
        """, "job.py")
    db = tmp_path / "w.db"
    summary = track_grid(path, {"x": [1, 2]}, db, workers=2, quiet=True)
    assert summary.ok == 2
    found = rows(db, "SELECT duration, kernel_wait FROM experiments")
    assert all(r["duration"] >= 0.3 and r["kernel_wait"] > 0 for r in found)
    waited = max(found, key=lambda r: r["kernel_wait"])
    assert waited["duration"] < waited["kernel_wait"], found
