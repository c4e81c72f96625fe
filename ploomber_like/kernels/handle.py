"""A kernel process as the driver sees it (:class:`KernelHandle`), and fresh kernels.

A fresh kernel is a new ``python`` process running ipykernel: it pays for interpreter start-up
and the script's imports, which is the fastest way to run one file once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ploomber_like.capture.protocol import CELL_START_PREFIX
from ploomber_like.kernels.environment import KERNEL_OPTIONS, kernel_environment
from ploomber_like.kernels.processes import kill_process_tree, new_runtime_dir, signal_group

#: Seconds a kernel may take to write its connection file and answer ``kernel_info``.
STARTUP_TIMEOUT = 60.0
#: Exit status of a kernel whose end nobody could observe (its template died first).
STATUS_UNKNOWN = -1000
#: Bytes of a crashed kernel's own stderr kept in the error (faulthandler's traceback...).
CRASH_LOG_TAIL = 4000


# What every ipykernel prints on start-up, and the cells the capture started; not what a user
# needs to read after a crash.
_KERNEL_NOTICE = re.compile(r"Kernel is running over TCP without encryption|Debugger warning|"
                            r"frozen modules|PYDEVD_DISABLE_FILE_VALIDATION|^\d+\.\d+s - |"
                            + "^" + re.escape(CELL_START_PREFIX))

# faulthandler's one line naming every extension module loaded: thousands of characters in a
# kernel forked from a template that preloaded much, which would push the fatal error's header
# and the Python frames out of the tail. Its count is kept.
_EXTENSION_LIST = re.compile(r"^(Extension modules:) .*(\(total: \d+\))$")

# A fresh kernel: become the reaper of the script's orphans, then start as ipykernel_launcher
# does (the working directory off sys.path while ipykernel imports; the kernel adds it back),
# without the debugger, as a forked kernel does.
_FRESH_KERNEL_CODE = (
    "import sys; from ploomber_like.kernels.processes import become_subreaper; "
    "become_subreaper(); sys.path[:] = [p for p in sys.path if p != '']; "
    "from ploomber_like.kernels.template_process import initialized_kernel; "
    "initialized_kernel(sys.argv[1:]).start()"
)


class KernelStartError(RuntimeError):
    """A kernel could not be started or did not answer in time."""


@dataclass
class KernelHandle:
    """A kernel process: its connection file, its pid, and how to learn how it ended."""

    pid: int
    connection_file: Path
    log_file: Path
    #: Returns the exit status once the process has ended (negative: killed by that signal).
    poll: Callable[[], int | None] = field(repr=False)
    #: Waits for the killed process, where we are its parent (fresh kernels).
    reap: Callable[[], object] | None = field(default=None, repr=False)
    #: Path of the script the kernel installed the capture for before answering, if any.
    capture_installed_for: str | None = None
    #: False once the process the kernel was forked from has ended: the kernel then ends too
    #: within a second (ipykernel's parent poller), so no run may start on it.
    parent_alive: Callable[[], bool] = field(default=lambda: True, repr=False)

    def exit_status(self) -> int | None:
        return self.poll()

    def is_alive(self) -> bool:
        return self.exit_status() is None

    def kill(self) -> None:
        """Kill the kernel and everything it started, also in sessions of their own."""
        if self.is_alive():
            kill_process_tree(self.pid)
        else:
            # What it started in its own process group may outlive it.
            signal_group(self.pid, signal.SIGKILL)
        if self.reap is not None:
            self.reap()
        for path in (self.connection_file, self.log_file):
            path.unlink(missing_ok=True)

    def describe_exit(self) -> str:
        """A sentence saying how the process ended (its stderr: :meth:`log_tail`)."""
        status = self.exit_status()
        if status is None:
            how = "is still running"
        elif status == STATUS_UNKNOWN:
            how = "ended after the template it was forked from ended"
        elif status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            how = f"was killed by {name}"
            if -status == signal.SIGKILL:
                how += " (out of memory, or killed from outside)"
        else:
            how = f"exited with status {status}"
        return f"the kernel process {how}"

    def log(self) -> str:
        """The kernel's own stderr (see :meth:`log_tail`), as written so far."""
        try:
            return self.log_file.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        """The end of the kernel's own stderr, without ipykernel's start-up notices."""
        text = self.log()
        lines = [
            _EXTENSION_LIST.sub(r"\1 \2", line)
            for line in text.splitlines()
            if not _KERNEL_NOTICE.search(line)
        ]
        return "\n".join(lines).strip()[-CRASH_LOG_TAIL:]


def kernel_files(runtime_dir: Path) -> tuple[Path, Path]:
    """Paths for a new kernel's connection file and log in ``runtime_dir``."""
    name = f"kernel-{uuid.uuid4().hex}"
    return runtime_dir / f"{name}.json", runtime_dir / f"{name}.log"


class FreshKernels:
    """Starts each kernel as a new ``python`` process running ipykernel."""

    def __init__(self, runtime_dir: Path, cwd: Path, threads: int | None = None) -> None:
        self.runtime_dir = runtime_dir
        self.cwd = cwd
        self.threads = threads
        self._ahead: KernelHandle | None = None

    def start_ahead(self) -> None:
        """Start the next :meth:`start`'s kernel now, so that it initializes while this process
        still prepares the run (a single run: the file read, the database opened)."""
        if self._ahead is None:
            self._ahead = self._start_process()

    def start(self, script_path: str | None = None) -> KernelHandle:
        """A new kernel (the one :meth:`start_ahead` started, if any). It does not install the
        capture for ``script_path``: a fresh kernel's start is a run's critical path either way,
        and the run's own request installs it without a round trip of its own."""
        ahead, self._ahead = self._ahead, None
        return ahead if ahead is not None else self._start_process()

    def _start_process(self) -> KernelHandle:
        connection_file, log_file = kernel_files(self.runtime_dir)
        argv = [
            sys.executable, "-c", _FRESH_KERNEL_CODE, "-f", str(connection_file),
            f"--IPKernelApp.parent_handle={os.getpid()}", *KERNEL_OPTIONS,
        ]
        with open(log_file, "wb") as log:
            process = subprocess.Popen(
                argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=kernel_environment(log_file, self.threads), start_new_session=True,
            )
        return KernelHandle(process.pid, connection_file, log_file, process.poll, process.wait)

    def is_alive(self) -> bool:
        """Always: each start is a new process, there is nothing that can die in between."""
        return True

    def close(self) -> None:
        """Kill a kernel started ahead that no run took."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.kill()


@contextlib.contextmanager
def kernel_started_ahead(cwd: Path | None = None) -> Iterator[FreshKernels]:
    """Fresh kernels for a single run, the first started at once (in ``cwd``, default this
    process's working directory): it initializes while the caller imports the rest, reads the
    file and opens the database, then
    :func:`~ploomber_like.tracking.track_prepared` takes it (``fresh``). Killed if no run
    took it."""
    runtime_dir = new_runtime_dir()
    kernels = FreshKernels(runtime_dir, cwd or Path.cwd())
    try:
        kernels.start_ahead()
        yield kernels
    finally:
        kernels.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)
