"""Time a 24-point sweep of a script that picks its model class at run time, against the floor.

Configurable scripts name their estimator in the parameters cell and import it after it
(``getattr(import_module(module_name), class_name)``): the file's source never imports
``sklearn.ensemble``, so a template that preloads only what the source imports leaves every
forked kernel to import it again. The template learns it from the first runs instead (see
docs/sweeps.md), and caches it for the next sweep of the file.

The script names its model's module in the parameters cell (``module_name =
"sklearn.ensemble"``), from which the template preloads it before the first run; the other
modules the runs load lazily it learns from the first runs.

(a) our sweep with our caches empty (the template learns during the sweep), (a2) the same sweep
again (the template preloads what (a) learned from the start), (s) one interpreter start with
the file's imports, (b) a serial in-process loop executing the same code; the floor is
(s) + (b) / cores, as in sweep_fit.py. (p) is the loop shared by one process per core:
(s) + (p) is this machine's floor (see sweep_fit.py). Target on 2 cores: (a) and (a2) <= 1.15
x the floor.

    python benchmarks/runtime_import.py           # the 24-point sweep
    python benchmarks/runtime_import.py --quick   # a tiny grid: checks the script, times nothing
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sweep_fit import (  # noqa: E402  (a sibling script)
    interpreter_start,
    parallel_in_process,
    serial_in_process,
)

SCRIPT = '''\
# # A random forest whose class is chosen by a parameter

from importlib import import_module

import matplotlib.pyplot as plt
from sklearn.datasets import make_classification
from sklearn.metrics import ConfusionMatrixDisplay, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

# parameters
module_name = "sklearn.ensemble"
class_name = "RandomForestClassifier"
n_estimators = 50
max_depth = None
min_samples_leaf = 1
n_samples = 10_000
seed = 0

Forest = getattr(import_module(module_name), class_name)

X, y = make_classification(
    n_samples=n_samples, n_features=20, n_informative=8, random_state=seed
)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=seed)

model = Forest(
    n_estimators=n_estimators,
    max_depth=max_depth,
    min_samples_leaf=min_samples_leaf,
    random_state=seed,
    n_jobs=1,
)
model.fit(X_train, y_train);
predicted = model.predict(X_test)
scores = model.predict_proba(X_test)[:, 1]

f1 = f1_score(y_test, predicted)
auc = roc_auc_score(y_test, scores)
f1
auc

ConfusionMatrixDisplay.from_predictions(y_test, predicted)

figure, axes = plt.subplots()
axes.hist(scores[y_test == 0], bins=20, alpha=0.6, label="negative")
axes.hist(scores[y_test == 1], bins=20, alpha=0.6, label="positive")
axes.set_title("scores")
axes.legend();
'''
GRID = {
    "class_name": ["RandomForestClassifier", "ExtraTreesClassifier"],
    "n_estimators": [10, 25, 50],
    "max_depth": [5, None],
    "min_samples_leaf": [1, 5],
}
#: --quick: 4 points on 1,000 rows, to check the script runs (its times mean nothing).
QUICK_GRID = {
    "class_name": ["RandomForestClassifier", "ExtraTreesClassifier"],
    "n_estimators": [5, 10],
    "n_samples": [1000],
}


def points() -> list[dict]:
    names = list(GRID)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*GRID.values())]


def ours(script: Path, database: Path) -> float:
    from ploomber_like import track_grid

    started = time.perf_counter()
    summary = track_grid(script, GRID, database, quiet=True, force=True)
    elapsed = time.perf_counter() - started
    assert summary.failed == 0, summary
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 4-point grid")
    args = parser.parse_args()
    if args.quick:
        GRID.clear()
        GRID.update(QUICK_GRID)
    cores = os.cpu_count() or 1
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        # A cache of our own: (a) starts cold whatever earlier runs of this script learned.
        os.environ["XDG_CACHE_HOME"] = str(workdir / "cache")
        script = workdir / "forest.py"
        script.write_text(SCRIPT)
        # matplotlib keeps its font list in the same cache folder: built once per machine, it
        # is there for any user and for (s), so an untimed start builds it before (a) runs.
        interpreter_start(script)
        os.chdir(workdir)
        try:
            _measure(script, workdir, cores)
        finally:
            os.chdir(home)


def _measure(script: Path, workdir: Path, cores: int) -> None:
    print(f"{len(points())}-point grid on a run-time model import, {cores} cores, "
          f"Python {sys.version.split()[0]}")
    a = ours(script, workdir / "cold.db")
    print(f"(a)  ploomber_like sweep, cold cache   : {a:7.1f} s")
    a2 = ours(script, workdir / "warm.db")
    print(f"(a2) the same sweep again, warm cache  : {a2:7.1f} s")
    start = interpreter_start(script)
    print(f"(s)  interpreter start + the imports   : {start:7.1f} s")
    b, warm = serial_in_process(script, points())
    print(f"(b)  serial in-process loop            : {b:7.1f} s   (b)/cores = {b / cores:.1f} s")
    floor = start + b / cores
    print(f"floor = (s) + (b)/cores                : {floor:7.1f} s")
    p = parallel_in_process(script, points(), cores)
    print(f"(p)  the loop over {cores} processes         : {p:7.1f} s   the cores give "
          f"{warm / p:.2f} x one ({warm:.1f} s warm, serial)")
    print()
    print(f"(a)  / floor = {a / floor:.2f}   target <= 1.15")
    print(f"(a2) / floor = {a2 / floor:.2f}   target <= 1.15")
    print(f"(a)  / ((s) + (p)) = {a / (start + p):.2f}, (a2) / ((s) + (p)) = "
          f"{a2 / (start + p):.2f}   this machine's floor")


if __name__ == "__main__":
    main()
