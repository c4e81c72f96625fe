"""The ``futures`` executor: points run on any :class:`concurrent.futures.Executor`.

A ``ThreadPoolExecutor`` runs them in kernels on this machine through the same path a cluster
takes; a ``ProcessPoolExecutor`` in its worker processes, each keeping its own warm template.
"""

from __future__ import annotations

import concurrent.futures
import copy
from typing import Any

from ploomber_like.executors.remote import RemoteExecutor
from ploomber_like.executors.worker import execute_remote
from ploomber_like.notebook import PreparedRun
from ploomber_like.record import Record


class FuturesExecutor(RemoteExecutor):
    """Runs points on a ``concurrent.futures.Executor`` the caller owns (it is not shut down)."""

    name = "futures"

    @classmethod
    def accepts(cls, target: Any) -> bool:
        return isinstance(target, concurrent.futures.Executor)

    def submit_call(self, run: PreparedRun, record: Record) -> Any:
        # The worker fills in its own copy, as on a cluster: the driver's stays as written.
        return self.target.submit(
            execute_remote, run, copy.deepcopy(record), self.options.timeout,
            self.options.preload, self.threads_per_run(),
        )

    def wait_futures(self, futures: list[Any], timeout: float | None) -> list[Any]:
        done, _ = concurrent.futures.wait(
            futures, timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return list(done)

    def is_lost_worker(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def close(self) -> None:
        pass  # the pool is the caller's
