"""Time one grid on a local Dask cluster against the local warm-kernel pool.

The same 12 points of examples/fit.py (small forests) run three ways, each writing its own
database: (a) the local pool, ``track_grid(..., executor=None, workers=2)``; (b) a fresh
``distributed.LocalCluster`` of 2 worker processes x 1 thread (started before the clock), so
the time includes each worker building its warm template; (c) a second sweep on the same
cluster, whose workers already hold their templates. The local pool builds its template on
every sweep, as (b) does.

    python benchmarks/cluster_vs_local.py
    python benchmarks/cluster_vs_local.py --repeat 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "fit.py"
GRID = {
    "n_estimators": [5, 10, 20],
    "max_depth": [5, None],
    "criterion": ["gini", "entropy"],
    "n_samples": [2000],
}


def timed_sweep(database: Path, executor: object) -> float:
    from ploomber_like import track_grid

    started = time.perf_counter()
    summary = track_grid(
        EXAMPLE, GRID, database, workers=2, executor=executor, quiet=True, force=True
    )
    elapsed = time.perf_counter() - started
    assert summary.ok == summary.total == 12, summary
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="Timed sweeps of each kind.")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        local = [timed_sweep(workdir / f"local-{i}.db", None) for i in range(args.repeat)]

        cold, warm = [], []
        for i in range(args.repeat):
            with LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster, Client(cluster) as client:
                client.wait_for_workers(2)
                cold.append(timed_sweep(workdir / f"cold-{i}.db", client))
                warm.append(timed_sweep(workdir / f"warm-{i}.db", client))

        def show(name: str, times: list[float]) -> None:
            best = min(times)
            print(f"{name:<42} {best:6.2f} s  ({best / 12:.2f} s/point, best of {len(times)})")

        print(f"12 points of {EXAMPLE.name}, 2 at a time")
        show("local pool (executor=None)", local)
        show("LocalCluster 2x1, cold workers", cold)
        show("LocalCluster 2x1, warm workers", warm)


if __name__ == "__main__":
    main()
