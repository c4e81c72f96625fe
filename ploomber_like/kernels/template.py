"""The driver side of a warm template: a process that forks one fresh kernel per request.

A fresh kernel pays for interpreter start-up and the script's imports on every run. A *warm
template* is a process that has imported ipykernel and the third-party modules the script
imports, and nothing else: it has no thread and no ZeroMQ socket yet, so ``fork()`` gives a
child that becomes a kernel with a fresh namespace in a fraction of the time. Only modules from
the standard library and site-packages are preloaded: the user's own modules change between
runs and are imported fresh by each kernel. The template's own code is in
:mod:`ploomber_like.kernels.template_process`; the messages between the two in
:mod:`ploomber_like.kernels.protocol`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from ploomber_like.kernels import protocol
from ploomber_like.kernels.environment import kernel_environment
from ploomber_like.kernels.handle import (
    CRASH_LOG_TAIL,
    STARTUP_TIMEOUT,
    STATUS_UNKNOWN,
    FreshKernels,
    KernelHandle,
    KernelStartError,
    kernel_files,
)

_TEMPLATE_CODE = (
    "from ploomber_like.kernels.template_process import serve_template; serve_template()"
)


class KernelTemplate:
    """A warm process that forks one fresh kernel per :meth:`start`.

    Parameters
    ----------
    runtime_dir : Path
        Folder for connection files and kernel logs.
    cwd : Path
        Working directory of the kernels.
    preload : list of str
        Modules the template imports before forking (see
        :func:`~ploomber_like.kernels.preloadable_modules`).
    threads : int, optional
        Threads each kernel's numerical libraries may use (see
        :func:`~ploomber_like.kernels.kernel_environment`).
    check : iterable of str
        Modules to preload too, unless importing one fails or writes output (as for
        :meth:`extend`): tried in a forked child while the template warms up.
    """

    def __init__(
        self,
        runtime_dir: Path,
        cwd: Path,
        preload: Iterable[str] = (),
        threads: int | None = None,
        check: Iterable[str] = (),
    ) -> None:
        self.runtime_dir = runtime_dir
        self.cwd = cwd
        self.threads = threads
        preload = sorted(set(preload))
        check = [name for name in dict.fromkeys(check) if name not in preload]
        #: The modules asked for (those that failed to import count too: asking again is moot).
        self.preload = frozenset([*preload, *check])
        #: Those of :attr:`preload` the template has imported.
        self.imported: frozenset[str] = frozenset()
        #: The environment the template started with, which every kernel it forks inherits.
        self.environment = kernel_environment(threads=threads)
        self._lock = threading.Lock()
        self._forked: set[int] = set()
        self._exits: dict[int, int] = {}
        self._replies: deque[protocol.Message] = deque()
        self._changed = threading.Condition()
        self._spare: KernelHandle | None = None
        #: Counts :meth:`extend` calls: a spare forked before one lacks its modules.
        self._extensions = 0
        #: Set once a request found the template gone: it serves no more, even while the
        #: process is still being torn down (``poll()`` does not tell that yet).
        self._stopped = False
        self.log_file = runtime_dir / "template.log"
        with open(self.log_file, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _TEMPLATE_CODE],
                cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=self.environment, start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()
        self._send(protocol.Setup(preload=preload, check=check, cwd=str(cwd)))
        self.imported = frozenset(self._wait_reply(protocol.Preloaded, STARTUP_TIMEOUT).modules)

    def start(self, script_path: str | None = None) -> KernelHandle:
        """A new kernel, with the capture installed for the script at ``script_path`` (if given)
        before it answers: the one :meth:`prepare_spare` forked ahead for it if it lives, else
        a fork."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            # The spare of a dead template ends within a second (its parent poller notices):
            # it must not be handed to a run.
            if spare.is_alive() and self.is_alive() and (
                spare.capture_installed_for == script_path
            ):
                return spare
            spare.kill()
        return self._fork(script_path)

    def prepare_spare(self, script_path: str | None = None) -> None:
        """Fork a kernel now for the next :meth:`start` (of ``script_path``), so it initializes
        meanwhile."""
        with self._lock:
            if self._spare is not None:
                return
            extensions = self._extensions
        spare = self._fork(script_path)
        with self._lock:
            if self._spare is None and self._extensions == extensions:
                self._spare = spare
                return
        spare.kill()  # another thread prepared one meanwhile, or the template imported more

    def extend(self, modules: Iterable[str]) -> list[str]:
        """Import ``modules`` too, for the kernels forked from now on (a spare forked before is
        dropped); return those of ``modules`` the template has imported.

        A module whose import fails or writes output (checked in a forked child first) is
        left out: preloaded, it would print no more in the runs.
        """
        modules = list(modules)
        spare = None
        # Under the lock: two workers ending their first runs at once ask for the same modules,
        # and the second must find them asked for already rather than send them again.
        with self._lock:
            new = [name for name in dict.fromkeys(modules) if name not in self.preload]
            if new:
                self._send(protocol.Import(modules=new))
                reply = self._wait_reply(protocol.Preloaded, STARTUP_TIMEOUT)
                self.imported |= frozenset(reply.modules)
                self.preload |= frozenset(new)
                self._extensions += 1
                spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()
        return [name for name in modules if name in self.imported]

    def running_kernels(self) -> int:
        """How many kernels forked from this template are running (a spare not counted)."""
        with self._changed:
            running = len(self._forked) - len(self._exits)
        return max(0, running - (self._spare is not None))

    def _fork(self, script_path: str | None) -> KernelHandle:
        connection_file, log_file = kernel_files(self.runtime_dir)
        with self._lock:
            self._send(protocol.Fork(
                connection_file=str(connection_file), log_file=str(log_file),
                script_path=script_path or "",
            ))
            pid = self._wait_reply(protocol.Forked, STARTUP_TIMEOUT).pid
        with self._changed:
            self._forked.add(pid)
        return KernelHandle(
            pid, connection_file, log_file, lambda: self._exit_status(pid),
            capture_installed_for=script_path, parent_alive=self.is_alive,
        )

    def _exit_status(self, pid: int) -> int | None:
        if pid in self._exits:
            return self._exits[pid]
        if self._process.poll() is None:
            return None
        # The template is gone and cannot report: the kernel, no longer its child, is asked
        # about directly (it ends by itself within a second once its parent is gone).
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return STATUS_UNKNOWN
        return None

    def is_alive(self) -> bool:
        """False once the template process has ended (killed by the OOM killer...) or failed a
        request."""
        return not self._stopped and self._process.poll() is None

    def close(self) -> None:
        """Stop the template; it kills the kernels it forked that are still running."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=5)
        if not self._reader.is_alive():
            self._process.stdout.close()

    def _send(self, message: protocol.Message) -> None:
        try:
            self._process.stdin.write(protocol.encode(message))
            self._process.stdin.flush()
        except (OSError, ValueError) as exc:  # ValueError: stdin closed by close()
            raise self._stop(f"the warm kernel template has stopped: {exc}") from None

    def _wait_reply(self, kind: type, timeout: float) -> protocol.Message:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._replies:
                if self._process.poll() is not None or not self._reader.is_alive():
                    raise self._stop(f"the warm kernel template has stopped: {self._log_tail()}")
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise self._stop("the warm kernel template did not answer in time")
            reply = self._replies.popleft()
        if not isinstance(reply, kind):
            # Out of step with its replies: nothing it says can be trusted any more.
            raise self._stop(f"the warm kernel template answered out of turn: {reply}")
        return reply

    def _stop(self, message: str) -> KernelStartError:
        """Mark the template as serving no more; the error to raise for the request."""
        self._stopped = True
        return KernelStartError(message)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-CRASH_LOG_TAIL:].strip()
        except OSError:
            return ""

    def _read_replies(self) -> None:
        try:
            for line in self._process.stdout:
                message = protocol.decode(line)
                with self._changed:
                    if isinstance(message, protocol.Exited):
                        self._exits[message.pid] = message.status
                    else:
                        self._replies.append(message)
                    self._changed.notify_all()
        except protocol.ProtocolError:
            # Half a line from a template that died while writing: it is gone either way.
            pass
        finally:
            with self._changed:
                self._changed.notify_all()


def make_factory(
    runtime_dir: Path, cwd: Path, preload: list[str] | None, threads: int | None = None,
    check: Iterable[str] = (),
) -> FreshKernels | KernelTemplate:
    """A warm template preloading ``preload`` (and ``check``, see :class:`KernelTemplate`) where
    fork exists; else fresh kernels."""
    if preload is not None and fork_available():
        return KernelTemplate(runtime_dir, cwd, preload, threads, check)
    return FreshKernels(runtime_dir, cwd, threads)


def fork_available() -> bool:
    """Whether kernels can be forked from a template (POSIX; not Windows)."""
    return hasattr(os, "fork") and sys.platform != "win32"
