"""Sweeps in several processes writing into one database while the UI, ``ls`` and ``query``
read it: nobody sees an error, no row is lost or half-written, and readers are not held up by
the writers (see tests/concurrent_sweeps.py; benchmarks/scale.py runs a larger version)."""

from __future__ import annotations

import pytest
from concurrent_sweeps import ConcurrencyOutcome, run_concurrent_sweeps

pytest.importorskip("uvicorn", reason="the UI needs the [ui] extra (uvicorn)")

pytestmark = pytest.mark.kernel

#: A reader call in this process (no interpreter start) may wait this long at most: far more
#: than writing one run takes, even on a loaded CI machine, and far less than SQLite's busy
#: timeout (60 s), which is what a reader stuck behind a writer would wait.
IN_PROCESS_BOUND = 10.0
#: A CLI or HTTP reader call, interpreter start and server load included.
PROCESS_BOUND = 45.0


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> ConcurrencyOutcome:
    result = run_concurrent_sweeps(tmp_path_factory.mktemp("concurrency"), writers=4, points=3)
    print(result.summary())
    return result


def test_no_reader_or_writer_sees_an_error(outcome: ConcurrencyOutcome):
    assert outcome.problems == []


def test_every_run_is_written_whole(outcome: ConcurrencyOutcome):
    assert outcome.rows == outcome.expected
    assert outcome.incomplete == []


def test_readers_kept_reading_and_were_never_held_up(outcome: ConcurrencyOutcome):
    assert all(calls.while_writing for calls in outcome.readers.values()), outcome.summary()
    assert outcome.readers["in-process query"].longest < IN_PROCESS_BOUND, outcome.summary()
    slowest = max(outcome.readers.values(), key=lambda calls: calls.longest)
    assert slowest.longest < PROCESS_BOUND, outcome.summary()
