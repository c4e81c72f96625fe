"""Running sweep points elsewhere: on a Dask cluster, or on any ``concurrent.futures`` executor.

The driver keeps the database: it writes each point's ``running`` row, submits the point (the
file's source and parameters travel in the :class:`~ploomber_like.notebook.PreparedRun`), and
writes the record that comes back. Workers never open the database. On a worker, each run gets
its own kernel process, forked from a warm template that the worker process keeps for the runs
of the same file.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import copy
import platform
import shutil
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like.errors import TrackerError
from ploomber_like.execute import run_on_pool
from ploomber_like.kernels import (
    FreshKernels,
    KernelPool,
    KernelTemplate,
    fork_available,
    make_factory,
    preloadable_modules,
)
from ploomber_like.notebook import PreparedRun
from ploomber_like.record import Record, Status

if TYPE_CHECKING:
    from distributed import Client

    from ploomber_like.sweep import _Sweep

#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0
#: Seconds the driver waits for workers to acknowledge a stop request after Ctrl-C.
STOP_TIMEOUT = 10.0
#: Seconds between a worker's checks whether the driver asked its runs to stop.
STOP_POLL_INTERVAL = 0.2


def connect_dask(address: str, *, timeout: float = CONNECT_TIMEOUT) -> Client:
    """A Dask client connected to the scheduler at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``tcp://10.0.0.5:8786``.
    timeout : float
        Seconds to wait for the scheduler.

    Returns
    -------
    distributed.Client

    Raises
    ------
    TrackerError
        If ``distributed`` is not installed or the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError:
        raise TrackerError(
            "Dask sweeps need the [dask] extra: pip install 'ploomber-like[dask]'"
        ) from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrackerError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


def run_on_executor(
    sweep: _Sweep,
    todo: list[PreparedRun],
    executor: Any,
    workers: int,
    preload: bool,
) -> None:
    """Run every point of ``todo`` on ``executor``, writing each record in the driver.

    At most ``workers`` points are submitted at once; the next is submitted as one finishes, so
    Ctrl-C leaves the rest unstarted.

    Parameters
    ----------
    sweep : _Sweep
        The sweep's store, progress and counts: ``begin`` writes a point's ``running`` row,
        ``end`` its finished record.
    todo : list of PreparedRun
        The points to run, in order.
    executor : distributed.Client or concurrent.futures.Executor
        Where the points run.
    workers : int
        Points submitted at once.
    preload : bool
        Fork each run's kernel from a warm template on the worker (where ``fork`` exists).

    Raises
    ------
    KeyboardInterrupt
        After cancelling the points not yet finished and recording the in-flight ones as
        ``interrupted``.
    TrackerError
        If the connection to the Dask scheduler is lost (in-flight points are recorded
        ``interrupted`` first).
    """
    backend = _backend_for(executor)
    queue = list(reversed(todo))
    in_flight: dict[str, _InFlight] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                run = queue.pop()
                point = _InFlight(sweep.begin(run), time.monotonic())
                in_flight[point.record.uuid] = point
                try:
                    point.future = backend.submit(run, point.record, sweep.timeout, preload)
                except TrackerError:
                    raise
                except Exception as exc:  # e.g. a shut-down executor: recorded, not raised
                    del in_flight[point.record.uuid]
                    sweep.end(_failed(point, Status.FAILED, exc))
            for future in backend.wait_some([p.future for p in in_flight.values()]):
                point = next(p for p in in_flight.values() if p.future is future)
                del in_flight[point.record.uuid]
                sweep.end(_outcome(backend, point))
    except BaseException as exc:
        # Ctrl-C, or the connection to the cluster failing: start nothing more, stop what runs,
        # and leave no row ``running``.
        backend.cancel([p.future for p in in_flight.values() if p.future is not None])
        backend.stop_runs(list(in_flight))
        for point in in_flight.values():
            if isinstance(exc, KeyboardInterrupt):
                sweep.interrupted(point.record, point.started)
            else:
                sweep.end(_failed(point, Status.INTERRUPTED, exc))
        raise


def execute_remote(
    run: PreparedRun, record: Record, timeout: float | None, preload: bool
) -> Record:
    """Run one point in a kernel of this (worker) process; the function that gets submitted.

    Parameters
    ----------
    run : PreparedRun
        The point: the file's source, groups and parameters. The file itself is not read.
    record : Record
        Its ``running`` record, as written by the driver; filled in and returned.
    timeout : float or None
        Seconds the run may take.
    preload : bool
        Fork the kernel from this process's warm template for the file's imports.

    Returns
    -------
    Record
        The finished record; a run that fails is returned with its status and error.
    """
    if record.environment is not None:
        # The driver collected git state and command; the run happens here.
        record.environment = replace(
            record.environment, host=socket.gethostname(),
            python=platform.python_version(), platform=platform.platform(),
        )
    stop = _register_stop(record.uuid)
    started = time.monotonic()
    try:
        factory = _shared_factory(run, preload)
    except Exception as exc:  # a template that cannot start: the run is recorded, not lost
        record.fail(Status.CRASHED, exc, started)
        _forget_stop(record.uuid, stop)
        return record
    try:
        return asyncio.run(_run_until_stopped(run, record, factory, timeout, stop))
    finally:
        _forget_stop(record.uuid, stop)


def request_stop(uuids: Iterable[str]) -> None:
    """Ask the runs of ``uuids`` executing in this process to stop and kill their kernels.

    The driver calls it on every Dask worker after Ctrl-C (and in its own process, which covers
    thread-pool executors). A run not started yet stops as soon as it starts.
    """
    with _STOPS_LOCK:
        for uuid in uuids:
            _STOPS.setdefault(uuid, threading.Event()).set()


# --- driver side ------------------------------------------------------------------------------


@dataclass
class _InFlight:
    """A submitted point: its record (as written ``running``), start time and future."""

    record: Record
    started: float
    future: Any = None


def _outcome(backend: _Backend, point: _InFlight) -> Record:
    try:
        return point.future.result()
    except (Exception, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
        if backend.is_lost_worker(exc):
            return _failed(point, Status.CRASHED, exc)
        return _failed(point, Status.FAILED, exc)


def _failed(point: _InFlight, status: Status, exc: BaseException) -> Record:
    record = point.record
    record.fail(
        status, exc, point.started, "".join(traceback.format_exception(exc)).strip()
    )
    return record


class _Backend:
    """How to submit to, wait on, cancel and stop one kind of executor."""

    def submit(
        self, run: PreparedRun, record: Record, timeout: float | None, preload: bool
    ) -> Any:
        raise NotImplementedError

    def wait_some(self, futures: list[Any]) -> list[Any]:
        """Futures among ``futures`` that are done, waiting until there is at least one."""
        raise NotImplementedError

    def cancel(self, futures: list[Any]) -> None:
        for future in futures:
            future.cancel()

    def stop_runs(self, uuids: list[str]) -> None:
        request_stop(uuids)

    def is_lost_worker(self, exc: BaseException) -> bool:
        return False


class _DaskBackend(_Backend):
    def __init__(self, client: Client) -> None:
        from distributed import as_completed

        self.client = client
        self.completed = as_completed()
        self.address = getattr(client.scheduler, "address", None) or "its address"

    def submit(
        self, run: PreparedRun, record: Record, timeout: float | None, preload: bool
    ) -> Any:
        self._check_connected()
        future = self.client.submit(
            execute_remote, run, record, timeout, preload,
            key=f"ploomber-like-{run.path.stem}-{record.uuid}", pure=False,
        )
        self.completed.add(future)
        return future

    def wait_some(self, futures: list[Any]) -> list[Any]:
        # Polled rather than blocking: a client that lost its scheduler may never complete a
        # future submitted after the loss, and the sweep must end instead of hanging.
        while not self.completed.has_ready():
            self._check_connected()
            time.sleep(0.05)
        return self.completed.next_batch(block=False)

    def _check_connected(self) -> None:
        if self.client.status in ("closing", "closed"):
            raise TrackerError(f"lost the connection to the Dask scheduler at {self.address}")

    def cancel(self, futures: list[Any]) -> None:
        if futures:
            self.client.cancel(futures)

    def stop_runs(self, uuids: list[str]) -> None:
        if not uuids or self.client.status != "running":
            return
        # A worker that does not answer must not keep Ctrl-C from ending the driver.
        asking = threading.Thread(
            target=self.client.run, args=(request_stop, uuids), kwargs={"on_error": "ignore"},
            daemon=True,
        )
        asking.start()
        asking.join(STOP_TIMEOUT)

    def is_lost_worker(self, exc: BaseException) -> bool:
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker)


class _FuturesBackend(_Backend):
    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self.executor = executor

    def submit(
        self, run: PreparedRun, record: Record, timeout: float | None, preload: bool
    ) -> Any:
        # The worker fills in its own copy, as on a cluster: the driver's stays as written.
        return self.executor.submit(execute_remote, run, copy.deepcopy(record), timeout, preload)

    def wait_some(self, futures: list[Any]) -> list[Any]:
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        return list(done)

    def is_lost_worker(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)


def _backend_for(executor: Any) -> _Backend:
    try:
        from distributed import Client
    except ImportError:
        Client = None  # noqa: N806 - the optional class, or nothing
    if Client is not None and isinstance(executor, Client):
        return _DaskBackend(executor)
    if isinstance(executor, concurrent.futures.Executor):
        return _FuturesBackend(executor)
    raise TrackerError(
        "executor must be a Dask scheduler address, a distributed.Client or a "
        f"concurrent.futures.Executor, got {type(executor).__name__}"
    )


# --- worker side ------------------------------------------------------------------------------

#: Kernel factories of this process, by (working directory, preloaded modules or None).
_FACTORIES: dict[tuple[str, tuple[str, ...] | None], FreshKernels | KernelTemplate] = {}
_FACTORIES_LOCK = threading.Lock()
_RUNTIME_DIR: list[Path] = []

#: Stop requests by run uuid (see :func:`request_stop`).
_STOPS: dict[str, threading.Event] = {}
_STOPS_LOCK = threading.Lock()


def _shared_factory(run: PreparedRun, preload: bool) -> FreshKernels | KernelTemplate:
    """This process's kernel factory for ``run``: one warm template per set of preloads."""
    cwd = Path.cwd()
    modules = None
    if preload and fork_available():
        sources = [group.source for group in run.groups]
        modules = tuple(preloadable_modules(sources, run.path.resolve().parent, cwd))
    key = (str(cwd), modules)
    with _FACTORIES_LOCK:
        factory = _FACTORIES.get(key)
        # A template killed from outside (OOM killer...) is replaced rather than failing every run.
        if factory is not None and not factory.is_alive():
            factory.close()
            factory = None
        if factory is None:
            if not _RUNTIME_DIR:
                _RUNTIME_DIR.append(Path(tempfile.mkdtemp(prefix="ploomber-like-worker-")))
                atexit.register(_close_factories)
            factory = make_factory(
                _RUNTIME_DIR[0], cwd, list(modules) if modules is not None else None
            )
            _FACTORIES[key] = factory
    return factory


def _close_factories() -> None:
    with _FACTORIES_LOCK:
        for factory in _FACTORIES.values():
            factory.close()
        _FACTORIES.clear()
        for folder in _RUNTIME_DIR:
            shutil.rmtree(folder, ignore_errors=True)


async def _run_until_stopped(
    run: PreparedRun,
    record: Record,
    factory: FreshKernels | KernelTemplate,
    timeout: float | None,
    stop: threading.Event,
) -> Record:
    pool = KernelPool(Path.cwd(), None, ahead=0, factory=factory)
    task = asyncio.ensure_future(run_on_pool(run, record, pool, timeout=timeout))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=STOP_POLL_INTERVAL)
            if stop.is_set() and not task.done():
                task.cancel()  # run_on_pool kills the kernel on its way out
                await asyncio.gather(task, return_exceptions=True)
                record.interrupt("the sweep was interrupted")
                return record
        return task.result()
    finally:
        await pool.close()


def _register_stop(uuid: str) -> threading.Event:
    with _STOPS_LOCK:
        return _STOPS.setdefault(uuid, threading.Event())


def _forget_stop(uuid: str, event: threading.Event) -> None:
    with _STOPS_LOCK:
        if _STOPS.get(uuid) is event:
            del _STOPS[uuid]
