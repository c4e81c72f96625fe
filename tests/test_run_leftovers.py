"""What a run may leave behind: processes its script started, runtime folders of dead drivers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_script

from ploomber_like import track_grid

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

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


def wait_until_ended(pids: list[int]) -> list[int]:
    # Bounded wait for processes already killed (not a timing assertion).
    deadline = time.monotonic() + 120
    while any(is_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if is_running(pid)]


def stored_values(database: Path) -> list[dict]:
    with sqlite3.connect(database) as conn:
        return [json.loads(row[0]) for row in conn.execute("SELECT parameters FROM experiments")]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], capture_output=True, text=True,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("path", ["fresh-kernel", "forked-kernel"])
def test_processes_the_script_started_end_with_the_run(tmp_path, path):
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
        assert wait_until_ended(started) == []
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
        # Bounded wait for the kernel to be started (the run then sleeps).
        deadline = time.monotonic() + 300
        while not list(tmpdir.glob("ploomber-like-*/kernel-*.json")):
            if driver.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        (folder,) = tmpdir.glob("ploomber-like-*")
    finally:
        driver.kill()
        driver.wait()
    assert folder.exists()  # nobody was left to remove it

    quick = write_script(tmp_path, "x = 1\nx\n", "quick.py")
    done = cli(str(quick), "-d", str(tmp_path / "b.db"), "-q", TMPDIR=str(tmpdir))
    assert done.returncode == 0, done.stderr
    assert not folder.exists()
    assert list(tmpdir.glob("ploomber-like-*")) == []
