"""The sweep engine: effective-parameter resume, streamed grids, the executor registry."""

from __future__ import annotations

import concurrent.futures
import os
import tracemalloc

import pytest
from conftest import stored_values

from ploomber_like import ParameterError, track_grid
from ploomber_like.executors import register_executor
from ploomber_like.executors.futures import FuturesExecutor
from ploomber_like.samplers.grid import Grid, GridSampler


@pytest.mark.kernel
def test_a_parameter_given_with_its_default_value_is_the_same_point(tmp_path):
    path = tmp_path / "job.py"
    path.write_text("# parameters\nn_samples = 10_000\nseed = 0\n\nn_samples + seed\n")
    db = tmp_path / "r.db"
    assert track_grid(path, {"seed": [0, 1]}, db, quiet=True).ok == 2
    again = track_grid(path, {"seed": [0, 1]}, db, fixed={"n_samples": 10000}, quiet=True)
    assert (again.ok, again.skipped) == (0, 2)
    other = track_grid(path, {"seed": [0]}, db, fixed={"n_samples": 10}, quiet=True)
    assert (other.ok, other.skipped) == (1, 0)


def test_an_empty_dict_is_not_a_grid(tmp_path):
    path = tmp_path / "job.py"
    path.write_text("x = 1\nx\n")
    with pytest.raises(ParameterError, match="the grid is empty"):
        track_grid(path, {}, tmp_path / "e.db", quiet=True)
    assert not (tmp_path / "e.db").exists()


def test_a_million_point_grid_is_read_point_by_point():
    tracemalloc.start()
    try:
        sampler = GridSampler(Grid({"a": range(1000), "b": range(1000)}))
        first = sampler.ask(3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sampler.total == 1_000_000
    assert [p.parameters for p in first] == [{"a": 0, "b": 0}, {"a": 0, "b": 1}, {"a": 0, "b": 2}]
    assert peak < 5_000_000  # expanded, the grid would take hundreds of MB


def test_a_grid_from_a_generator_stops_at_its_first_bad_point(tmp_path):
    path = tmp_path / "job.py"
    path.write_text("# parameters\nx = 0\n\nx\n")
    with pytest.raises(ParameterError, match="every grid point must be a dict"):
        track_grid(path, ({"x": 1} if i == 0 else 5 for i in range(2)), tmp_path / "g.db",
                   quiet=True)
    assert not (tmp_path / "g.db").exists()


@register_executor
class _InlineThreads(FuturesExecutor):
    """A backend registered by a test: its own name, taking the string "inline-threads"."""

    name = "inline-threads"

    @classmethod
    def accepts(cls, target):
        return target == "inline-threads"

    def __init__(self, target, options):
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        super().__init__(self.pool, options)

    def close(self):
        self.pool.shutdown()


THREADS = """\
import os

# parameters
x = 0

threads = os.environ.get("OMP_NUM_THREADS")
threads
"""


@pytest.mark.kernel
def test_a_registered_executor_runs_the_sweep(tmp_path):
    path = tmp_path / "job.py"
    path.write_text(THREADS)
    summary = track_grid(path, {"x": [1, 2, 3]}, tmp_path / "r.db", executor="inline-threads",
                         workers=2, quiet=True)
    assert summary.ok == 3
    assert sorted(v["x"] for v in stored_values(tmp_path / "r.db")) == [1, 2, 3]


@pytest.mark.kernel
def test_a_futures_executor_gets_the_local_thread_limits(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    path = tmp_path / "job.py"
    path.write_text(THREADS)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        track_grid(path, {"x": [1, 2]}, tmp_path / "t.db", executor=pool, workers=2, quiet=True)
    cores = os.cpu_count() or 1
    assert {v["threads"] for v in stored_values(tmp_path / "t.db")} == {str(max(1, cores // 2))}
