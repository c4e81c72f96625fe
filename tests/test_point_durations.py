"""A sweep of a file that ran before starts its longest points first (ploomber_like.durations).

``nap.py`` sleeps ``t`` seconds, so a point's duration follows its parameter. Sweeps run
through the CLI in processes of their own, each test with its own cache folder
(``XDG_CACHE_HOME``); the order runs started in is the order of their rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, rows, write_script

pytestmark = pytest.mark.kernel

NAP = """
import time

# parameters
t = 0.0

time.sleep(t)
"""


@pytest.fixture
def nap(tmp_path: Path) -> Path:
    return write_script(tmp_path, NAP, "nap.py")


def sweep(nap: Path, env: dict[str, str], values: str, *options: str) -> list[float]:
    """Sweep ``t`` over ``values`` into a new database; the values in the order runs started."""
    database = nap.parent / f"runs-{len(list(nap.parent.glob('runs-*.db')))}.db"
    done = cli(nap.name, "-g", f"t={values}", "-q", "-d", database.name, *options,
               cwd=nap.parent, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    started = rows(database, "SELECT parameters FROM experiments ORDER BY rowid")
    return [json.loads(row["parameters"])["t"] for row in started]


def test_the_next_sweep_starts_unseen_points_then_the_longest_first(nap, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    # The first sweep knows nothing: the grid's order. The naps differ by 0.4 s, more than a
    # loaded machine adds to a run (the sweep's first run, its kernel just forked, most).
    assert sweep(nap, env, "0.0,0.4,1.2,0.8", "-w", "2") == [0.0, 0.4, 1.2, 0.8]
    # The next (into another database) starts the point it has not seen, then by duration.
    assert sweep(nap, env, "0.0,0.4,1.2,0.8,0.05", "-w", "2") == [0.05, 1.2, 0.8, 0.4, 0.0]


def test_one_worker_keeps_the_grids_order(nap, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    sweep(nap, env, "0.0,0.3", "-w", "2")
    assert sweep(nap, env, "0.0,0.3", "-w", "1") == [0.0, 0.3]


def test_a_cache_that_cannot_be_written_keeps_the_grids_order(nap, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {"XDG_CACHE_HOME": str(blocker)}
    for _ in range(2):
        assert sweep(nap, env, "0.0,0.3", "-w", "2") == [0.0, 0.3]
