"""track_execution called again in one process: kernels forked from a kept warm template.

Each test runs a driver in a python process of its own, so that its first call is really the
process's first, and so that what it leaves behind when it exits can be checked: every process
it started inherits the driver's unique ``TMPDIR``, which finds them in ``/proc``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import cli, stored_values, wait_for, write_script

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

SHOW = """
import os
import random

import mymod

ppid = os.getppid()
pid = os.getpid()
seen_before = "leftover" in globals()
leftover = 1
draw = random.random()
value = mymod.VALUE
flag = os.environ.get("PL_TEST_FLAG")
cwd = os.getcwd()

ppid
pid
seen_before
draw
value
flag
cwd
"""

DRIVER_HEAD = """
import json, os, sys, time
from pathlib import Path
from ploomber_like import track_execution

work = Path(sys.argv[1])
os.chdir(work)
runs = []

def run(name, cwd=None):
    record = track_execution(work / name, None, work / "runs.db", quiet=True)
    assert record.status == "ok", (record.status, record.error)
    runs.append(record.values)
    return record.values

def wait_until_dead(pid):
    # A killed process is torn down for a while before its parent can reap it.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not die")
"""


def run_driver(tmp_path: Path, body: str, **env: str) -> tuple[dict, Path]:
    """Run a driver script; return what it printed as JSON and the TMPDIR its processes used."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER_HEAD + textwrap.dedent(body))
    done = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "work")],
        capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmpdir), **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), tmpdir


def processes_using(tmpdir: Path) -> list[int]:
    """Living processes started with ``TMPDIR=tmpdir``."""
    marker = f"TMPDIR={tmpdir}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def wait_until_gone(tmpdir: Path) -> None:
    # Bounded wait for processes that were already told to end (not a timing assertion).
    wait_for(lambda: not processes_using(tmpdir), 120, f"no process left using {tmpdir}")


def user_site_packages(user_base: Path) -> tuple[Path, dict[str, str]]:
    """The site-packages folder ``pip install --user`` fills with ``PYTHONUSERBASE=user_base``
    (a package put there counts as installed, so templates preload it), and the environment
    a driver and its kernels import from it with: a venv leaves that folder off ``sys.path``,
    so it goes on ``PYTHONPATH`` too."""
    env = {"PYTHONUSERBASE": str(user_base)}
    folder = subprocess.run(
        [sys.executable, "-c", "import site; print(site.getusersitepackages())"],
        env={**os.environ, **env}, capture_output=True, text=True,
    ).stdout.strip()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
    return Path(folder), env


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    write_script(folder, SHOW, "show.py")
    (folder / "mymod.py").write_text("VALUE = 1\n")
    return folder


def test_later_calls_fork_isolated_kernels_from_one_template_and_nothing_outlives_the_caller(
    tmp_path, work
):
    out, tmpdir = run_driver(tmp_path, """
        for _ in range(3):
            run("show.py")
        # A user module changed between calls is imported afresh (another size: no stale .pyc).
        (work / "mymod.py").write_text("VALUE = 22\\n")
        run("show.py")
        print(json.dumps({"driver": os.getpid(), "runs": runs}))
    """)
    runs = out["runs"]
    # The first call starts a fresh kernel (the driver is its parent); the later ones are forked
    # by one template, kept across calls.
    assert runs[0]["ppid"] == out["driver"]
    templates = {run["ppid"] for run in runs[1:]}
    assert len(templates) == 1 and out["driver"] not in templates
    # Each run has its own process, namespace and random state, and the user's current module.
    assert len({run["pid"] for run in runs}) == 4
    assert [run["seen_before"] for run in runs] == [False] * 4
    assert len({run["draw"] for run in runs}) == 4
    assert [run["value"] for run in runs] == [1, 1, 1, 22]
    # At exit the template, its kernels and the spare kernel prepared for a next call are gone,
    # and so are the runtime folders.
    wait_until_gone(tmpdir)
    assert list(tmpdir.glob("ploomber-like-*")) == []


def test_the_template_is_rebuilt_when_it_cannot_serve(tmp_path, work):
    write_script(work, SHOW + "\nimport csv\ncsv.QUOTE_ALL\n", "uses_csv.py")
    write_script(work, SHOW + "\nimport decimal\ndecimal.MAX_PREC\n", "uses_decimal.py")
    write_script(work, SHOW + "\nimport userpkg\nuserpkg.VALUE\n", "uses_userpkg.py")
    other = tmp_path / "other"
    other.mkdir()
    site_packages, user_env = user_site_packages(tmp_path / "userbase")
    (site_packages / "userpkg").mkdir(parents=True)
    (site_packages / "userpkg" / "__init__.py").write_text("VALUE = 1\n")

    out, tmpdir = run_driver(tmp_path, f"""
        import shutil, signal, time
        run("show.py")                          # fresh kernel
        t1 = run("uses_csv.py")["ppid"]         # builds a template
        same = run("uses_csv.py")["ppid"]
        t2 = run("uses_decimal.py")["ppid"]     # imports a module t1 has not preloaded
        union = run("uses_csv.py")["ppid"]      # t2 preloaded both
        os.environ["PL_TEST_FLAG"] = "on"
        t3 = run("uses_csv.py")                 # the environment changed
        os.kill(t3["ppid"], signal.SIGKILL)     # the template dies ...
        wait_until_dead(t3["ppid"])             # ... before the next call (see the next test)
        t4 = run("uses_csv.py")["ppid"]
        os.chdir({str(other)!r})
        t5 = run("show.py")                     # another working directory
        os.chdir(work)
        t6 = run("uses_userpkg.py")
        again = run("uses_userpkg.py")["ppid"]
        # An upgrade, as pip does it: the package folder removed and written anew.
        site_packages = Path({str(site_packages)!r})
        shutil.rmtree(site_packages / "userpkg")
        (site_packages / "userpkg").mkdir()
        (site_packages / "userpkg" / "__init__.py").write_text("VALUE = 22\\n")
        t7 = run("uses_userpkg.py")
        print(json.dumps(dict(
            t1=t1, same=same, t2=t2, union=union, t3=t3, t4=t4, t5=t5, t6=t6, again=again, t7=t7,
            other={str(other)!r},
        )))
    """, **user_env)
    assert out["same"] == out["t1"]
    assert out["t2"] != out["t1"]
    assert out["union"] == out["t2"]
    assert out["t3"]["ppid"] != out["t2"] and out["t3"]["flag"] == "on"
    assert out["t4"] not in (out["t3"]["ppid"], out["t2"])
    assert out["t5"]["ppid"] != out["t4"]
    assert out["t5"]["cwd"] == out["other"]
    assert out["t6"]["VALUE"] == 1
    assert out["again"] == out["t6"]["ppid"]
    assert out["t7"]["ppid"] != out["t6"]["ppid"]
    assert out["t7"]["VALUE"] == 22
    wait_until_gone(tmpdir)


def test_a_template_that_dies_as_a_call_forks_from_it_is_replaced_and_the_run_goes_on(
    tmp_path, work
):
    # A package whose import makes the first template that preloads it exit on its first fork
    # request: the template looks alive when the call asks for a kernel, and dies answering.
    site_packages, user_env = user_site_packages(tmp_path / "userbase")
    package = site_packages / "forkbomb_once"
    package.mkdir(parents=True)
    marker = tmp_path / "first-template-pid"
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        import os
        from pathlib import Path

        marker = Path({str(marker)!r})
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.fork = lambda: os._exit(3)
        VALUE = 1
    """))
    write_script(work, SHOW + "\nimport forkbomb_once\nforkbomb_once.VALUE\n", "dies.py")
    out, tmpdir = run_driver(tmp_path, """
        run("show.py")                  # fresh kernel
        record = run("dies.py")         # asserts the run is ok
        print(json.dumps(record))
    """, **user_env)
    first_template = int(marker.read_text())
    assert out["VALUE"] == 1
    assert out["ppid"] != first_template
    wait_until_gone(tmpdir)


def test_keep_warm_false_runs_fresh_kernels_and_leaves_no_template(tmp_path, work):
    out, _ = run_driver(tmp_path, """
        ppids = []
        for _ in range(2):
            record = track_execution(work / "show.py", None, work / "runs.db", quiet=True,
                                     keep_warm=False)
            ppids.append(record.values["ppid"])

        def living_children():
            found = []
            for entry in Path("/proc").iterdir():
                try:
                    stat = (entry / "stat").read_text().rpartition(")")[2].split()
                except (OSError, ValueError):
                    continue
                if stat[0] not in ("Z", "X") and int(stat[1]) == os.getpid():
                    found.append(int(entry.name))
            return found

        print(json.dumps({"driver": os.getpid(), "ppids": ppids, "children": living_children()}))
    """)
    # Both runs in kernels the driver started itself, and no template waiting for a next call.
    assert out["ppids"] == [out["driver"]] * 2
    assert out["children"] == []


def test_calls_from_a_running_event_loop_and_from_threads(tmp_path, work):
    out, tmpdir = run_driver(tmp_path, """
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        async def in_a_notebook():
            # As in a Jupyter cell: synchronous calls while an event loop runs.
            return [run("show.py"), run("show.py")]

        asyncio.run(in_a_notebook())
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: run("show.py"), range(4)))
        print(json.dumps({"runs": runs}))
    """)
    runs = out["runs"]
    assert len(runs) == 6
    assert len({run["pid"] for run in runs}) == 6
    assert not any(run["seen_before"] for run in runs)
    wait_until_gone(tmpdir)


@pytest.mark.kernel
def test_a_pythonpath_entry_naming_the_working_directory_stays_on_a_forked_kernels_path(tmp_path):
    # `PYTHONPATH=$PWD python scripts/s.py` keeps $PWD on sys.path; the template dropped every
    # entry equal to its working directory, so forked runs lost it (only '' stayed).
    folder = tmp_path / "scripts"
    folder.mkdir()
    write_script(folder, "# parameters\nn = 1\nWORKDIR = ''\n\nimport sys\n\n"
                 "on_path = WORKDIR in sys.path\non_path\n")
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    done = cli("scripts/script.py", "-g", "n=1,2", "-p", f"WORKDIR={str(tmp_path)!r}",
               "-d", "runs.db", "-q", "-w", "1", cwd=tmp_path, env={"PYTHONPATH": pythonpath})
    assert done.returncode == 0, done.stdout + done.stderr
    assert [values["on_path"] for values in stored_values(tmp_path / "runs.db")] == [True, True]
