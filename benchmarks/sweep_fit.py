"""Time the 24-point sweep of examples/fit.py against the peers, in one run.

(a) our sweep (warm forked kernels, default workers), (b) a serial in-process loop executing
the same code (the floor), (c) ploomber-engine's ``track_execution`` loop and (d) papermill's
``execute_notebook`` loop when they are installed (``pip install -e '.[bench]'``). Then the
per-run overhead of a trivial script (``x = 1`` / ``x``) over 50 runs.

The honest floor of an isolated sweep on a cold start is one interpreter start with the file's
imports plus the serial in-process compute divided by the cores: (s) + (b) / cores. It assumes
the cores scale perfectly; (p) measures what they give: the same in-process loop shared by one
process per core (imports done before the clock starts, points handed out one at a time), so
(s) + (p) is the floor of this machine. (b) and (p) are timed about a minute apart: where the
machine's own speed changes in between, "the cores give" can read above the number of cores.

Targets on a 2-core machine: (a) <= 1.15 x the floor; (a) <= 0.5 x (c); trivial <= 0.05 s/run.

    python benchmarks/sweep_fit.py            # everything
    python benchmarks/sweep_fit.py --no-peers # only ours and the floor
    python benchmarks/sweep_fit.py --quick    # a tiny grid: checks the script, times nothing
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "fit.py"
NOTEBOOK = HERE.parent / "examples" / "fit.ipynb"
GRID = {
    "n_estimators": [10, 15, 25, 50],
    "max_depth": [5, 10, None],
    "criterion": ["gini", "entropy"],
}
#: --quick: a 4-point grid on 1,000 rows, to check the script runs (its times mean nothing).
QUICK_GRID = {"n_estimators": [5, 10], "max_depth": [5, None], "n_samples": [1000]}


def points() -> list[dict]:
    names = list(GRID)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*GRID.values())]


def ours(workdir: Path) -> float:
    from ploomber_like import track_grid

    started = time.perf_counter()
    summary = track_grid(EXAMPLE, GRID, workdir / "ours.db", quiet=True, force=True)
    elapsed = time.perf_counter() - started
    assert summary.failed == 0, summary
    return elapsed


def in_process_runner(path: Path = EXAMPLE):
    """A function running one point of ``path`` (examples/fit.py) in this process with exec(),
    figures rendered as PNG the way Jupyter's inline backend does (so every tracker that stores
    them); it returns the namespace the code left."""
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    from ploomber_like.notebook import injected_cell_source

    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
    params_at = next(i for i, c in enumerate(cells) if c.startswith("# parameters"))

    def run(point: dict) -> dict:
        code = cells[: params_at + 1] + [injected_cell_source(point)] + cells[params_at + 1 :]
        namespace: dict = {"__name__": "__main__"}
        exec(compile("\n\n".join(code), str(path), "exec"), namespace)
        for number in plt.get_fignums():
            print_figure(plt.figure(number), "png")
        plt.close("all")
        return namespace

    return run


def serial_in_process(path: Path = EXAMPLE, grid: list[dict] | None = None) -> tuple[float, float]:
    """The same code, parameters substituted, executed with exec() in this process: (b), and
    (b) with its first point timed again once warm (without the imports it paid the first
    time), the serial time to compare with :func:`parallel_in_process`."""
    grid = points() if grid is None else grid
    run = in_process_runner(path)
    started = time.perf_counter()
    run(grid[0])
    first = time.perf_counter() - started
    for point in grid[1:]:
        run(point)
    total = time.perf_counter() - started
    again = time.perf_counter()
    run(grid[0])
    return total, total - first + (time.perf_counter() - again)


def parallel_in_process(path: Path, grid: list[dict], cores: int) -> float:
    """The in-process loop of ``path`` over ``grid`` shared by ``cores`` processes, each warmed
    by one untimed point first (its imports, its caches): what the machine's cores give to the
    same work, without isolation or tracking."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(cores + 1)
    with context.Pool(cores, initializer=_warm_worker, initargs=(path, grid[0], ready)) as pool:
        ready.wait()
        started = time.perf_counter()
        pool.map(_run_point, grid, chunksize=1)
        return time.perf_counter() - started


_WORKER_RUN = None


def _warm_worker(path: Path, point: dict, ready) -> None:
    global _WORKER_RUN
    _WORKER_RUN = in_process_runner(path)
    _WORKER_RUN(point)
    ready.wait()


def _run_point(point: dict) -> None:
    _WORKER_RUN(point)


def interpreter_start(path: Path = EXAMPLE) -> float:
    """One cold interpreter start importing what the file at ``path`` imports (and pyplot,
    which it draws with): what any isolated run must pay at least once."""
    imports = "; ".join(
        ["import matplotlib.pyplot"]
        + [line.strip() for line in path.read_text().splitlines()
           if line.startswith(("import ", "from ")) and not line.rstrip().endswith("(")]
        + ["import sklearn.metrics"]
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", imports], check=True,
                   env={**os.environ, "MPLBACKEND": "Agg"})
    return time.perf_counter() - started


def ploomber_engine(workdir: Path) -> float | None:
    if importlib.util.find_spec("ploomber_engine") is None:
        return None
    from ploomber_engine.tracking import track_execution

    started = time.perf_counter()
    for point in points():
        track_execution(str(EXAMPLE), parameters=point, database=str(workdir / "pe.db"),
                        quiet=True)
    return time.perf_counter() - started


def papermill(workdir: Path) -> float | None:
    if importlib.util.find_spec("papermill") is None:
        return None
    import papermill as pm

    started = time.perf_counter()
    for index, point in enumerate(points()):
        pm.execute_notebook(
            str(NOTEBOOK), str(workdir / f"out-{index}.ipynb"), parameters=point,
            progress_bar=False, kernel_name="python3",
        )
    return time.perf_counter() - started


def trivial_overhead(workdir: Path, runs: int = 50) -> float:
    from ploomber_like import track_grid

    script = workdir / "trivial.py"
    script.write_text("x = 1\nx\n")
    started = time.perf_counter()
    summary = track_grid(script, [{"run": i} for i in range(runs)], workdir / "trivial.db",
                         quiet=True)
    elapsed = time.perf_counter() - started
    assert summary.ok == runs, summary
    return elapsed / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peers", action="store_true", help="skip ploomber-engine/papermill")
    parser.add_argument("--quick", action="store_true", help="a 4-point grid, no peers")
    args = parser.parse_args()
    if args.quick:
        GRID.clear()
        GRID.update(QUICK_GRID)
        args.no_peers = True
    cores = os.cpu_count() or 1
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        os.chdir(workdir)  # runs and peers write their files here
        try:
            _measure(workdir, cores, args.no_peers)
        finally:
            os.chdir(home)


def _measure(workdir: Path, cores: int, no_peers: bool) -> None:
    print(f"{len(points())}-point grid on {EXAMPLE.name}, {cores} cores, "
          f"Python {sys.version.split()[0]}")
    a = ours(workdir)
    print(f"(a) ploomber_like sweep, {cores} workers : {a:7.1f} s")
    start = interpreter_start()
    print(f"(s) interpreter start + the imports   : {start:7.1f} s")
    b, warm = serial_in_process()
    print(f"(b) serial in-process loop            : {b:7.1f} s   (b)/cores = {b / cores:.1f} s")
    floor = start + b / cores
    print(f"floor = (s) + (b)/cores               : {floor:7.1f} s")
    p = parallel_in_process(EXAMPLE, points(), cores)
    print(f"(p) the loop over {cores} processes         : {p:7.1f} s   the cores give "
          f"{warm / p:.2f} x one ({warm:.1f} s warm, serial)")
    c = d = None
    if not no_peers:
        c = ploomber_engine(workdir)
        print("(c) ploomber-engine track_execution    : "
              + (f"{c:7.1f} s" if c else "not installed"))
        d = papermill(workdir)
        print("(d) papermill execute_notebook         : "
              + (f"{d:7.1f} s" if d else "not installed"))
    print()
    print(f"(a) / floor       = {a / floor:.2f}   target <= 1.15")
    print(f"(a) / ((s) + (p)) = {a / (start + p):.2f}   this machine's floor")
    if c:
        print(f"(a) / (c)         = {a / c:.2f}   target <= 0.5")
    if d:
        print(f"(a) / (d)         = {a / d:.2f}")
    per_run = trivial_overhead(workdir, runs=5 if len(points()) < 24 else 50)
    print(f"trivial script: {per_run:.3f} s per run   target <= 0.05")


if __name__ == "__main__":
    main()
