"""Time a single tracked run against the script run by itself: ``python -m tracker fit.py -q``
against ``python fit.py``, the two alternated, each a process of its own timed from outside.

Both pay an interpreter start and the script's imports; the tracked run pays besides a Jupyter
kernel's start-up, rendering the figures it records, and writing the row. Then the same for a
trivial script (``x = 1`` / ``x``): what a tracked run costs beyond its code.

Target on 2 cores: median of the pairwise ratios <= 1.15 for examples/fit.py.

    python benchmarks/single_run.py            # 5 pairs of each
    python benchmarks/single_run.py -n 9
    python benchmarks/single_run.py --quick    # 1 pair on 1,000 rows: checks it runs
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from timing import time_process

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "fit.py"
TRIVIAL = "x = 1\nx\n"



def alternate(script: Path, pairs: int, workdir: Path) -> tuple[list[float], list[float]]:
    """``pairs`` times: the tracked run, then the plain one; their seconds."""
    tracked = [sys.executable, "-m", "tracker", script.name, "-q", "-d", "runs.db"]
    plain = [sys.executable, script.name]
    time_process(tracked, workdir)  # warm-up: the OS's file cache, the database's creation
    time_process(plain, workdir)
    ours, theirs = [], []
    for _ in range(pairs):
        ours.append(time_process(tracked, workdir))
        theirs.append(time_process(plain, workdir))
    return ours, theirs


def report(name: str, ours: list[float], theirs: list[float], target: float | None) -> None:
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(f"{name}: {len(ratios)} pairs, alternated")
    print(f"  python -m tracker {name} -q : median {statistics.median(ours):6.2f} s  "
          f"({min(ours):.2f} - {max(ours):.2f})")
    print(f"  python {name}               : median {statistics.median(theirs):6.2f} s  "
          f"({min(theirs):.2f} - {max(theirs):.2f})")
    line = (f"  ratio: median {statistics.median(ratios):.2f}  "
            f"({min(ratios):.2f} - {max(ratios):.2f})")
    median_cost = statistics.median(a - b for a, b in zip(ours, theirs, strict=True))
    line += f"; tracking costs {median_cost:.2f} s"
    if target is not None:
        line += f"   target <= {target}"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="pairs of runs of each script")
    parser.add_argument("--quick", action="store_true", help="1 pair on 1,000 rows")
    args = parser.parse_args()
    pairs = 1 if args.quick else args.n
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        fit = workdir / "fit.py"
        shutil.copy(EXAMPLE, fit)
        if args.quick:
            fit.write_text(fit.read_text().replace("n_samples = 10_000", "n_samples = 1_000"))
        trivial = workdir / "trivial.py"
        trivial.write_text(TRIVIAL)
        print(f"Python {sys.version.split()[0]}")
        report(fit.name, *alternate(fit, pairs, workdir), target=1.15)
        report(trivial.name, *alternate(trivial, pairs, workdir), target=None)


if __name__ == "__main__":
    main()
