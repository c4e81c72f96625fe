"""30 TPE trials on examples/fit.py: our search against an in-process Optuna study, one run.

(a) ``track_search``: every trial in its own kernel process, recorded in SQLite;
(b) ``optuna.study.optimize`` with an objective that execs the same code in this process
(figures rendered as Jupyter renders them). Same space, sampler and seed. Prints both wall
times, both best values, and the ratio (a) / (b); target on 2 cores: <= 1.0.

    python benchmarks/search_fit.py           # 30 trials
    python benchmarks/search_fit.py --quick   # 4 trials on 1,000 rows: checks the script
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sweep_fit import EXAMPLE, in_process_runner  # noqa: E402  (a sibling script)


def space() -> dict:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    return {
        "n_estimators": IntDistribution(10, 200),
        "max_depth": CategoricalDistribution([5, 10, None]),
        "criterion": CategoricalDistribution(["gini", "entropy"]),
    }


def ours(workdir: Path, trials: int, fixed: dict, workers: int) -> tuple[float, float]:
    from ploomber_like import track_search

    started = time.perf_counter()
    summary = track_search(
        EXAMPLE, space(), objective="f1", direction="maximize", trials=trials,
        database=workdir / "search.db", seed=0, workers=workers, fixed=fixed, quiet=True,
    )
    elapsed = time.perf_counter() - started
    assert summary.ok == trials and summary.best is not None, summary
    return elapsed, summary.best.trial.objective


def optuna_in_process(trials: int, fixed: dict) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = in_process_runner()

    def objective(trial: optuna.Trial) -> float:
        point = {  # the space of space(), through Optuna's public suggest API
            "n_estimators": trial.suggest_int("n_estimators", 10, 200),
            "max_depth": trial.suggest_categorical("max_depth", [5, 10, None]),
            "criterion": trial.suggest_categorical("criterion", ["gini", "entropy"]),
        }
        return float(run({**fixed, **point})["f1"])

    started = time.perf_counter()
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - started, study.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 trials on 1,000 rows")
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    trials, fixed = (4, {"n_samples": 1000}) if args.quick else (args.trials, {})
    cores = os.cpu_count() or 1
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            print(f"{trials} TPE trials on {EXAMPLE.name}, {cores} cores, "
                  f"Python {sys.version.split()[0]}")
            a, a_best = ours(Path(folder), trials, fixed, cores)
            print(f"(a) track_search, {cores} workers  : {a:7.1f} s   best f1 {a_best:.4f}")
            b, b_best = optuna_in_process(trials, fixed)
            print(f"(b) Optuna study, in process : {b:7.1f} s   best f1 {b_best:.4f}")
            print(f"(a) / (b) = {a / b:.2f}   target <= 1.0")
        finally:
            os.chdir(home)


if __name__ == "__main__":
    main()
