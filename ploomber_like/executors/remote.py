"""What executors that ship each point to another process share: futures in flight, outcomes.

A point is submitted as a call of :func:`~ploomber_like.executors.worker.execute_remote`; its
future gives back the finished record, or an error that becomes the record's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from ploomber_like.errors import TrackerError
from ploomber_like.executors.base import Executor, fail_record
from ploomber_like.executors.worker import request_stop
from ploomber_like.notebook import PreparedRun
from ploomber_like.record import Record, Status


@dataclass
class Submitted:
    """A point handed to the executor: its record (as written ``running``), start, future."""

    record: Record
    started: float
    future: Any = None


class RemoteExecutor(Executor):
    """Base of the executors submitting :func:`execute_remote` calls (``futures``, ``dask``)."""

    def __init__(self, target: Any, options: Any) -> None:
        super().__init__(target, options)
        self._submitted: dict[str, Submitted] = {}
        #: Points whose submission failed: handed back by the next :meth:`wait_some`.
        self._refused: list[Record] = []

    @property
    def in_flight(self) -> int:
        return len(self._submitted) + len(self._refused)

    def submit(self, run: PreparedRun, record: Record, *, still_needed: int = 0) -> None:
        point = Submitted(record, time.monotonic())
        self._submitted[record.uuid] = point
        try:
            point.future = self.submit_call(run, record)
        except TrackerError:
            raise  # the executor is gone: the driver cancels, this point included
        except Exception as exc:  # e.g. a shut-down executor: recorded, not raised
            del self._submitted[record.uuid]
            self._refused.append(fail_record(record, Status.FAILED, exc, point.started))

    def wait_some(self, timeout: float | None = None) -> list[Record]:
        if self._refused:
            refused, self._refused = self._refused, []
            return refused
        pending = [p.future for p in self._submitted.values()]
        done = set(self.wait_futures(pending, timeout))
        finished = [uuid for uuid, p in self._submitted.items() if p.future in done]
        return [self._outcome(self._submitted.pop(uuid)) for uuid in finished]

    def cancel(self) -> list[Record]:
        self.cancel_futures([p.future for p in self._submitted.values() if p.future is not None])
        self.stop_runs(list(self._submitted))
        records = [p.record for p in self._submitted.values()] + self._refused
        self._submitted.clear()
        self._refused = []
        return records

    @abstractmethod
    def submit_call(self, run: PreparedRun, record: Record) -> Any:
        """Submit ``execute_remote`` for the point; its future."""

    @abstractmethod
    def wait_futures(self, futures: list[Any], timeout: float | None) -> list[Any]:
        """Futures among ``futures`` that are done, waiting until there is at least one or
        ``timeout`` seconds passed (None: no limit)."""

    def cancel_futures(self, futures: list[Any]) -> None:
        for future in futures:
            future.cancel()

    def stop_runs(self, uuids: list[str]) -> None:
        """Ask the workers to kill the kernels of ``uuids`` (here: this process's threads)."""
        request_stop(uuids)

    def is_lost_worker(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the process running the point died."""
        return False

    def _outcome(self, point: Submitted) -> Record:
        try:
            return point.future.result()
        # Dask's FutureCancelledError is an asyncio.CancelledError, not an Exception.
        except (Exception, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
            status = Status.CRASHED if self.is_lost_worker(exc) else Status.FAILED
            return fail_record(point.record, status, exc, point.started)
