"""Kernels ready to run: a started kernel with a connected client, and a pool that prefetches.

The pool takes kernels from a factory (:class:`~ploomber_like.kernels.FreshKernels` or a
:class:`~ploomber_like.kernels.KernelTemplate`), connects a Jupyter client to each and waits for
its answer, so a run that acquires one can execute its first cell at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ploomber_like.capture.protocol import setup_code
from ploomber_like.kernels.environment import LOOPBACK
from ploomber_like.kernels.handle import (
    STARTUP_TIMEOUT,
    FreshKernels,
    KernelHandle,
    KernelStartError,
)
from ploomber_like.kernels.learned import LearnedModules
from ploomber_like.kernels.processes import new_runtime_dir
from ploomber_like.kernels.template import KernelTemplate, make_factory


@dataclass
class ReadyKernel:
    """A started kernel with a connected client that has answered ``kernel_info``."""

    handle: KernelHandle
    client: Any
    #: Path of the script whose capture hooks are installed, if installed before the run.
    capture_installed_for: str | None = None
    #: The working directory of the run this kernel serves, if the pool made it (see
    #: ``directories``); removed with the kernel.
    directory: Path | None = None

    def shutdown(self) -> None:
        self.client.stop_channels()
        _end_kernel(self.handle, self.directory)


def _end_kernel(handle: KernelHandle, directory: Path | None) -> None:
    """Kill the kernel of ``handle``, then remove the run directory made for it, if any."""
    handle.kill()
    if directory is not None:
        # The kernel is dead first, so nothing writes there while it goes; rmtree removes
        # links, never what they point to.
        shutil.rmtree(directory, ignore_errors=True)


class KernelPool:
    """Starts kernels ahead of demand so the next run finds one ready.

    Parameters
    ----------
    cwd : Path
        Working directory of the kernels.
    preload : list of str or None
        Modules to import in a warm template; ``None`` starts fresh kernels instead.
    ahead : int
        How many kernels to keep starting or ready beyond those in use.
    shared : callable, optional
        Gives a shared factory to take kernels from, such as the process-wide template of
        :func:`~ploomber_like.kernels.shared_factory`; it is not closed with the pool, and is
        asked again when the factory it gave has died.
    script_path : str, optional
        The script the kernels will run: a kernel forked from a template installs its capture
        hooks before it answers; a fresh kernel gets them by a request of their own when the
        pool prefetches (``ahead`` > 0), off the critical path of the run that will use it, and
        else in the run's own request.
    threads : int, optional
        Threads each kernel's numerical libraries may use.
    learned : LearnedModules, optional
        What the runs of the file imported at run time: a template imports the modules noted
        there before it forks the next kernel (see :mod:`~ploomber_like.kernels.learned`).
    while_starting : callable, optional
        Called on the event loop's thread while a kernel's process starts (and the template it
        is forked from is built): work the run needs next (importing the run's client) done
        meanwhile rather than after it.
    directories : callable, optional
        Makes the working directory of the run a kernel will serve (such as
        :func:`~ploomber_like.artifacts.run_directory`), in the thread that starts the kernel:
        ahead of the run, and off the event loop that handles the other runs' messages.
    """

    def __init__(
        self,
        cwd: Path,
        preload: list[str] | None,
        ahead: int = 1,
        shared: Callable[[], FreshKernels | KernelTemplate] | None = None,
        script_path: str | None = None,
        threads: int | None = None,
        learned: LearnedModules | None = None,
        while_starting: Callable[[], object] | None = None,
        directories: Callable[[], Path | None] | None = None,
    ) -> None:
        self.script_path = script_path
        self.directories = directories
        self.while_starting = while_starting
        self.learned = learned
        self.threads = threads
        #: Folder of the kernels' files when the pool makes its own factory (made then).
        self.runtime_dir: Path | None = None
        self.ahead = ahead
        self._shared = shared
        self._factory: FreshKernels | KernelTemplate | None = None
        self._factory_lock = threading.Lock()
        self._cwd = cwd
        self._preload = preload
        self._starting: deque[asyncio.Task[ReadyKernel]] = deque()
        self._still_needed = 0

    @property
    def factory(self) -> FreshKernels | KernelTemplate:
        # Kernels start in threads: without the lock each would build a template of its own.
        with self._factory_lock:
            if self._factory is not None and not self._factory.is_alive():
                # A template killed from outside is replaced rather than failing later runs.
                if self._shared is None:
                    self._factory.close()
                self._factory = None
            if self._factory is None and self._shared is not None:
                self._factory = self._shared()  # a dead shared template is rebuilt by its owner
            elif self._factory is None:
                self.runtime_dir = self.runtime_dir or new_runtime_dir()
                self._factory = make_factory(
                    self.runtime_dir, self._cwd, self._preload, self.threads,
                    self.learned.noted() if self.learned is not None else (),
                )
            return self._factory

    def build_factory(self) -> None:
        """Build the factory now (a template takes seconds), before the first kernel is asked
        for, and have a template import what :attr:`learned` noted already (the modules the
        file names, see :func:`~ploomber_like.kernels.named_modules`); a failure is raised here
        and again by the first :meth:`acquire`."""
        factory = self.factory
        if self.learned is not None and isinstance(factory, KernelTemplate):
            self.learned.extend(factory)

    def close_unused(self) -> None:
        """Close a pool no kernel was asked of, from any thread: its own factory, once built,
        and its folder. The executor calls it when it was closed while :meth:`build_factory`
        still ran (:meth:`close` then found neither built yet)."""
        with self._factory_lock:
            factory, self._factory = self._factory, None
        if factory is not None and self._shared is None:
            factory.close()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    async def acquire(self, still_needed: int) -> ReadyKernel:
        """A ready kernel; keeps up to ``ahead`` more starting if ``still_needed`` calls follow."""
        # The latest hint counts: a call made meanwhile took a kernel this one would replace.
        self._still_needed = still_needed
        if not self._starting:
            self._starting.append(asyncio.ensure_future(self._start_one()))
        try:
            kernel = await self._starting.popleft()
        except KernelStartError:
            # A kernel prefetched from a template that has died since: no code of the run has
            # executed yet, so start another (from a new template) instead of failing the run.
            kernel = await self._start_one()
        if not kernel.handle.parent_alive():
            # Prefetched before its template died (a run killed it, or the OOM killer): it
            # answered, but ends within a second, in the middle of the run it would serve.
            kernel.shutdown()
            kernel = await self._start_one()
        # Prefetch once this kernel is ready: started earlier, the next ones would compete
        # with it for the cores while nothing runs yet.
        while len(self._starting) < min(self.ahead, self._still_needed):
            self._starting.append(asyncio.ensure_future(self._start_one()))
        return kernel

    async def _start_one(self) -> ReadyKernel:
        # The kernel's process starts in a thread (building a template takes seconds, a fork
        # waits for the template's answer), while this thread does what the run needs next.
        starting = asyncio.get_running_loop().run_in_executor(None, self._start_process)
        try:
            if self.while_starting is not None:
                self.while_starting()
        except BaseException:
            with contextlib.suppress(Exception):  # a start that failed left nothing to kill
                _end_kernel(*await starting)
            raise
        handle, directory = await starting
        try:
            client = await connect_client(handle)
        except BaseException:
            _end_kernel(handle, directory)
            raise
        kernel = ReadyKernel(
            handle, client, capture_installed_for=handle.capture_installed_for,
            directory=directory,
        )
        if self.script_path is not None and self.ahead > 0 and (
            kernel.capture_installed_for != self.script_path
        ):
            try:
                await _run_silently(kernel, setup_code(self.script_path))
            except BaseException:
                kernel.shutdown()
                raise
            kernel.capture_installed_for = self.script_path
        return kernel

    def _start_process(self) -> tuple[KernelHandle, Path | None]:
        factory = self.factory
        if self.learned is not None and isinstance(factory, KernelTemplate):
            self.learned.extend(factory)
        handle = factory.start(self.script_path)
        try:
            directory = self.directories() if self.directories is not None else None
        except BaseException:
            handle.kill()
            raise
        return handle, directory

    async def close(self) -> None:
        # Kernels still starting are awaited, not cancelled: a cancelled start would leave a
        # process nobody knows about.
        while self._starting:
            task = self._starting.popleft()
            with contextlib.suppress(Exception):  # a kernel that failed to start needs no shutdown
                (await task).shutdown()
        # Not under the factory lock: it would wait for a template still being built
        # (build_factory), which the sweep's executor leaves to close_unused.
        if self._factory is not None and self._shared is None:
            if self.learned is not None and isinstance(self._factory, KernelTemplate):
                # What the last runs imported was noted after the last fork: learned now (or
                # refused), for the next sweep of the file, as each earlier fork learned it.
                with contextlib.suppress(Exception):  # a template that died teaches nothing
                    await asyncio.to_thread(self.learned.extend, self._factory)
            await asyncio.to_thread(self._factory.close)
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)


async def _run_silently(kernel: ReadyKernel, code: str) -> None:
    """Execute our own ``code`` in the kernel: no history, no events, no displayed output."""
    from queue import Empty

    msg_id = kernel.client.execute(code, silent=True, store_history=False)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        _check_starting(kernel.handle, deadline)
        try:
            reply = await kernel.client.shell_channel.get_msg(timeout=0.5)
        except Empty:
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    content = reply["content"]
    if content.get("status") != "ok":
        raise KernelStartError(
            f"setting up the kernel failed: {content.get('ename')}: {content.get('evalue')}"
        )


async def connect_client(handle: KernelHandle, timeout: float = STARTUP_TIMEOUT) -> Any:
    """A started client for ``handle`` once the kernel answers on shell *and* iopub."""
    deadline = time.monotonic() + timeout
    info = None
    while info is None:
        _check_starting(handle, deadline)
        try:
            info = json.loads(handle.connection_file.read_text())
        except (OSError, ValueError):
            await asyncio.sleep(0.005)
    # One ZeroMQ context for all of this process's clients: a context of its own would start and
    # join two threads of libzmq's for every run. Its sockets close without lingering (channels
    # close them so), so no run's leftovers hold it.
    import zmq.asyncio

    client = _client_class()(context=zmq.asyncio.Context.instance())
    client.kernel_handle = handle
    client.load_connection_info(info)
    # A run needs shell and iopub only: no heartbeat (a thread and a socket per client, where
    # the process itself says whether the kernel lives), no control (interrupts are signals), no
    # stdin (a run cannot answer input(): it fails at once, as under nbclient's own clients).
    client.allow_stdin = False
    client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
    try:
        await _handshake(client, handle, deadline)
    except BaseException:
        client.stop_channels()
        raise
    return client


@functools.cache
def _client_class() -> type:
    """jupyter_client's asynchronous client, fitted to our kernels; a class made once, as
    traitlets sets up each class it is given (~1 ms)."""
    from jupyter_client.asynchronous import AsyncKernelClient

    class KernelClient(AsyncKernelClient):
        #: The kernel's process, set on each client.
        kernel_handle: KernelHandle

        # nbclient asks the client whether the kernel lives: answer from the process itself.
        async def is_alive(self) -> bool:  # type: ignore[override]
            return self.kernel_handle.is_alive()

        def _ip_default(self) -> str:
            # load_connection_info computes the default address even when the file names one
            # (ipykernel always does): not by listing the machine's interfaces.
            return LOOPBACK if self.transport == "tcp" else super()._ip_default()

    return KernelClient


async def _handshake(client: Any, handle: KernelHandle, deadline: float) -> None:
    # A reply on shell proves the kernel runs; a status message for the same request on iopub
    # proves our subscription is live, so no output of the first cell can be missed.
    from queue import Empty

    while True:
        msg_id = client.kernel_info()
        got_reply = False
        while not got_reply:
            _check_starting(handle, deadline)
            try:
                reply = await client.shell_channel.get_msg(timeout=0.5)
            except Empty:
                continue
            got_reply = reply["parent_header"].get("msg_id") == msg_id
        try:
            while True:
                message = await client.iopub_channel.get_msg(timeout=0.2)
                if message["parent_header"].get("msg_id") == msg_id:
                    return
        except Empty:
            continue


def _check_starting(handle: KernelHandle, deadline: float) -> None:
    if not handle.is_alive():
        tail = handle.log_tail()
        raise KernelStartError(
            f"{handle.describe_exit()} while starting" + (f":\n{tail}" if tail else "")
        )
    if time.monotonic() > deadline:
        raise KernelStartError(f"the kernel did not start within {STARTUP_TIMEOUT:.0f} s")
