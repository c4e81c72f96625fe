"""What runs in an executor's worker process (a Dask worker, a pool's thread or process).

The driver keeps the database: it writes each point's ``running`` row, submits
:func:`execute_remote` with the point (the file's source and parameters travel in the
:class:`~ploomber_like.notebook.PreparedRun`), and writes the record that comes back. Workers
never open the database. On a worker, each run gets its own kernel process, forked from a warm
template that the worker process keeps for the runs of the same file.
"""

from __future__ import annotations

import asyncio
import functools
import os
import platform
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from ploomber_like.execute import run_on_pool
from ploomber_like.kernels import (
    FreshKernels,
    KernelPool,
    KernelTemplate,
    LearnedModules,
    fork_available,
    learned_modules,
    shared_factory,
)
from ploomber_like.notebook import PreparedRun
from ploomber_like.record import Record

#: Seconds between a worker's checks whether the driver asked its runs to stop.
STOP_POLL_INTERVAL = 0.2


def execute_remote(
    run: PreparedRun,
    record: Record,
    timeout: float | None,
    preload: bool,
    threads: int | None = None,
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
    threads : int, optional
        Threads the kernel's numerical libraries may use; default: this machine's cores shared
        among the runs this worker process executes at once (its Dask threads).

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
    learned = learned_modules(run.script_path, run.text) if preload else None
    # A template that cannot start fails the run's kernel start, which records the run.
    shared = functools.partial(_shared_factory, run, threads or _threads_here(), learned)
    try:
        return asyncio.run(_run_until_stopped(run, record, shared, timeout, stop, learned))
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


#: Stop requests by run uuid (see :func:`request_stop`).
_STOPS: dict[str, threading.Event] = {}
_STOPS_LOCK = threading.Lock()


def _threads_here() -> int:
    """This machine's cores divided among the runs this process executes at once."""
    at_once = 1
    try:
        from distributed import get_worker

        at_once = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):  # not on a Dask worker
        pass
    return max(1, (os.cpu_count() or 1) // max(1, at_once))


def _shared_factory(
    run: PreparedRun, threads: int, learned: LearnedModules | None
) -> FreshKernels | KernelTemplate:
    """This process's kernel factory for ``run``, from the process-wide template registry (as
    repeated ``track_execution`` calls use it); fresh kernels without ``learned`` (preloading
    off)."""
    cwd = Path.cwd()
    if learned is None or not fork_available():
        return shared_factory(cwd, None, threads)
    sources = [group.source for group in run.groups]
    modules = learned.template_modules(sources, run.path.resolve().parent, cwd)
    return shared_factory(cwd, modules, threads, learned.noted())


async def _run_until_stopped(
    run: PreparedRun,
    record: Record,
    shared: Callable[[], FreshKernels | KernelTemplate],
    timeout: float | None,
    stop: threading.Event,
    learned: LearnedModules | None,
) -> Record:
    pool = KernelPool(
        Path.cwd(), None, ahead=0, shared=shared, script_path=run.script_path, learned=learned
    )
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
