"""Shared helpers: write a script into ``tmp_path``, track it, read stored rows, run the CLI in
a process of its own, wait for a condition."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ploomber_like import Record, track_execution


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the documents' examples first: they are the suite's longest tests (7 - 75 s each),
    and one started last keeps a worker busy while the other has nothing left to run."""
    items.sort(key=lambda item: item.path.name != "test_docs.py")


@dataclass
class TrackedRun:
    """A tracked run: the returned record and its row as stored, JSON columns decoded."""

    record: Record
    row: dict[str, Any]
    database: Path

    @property
    def stored(self) -> dict[str, Any]:
        """The ``parameters`` column: parameters and captured values together."""
        return self.row["parameters"]


JSON_COLUMNS = ("parameters", "parameter_keys", "overrides", "group_durations", "environment")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_script(folder: Path, text: str, name: str = "script.py") -> Path:
    """Write ``text`` (dedented) to ``folder / name`` and return the path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def rows(
    database: str | os.PathLike[str],
    sql: str = "SELECT * FROM experiments",
    parameters: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    """What ``sql`` selects from ``database``, a dict per row. Read-only: a database that does
    not exist is an error (``sqlite3.OperationalError``), never created."""
    conn = sqlite3.connect(f"{Path(database).absolute().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, parameters)]
    finally:
        conn.close()


def stored_values(database: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Each run's ``parameters`` column decoded (its parameters and values), in written order."""
    found = rows(database, "SELECT parameters FROM experiments ORDER BY rowid")
    return [json.loads(row["parameters"]) for row in found]


def read_row(database: Path, uuid: str) -> dict[str, Any]:
    """The ``experiments`` row of ``uuid`` as a dict, JSON columns decoded."""
    (row,) = rows(database, "SELECT * FROM experiments WHERE uuid = ?", (uuid,))
    for column in JSON_COLUMNS:
        if row[column] is not None:
            row[column] = json.loads(row[column])
    return row


def run(
    folder: Path,
    text: str,
    parameters: dict[str, Any] | None = None,
    *,
    name: str = "script.py",
    **options: Any,
) -> TrackedRun:
    """Write ``text`` as a script in ``folder``, track it into ``folder / runs.db``."""
    database = folder / "runs.db"
    record = track_execution(write_script(folder, text, name), parameters, database, **options)
    return TrackedRun(record, read_row(database, record.uuid), database)


def cli(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    module: str = "tracker",
    input: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``python -m tracker ARGS`` in a process of its own, its output captured as text.

    ``env``: variables set on top of this process's (``None`` unsets one); ``module``: the entry
    point (``ploomber_like.tracking`` is the same CLI). ``timeout`` only stops a hung test.
    """
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=environment, input=input,
        capture_output=True, text=True, timeout=timeout,
    )


def modules_after_cli(*args: str, cwd: str | os.PathLike[str]) -> set[str]:
    """The modules the command line's own process (the driver) had imported when
    ``python -m tracker ARGS`` ended; the command must succeed."""
    code = (  # a command ends with sys.exit: the modules are listed at exit
        "import atexit, json, sys; atexit.register(lambda: print(json.dumps(sorted(sys.modules))));"
        f" from ploomber_like.cli import main; main({list(args)!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def hidden_module(folder: Path, name: str) -> dict[str, str]:
    """Variables for :func:`cli`'s ``env`` under which ``import name`` fails, as it does where
    that optional package is not installed (a package of that name in ``folder`` raising)."""
    package = folder / "hidden" / name
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(package.parent),
                                                         os.environ.get("PYTHONPATH")]))}


T = TypeVar("T")


def as_in_a_terminal() -> None:
    """``preexec_fn`` of a driver a test interrupts: Ctrl-C in a terminal finds SIGINT handled.
    A suite started in the background of a script (``cmd &``) ignores it, and its children
    inherit that: Python then never raises KeyboardInterrupt, and the driver runs on."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition: Callable[[], T], timeout: float = 300, what: str = "the condition") -> T:
    """Poll ``condition`` until it returns something true, and return that; fail the test past
    ``timeout`` seconds. Generous by default: a loaded machine is slow, not wrong. A condition
    may fail the test itself sooner (an ``assert`` that a process it waits on still runs)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:g} s"
        time.sleep(0.05)
    return result


@pytest.fixture
def track(tmp_path: Path):
    """``track(text, parameters, **options)``: run a script written in this test's tmp_path."""

    def track_in_tmp(text: str, parameters: dict[str, Any] | None = None, **options: Any):
        return run(tmp_path, text, parameters, **options)

    return track_in_tmp


@pytest.fixture(autouse=True, scope="session")
def private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What templates learn (kernels.learned) is cached under XDG_CACHE_HOME: keep the suite's
    out of the user's ~/.cache, for this process and the drivers and kernels it starts."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
