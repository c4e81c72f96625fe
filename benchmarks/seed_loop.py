"""Time the seed's loop: ``track_execution`` once per grid point, ours against ploomber-engine's.

The loop is the one users bring from the ploomber-engine tracking tutorial: 24 points of
examples/fit.py (sklearn's ``ParameterGrid``), each ``track_execution(..., quiet=True,
database=...)``. Each loop runs in a python process of its own, timed from outside, so both
pay their own interpreter start and imports, as a user's script does. Then one CLI run of each:
``python -m tracker examples/fit.py -p ...`` against the same single call of ploomber-engine's
``track_execution`` (its own CLI executes notebooks but does not track them).

Target on 2 cores: ours / ploomber-engine's <= 1.0, for the loop and for the single run.
Needs ``pip install -e '.[bench]'``.

    python benchmarks/seed_loop.py           # the 24-point loop 3 times, and the single run
    python benchmarks/seed_loop.py --quick   # 3 small points: checks that it runs, times nothing
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from timing import time_process

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "fit.py"
GRID = {
    "n_estimators": [10, 15, 25, 50],
    "max_depth": [5, 10, None],
    "criterion": ["gini", "entropy"],
}
QUICK_GRID = {"n_estimators": [5], "max_depth": [3], "criterion": ["gini", "entropy", "log_loss"]}
SINGLE = {"n_estimators": 50, "max_depth": 10}

# The loop as a user writes it; only the import differs between the two trackers.
LOOP = """
import sys
from sklearn.model_selection import ParameterGrid
from {module} import track_execution

for point in ParameterGrid({grid!r}):
    track_execution({path!r}, parameters={{**point, **{fixed!r}}}, quiet=True,
                    database={database!r})
"""
SINGLE_CALL = """
from ploomber_engine.tracking import track_execution
track_execution({path!r}, parameters={parameters!r}, database={database!r}, quiet=True)
"""
TRACKERS = {"ploomber_like": "ploomber_like", "ploomber-engine": "ploomber_engine.tracking"}



def time_loop(tracker: str, grid: dict, fixed: dict, workdir: Path) -> float:
    code = LOOP.format(module=TRACKERS[tracker], grid=grid, path=str(EXAMPLE), fixed=fixed,
                       database=str(workdir / f"{tracker}-loop.db"))
    return time_process([sys.executable, "-c", code], workdir)


def time_single(tracker: str, parameters: dict, workdir: Path) -> float:
    database = str(workdir / f"{tracker}-single.db")
    if tracker == "ploomber_like":
        assignments = ",".join(f"{name}={value!r}" for name, value in parameters.items())
        argv = [sys.executable, "-m", "tracker", str(EXAMPLE), "-p", assignments,
                "-d", database, "-q"]
    else:
        argv = [sys.executable, "-c",
                SINGLE_CALL.format(path=str(EXAMPLE), parameters=parameters, database=database)]
    return time_process(argv, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="alternated pairs of loops")
    parser.add_argument("--quick", action="store_true",
                        help="3 small points: check that the benchmark runs (times mean nothing)")
    args = parser.parse_args()
    grid = QUICK_GRID if args.quick else GRID
    fixed = {"n_samples": 2000} if args.quick else {}
    points = 1
    for values in grid.values():
        points *= len(values)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        print(f"seed loop: {points} points of {EXAMPLE.name}, one process per tracker, "
              f"{args.n} alternated pair(s)")
        ratios = []
        for _ in range(args.n):
            ours = time_loop("ploomber_like", grid, fixed, workdir)
            peer = time_loop("ploomber-engine", grid, fixed, workdir)
            ratios.append(ours / peer)
            print(f"  ploomber_like loop {ours:7.1f} s, ploomber-engine loop {peer:7.1f} s: "
                  f"{ours / peer:.2f}")
        print(f"  ratio ours / ploomber-engine        : {statistics.median(ratios):7.2f} "
              f"(median of {len(ratios)})   target <= 1.0")
        single = {**SINGLE, **fixed}
        print(f"single run, {single}")
        ours_single = time_single("ploomber_like", single, workdir)
        print(f"  python -m tracker                    : {ours_single:7.1f} s")
        peer_single = time_single("ploomber-engine", single, workdir)
        print(f"  ploomber-engine track_execution       : {peer_single:7.1f} s")
        print(f"  ratio ours / ploomber-engine        : {ours_single / peer_single:7.2f}"
              "   target <= 1.0")


if __name__ == "__main__":
    main()
