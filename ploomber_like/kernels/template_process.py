"""The code that runs inside a warm template process: preload, then fork a kernel per request.

Started by :class:`~ploomber_like.kernels.KernelTemplate` as ``python -c`` and driven through
:mod:`ploomber_like.kernels.protocol` on its stdin and stdout. Everything here runs either in the
template (which must stay free of threads and sockets so that it can fork) or in a forked child
on its way to becoming a kernel (or trying imports for the template, :func:`quiet_imports`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib
import json
import os
import select
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ploomber_like.capture.protocol import KERNEL_LOG_VARIABLE
from ploomber_like.kernels import protocol
from ploomber_like.kernels.environment import KERNEL_OPTIONS, LOOPBACK
from ploomber_like.kernels.processes import become_subreaper, signal_group

# Plots are what a tracked script shows most, often through a library (scikit-learn's displays)
# that imports pyplot only when called: importing it once here saves every run ~0.4 s. Not for a
# script that imports only the standard library: it saves its template that much (a run that
# imports pyplot after all has it learned, as any module imported at run time).
ALWAYS_PRELOADED = ("matplotlib.pyplot",)
#: Exit status of a forked child that failed to become a kernel.
KERNEL_SETUP_FAILED = 70


def serve_template() -> None:
    """Main loop of the template process: preload, then fork a kernel per request, and import
    more modules when asked (:func:`quiet_imports` of them), between forks.

    End of stdin means the driver is gone: kill the kernels, exit the process.
    """
    # Never import the user's modules from the working directory into the template: `python -c`
    # put it first as ''. An entry the user set (PYTHONPATH) stays, as under `python script.py`.
    sys.path[:] = [p for p in sys.path if p != ""]
    control_in = sys.stdin.fileno()
    control_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)

    # Read with os.read only (no buffered reader) so no request can sit unseen in a buffer.
    lines = protocol.LineBuffer()
    pending: list[bytes] = []
    while not pending:
        chunk = os.read(control_in, 65536)
        if not chunk:
            return
        pending = lines.feed(chunk)
    setup = protocol.decode(pending.pop(0))
    if not isinstance(setup, protocol.Setup):
        raise protocol.ProtocolError(f"the first message must be setup, got {setup}")
    preloaded = preload(setup.preload, setup.check)
    # ipykernel names each cell's code after the temporary folder, which Python finds on first
    # use by creating and removing a file there: an inode made in every kernel (~1 ms of CPU on
    # this project's machine) unless found once here.
    tempfile.gettempdir()
    app = configured_kernel_app([f"--IPKernelApp.parent_handle={os.getpid()}", *KERNEL_OPTIONS])
    # Keep the garbage collector of every child off the template's objects: collecting them
    # would write to (and so copy) every page the children share with the template. No
    # collection first: after the imports it takes ~80 ms before the first fork, to free a few
    # hundred objects.
    gc.freeze()
    control_out.write(protocol.encode(protocol.Preloaded(modules=preloaded)))

    children: set[int] = set()
    while True:
        for line in pending:
            request = protocol.decode(line)
            if isinstance(request, protocol.Import):
                imported = import_modules(quiet_imports(request.modules))
                warm_up_libraries()
                gc.freeze()
                control_out.write(protocol.encode(protocol.Preloaded(modules=imported)))
                continue
            if not isinstance(request, protocol.Fork):
                raise protocol.ProtocolError(f"expected a fork or import request, got {request}")
            pid = os.fork()
            if pid == 0:
                control_out.close()
                become_kernel(
                    app, request.connection_file, request.log_file, setup.cwd, request.script_path
                )
            children.add(pid)
            control_out.write(protocol.encode(protocol.Forked(pid=pid)))
        pending = []
        readable, _, _ = select.select([control_in], [], [], 0.05)
        report_exits(children, control_out)
        if readable:
            chunk = os.read(control_in, 65536)
            if not chunk:
                break
            pending = lines.feed(chunk)
    for pid in children:
        signal_group(pid, signal.SIGKILL)
    # Without the interpreter's finalization: tearing down every module the template preloaded
    # took 50 - 100 ms, which the driver waits for at the end of every sweep. Nothing here is
    # left to flush but what a preloaded module may have printed.
    sys.stderr.flush()
    os._exit(0)


def preload(modules: list[str], check: list[str]) -> list[str]:
    """Import the kernel machinery and ``modules``, then those of ``check`` that import quietly
    (:func:`quiet_imports`); return those of ``modules`` and ``check`` that imported."""
    # Kernel machinery first: it is what every run needs (ctypes: each becomes a subreaper).
    import ctypes  # noqa: F401

    import IPython.core.pylabtools  # noqa: F401
    import IPython.display  # noqa: F401
    import zmq.utils.garbage  # noqa: F401 - the capture's tracked sends (capture.kernel)

    # The probe runs in a child on the other core while this process imports for the script.
    kernel_imports = kernel_machinery_imports()
    libraries = any(name.partition(".")[0] not in sys.stdlib_module_names for name in modules)
    done = import_modules([*modules, *(ALWAYS_PRELOADED if libraries else ())])
    # The check's child, forked once the file's imports are done, imports the modules to check
    # on the other core while this process warms up: asked for once the template was ready, it
    # kept the first fork waiting (~0.1 - 0.15 s for sklearn.ensemble).
    checked = start_quiet_imports(check)
    warm_up_libraries()
    with without_debugger():  # ipykernel.debugger among them: imported as the kernels have it
        for name in kernel_imports():
            with contextlib.suppress(BaseException):
                importlib.import_module(name)
    done += import_modules(checked())
    warm_up_libraries()  # a library the checked modules brought in
    return [name for name in done if name in modules or name in check]


def import_modules(modules: list[str]) -> list[str]:
    """Import ``modules``; return those that imported. Notes what each brought in
    (:data:`~ploomber_like.capture.kernel.PRELOAD_CLOSURES`), so runs count it as theirs."""
    import ploomber_like.capture.kernel

    closures = {k: set(v) for k, v in ploomber_like.capture.kernel.PRELOAD_CLOSURES.items()}
    done = []
    for name in modules:
        before = _top_level_names()
        try:
            importlib.import_module(name)
        except BaseException:  # a module that fails here will fail, visibly, in the run itself
            continue
        top = name.partition(".")[0]
        closures.setdefault(top, {top}).update(_top_level_names() - before)
        done.append(name)
    ploomber_like.capture.kernel.PRELOAD_CLOSURES = {k: frozenset(v) for k, v in closures.items()}
    return done


#: Forked children :func:`quiet_imports` may try before it gives up and imports nothing.
MAX_IMPORT_TRIALS = 4


def quiet_imports(modules: list[str]) -> list[str]:
    """Those of ``modules`` that import without an error and without writing anything (to
    ``sys.stdout``, ``sys.stderr``, a warning, or file descriptors 1 and 2), in order.

    Tried in a forked child, so this process imports none of the others: a module that
    printed here would print no more in the runs forked after it, and the run's output would
    change. A module imported while another printed counts as printing too. Without the ones
    left out, a quiet module may import a noisy one that was imported before it: the rest is
    tried again in a new child until all of it imports silently.
    """
    return start_quiet_imports(modules)()


def start_quiet_imports(modules: list[str]) -> Callable[[], list[str]]:
    """Start :func:`quiet_imports` of ``modules``: its first child is forked now, and this
    process goes on. Returns a function that waits for the children and gives the quiet ones."""
    first = _start_trial(modules)

    def result() -> list[str]:
        tried, quiet = modules, first()
        for _ in range(MAX_IMPORT_TRIALS - 1):
            if quiet == tried:
                return quiet
            tried, quiet = quiet, _start_trial(quiet)()
        return quiet if quiet == tried else []

    return result


def _start_trial(modules: list[str]) -> Callable[[], list[str]]:
    """Fork a child that imports ``modules`` (:func:`_try_imports`); returns a function giving
    those it found quiet, in order."""
    if not modules:
        return lambda: []
    tried = _in_child(functools.partial(_try_imports, modules))

    def quiet() -> list[str]:
        named = set(_names(tried()))
        return [name for name in modules if name in named]

    return quiet


def _names(found: Any) -> list[str]:
    """``found`` if a child sent a list of names, else none."""
    if isinstance(found, list) and all(isinstance(name, str) for name in found):
        return found
    return []


def _in_child(work: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``work`` in a forked child, which sends back what it returns (as JSON) and exits;
    returns a function that waits for the child and gives that (None if it sent nothing)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.write(write_end, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write_end)

    def result() -> Any:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        try:
            return json.loads(data)
        except ValueError:
            return None

    return result


def _try_imports(modules: list[str]) -> list[str]:
    import io

    quiet = []
    tainted: set[str] = set()
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        # Warnings go to sys.stderr, under the filters a kernel has too.
        sys.stdout = sys.stderr = text = io.StringIO()
        for name in modules:
            written = (text.tell(), os.fstat(sink.fileno()).st_size)
            before = set(sys.modules)
            try:
                importlib.import_module(name)
                failed = False
            except BaseException:
                failed = True
            if failed or (text.tell(), os.fstat(sink.fileno()).st_size) != written:
                tainted.add(name)
                tainted.update(set(sys.modules) - before)
            elif name not in tainted:
                quiet.append(name)
    return quiet


def _top_level_names() -> set[str]:
    return {name.partition(".")[0] for name in sys.modules}


#: The libraries :func:`warm_up_libraries` has warmed in this process.
_WARMED: set[str] = set()


def warm_up_libraries() -> None:
    """Build, once, the caches that the libraries loaded here build on their first use, so that
    every run forked after finds them built rather than builds them again."""
    for module, warm_up in (
        ("matplotlib.pyplot", warm_up_matplotlib),
        ("narwhals", warm_up_narwhals),
    ):
        if module in sys.modules and module not in _WARMED:
            _WARMED.add(module)
            with contextlib.suppress(Exception):  # a cache left cold is no error
                warm_up()


def warm_up_narwhals() -> None:
    """List narwhals' plugins once. scikit-learn (1.6 and later) checks the arrays it is given
    through narwhals, whose first check reads the entry points of every installed distribution
    (~25 ms of each run's CPU on this project's machine, in every kernel). Not when a plugin is
    installed: the check would import it here, without the checks that a learned module passes
    (:func:`quiet_imports`)."""
    from importlib.metadata import entry_points

    if entry_points(group="narwhals.plugins"):
        return
    importlib.import_module("narwhals.dependencies").is_into_dataframe(object())


def warm_up_matplotlib() -> None:
    """Render one small figure, so font and renderer caches are built once, before forking;
    import what each kernel's switch to the inline backend would."""
    import io

    # IPython loads its execution magics when a shell enables matplotlib (the capture's set-up
    # does, in every kernel): ~7 ms of CPU a kernel, most of it this import.
    import IPython.core.magics.execution  # noqa: F401
    import matplotlib.pyplot as plt

    with contextlib.suppress(Exception):
        figure, axes = plt.subplots(figsize=(2, 2))
        axes.plot([0, 1], [0, 1], label="warm-up")
        axes.set_title("warm-up")
        axes.legend()
        figure.savefig(io.BytesIO(), format="png")
        plt.close(figure)


def kernel_machinery_imports() -> Callable[[], list[str]]:
    """A function giving the modules an ipykernel imports as it initializes: as an earlier
    template with the same interpreter and installed packages found them, else as the probe
    finds them (:func:`start_kernel_import_probe`, ~0.4 s of CPU), then kept for the next."""
    from ploomber_like.caches import cache_home, read_json, write_json
    from ploomber_like.kernels.preload import installed_packages_stamp

    stamp = json.dumps([sys.executable, sys.version, installed_packages_stamp()])
    cache = cache_home() / "kernel_imports" / f"{hashlib.sha256(stamp.encode()).hexdigest()}.json"
    names = read_json(cache)
    if _names(names):
        return lambda: names
    probe = start_kernel_import_probe()

    def probed() -> list[str]:
        found = probe()
        if found:
            write_json(cache, found)
        return found

    return probed


def start_kernel_import_probe() -> Callable[[], list[str]]:
    """Start learning which modules an ipykernel imports while it initializes.

    Preloading them spares every run their import. They are
    learned by initializing a throwaway kernel in a forked child, so the list follows whatever
    ipykernel version is installed rather than a list kept by hand. Returns a function that
    waits for the child and gives the list.
    """
    import ipykernel.kernelapp  # noqa: F401

    def probe() -> list[str]:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the kernel's start-up chatter
        before = set(sys.modules)
        with tempfile.TemporaryDirectory() as folder:
            initialized_kernel(["-f", os.path.join(folder, "probe.json")])
        return sorted(set(sys.modules) - before)

    probed = _in_child(probe)
    return lambda: _names(probed())


def report_exits(children: set[int], control_out: BinaryIO) -> None:
    """Reap the forked kernels that ended and report each as :class:`~protocol.Exited`."""
    for pid in list(children):
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            children.discard(pid)
            continue
        if waited:
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            control_out.write(protocol.encode(protocol.Exited(pid=pid, status=code)))


def become_kernel(
    app: Any, connection_file: str, log_file: str, cwd: str, script_path: str
) -> None:
    """In a freshly forked child: turn ``app`` (:func:`configured_kernel_app`) into a running
    ipykernel, with the capture installed for ``script_path`` unless it is ""; never returns."""
    try:
        os.setsid()
        become_subreaper()
        log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(cwd)
        os.environ[KERNEL_LOG_VARIABLE] = log_file
        sys.path.insert(0, "")
        reseed_random_generators()
        finish_kernel_app(app, connection_file)
        if script_path:
            # Before the kernel answers, while the run that will use it is still being prepared:
            # installed by the run's own request, it took 12-33 ms of the run's wall time.
            from ploomber_like.capture.kernel import install

            install(app.kernel.shell, script_path)
        app.start()
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(KERNEL_SETUP_FAILED)
    os._exit(0)


def initialized_kernel(argv: list[str]) -> Any:
    """An ipykernel application initialized with ``argv``, ready to ``start()``, without
    ipykernel's debugger.

    No run sends debug requests, and setting up the debugger (importing debugpy) is a third of
    a kernel's start-up (~0.15 s of CPU). A run may still import debugpy itself.
    """
    app = configured_kernel_app(argv)
    return finish_kernel_app(app, app.connection_file)


def configured_kernel_app(argv: list[str]) -> Any:
    """ipykernel's application with its command line ``argv`` and its configuration files read,
    its loopback address named and the kernel's IPython shell built: the parts of its
    initialization that open no socket and start no thread. Done once in the template, they
    spare each forked kernel ~25 ms of CPU (a command-line parser for every configurable class)
    and ~12 ms (the shell's magics, completer, prefilters and display machinery).
    :func:`finish_kernel_app` does the rest, in the kernel."""
    from ipykernel.kernelapp import IPKernelApp
    from IPython.core.application import BaseIPythonApplication

    with without_debugger():
        app = IPKernelApp.instance()
        BaseIPythonApplication.initialize(app, argv)
        if app.transport == "tcp" and "ip" not in app.config.get("IPKernelApp", {}):
            # Over IPC the address is a socket file's prefix: ipykernel's choice.
            app.ip = LOOPBACK
        _build_shell(app)
    return app


def _build_shell(app: Any) -> None:
    # The kernel takes its shell from `shell_class.instance()`, a singleton: built here, every
    # forked kernel finds its own copy ready, with a namespace no run has touched. The classes
    # are the configured kernel class's own (ipykernel does not let them be configured apart).
    traits = app.kernel_class.class_traits()
    shell, compiler = (getattr(traits.get(name), "default_value", None)
                       for name in ("shell_class", "compiler_class"))
    if isinstance(shell, type) and isinstance(compiler, type):
        built = shell.instance(parent=app, profile_dir=app.profile_dir, compiler_class=compiler)
        # Made on first use, in every kernel if not here: its display formatters (13
        # configurables, ~3 ms of CPU), its session logger (IPython 9 imports it at the first
        # cell, ~1 ms), and the regular expressions that transforming a cell compiles
        # (tokenize's among them, ~4 ms). A one-line cell goes through more of them.
        built.display_formatter.formatters  # noqa: B018
        getattr(built, "logger", None)
        for cell in ("x = 1\n", "x = 1\nx\n"):
            built.transform_cell(cell)


def finish_kernel_app(app: Any, connection_file: str) -> Any:
    """The rest of the initialization of ``app`` (:func:`configured_kernel_app`), writing
    ``connection_file``: sockets, threads, the kernel and its shell. Ready to ``start()``."""
    from IPython.core.application import BaseIPythonApplication

    app.connection_file = connection_file
    # IPKernelApp.initialize begins with the part the template did: skip it, once.
    configured = BaseIPythonApplication.__dict__["initialize"]
    BaseIPythonApplication.initialize = lambda self, argv=None: None  # type: ignore[method-assign]
    try:
        with without_debugger(), without_module_listing():
            app.initialize([])
    finally:
        BaseIPythonApplication.initialize = configured  # type: ignore[method-assign]
    shell = getattr(app.kernel, "shell", None)
    if shell is not None and shell.kernel is None:  # the template built it (_build_shell)
        shell.kernel = app.kernel
    return app


@contextlib.contextmanager
def without_debugger() -> Iterator[None]:
    """ipykernel, imported or initialized in this block, finds no debugpy (as if not installed);
    a run may still import it afterwards."""
    blocked = "debugpy" not in sys.modules
    if blocked:
        sys.modules["debugpy"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked and "debugpy" in sys.modules and sys.modules["debugpy"] is None:
            del sys.modules["debugpy"]


@contextlib.contextmanager
def without_module_listing() -> Iterator[None]:
    """ipykernel's kernel, built in this block, finds no module loaded when it lists their files
    for its debugger, which our kernels do not have (:func:`without_debugger`).

    In a kernel forked from a template of scikit-learn and matplotlib, that listing touched a page
    of each of ~2,000 modules and of its file name: ~3,500 copy-on-write faults, ~15 ms of CPU.
    """
    from ipykernel import ipkernel

    real = ipkernel.sys
    ipkernel.sys = _SysWithoutModules(real)  # type: ignore[assignment]
    try:
        yield
    finally:
        ipkernel.sys = real


class _SysWithoutModules:
    """``sys`` as seen by one module: the same but for an empty ``modules``."""

    def __init__(self, real: Any) -> None:
        self.modules: dict[str, Any] = {}
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def reseed_random_generators() -> None:
    """Draw new OS entropy for the generators a forked child inherited from the template.

    A fresh interpreter would; two runs must not produce the same "random" numbers.
    """
    import random

    random.seed()
    # Not ``numpy.random`` through numpy: NumPy 2 imports it on first access (~15 ms a run), and a
    # run that imports it later seeds it from the OS itself.
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
