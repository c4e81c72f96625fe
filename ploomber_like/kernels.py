"""Starting kernels: fresh processes, or forks of a warm template; and a pool keeping them ready.

A fresh kernel pays for interpreter start-up and the script's imports on every run. A *warm
template* is a process that has imported ipykernel and the third-party modules the script
imports, and nothing else: it has no thread and no ZeroMQ socket yet, so ``fork()`` gives a
child that becomes a kernel with a fresh namespace in a fraction of the time. Only modules from
the standard library and site-packages are preloaded: the user's own modules change between
runs and are imported fresh by each kernel.

Both kinds end as a :class:`KernelHandle`: a process with a connection file, that can be asked
whether it is alive, how it ended, and be killed.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ploomber_like.capture import KERNEL_LOG_VARIABLE, setup_code
from ploomber_like.notebook import parse_cell

#: Seconds a kernel may take to write its connection file and answer ``kernel_info``.
STARTUP_TIMEOUT = 60.0
#: Exit status of a kernel whose end nobody could observe (its template died first).
STATUS_UNKNOWN = -1000
#: Bytes of a crashed kernel's own stderr kept in the error (faulthandler's traceback...).
CRASH_LOG_TAIL = 4000


# What every ipykernel prints on start-up; not what a user needs to read after a crash.
_KERNEL_NOTICE = re.compile(r"Kernel is running over TCP without encryption|Debugger warning|"
                            r"frozen modules|PYDEVD_DISABLE_FILE_VALIDATION|^\d+\.\d+s - ")


class KernelStartError(RuntimeError):
    """A kernel could not be started or did not answer in time."""


@dataclass
class KernelHandle:
    """A kernel process: its connection file, its pid, and how to learn how it ended."""

    pid: int
    connection_file: Path
    log_file: Path
    #: Returns the exit status once the process has ended (negative: killed by that signal).
    _poll: Any = field(repr=False)
    #: Waits for the killed process, where we are its parent (fresh kernels).
    _reap: Any = field(default=None, repr=False)

    def exit_status(self) -> int | None:
        return self._poll()

    def is_alive(self) -> bool:
        return self.exit_status() is None

    def kill(self) -> None:
        """Kill the kernel and anything it started (it leads its own process group)."""
        _signal_group(self.pid, signal.SIGKILL)
        if self._reap is not None:
            self._reap()
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

    def log_tail(self) -> str:
        """The end of the kernel's own stderr, without ipykernel's start-up notices."""
        try:
            text = self.log_file.read_bytes().decode(errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if not _KERNEL_NOTICE.search(line)]
        return "\n".join(lines).strip()[-CRASH_LOG_TAIL:]


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class FreshKernels:
    """Starts each kernel as a new ``python -m ipykernel_launcher`` process."""

    def __init__(self, runtime_dir: Path, cwd: Path, threads: int | None = None) -> None:
        self.runtime_dir = runtime_dir
        self.cwd = cwd
        self.threads = threads

    def start(self) -> KernelHandle:
        connection_file, log_file = _kernel_files(self.runtime_dir)
        argv = [
            sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file),
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
        pass


class KernelTemplate:
    """A warm process that forks one fresh kernel per :meth:`start`.

    Parameters
    ----------
    runtime_dir : Path
        Folder for connection files and kernel logs.
    cwd : Path
        Working directory of the kernels.
    preload : list of str
        Modules the template imports before forking (see :func:`preloadable_modules`).
    threads : int, optional
        Threads each kernel's numerical libraries may use (see :func:`kernel_environment`).
    """

    def __init__(
        self,
        runtime_dir: Path,
        cwd: Path,
        preload: Iterable[str] = (),
        threads: int | None = None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.cwd = cwd
        self._lock = threading.Lock()
        self._exits: dict[int, int] = {}
        self._replies: deque[dict[str, Any]] = deque()
        self._changed = threading.Condition()
        self.log_file = runtime_dir / "template.log"
        with open(self.log_file, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from ploomber_like.kernels import serve_template; "
                 "serve_template()"],
                cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=kernel_environment(threads=threads), start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()
        self._send({"preload": list(preload), "cwd": str(cwd)})
        self._wait_reply(STARTUP_TIMEOUT)  # the template is ready once it has preloaded

    def start(self) -> KernelHandle:
        connection_file, log_file = _kernel_files(self.runtime_dir)
        with self._lock:
            self._send({"fork": str(connection_file), "log": str(log_file)})
            pid = self._wait_reply(STARTUP_TIMEOUT)["forked"]
        return KernelHandle(pid, connection_file, log_file, lambda: self._exit_status(pid))

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
        """False once the template process has ended (killed by the OOM killer...)."""
        return self._process.poll() is None

    def close(self) -> None:
        """Stop the template; it kills the kernels it forked that are still running."""
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
        self._reader.join(timeout=5)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except OSError as exc:
            raise KernelStartError(f"the warm kernel template has stopped: {exc}") from None

    def _wait_reply(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._replies:
                if self._process.poll() is not None:
                    raise KernelStartError(
                        f"the warm kernel template has stopped: {self._log_tail()}"
                    )
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise KernelStartError("the warm kernel template did not answer in time")
            return self._replies.popleft()

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-CRASH_LOG_TAIL:].strip()
        except OSError:
            return ""

    def _read_replies(self) -> None:
        for line in self._process.stdout:
            message = json.loads(line)
            with self._changed:
                if "exited" in message:
                    self._exits[message["exited"]] = message["status"]
                else:
                    self._replies.append(message)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()


def serve_template() -> None:
    """Main loop of the template process: preload, then fork a kernel per request.

    Requests arrive as JSON lines on stdin; replies and the exit status of every forked kernel
    leave as JSON lines on stdout. End of stdin means the driver is gone: kill the kernels.
    """
    # Never import the user's modules from the working directory into the template.
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    control_in = sys.stdin.fileno()
    control_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)

    # Read with os.read only (no buffered reader) so no request can sit unseen in a buffer.
    buffer = b""
    while b"\n" not in buffer:
        chunk = os.read(control_in, 65536)
        if not chunk:
            return
        buffer += chunk
    line, buffer = buffer.split(b"\n", 1)
    setup = json.loads(line)
    preloaded = _preload(setup["preload"])
    # Keep the garbage collector of every child off the template's objects: collecting them
    # would write to (and so copy) every page the children share with the template.
    gc.collect()
    gc.freeze()
    control_out.write(json.dumps({"preloaded": preloaded}).encode() + b"\n")

    children: set[int] = set()
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                control_out.close()
                _become_kernel(request["fork"], request["log"], setup["cwd"])
            children.add(pid)
            control_out.write(json.dumps({"forked": pid}).encode() + b"\n")
        readable, _, _ = select.select([control_in], [], [], 0.05)
        _report_exits(children, control_out)
        if readable:
            chunk = os.read(control_in, 65536)
            if not chunk:
                break
            buffer += chunk
    for pid in children:
        _signal_group(pid, signal.SIGKILL)


def _preload(modules: list[str]) -> list[str]:
    # Kernel machinery first: it is what every run needs.
    import IPython.core.pylabtools  # noqa: F401
    import IPython.display  # noqa: F401

    import ploomber_like.capture

    # The probe runs in a child on the other core while this process imports for the script.
    kernel_imports = _start_kernel_import_probe()
    done = []
    closures: dict[str, set[str]] = {}
    for name in [*modules, *_ALWAYS_PRELOADED]:
        before = _top_level_names()
        try:
            importlib.import_module(name)
        except BaseException:  # a module that fails here will fail, visibly, in the run itself
            continue
        top = name.partition(".")[0]
        closures.setdefault(top, {top}).update(_top_level_names() - before)
        done.append(name)
    if "matplotlib.pyplot" in sys.modules:
        _warm_up_matplotlib()
    for name in kernel_imports():
        with contextlib.suppress(BaseException):
            importlib.import_module(name)
    ploomber_like.capture.PRELOAD_CLOSURES = {k: frozenset(v) for k, v in closures.items()}
    return done


# Plots are what a tracked script shows most, often through a library (scikit-learn's displays)
# that imports pyplot only when called: importing it once here saves every run ~0.4 s.
_ALWAYS_PRELOADED = ("matplotlib.pyplot",)


def _top_level_names() -> set[str]:
    return {name.partition(".")[0] for name in sys.modules}


def _warm_up_matplotlib() -> None:
    """Render one small figure, so font and renderer caches are built once, before forking."""
    import io

    import matplotlib.pyplot as plt

    with contextlib.suppress(Exception):
        figure, axes = plt.subplots(figsize=(2, 2))
        axes.plot([0, 1], [0, 1], label="warm-up")
        axes.set_title("warm-up")
        axes.legend()
        figure.savefig(io.BytesIO(), format="png")
        plt.close(figure)


def _start_kernel_import_probe() -> Callable[[], list[str]]:
    """Start learning which modules an ipykernel imports while it initializes.

    Preloading them spares every run their import (the debugger alone costs 0.15 s). They are
    learned by initializing a throwaway kernel in a forked child, so the list follows whatever
    ipykernel version is installed rather than a list kept by hand. Returns a function that
    waits for the child and gives the list.
    """
    from ipykernel.kernelapp import IPKernelApp

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the kernel's start-up chatter
            before = set(sys.modules)
            with tempfile.TemporaryDirectory() as folder:
                app = IPKernelApp.instance()
                app.initialize(["-f", os.path.join(folder, "probe.json")])
            names = sorted(set(sys.modules) - before)
            os.write(write_end, json.dumps(names).encode())
        finally:
            os._exit(0)
    os.close(write_end)

    def result() -> list[str]:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        try:
            return json.loads(data)
        except ValueError:
            return []

    return result


def _report_exits(children: set[int], control_out: Any) -> None:
    for pid in list(children):
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            children.discard(pid)
            continue
        if waited:
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            control_out.write(json.dumps({"exited": pid, "status": code}).encode() + b"\n")


def _become_kernel(connection_file: str, log_file: str, cwd: str) -> None:
    """In a freshly forked child: turn into an ipykernel; never returns."""
    try:
        os.setsid()
        log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(cwd)
        os.environ[KERNEL_LOG_VARIABLE] = log_file
        sys.path.insert(0, "")
        _reseed_random_generators()
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(
            ["-f", connection_file, f"--IPKernelApp.parent_handle={os.getppid()}",
             *KERNEL_OPTIONS]
        )
        app.start()
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(70)
    os._exit(0)


def _reseed_random_generators() -> None:
    # Forked children inherit the template's generator state; a fresh interpreter would draw
    # new OS entropy, and two runs must not produce the same "random" numbers.
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def preloadable_modules(sources: Iterable[str], script_dir: Path, cwd: Path) -> list[str]:
    """Modules the sources import that resolve to the standard library or site-packages.

    Resolution uses the kernel's search path (script folder and working directory first), so a
    local ``utils.py`` shadowing an installed ``utils`` is never preloaded.
    """
    names: list[str] = []
    for source in sources:
        names += _imported_modules(source)
    search_path = [str(script_dir), str(cwd), *[p for p in sys.path if p not in ("", ".")]]
    allowed = _library_roots()
    chosen = []
    verdicts: dict[str, bool] = {}
    for name in dict.fromkeys(names):
        top = name.split(".")[0]
        if top not in verdicts:
            verdicts[top] = _is_library_module(top, search_path, allowed)
        if verdicts[top]:
            chosen.append(name)
    return chosen


def _imported_modules(source: str) -> list[str]:
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            # `from sklearn import metrics` imports the submodule sklearn.metrics.
            names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _library_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    import site

    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return [os.path.realpath(r) + os.sep for r in roots]


def _is_library_module(top: str, search_path: list[str], roots: list[str]) -> bool:
    if top in sys.builtin_module_names:
        return True
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, search_path)
    except (ImportError, ValueError):
        return False
    if spec is None:
        # Not on the path: frozen stdlib modules, or meta-path finders (editable installs).
        spec = importlib.util.find_spec(top)
        if spec is None:
            return False
    locations = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    return all(
        loc in ("frozen", "built-in")
        or any(os.path.realpath(loc).startswith(root) for root in roots)
        for loc in locations
    )


#: Every kernel runs without IPython's history database: parallel kernels would all write
#: to the same file in the user's profile, for nothing we keep.
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)


#: Variables that size the thread pools of OpenMP, OpenBLAS, MKL, Accelerate and numexpr.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def kernel_environment(log_file: Path | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment of a kernel process (or template): inline figures, its log, thread limits.

    ``threads`` caps the numerical libraries' thread pools, as joblib does for its workers:
    several kernels at once each spinning one thread per core would fight over the cores. A
    limit the user set in the environment is kept.
    """
    env = dict(os.environ)
    if log_file is not None:
        env[KERNEL_LOG_VARIABLE] = str(log_file)
    if threads is not None:
        for variable in THREAD_VARIABLES:
            env.setdefault(variable, str(threads))
    # Figures come back as images; a user's explicit backend still wins inside the script.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def _kernel_files(runtime_dir: Path) -> tuple[Path, Path]:
    name = f"kernel-{uuid.uuid4().hex}"
    return runtime_dir / f"{name}.json", runtime_dir / f"{name}.log"


def make_factory(
    runtime_dir: Path, cwd: Path, preload: list[str] | None, threads: int | None = None
) -> FreshKernels | KernelTemplate:
    """A warm template preloading ``preload`` where fork exists; else fresh kernels."""
    if preload is not None and fork_available():
        return KernelTemplate(runtime_dir, cwd, preload, threads)
    return FreshKernels(runtime_dir, cwd, threads)


def fork_available() -> bool:
    return hasattr(os, "fork") and sys.platform != "win32"


@dataclass
class ReadyKernel:
    """A started kernel with a connected client that has answered ``kernel_info``."""

    handle: KernelHandle
    client: Any
    #: Path of the script whose capture hooks are installed, if the pool installed them.
    capture_installed_for: str | None = None

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.handle.kill()


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
    factory : FreshKernels or KernelTemplate, optional
        A shared factory to take kernels from (it is not closed with the pool).
    script_path : str, optional
        Install the capture hooks for the script at this path while a kernel is prefetched,
        off the critical path of the run that will use it.
    threads : int, optional
        Threads each kernel's numerical libraries may use.
    """

    def __init__(
        self,
        cwd: Path,
        preload: list[str] | None,
        ahead: int = 1,
        factory: FreshKernels | KernelTemplate | None = None,
        script_path: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.script_path = script_path
        self.threads = threads
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="ploomber-like-"))
        self.ahead = ahead
        #: A factory given by the caller is shared (a Dask worker's template): not closed here.
        self._own_factory = factory is None
        self._factory = factory
        self._factory_lock = threading.Lock()
        self._cwd = cwd
        self._preload = preload
        self._starting: deque[asyncio.Task[ReadyKernel]] = deque()

    @property
    def factory(self) -> FreshKernels | KernelTemplate:
        # Kernels start in threads: without the lock each would build a template of its own.
        with self._factory_lock:
            if self._own_factory and self._factory is not None and not self._factory.is_alive():
                # A template killed from outside is replaced rather than failing later runs.
                self._factory.close()
                self._factory = None
            if self._factory is None:
                self._factory = make_factory(
                    self.runtime_dir, self._cwd, self._preload, self.threads
                )
            return self._factory

    async def acquire(self, still_needed: int) -> ReadyKernel:
        """A ready kernel; keeps up to ``ahead`` more starting if ``still_needed`` calls follow."""
        if not self._starting:
            self._starting.append(asyncio.ensure_future(self._start_one()))
        try:
            kernel = await self._starting.popleft()
        except KernelStartError:
            # A kernel prefetched from a template that has died since: no code of the run has
            # executed yet, so start another (from a new template) instead of failing the run.
            kernel = await self._start_one()
        # Prefetch once this kernel is ready: started earlier, the next ones would compete
        # with it for the cores while nothing runs yet.
        while len(self._starting) < min(self.ahead, still_needed):
            self._starting.append(asyncio.ensure_future(self._start_one()))
        return kernel

    async def _start_one(self) -> ReadyKernel:
        # Building a template takes seconds: off the event loop, as does forking from it.
        factory = await asyncio.to_thread(lambda: self.factory)
        handle = await asyncio.to_thread(factory.start)
        try:
            client = await connect_client(handle)
        except BaseException:
            handle.kill()
            raise
        kernel = ReadyKernel(handle, client)
        if self.script_path is not None:
            try:
                await _run_silently(kernel, setup_code(self.script_path))
            except BaseException:
                kernel.shutdown()
                raise
            kernel.capture_installed_for = self.script_path
        return kernel

    async def close(self) -> None:
        # Kernels still starting are awaited, not cancelled: a cancelled start would leave a
        # process nobody knows about.
        while self._starting:
            task = self._starting.popleft()
            with contextlib.suppress(Exception):  # a kernel that failed to start needs no shutdown
                (await task).shutdown()
        if self._factory is not None and self._own_factory:
            await asyncio.to_thread(self._factory.close)
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
    from jupyter_client.asynchronous import AsyncKernelClient

    class _Client(AsyncKernelClient):
        # nbclient asks the client whether the kernel lives: answer from the process itself.
        async def is_alive(self) -> bool:  # type: ignore[override]
            return handle.is_alive()

    deadline = time.monotonic() + timeout
    info = None
    while info is None:
        _check_starting(handle, deadline)
        try:
            info = json.loads(handle.connection_file.read_text())
        except (OSError, ValueError):
            await asyncio.sleep(0.005)
    client = _Client()
    client.load_connection_info(info)
    client.start_channels()
    try:
        await _handshake(client, handle, deadline)
    except BaseException:
        client.stop_channels()
        raise
    return client


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
