"""Time the 24-point sweep of examples/fit.py against the peers, in one run.

(a) our sweep (warm forked kernels, default workers), (b) a serial in-process loop executing
the same code (the floor), (c) ploomber-engine's ``track_execution`` loop and (d) papermill's
``execute_notebook`` loop when they are installed (``pip install -e '.[bench]'``). Then the
per-run overhead of a trivial script (``x = 1`` / ``x``) over 50 runs.

Targets on a 2-core machine: (a) <= 0.5 x (c); (a) <= 1.3 x (b) / cores; trivial < 0.15 s/run.

    python benchmarks/sweep_fit.py            # everything
    python benchmarks/sweep_fit.py --no-peers # only ours and the floor
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
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


def serial_in_process() -> float:
    """The same code, parameters substituted, executed with exec() in this process."""
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    from ploomber_like.notebook import injected_cell_source

    cells = [c.source for c in jupytext.read(EXAMPLE).cells if c.cell_type == "code"]
    params_at = next(i for i, c in enumerate(cells) if c.startswith("# parameters"))
    started = time.perf_counter()
    for point in points():
        code = cells[: params_at + 1] + [injected_cell_source(point)] + cells[params_at + 1 :]
        namespace: dict = {"__name__": "__main__"}
        exec(compile("\n\n".join(code), str(EXAMPLE), "exec"), namespace)
        # Render the figures as PNG the way Jupyter's inline backend does (and so every
        # tracker that stores them: ploomber-engine, papermill, us).
        for number in plt.get_fignums():
            print_figure(plt.figure(number), "png")
        plt.close("all")
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
    args = parser.parse_args()
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
    print(f"24-point grid on {EXAMPLE.name}, {cores} cores, Python {sys.version.split()[0]}")
    a = ours(workdir)
    print(f"(a) ploomber_like sweep, {cores} workers : {a:7.1f} s")
    b = serial_in_process()
    print(f"(b) serial in-process loop (floor)    : {b:7.1f} s   (b)/cores = {b / cores:.1f} s")
    c = d = None
    if not no_peers:
        c = ploomber_engine(workdir)
        print("(c) ploomber-engine track_execution    : "
              + (f"{c:7.1f} s" if c else "not installed"))
        d = papermill(workdir)
        print("(d) papermill execute_notebook         : "
              + (f"{d:7.1f} s" if d else "not installed"))
    print()
    print(f"(a) / ((b)/cores) = {a / (b / cores):.2f}   target <= 1.3")
    if c:
        print(f"(a) / (c)         = {a / c:.2f}   target <= 0.5")
    if d:
        print(f"(a) / (d)         = {a / d:.2f}")
    per_run = trivial_overhead(workdir)
    print(f"trivial script, 50 runs: {per_run:.3f} s per run   target < 0.15")


if __name__ == "__main__":
    main()
