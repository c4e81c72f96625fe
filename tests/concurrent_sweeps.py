"""Several sweeps writing into one database while the UI, ``ls`` and ``query`` read it.

Real processes throughout: each writer is ``python -m tracker script.py -g n=... -w 1``, the UI
is ``python -m tracker ui`` polled over HTTP, and ``ls``/``query`` run as CLI commands in a
loop, beside one in-process reader (``SQLiteTracker.query``) whose calls time SQLite alone,
without an interpreter's start. ``tests/test_concurrency.py`` runs a small version on every CI
run; ``benchmarks/scale.py`` runs the full one.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SEED_QUERY = (
    "SELECT uuid, json_extract(parameters, '$.f1') AS f1 "
    "FROM experiments ORDER BY f1 DESC LIMIT 3"
)

#: Each run shows a score computed from its parameters and prints a series, so a row can be
#: checked for completeness: its values, its stdout and its metrics all come from one run.
#: The pause makes each run last long enough for the readers to overlap the writes.
SCRIPT = textwrap.dedent(
    """\
    # parameters
    n = 0
    writer = 0

    import time

    f1 = n / 10 + writer / 1000
    f1

    for step in range(3):
        print(f"loss: {{1 / (step + 1 + n)}}")
    time.sleep({pause})
    """
)

#: What tells a problem in a process's output, besides a non-zero exit.
PROBLEM_MARKERS = ("Traceback", "database is locked", "locked", "OperationalError")


@dataclass
class ReaderCalls:
    """How long each call of one reader took."""

    name: str
    durations: list[float] = field(default_factory=list)
    #: How many calls started while sweeps were still writing.
    while_writing: int = 0

    @property
    def longest(self) -> float:
        return max(self.durations, default=0.0)


@dataclass
class ConcurrencyOutcome:
    """What the writers left and what the readers saw."""

    writers: int
    points: int
    rows: int
    #: Rows lacking something a finished run writes (uuid and what is missing).
    incomplete: list[str]
    #: Errors any process or reader call surfaced: who, and the message.
    problems: list[str]
    readers: dict[str, ReaderCalls]
    seconds: float

    @property
    def expected(self) -> int:
        return self.writers * self.points

    def summary(self) -> str:
        waits = ", ".join(
            f"{r.name} {len(r.durations)} calls ({r.while_writing} during writes), "
            f"longest {r.longest:.2f} s"
            for r in self.readers.values()
        )
        return (
            f"{self.writers} sweeps x {self.points} runs in {self.seconds:.0f} s: "
            f"{self.rows}/{self.expected} rows, {len(self.incomplete)} incomplete, "
            f"{len(self.problems)} problems; readers: {waits}"
        )


def run_concurrent_sweeps(
    folder: Path, writers: int = 4, points: int = 3, pause: float = 1.0,
    deadline: float = 300.0,
) -> ConcurrencyOutcome:
    """Run ``writers`` sweeps of ``points`` runs each (each run lasting ``pause`` seconds or
    more) into ``folder / 'concurrent.db'`` while the readers loop, and report what happened.
    Every process started here is ended here."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "script.py"
    script.write_text(SCRIPT.format(pause=pause), encoding="utf-8")
    database = folder / "concurrent.db"
    started = time.monotonic()
    problems: list[str] = []
    grid = ",".join(str(n) for n in range(1, points + 1))
    sweeps = [
        subprocess.Popen(
            [sys.executable, "-m", "tracker", str(script), "-d", str(database), "-q", "-w", "1",
             "-g", f"n={grid}", "-g", f"writer={i}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(writers)
    ]
    names = ("ui /api/runs", "ls", "query", "in-process query")
    readers = {name: ReaderCalls(name) for name in names}
    ui = None
    threads: list[threading.Thread] = []
    writing = threading.Event()
    writing.set()
    try:
        # Readers start once there is something to read: before that, "database not found" is
        # the right answer, not a problem.
        _wait_for_first_row(database, sweeps, started + deadline)
        port = _free_port()
        ui = subprocess.Popen(
            [sys.executable, "-m", "tracker", "ui", "-d", str(database), "--port", str(port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        api = f"http://127.0.0.1:{port}/api/runs"
        # Readers time their calls from here on: the server's start is not a wait on writers.
        _wait_for_server(api, ui, started + deadline)
        loops: list[tuple[ReaderCalls, Callable[[], str | None]]] = [
            (readers["ui /api/runs"], _api_reader(api, ui)),
            (readers["ls"], _cli_reader(["ls", "-d", str(database)])),
            (readers["query"], _cli_reader(["query", SEED_QUERY, "-d", str(database)])),
            (readers["in-process query"], _tracker_reader(database)),
        ]
        for calls, read in loops:
            thread = threading.Thread(
                target=_loop, args=(calls, read, writing, problems), daemon=True
            )
            thread.start()
            threads.append(thread)
        for sweep in sweeps:
            left = max(1.0, started + deadline - time.monotonic())
            try:
                out, err = sweep.communicate(timeout=left)
            except subprocess.TimeoutExpired:
                problems.append(f"sweep {sweep.pid}: did not finish within {deadline:.0f} s")
                continue
            problems += _output_problems(f"sweep {sweep.pid}", sweep.returncode, out + err)
    finally:
        writing.clear()
        for thread in threads:
            thread.join(timeout=120)
        for sweep in sweeps:
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait()
        if ui is not None:
            ui.terminate()
            try:
                _, err = ui.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                ui.kill()
                _, err = ui.communicate()
            problems += [f"ui: {line}" for line in err.splitlines() if _is_problem(line)]
    rows, incomplete = _check_rows(database, points)
    return ConcurrencyOutcome(
        writers, points, rows, incomplete, problems, readers, time.monotonic() - started
    )


def _loop(
    calls: ReaderCalls, read: Callable[[], str | None], writing: threading.Event,
    problems: list[str],
) -> None:
    # One more call after the writers end: it must see every row, and still not fail.
    last = False
    while not last:
        last = not writing.is_set()
        calls.while_writing += not last
        began = time.monotonic()
        try:
            problem = read()
        except Exception as exc:  # a reader that dies would otherwise stop reading unseen
            problem = f"{type(exc).__name__}: {exc}"
        calls.durations.append(time.monotonic() - began)
        if problem:
            problems.append(f"{calls.name}: {problem}")


def _cli_reader(arguments: list[str]) -> Callable[[], str | None]:
    def read() -> str | None:
        done = subprocess.run(
            [sys.executable, "-m", "tracker", *arguments], cwd=ROOT, capture_output=True,
            text=True, timeout=300,
        )
        problems = _output_problems("", done.returncode, done.stdout + done.stderr)
        return "; ".join(problems) or None

    return read


def _api_reader(url: str, ui: subprocess.Popen[str]) -> Callable[[], str | None]:
    import httpx

    def read() -> str | None:
        try:
            answer = httpx.get(url, timeout=300)
        except httpx.TransportError as exc:
            exited = f" (the UI exited with {ui.returncode})" if ui.poll() is not None else ""
            return f"{type(exc).__name__}: {exc}{exited}"
        if answer.status_code != 200:
            return f"HTTP {answer.status_code}: {answer.text[:300]}"
        return None

    return read


def _tracker_reader(database: Path) -> Callable[[], str | None]:
    # Imported here, not in the first timed call: pandas' import is not a wait on SQLite.
    import pandas  # noqa: F401

    from ploomber_like import SQLiteTracker
    from ploomber_like.errors import TrackerError

    tracker = SQLiteTracker(database, create=False)

    def read() -> str | None:
        try:
            tracker.query(SEED_QUERY)
        except (TrackerError, sqlite3.Error) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    return read


def _wait_for_server(url: str, ui: subprocess.Popen[str], until: float) -> None:
    import httpx

    while time.monotonic() < until and ui.poll() is None:
        try:
            httpx.get(url, timeout=300)
            return
        except httpx.TransportError:
            time.sleep(0.05)


def _output_problems(who: str, returncode: int, output: str) -> list[str]:
    found = [line for line in output.splitlines() if _is_problem(line)]
    if returncode != 0:
        found.insert(0, f"exit {returncode}: {output.strip()[-500:]}")
    return [f"{who}: {line}" if who else line for line in found]


def _is_problem(line: str) -> bool:
    return any(marker in line for marker in PROBLEM_MARKERS)


def _wait_for_first_row(database: Path, sweeps: list[subprocess.Popen[str]], until: float) -> None:
    while time.monotonic() < until:
        if all(sweep.poll() is not None for sweep in sweeps) or _row_count(database) > 0:
            return
        time.sleep(0.1)


def _row_count(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=60)
        try:
            return conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0  # the schema is being created


def _check_rows(database: Path, points: int) -> tuple[int, list[str]]:
    """How many rows there are, and which lack what a finished run of SCRIPT writes."""
    if not database.exists():
        return 0, []
    conn = sqlite3.connect(database, timeout=60)
    try:
        rows = conn.execute(
            "SELECT uuid, status, json_extract(parameters, '$.n'), "
            "json_extract(parameters, '$.writer'), json_extract(parameters, '$.f1'), stdout, "
            "environment, duration, (SELECT count(*) FROM metrics AS m WHERE m.uuid = e.uuid) "
            "FROM experiments AS e"
        ).fetchall()
    finally:
        conn.close()
    incomplete = []
    for uuid, status, n, writer, f1, stdout, environment, duration, metrics in rows:
        missing = []
        if status != "ok":
            missing.append(f"status {status}")
        if n is None or writer is None or f1 is None or abs(f1 - (n / 10 + writer / 1000)) > 1e-9:
            missing.append(f"values n={n} writer={writer} f1={f1}")
        if "loss:" not in (stdout or ""):
            missing.append("stdout")
        if metrics != 3:
            missing.append(f"{metrics} metric points")
        if environment is None or duration is None:
            missing.append("environment or duration")
        if missing:
            incomplete.append(f"{uuid}: {', '.join(missing)}")
    return len(rows), incomplete


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
