"""Reading at scale: every view over databases of 10k, 100k and 1M runs (issue 20).

Builds a database per size with realistic rows (5 parameters, 4 scores, 3 plots as references
to shared blobs, stdout, environment, a 20-point metric series for 1 run in 10), then runs
each read the way a user does, in its own process, and prints its wall time and peak RSS
beside the targets: the CLI commands, ``SQLiteTracker.query``/``runs`` in ``python -c``,
``report``, the web UI in headless Chromium (first paint with data, a sort, a filter, a
brush on the parallel coordinates, a run page), writing one more run against an empty
database, and the first open of a database written by an earlier version. Last, 8 sweeps write
into one database while the UI, ``ls`` and ``query`` read it (tests/concurrent_sweeps.py).

    python benchmarks/scale.py --runs 10000 100000 --dir /tmp/scale

Targets at 1M runs on 2 cores: CLI reads <= 1 s wall including interpreter start, the seed's
top-3 SQL through SQLiteTracker.query <= 100 ms, UI first paint <= 1.5 s, each interaction
<= 300 ms, every process <= 300 MB peak RSS, one write <= 1.5x the empty database's. At 100k
runs (and below) half of each (a write <= 1.25x).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ploomber_like.errors import DatabaseError
from ploomber_like.record import (
    Blob,
    Environment,
    MetricPoint,
    Record,
    RunError,
    Status,
    new_created,
    new_uuid,
    run_fingerprint,
)
from ploomber_like.store import (
    ANCHOR_COLUMNS,
    EXTRA_COLUMNS,
    Store,
    connect,
    experiment_columns,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

#: Installed in every page before its own scripts: notes when the runs table first has a row,
#: the time of the last click or pointer release, and when a condition the harness sets
#: (``until``) first holds after a change of the page. Timed inside the page, an interaction
#: leaves out Playwright's own round trips (~35 - 65 ms a click, ~20 ms a wait, measured here).
IN_PAGE_TIMING = """
window.__timing = {rows: null, input: null, until: null, met: null, frames: null};
for (const type of ["pointerup", "click"]) {
  document.addEventListener(type, () => { window.__timing.input = performance.now(); }, true);
}
// A gesture's responsiveness: each pointer event's delay to the end of the next frame after
// its handlers ran (what the Event Timing API measures for discrete events, which leaves moves
// out), noted while `frames` is a list.
for (const type of ["pointerdown", "pointermove", "pointerup"]) {
  document.addEventListener(type, (event) => {
    const frames = window.__timing.frames;
    if (frames === null) return;
    const began = event.timeStamp;
    requestAnimationFrame(() => setTimeout(() => frames.push(performance.now() - began)));
  }, true);
}
new MutationObserver(() => {
  const t = window.__timing;
  if (t.rows === null && document.querySelector("#runs-table tbody tr")) t.rows = performance.now();
  if (t.until !== null && t.met === null && t.input !== null) {
    try { if ((0, eval)(t.until)) t.met = performance.now(); } catch (e) {}
  }
}).observe(document, {childList: true, subtree: true, attributes: true, characterData: true});
"""

SEED_QUERY = (
    "SELECT uuid, json_extract(parameters, '$.f1') AS f1 "
    "FROM experiments ORDER BY f1 DESC LIMIT 3"
)
SOURCE = (
    "# parameters\nn_estimators = 100\nmax_depth = None\ncriterion = 'gini'\n"
    "learning_rate = 0.1\nseed = 0\n\nmodel = fit(n_estimators, max_depth)\naccuracy\nf1\n"
)
PLOTS = ("confusion_matrix", "precision_recall", "roc")
#: Distinct images per plot: runs share them, as blobs are stored once per content.
PLOT_VARIANTS = 10
SCORES = ("accuracy", "precision", "recall", "f1")
#: 1 run in this many prints a series (and 1 in FAILED_EVERY fails, without scores).
SERIES_EVERY = 10
FAILED_EVERY = 50
SERIES_POINTS = 20
#: Runs the filter benchmarks select (about): a condition a user types to find the best few.
FILTERED_RUNS = 20

#: ``experiments`` as an earlier version of ours wrote it (commit 5b18aeb, 2026-11-25: before
#: metrics, artifacts, names, tags and searches), beside the anchor's four columns.
EARLIER_COLUMNS = (
    "status", "duration", "error_type", "error_message", "traceback", "error_group",
    "error_source", "parameter_keys", "overrides", "group_durations", "source_path",
    "source_sha256", "environment", "stdout", "stderr", "fingerprint", "driver", "reproduces",
)
EARLIER_VERSIONS = ("5b18aeb", "sklearn-evaluation")
#: What --only chooses from: the CLI reads (report included), the browser, writing one run,
#: the first open of earlier versions' databases, the concurrent sweeps.
STEPS = ["cli", "ui", "writes", "migrations", "concurrency"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="database sizes to build and measure")
    parser.add_argument("--dir", type=Path,
                        help="keep the databases here and reuse them (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds each measured command may take")
    parser.add_argument("--seed-runs", type=int, default=2000,
                        help="runs written by the real Store; the rest are copies made in SQL")
    parser.add_argument("--build-only", action="store_true", help="build, measure nothing")
    parser.add_argument("--no-ui", action="store_true", help="skip the browser measurements")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=STEPS,
                        help="measure only these steps on each database (no concurrency run "
                             "unless 'concurrency' is among them); e.g. --only ui")
    parser.add_argument("--writers", type=int, default=8,
                        help="sweeps writing at once in the concurrency run (0: skip it)")
    parser.add_argument("--child", nargs=2, metavar=("ACTION", "DATABASE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
              f"commit {_git_commit()}, databases in {folder}")
        for runs in args.runs:
            path = folder / f"runs-{runs}.db"
            build_database(path, runs, args.seed_runs)
            if args.build_only:
                continue
            work = folder / f"work-{runs}"
            work.mkdir(exist_ok=True)
            steps = set(args.only) - ({"ui"} if args.no_ui else set())
            measurements = measure_size(path, runs, work, args.timeout, steps)
            print_table(runs, measurements)
            shutil.rmtree(work, ignore_errors=True)
        if args.writers and not args.build_only and "concurrency" in args.only:
            _concurrency(folder / "concurrency", args.writers)


# --- building the databases ------------------------------------------------------------------


def build_database(path: Path, runs: int, seed_runs: int) -> None:
    """``runs`` rows at ``path``: the first ``seed_runs`` written by the real :class:`Store`
    from real :class:`Record` objects, the rest copied from them in SQL with fresh uuids,
    scores and timestamps (a sweep commits one run at a time: far too slow for a million).

    The copies bypass the writer: a read structure that the writer maintains beside
    ``experiments`` and ``metrics`` must be rebuilt here after the copy.
    """
    if path.exists() and _count(path) == runs:
        print(f"reusing {path} ({runs} runs, {_size_mb(path):.0f} MB)")
        return
    for stale in (path, *(_earlier_path(path, variant) for variant in EARLIER_VERSIONS)):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{stale}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    seeds = min(seed_runs, runs)
    plots = _plot_pool()
    rng = random.Random(0)
    with Store(path) as store:
        for i in range(seeds):
            store.finish(_record(i, rng, plots))
    print(f"{runs} runs: {seeds} written by Store in {time.perf_counter() - started:.1f} s",
          flush=True)
    _replicate(path, seeds, runs)
    print(f"{runs} runs: built in {time.perf_counter() - started:.1f} s, "
          f"{_size_mb(path):.0f} MB")


def _record(i: int, rng: random.Random, plots: dict[str, list[Blob]], uuid: str = "") -> Record:
    """Run ``i`` of a sweep of a script like examples/fit.py."""
    parameters = {
        "n_estimators": rng.choice([10, 25, 50, 100, 200]),
        "max_depth": rng.choice([3, 5, 10, None]),
        "criterion": rng.choice(["gini", "entropy"]),
        "learning_rate": round(rng.uniform(0.001, 0.3), 4),
        "seed": i,
    }
    failed = i % FAILED_EVERY == FAILED_EVERY - 1
    chosen = {kind: plots[kind][i % PLOT_VARIANTS] for kind in PLOTS}
    values = {} if failed else {
        **{score: rng.random() for score in SCORES},
        **{kind: blob.reference() for kind, blob in chosen.items()},
    }
    stdout = f"fitting {parameters['n_estimators']} trees\n"
    metrics = []
    if i % SERIES_EVERY == 0:
        for step in range(SERIES_POINTS):
            loss = 1 / (step + 1) + rng.random() / 10
            stdout += f"loss: {loss}\n"
            metrics.append(MetricPoint("loss", step, loss, time.time()))
    return Record(
        uuid=uuid or new_uuid(),
        created=new_created(),
        path="examples/fit.py",
        source=SOURCE,
        parameters=parameters,
        overrides=dict(parameters),
        status=Status.FAILED if failed else Status.OK,
        values=values,
        blobs={} if failed else {blob.sha256: blob for blob in chosen.values()},
        error=RunError("ValueError", "bad input", "Traceback (most recent call last):\n"
                       "ValueError: bad input", group=2, group_source="model.fit(X, y)",
                       location="fit.py:12") if failed else None,
        duration=rng.uniform(1, 30),
        group_durations=[rng.uniform(0, 3) for _ in range(6)],
        stdout=stdout,
        environment=Environment(
            python="3.12.8", platform="Linux-6.8.0-x86_64-with-glibc2.39", host="laptop",
            user="ana", command="python -m tracker examples/fit.py -g n_estimators=10,50,100",
            git_commit="4f1c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39", git_dirty=False,
            packages={"numpy": "2.4.0", "pandas": "3.1.0", "scikit-learn": "1.7.2",
                      "matplotlib": "3.11.0"},
            cwd="/home/ana/project",
        ),
        metrics=metrics,
        fingerprint=run_fingerprint(SOURCE, parameters),
    )


def _plot_pool() -> dict[str, list[Blob]]:
    """Real matplotlib PNGs, PLOT_VARIANTS per kind."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pool: dict[str, list[Blob]] = {}
    for kind in PLOTS:
        pool[kind] = []
        for variant in range(PLOT_VARIANTS):
            fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
            ax.plot([x * (variant + 1) % 7 for x in range(30)])
            ax.set_title(f"{kind} {variant}")
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            plt.close(fig)
            pool[kind].append(Blob("image/png", buffer.getvalue()))
    return pool


#: SQL for a uniform random number in [0, 1).
_RANDOM = "(random() / 18446744073709551616.0 + 0.5)"


def _replicate(path: Path, seeds: int, runs: int, chunk: int = 100_000) -> None:
    """Copy the ``seeds`` rows (and their series) until there are ``runs``, one transaction per
    ``chunk`` rows, with fresh uuids, fingerprints, scores, learning rates, durations and
    created times (older than the seeds': the seeds stay the most recent runs)."""
    if runs <= seeds:
        return
    conn = connect(path)
    try:
        # Random uuids land all over the uuid index: past SQLite's 2 MB default cache, every
        # insert would read pages back from disk. This connection's cache only, not stored.
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute(
            "CREATE TEMP TABLE seeds AS SELECT row_number() OVER (ORDER BY rowid) - 1 AS n, "
            "uuid FROM experiments"
        )
        columns = sorted(experiment_columns(conn))
        scores = ", ".join(f"'$.{score}', p.{score}" for score in SCORES)
        copied = {
            "uuid": "p.uuid",
            "created": "printf('%s.%06d', datetime('2026-01-01', '+' || p.i || ' seconds'), "
                       "p.i % 1000000)",
            "parameters": "CASE WHEN s.status = 'ok' THEN json_set(s.parameters, '$.seed', p.i, "
                          f"'$.learning_rate', p.learning_rate, {scores}) ELSE json_set("
                          "s.parameters, '$.seed', p.i, '$.learning_rate', p.learning_rate) END",
            "overrides": "json_set(s.overrides, '$.seed', p.i, '$.learning_rate', "
                         "p.learning_rate)",
            "fingerprint": "lower(hex(randomblob(32)))",
            "duration": f"s.duration * (0.5 + {_RANDOM})",
        }
        select = ", ".join(copied.get(column, f"s.{column}") for column in columns)
        randoms = ", ".join(f"{_RANDOM} AS {score}" for score in SCORES)
        done, started = seeds, time.perf_counter()
        while done < runs:
            end = min(runs, done + chunk)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TEMP TABLE plan AS WITH RECURSIVE c(i) AS (SELECT ? UNION ALL "
                "SELECT i + 1 FROM c WHERE i + 1 < ?) "
                "SELECT c.i AS i, seeds.uuid AS seed, lower(hex(randomblob(16))) AS uuid, "
                f"round(0.001 + 0.3 * {_RANDOM}, 4) AS learning_rate, {randoms} "
                "FROM c JOIN seeds ON seeds.n = c.i % ?",
                (done, end, seeds),
            )
            conn.execute(
                f"INSERT INTO experiments ({', '.join(columns)}) SELECT {select} "
                "FROM temp.plan AS p JOIN experiments AS s ON s.uuid = p.seed"
            )
            conn.execute(
                "INSERT INTO metrics (uuid, key, step, value, time) "
                f"SELECT p.uuid, m.key, m.step, m.value * (0.9 + 0.2 * {_RANDOM}), m.time "
                "FROM temp.plan AS p JOIN metrics AS m ON m.uuid = p.seed"
            )
            conn.execute("DROP TABLE temp.plan")
            conn.execute("COMMIT")
            done = end
            print(f"  {done} / {runs} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _build_earlier_version(path: Path, variant: str) -> None:
    """The runs of ``path`` as an earlier version of ours or sklearn-evaluation wrote them, for
    timing the first open's migration (plots dropped from the anchor's rows: it stored them
    inline, which ``tracker migrate`` moves, not the first open)."""
    if variant == "sklearn-evaluation":
        columns = ANCHOR_COLUMNS
        parameters = f"json_remove(parameters, {', '.join(repr('$.' + p) for p in PLOTS)})"
    else:
        columns, parameters = (*ANCHOR_COLUMNS, *EARLIER_COLUMNS), "parameters"
    target = _earlier_path(path, variant)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    ours = ", ".join(f"{c} {EXTRA_COLUMNS[c]}" for c in columns[len(ANCHOR_COLUMNS):])
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE experiments (uuid TEXT NOT NULL UNIQUE, created TIMESTAMP "
            f"DEFAULT CURRENT_TIMESTAMP, parameters TEXT, comment TEXT{', ' if ours else ''}"
            f"{ours})"
        )
        if variant != "sklearn-evaluation":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("ATTACH ? AS source", (str(path),))
        conn.execute("BEGIN")
        selected = ", ".join(parameters if c == "parameters" else c for c in columns)
        conn.execute(
            f"INSERT INTO experiments ({', '.join(columns)}) "
            f"SELECT {selected} FROM source.experiments"
        )
        if variant != "sklearn-evaluation":
            conn.execute(
                "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, mimetype TEXT NOT NULL, "
                "data BLOB NOT NULL)"
            )
            conn.execute("INSERT INTO blobs SELECT * FROM source.blobs")
            conn.execute(
                "CREATE INDEX experiments_fingerprint ON experiments (fingerprint, status)"
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _earlier_path(path: Path, variant: str) -> Path:
    return path.with_name(f"{path.stem}-{variant}.db")


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One measured thing: its wall time and peak RSS, or why there are none."""

    name: str
    #: The target this row is judged against (see :func:`_target`).
    kind: str
    wall: float | None = None
    rss_mb: float | None = None
    #: Seconds the command measured inside itself (no interpreter start), when it says.
    inner: float | None = None
    #: ``timeout``, ``failed: ...`` or a remark.
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.wall is not None or self.rss_mb is not None


def measure_size(
    path: Path, runs: int, work: Path, timeout: float, steps: set[str]
) -> list[Measurement]:
    """The measurements of the issue in ``steps`` (see :data:`STEPS`) on the database at
    ``path``."""
    facts = _facts(path)
    database = ["-d", str(path)]
    tracker = [sys.executable, "-m", "tracker"]
    where = facts["where"]
    commands = [
        ("ls", "cli", [*tracker, "ls", *database]),
        ("ls --sort f1", "cli", [*tracker, "ls", "--sort", "f1", *database]),
        ("compare --sort f1", "cli", [*tracker, "compare", "--sort", "f1", *database]),
        (f"compare --where (~{FILTERED_RUNS} runs)", "cli",
         [*tracker, "compare", "--where", where, *database]),
        ("show <uuid>", "cli", [*tracker, "show", facts["middle"], *database]),
        ("query (seed SQL)", "cli", [*tracker, "query", SEED_QUERY, *database]),
        ("SQLiteTracker.query (seed SQL)", "query", _child_command("query", path)),
        ("SQLiteTracker.runs(sort, limit)", "cli", _child_command("runs", path)),
        ("report -o", "cli", [*tracker, "report", "-o", str(work / "report.html"), *database]),
    ]
    results = []
    for name, kind, command in commands if "cli" in steps else []:
        results.append(run_measured(name, kind, command, timeout))
        _print_progress(results[-1])
    for step, measure in (("ui", lambda: measure_ui(path, facts, timeout)),
                          ("writes", lambda: measure_writes(path, work, timeout)),
                          ("migrations", lambda: measure_migrations(path, work, timeout))):
        for measurement in measure() if step in steps else []:
            results.append(measurement)
            _print_progress(measurement)
    return results


def _facts(path: Path) -> dict[str, str | int]:
    """What the measurements check their answers against, read once, untimed."""
    conn = connect(path, readonly=True)
    try:
        total = conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
        threshold = 1 - FILTERED_RUNS / total
        where = f"json_extract(parameters, '$.f1') > {threshold:.8f}"
        matching = conn.execute(f"SELECT count(*) FROM experiments WHERE {where}").fetchone()[0]
        best = conn.execute(
            "SELECT uuid FROM experiments ORDER BY json_extract(parameters, '$.f1') DESC LIMIT 1"
        ).fetchone()[0]
        middle = conn.execute(
            "SELECT uuid FROM experiments WHERE rowid = ?", (total // 2,)
        ).fetchone()[0]
    finally:
        conn.close()
    return {"where": where, "matching": matching, "best": best, "middle": middle}


def run_measured(
    name: str, kind: str, command: list[str], timeout: float, cwd: Path = ROOT
) -> Measurement:
    """Run ``command`` through :data:`LAUNCHER`: its wall time and peak RSS, and the
    ``seconds`` it printed as its last line of JSON, if any."""
    measurement = Measurement(name, kind)
    with tempfile.TemporaryDirectory() as scratch:
        out, err = Path(scratch) / "out", Path(scratch) / "err"
        launched = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, str(timeout), str(out), str(err), *command],
            cwd=cwd, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
        )
        if launched.returncode != 0:
            measurement.note = f"launcher failed: {launched.stderr.strip()[-120:]}"
            return measurement
        result = json.loads(launched.stdout)
        if result["timed_out"]:
            measurement.note = f"timeout (> {timeout:.0f} s)"
            return measurement
        if result["returncode"] != 0:
            lines = err.read_text(errors="replace").strip().splitlines() or ["(no stderr)"]
            measurement.note = f"failed (exit {result['returncode']}): {lines[-1][:120]}"
            return measurement
        with out.open("rb") as output:
            output.seek(max(0, output.seek(0, os.SEEK_END) - 4096))
            tail = output.read().decode(errors="replace").strip().splitlines()
    measurement.wall = result["wall"]
    measurement.rss_mb = result["maxrss_kb"] / 1024  # kilobytes on Linux
    if tail and tail[-1].startswith("{"):
        reported = json.loads(tail[-1])
        measurement.inner = reported.get("seconds")
        measurement.note = reported.get("note", "")
    return measurement


#: Runs a command, timed out by killing its process group; prints its wall time and peak RSS.
#: A small process of its own because Linux counts the memory of the image a process was
#: forked from in its peak RSS: forked from this benchmark, every command would weigh as much.
LAUNCHER = """
import json, os, signal, subprocess, sys, threading, time
timeout, out, err, command = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
lock, state = threading.Lock(), {"finished": False, "timed_out": False}
with open(out, "wb") as stdout, open(err, "wb") as stderr:
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True)
    def expire():
        with lock:
            if not state["finished"]:
                state["timed_out"] = True
                os.killpg(process.pid, signal.SIGKILL)
    timer = threading.Timer(timeout, expire)
    timer.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    with lock:
        state["finished"] = True
    timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind (kernels)
    except (ProcessLookupError, PermissionError):
        pass
print(json.dumps({"wall": wall, "maxrss_kb": usage.ru_maxrss,
                  "returncode": process.returncode, "timed_out": state["timed_out"]}))
"""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _child_command(action: str, path: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", action, str(path)]


def _child(action: str, database: str) -> None:
    """The in-process side of a measurement: prints ``{"seconds": ...}`` as its last line."""
    if action == "query":
        import pandas  # noqa: F401  (imported before the clock: it is not the query's time)

        from ploomber_like import SQLiteTracker

        tracker = SQLiteTracker(database, create=False)
        times = []
        for _ in range(3):
            began = time.perf_counter()
            tracker.query(SEED_QUERY)
            times.append(time.perf_counter() - began)
        print(json.dumps({"seconds": statistics.median(times),
                          "note": f"median of 3; first {times[0] * 1000:.0f} ms"}))
    elif action == "runs":
        from ploomber_like import SQLiteTracker

        began = time.perf_counter()
        runs = SQLiteTracker(database, create=False).runs(sort="f1", limit=20)
        assert len(runs) == 20
        print(json.dumps({"seconds": time.perf_counter() - began}))
    elif action == "write":
        print(json.dumps(_time_writes(Path(database))))
    elif action == "open":
        began = time.perf_counter()
        Store(database).close()
        print(json.dumps({"seconds": time.perf_counter() - began}))
    else:
        raise SystemExit(f"unknown child action {action}")


def _time_writes(path: Path, count: int = 21) -> dict[str, float | str]:
    """Write ``count`` runs with the real Store, each in its transaction as a sweep does; the
    median time of one write. The runs are deleted again (with ``Store.delete_runs``, untimed
    here), so a kept database keeps its size."""
    plots = _plot_pool()
    rng = random.Random(1)
    records = [_record(i * SERIES_EVERY, rng, plots, uuid=f"benchwrite{i:022d}")
               for i in range(count)]
    times = []
    with Store(path) as store:
        for record in records:
            began = time.perf_counter()
            store.finish(record)
            times.append(time.perf_counter() - began)
        began = time.perf_counter()
        store.delete_runs(record.uuid for record in records)
        removal = time.perf_counter() - began
    return {"seconds": statistics.median(times),
            "note": f"median of {count} (wall: making plots included); "
                    f"then rm of them took {removal:.2f} s"}


def measure_writes(path: Path, work: Path, timeout: float) -> list[Measurement]:
    """One run written into ``path`` and into an empty database, by the Store and by a tracked
    run of a trivial script."""
    empty = work / "empty.db"
    Store(empty).close()
    script = work / "trivial.py"
    script.write_text("# parameters\nx = 0\n\ny = x * 2\ny\n", encoding="utf-8")
    results = []
    # A write reads a leaf of each of a dozen indexes: from the operating system's cache it
    # costs ~1 ms at a million runs, from disk ~5 ms. The database is read through first, so the
    # figure is the one after the sweep that wrote it, not whatever earlier steps left cached.
    warmed = _read_through(path)
    for label, target in (("empty db", empty), ("this db", path)):
        results.append(run_measured(f"write one run, Store ({label})", "write",
                                    _child_command("write", target), timeout))
    results[-1].note += f"; the database read through first ({warmed:.1f} s)"
    for label, target in (("empty db", empty), ("this db", path)):
        tracked = run_measured(
            f"track one run, CLI ({label})", "info",
            [sys.executable, "-m", "tracker", str(script), "-d", str(target), "-q", "-p", "x=1"],
            timeout, cwd=work,
        )
        results.append(tracked)
        if target == path:
            # The deletion sweeps every row for orphan blobs: slow at scale, untimed here, and
            # it keeps a reused database as built.
            with Store(target) as store:
                store.delete_runs(
                    row[0] for row in store.conn.execute(
                        "SELECT uuid FROM experiments WHERE source_path LIKE ?",
                        (f"%{script.name}",),
                    )
                )
    empty_write, full_write = results[0], results[1]
    if empty_write.inner and full_write.inner:
        ratio = full_write.inner / empty_write.inner
        full_write.note = f"{ratio:.2f}x the empty db; " + full_write.note
    return results


def _read_through(path: Path) -> float:
    """Read the database file once, into the operating system's cache; the seconds it took."""
    began = time.perf_counter()
    with open(path, "rb") as file:
        while file.read(1 << 20):
            pass
    return time.perf_counter() - began


def measure_migrations(path: Path, work: Path, timeout: float) -> list[Measurement]:
    """The first writable open of the same runs as written by earlier versions, then a
    second open of the migrated copy."""
    results = []
    for variant in EARLIER_VERSIONS:
        original = _earlier_path(path, variant)
        if not original.exists():
            _build_earlier_version(path, variant)
        copy = work / f"migrating-{variant}.db"
        shutil.copyfile(original, copy)
        for attempt in ("first", "second"):
            results.append(run_measured(
                f"{attempt} open of a {variant} db", "info", _child_command("open", copy),
                timeout,
            ))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return results


# --- the web UI --------------------------------------------------------------------------------


def measure_ui(path: Path, facts: dict[str, str | int], timeout: float) -> list[Measurement]:
    """``tracker ui`` driven by headless Chromium: first paint with data, sorting by f1, a
    filter matching ~20 runs, a brush on the parallel coordinates' f1 axis, a run page; and the
    server's peak RSS over all of it."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tracker", "ui", "-d", str(path), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    results: list[Measurement] = []
    try:
        started = _wait_for_server(url, server, timeout)
        results.append(Measurement("ui: server start", "info", wall=started,
                                   note="" if started is not None else "timeout"))
        if started is None:
            return results
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(timeout * 1000)
            page.add_init_script(IN_PAGE_TIMING)
            rows = "#runs-table tbody tr"
            state = ("() => [document.getElementById('run-count').textContent, "
                     f"document.querySelectorAll('{rows}').length].join('|')")
            best, where, matching = facts["best"], facts["where"], facts["matching"]

            def until(condition: str) -> None:
                """Have the page note when ``condition`` first holds after the next input."""
                page.evaluate(
                    "c => Object.assign(window.__timing, {until: c, met: null, input: null})",
                    condition,
                )

            def in_page(action: Callable[[], None], condition: str) -> float:
                """Seconds in the page from the input ``action`` makes to the first change of
                the page after which ``condition`` holds."""
                until(condition)
                action()
                page.wait_for_function(condition)
                return page.evaluate("() => (window.__timing.met - window.__timing.input) / 1000")

            def first_paint() -> float:
                page.goto(url + "/", wait_until="commit")
                page.wait_for_selector(rows)
                # From the navigation's start, as the browser times it.
                return page.evaluate("() => window.__timing.rows / 1000")

            def sort() -> float:
                return in_page(
                    lambda: page.click('#runs-table thead th[data-key="f1"]'),
                    f"document.querySelector('{rows}').dataset.uuid === '{best}'",
                )

            def filtering() -> float:
                page.fill("#where", str(where))
                return in_page(
                    lambda: page.click("#filter-form button[type=submit]"),
                    f"document.querySelectorAll('{rows}').length === {matching}",
                )

            def brush() -> float:
                page.fill("#where", "")
                page.click("#filter-form button[type=submit]")
                page.wait_for_function(
                    f"() => document.querySelectorAll('{rows}').length !== {matching}"
                )
                # The chart of every run, drawn after the table: its f1 axis is what is brushed.
                page.wait_for_function(
                    "() => Array.from(document.querySelectorAll("
                    "'#parcoords .parcoords .axis-title')).some(n => n.textContent === 'f1')"
                )
                labels = page.eval_on_selector_all(
                    "#parcoords .parcoords .axis-title", "nodes => nodes.map(n => n.textContent)"
                )
                axis = page.locator("#parcoords .parcoords .axis-brush .background").nth(
                    labels.index("f1")
                )
                box = axis.bounding_box()
                before = page.evaluate(state)
                x = box["x"] + box["width"] / 2
                until(f"({state})() !== {json.dumps(before)}")
                page.mouse.move(x, box["y"] + 3)
                page.evaluate("() => { window.__timing.frames = []; }")
                began = time.perf_counter()
                page.mouse.down()
                page.mouse.move(x, box["y"] + box["height"] * 0.25, steps=10)
                # The gesture's 12 events take a frame each in headless Chromium (~0.2 s) what
                # ever the page does, and its length is the user's hand: the page is judged on
                # its slowest answer to one of them, and on the release's rows.
                released = time.perf_counter()
                page.mouse.up()
                page.wait_for_function(f"before => ({state})() !== before", arg=before)
                ended = time.perf_counter()
                from_release.append((
                    ended - released,
                    page.evaluate("() => (window.__timing.met - window.__timing.input) / 1000"),
                ))
                slowest = page.wait_for_function(
                    "() => window.__timing.frames.length >= 12"
                    " && Math.max(...window.__timing.frames) / 1000"
                ).json_value()
                page.evaluate("() => { window.__timing.frames = null; }")
                gesture.append((ended - began, slowest))
                return slowest

            def run_page() -> float:
                page.goto(f"{url}/run/{facts['middle']}", wait_until="load")
                page.wait_for_selector("table.kv")
                # The server renders the run's tables: its first paint shows them.
                return page.wait_for_function(
                    "() => (performance.getEntriesByType('paint')"
                    ".find(e => e.name === 'first-contentful-paint') || {}).startTime / 1000"
                ).json_value()

            painted = False
            from_release: list[tuple[float, float]] = []
            gesture: list[tuple[float, float]] = []
            for name, step in (("first paint with data", first_paint), ("sort by f1", sort),
                               (f"filter (~{FILTERED_RUNS} runs)", filtering),
                               ("brush f1 on parallel coordinates", brush),
                               ("run page", run_page)):
                kind = "paint" if step is first_paint else "interaction"
                if step in (sort, filtering, brush) and not painted:
                    results.append(Measurement(f"ui: {name}", kind, note="skipped (no paint)"))
                    continue
                began = time.perf_counter()
                try:
                    inner = step()
                except PlaywrightError as exc:
                    reason = "timeout" if "Timeout" in str(exc) else f"failed: {exc}"[:120]
                    results.append(Measurement(f"ui: {name}", kind, note=reason))
                    continue
                wall = time.perf_counter() - began
                if step is brush:
                    results.append(Measurement(
                        f"ui: {name}, slowest frame", kind, wall=gesture[0][0], inner=inner,
                        note="wall: the whole gesture, driven",
                    ))
                    results.append(Measurement("ui: brush, from the release to the rows",
                                               kind, wall=from_release[0][0],
                                               inner=from_release[0][1]))
                else:
                    results.append(Measurement(f"ui: {name}", kind, wall=wall, inner=inner))
                painted = painted or step is first_paint
            browser.close()
    finally:
        peak = _peak_rss_mb(server.pid)
        _kill_group(server.pid)
        server.wait()
        results.append(Measurement("ui: server's peak RSS over every step", "rss", rss_mb=peak,
                                   note="" if peak is not None else "the server had exited"))
    return results


def _wait_for_server(url: str, server: subprocess.Popen[bytes], timeout: float) -> float | None:
    import httpx

    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if server.poll() is not None:
            return None
        try:
            httpx.get(url + "/static/app.css", timeout=timeout)
            return time.perf_counter() - began
        except httpx.TransportError:
            time.sleep(0.05)
    return None


def _peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- reporting -----------------------------------------------------------------------------------


def _target(kind: str, runs: int) -> tuple[float | None, float | None, str]:
    """(seconds, MB, how it reads) for a kind of measurement at ``runs``: the issue's figures
    at 1M runs, half of each at 100k and below."""
    scale = 1.0 if runs > 100_000 else 0.5
    rss = 300 * scale
    seconds = {"cli": 1.0, "query": 0.1, "paint": 1.5, "interaction": 0.3}.get(kind)
    if kind == "write":
        return 1 + 0.5 * scale, None, f"<= {1 + 0.5 * scale:.2f}x empty"
    if seconds is None:
        return None, rss, f"<= {rss:.0f} MB"
    seconds *= scale
    shown = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
    where = {"query": " in-process", "paint": " in the page", "interaction": " in the page"}.get(
        kind, ""
    )
    return seconds, rss, f"<= {shown}{where}, <= {rss:.0f} MB"


def _verdict(measurement: Measurement, runs: int, empty_write: float | None) -> str:
    if measurement.kind == "info":
        return "-"
    if not measurement.ok:
        return "MISSED"
    seconds, rss, _ = _target(measurement.kind, runs)
    missed = []
    if measurement.kind == "write":
        if empty_write and measurement.inner and measurement.inner / empty_write > seconds:
            missed.append("slower")
    elif seconds is not None:
        # A query as timed in-process; a page and its interactions as timed in the page (see
        # IN_PAGE_TIMING) when the page could say.
        measured = measurement.inner if measurement.kind == "query" else (
            measurement.inner if measurement.inner is not None
            and measurement.kind in ("paint", "interaction") else measurement.wall
        )
        if measured is not None and measured > seconds:
            missed.append("time")
    if rss is not None and measurement.rss_mb is not None and measurement.rss_mb > rss:
        missed.append("RSS")
    return "MISSED " + "+".join(missed) if missed else "met"


def print_table(runs: int, results: list[Measurement]) -> None:
    empty = next((m.inner for m in results if m.name == "write one run, Store (empty db)"), None)
    print()
    print(f"## {runs:,} runs")
    print()
    print("| measure | wall | in-process | peak RSS | target | result | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for m in results:
        wall = f"{m.wall:.3f} s" if m.wall is not None else "-"
        inner = f"{m.inner * 1000:.1f} ms" if m.inner is not None else "-"
        rss = f"{m.rss_mb:.0f} MB" if m.rss_mb is not None else "-"
        target = "-" if m.kind == "info" else _target(m.kind, runs)[2]
        if m.name == "write one run, Store (empty db)":
            target, verdict = "(reference)", "-"
        else:
            verdict = _verdict(m, runs, empty)
        print(f"| {m.name} | {wall} | {inner} | {rss} | {target} | {verdict} | {m.note} |")
    print()


def _print_progress(measurement: Measurement) -> None:
    shown = f"{measurement.wall:.2f} s" if measurement.wall is not None else measurement.note
    print(f"  {measurement.name}: {shown}", flush=True)


def _concurrency(folder: Path, writers: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from concurrent_sweeps import run_concurrent_sweeps

    shutil.rmtree(folder, ignore_errors=True)
    outcome = run_concurrent_sweeps(folder, writers=writers, points=3)
    print(f"## concurrency: {outcome.summary()}")
    longest = max(outcome.readers.values(), key=lambda calls: calls.longest)
    print(f"longest reader wait: {longest.longest:.2f} s ({longest.name}); in-process query "
          f"{outcome.readers['in-process query'].longest * 1000:.0f} ms")
    for problem in outcome.problems[:20]:
        print(f"  problem: {problem}")
    for row in outcome.incomplete[:20]:
        print(f"  incomplete: {row}")


# --- small helpers -----------------------------------------------------------------------------


def _count(path: Path) -> int:
    try:
        conn = connect(path, readonly=True)
    except DatabaseError:  # a half-built file from an interrupted run: rebuild it
        return -1
    try:
        return conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
    except sqlite3.Error:
        return -1
    finally:
        conn.close()


def _size_mb(path: Path) -> float:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    ) / 1e6


def _git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
