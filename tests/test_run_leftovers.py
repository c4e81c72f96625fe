"""What a run may leave behind: processes its script started, runtime folders of dead drivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, stored_values, wait_for, write_script

from ploomber_like import track_grid
from ploomber_like.kernels import processes

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

STARTS_CHILDREN = """
import subprocess
import sys

sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
# A child in a session of its own, and a daemon whose parent exits at once (double fork).
child = subprocess.Popen(sleeper, start_new_session=True).pid
# The daemon must not hold the launcher's stdout pipe, or reading its pid would wait for it.
launcher = [sys.executable, "-c", "import subprocess, sys; "
            f"print(subprocess.Popen({sleeper!r}, start_new_session=True, "
            "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL).pid)"]
daemon = int(subprocess.run(launcher, capture_output=True, text=True).stdout)

child
daemon
"""


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


@pytest.mark.parametrize("path", ["fresh-kernel", "forked-kernel", "without-children-lists"])
def test_processes_the_script_started_end_with_the_run(tmp_path, monkeypatch, path):
    if path == "without-children-lists":
        # Kernels built without /proc/PID/task/TID/children: the whole process table is read.
        monkeypatch.setattr(processes, "_children_files", lambda: False)
    script = write_script(tmp_path, STARTS_CHILDREN)
    database = tmp_path / "runs.db"
    if path == "fresh-kernel":
        done = cli(str(script), "-d", str(database), "-q")
        assert done.returncode == 0, done.stderr
    else:
        summary = track_grid(script, [{}], database, quiet=True, workers=1)
        assert summary.ok == 1
    (values,) = stored_values(database)
    started = [values["child"], values["daemon"]]
    try:
        # The run killed them: a bounded wait for them to be gone, not a timing assertion.
        wait_for(lambda: not any(map(is_running, started)), what="the script's processes ending")
    finally:
        for pid in started:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_next_driver_removes_the_runtime_folder_of_a_killed_one(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    hangs = write_script(tmp_path, "import time\ntime.sleep(300)\n", "hangs.py")
    driver = subprocess.Popen(
        [sys.executable, "-m", "tracker", str(hangs), "-d", str(tmp_path / "a.db"), "-q"],
        env={**os.environ, "TMPDIR": str(tmpdir)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        def kernel_started() -> list[Path]:
            assert driver.poll() is None, "the driver ended before its kernel started"
            return list(tmpdir.glob("ploomber-like-*/kernel-*.json"))

        wait_for(kernel_started, what="the kernel started (the run then sleeps)")
        (folder,) = tmpdir.glob("ploomber-like-*")
    finally:
        driver.kill()
        driver.wait()
    assert folder.exists()  # nobody was left to remove it

    quick = write_script(tmp_path, "x = 1\nx\n", "quick.py")
    done = cli(str(quick), "-d", str(tmp_path / "b.db"), "-q", env={"TMPDIR": str(tmpdir)})
    assert done.returncode == 0, done.stderr
    assert not folder.exists()
    assert list(tmpdir.glob("ploomber-like-*")) == []


def test_the_next_driver_removes_the_run_directories_of_a_killed_sweep(tmp_path):
    # A sweep on two workers gives each run a directory of its own in $TMPDIR (and each kernel
    # started ahead for the next points): a driver killed with SIGKILL cannot remove them.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    markers = tmp_path / "markers"
    markers.mkdir()
    hangs = write_script(
        tmp_path,
        f"# parameters\nn = 0\n\nimport pathlib, time\n"
        f"pathlib.Path({str(markers)!r}, f'started-{{n}}').touch()\ntime.sleep(300)\n",
        "hangs.py",
    )
    driver = subprocess.Popen(
        [sys.executable, "-m", "tracker", str(hangs), "-g", "n=1,2,3", "-w", "2",
         "-d", str(tmp_path / "a.db"), "-q"],
        cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmpdir)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        def runs_started() -> bool:
            assert driver.poll() is None, "the driver ended before its runs started"
            return len(list(markers.iterdir())) == 2

        wait_for(runs_started, what="two runs started (they then sleep)")
    finally:
        driver.kill()
        driver.wait()
    left = list(tmpdir.glob("ploomber-like-*/run-*"))
    assert len(left) >= 2, sorted(p.name for p in tmpdir.iterdir())  # nobody removed them

    quick = write_script(tmp_path, "x = 1\nx\n", "quick.py")
    done = cli(str(quick), "-d", str(tmp_path / "b.db"), "-q", env={"TMPDIR": str(tmpdir)})
    assert done.returncode == 0, done.stderr
    assert not any(path.exists() for path in left)
    assert list(tmpdir.glob("ploomber-like-*")) == []
