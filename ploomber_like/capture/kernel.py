"""The kernel side of capture, run inside every kernel (:func:`install`).

An IPython AST transformer wraps each top-level expression statement of a cell (``accuracy``,
``plot.roc(y, p)``) in a call to the capture hook, which converts the value *in the kernel* (so
``numpy.float64`` stays a number) and publishes it as a ``display_data`` message tagged with its
key. Figures are rendered to PNG when shown (``plt.show()``) or when the cell ends, named by the
statement that drew them or by their title (:mod:`.figures`); an artist or a default repr
(``<... at 0x7f...>``) is not a value, and addresses are dropped from the values kept. Stdout and
stderr are bounded per cell (:mod:`.streams`). What the kernel sends: :mod:`.protocol`.

Only the standard library is imported at module level: every run pays for it.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import importlib
import json
import numbers
import os
import sys
import threading
import time
import tokenize
from collections.abc import Callable
from typing import Any

from ploomber_like.caches import cache_home
from ploomber_like.capture.figures import FigureRecorder, matplotlib_parts, pyplot_figures
from ploomber_like.capture.inputs import ReadRecorder, library_roots, recorder
from ploomber_like.capture.protocol import (
    HOOK_NAME,
    JSON_MIMETYPE,
    KERNEL_LOG_VARIABLE,
    CaptureTag,
    CellEnd,
    cell_start_line,
)
from ploomber_like.capture.streams import BoundedStream
from ploomber_like.reprs import only_default_reprs, without_addresses

#: Arrays and sequences up to this many items are stored as JSON lists, larger ones as text.
MAX_JSON_ITEMS = 10_000

_NOT_JSON = object()
_CRASH_LOG: list[Any] = []

#: For each top-level module a warm template preloaded, the top-level modules its import
#: brought in (itself included); set in the template before forking.
PRELOAD_CLOSURES: dict[str, frozenset[str]] = {}


def install(shell: Any, script_path: str) -> None:
    """Set up capture in the kernel's IPython ``shell``; called once per kernel."""
    log = os.environ.get(KERNEL_LOG_VARIABLE)
    if log:
        # ipykernel forwards fd 2 over the wire, which dies with the process: a segfault's
        # traceback must go to a file the driver reads after the crash.
        import faulthandler

        _CRASH_LOG.append(open(log, "a"))  # noqa: SIM115 - kept open for the kernel's life
        faulthandler.enable(file=_CRASH_LOG[-1], all_threads=False)
        os._exit = _exit_leaving_traceback(os._exit, _CRASH_LOG[-1], os.getpid())
    # As under `python script.py`: the script's own modules importable, `__file__` set (scripts
    # find their data with Path(__file__).parent) and, for a script, `sys.argv`.
    script_dir = os.path.dirname(script_path)
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)
    shell.user_ns["__file__"] = script_path
    if not script_path.endswith(".ipynb"):
        # A kernel's own arguments (`-f kernel.json`) would fail the script's argparse.
        sys.argv = [script_path]
        # Gallery scripts open with `print(__doc__)`: the script's docstring, as python's.
        shell.user_ns["__doc__"] = _docstring(script_path)
        # python's exit() and quit() end a script (SystemExit with their code); IPython's only
        # ask the front end to close the kernel, and the script would go on.
        for name in ("exit", "quit"):
            shell.user_ns[name] = shell.user_ns_hidden[name] = sys.exit
    hook = KernelCapture(shell)
    hook.script_dir = script_dir
    hook.reads = recorder()
    hook.reads.opened.clear()
    hook.reads.written.clear()
    hook.reads.active = True
    # pyzmq starts the thread reporting that ZeroMQ let go of a lent buffer (see
    # KernelCapture._send_and_wait) at the first such buffer, and waits for it: ~15 ms of a busy
    # machine's wall time. Started now in a thread of its own, it runs by the first cell's end.
    import zmq.utils.garbage  # noqa: F401 - before what the run imports is told apart

    threading.Thread(target=hook.start_tracking_sends, daemon=True).start()
    hook.initial_modules = _top_level_modules()
    hook.loaded_before_run = set(sys.modules)
    # What the kernel machinery imported is not the run's; what a warm template preloaded on
    # the script's behalf is, once the run imports it.
    hook.machinery_modules = hook.initial_modules.difference(*PRELOAD_CLOSURES.values())
    hook.streams = [BoundedStream.wrap(sys.stdout), BoundedStream.wrap(sys.stderr)]
    builtins.__import__ = hook.recording_import(builtins.__import__)
    # A module the template preloaded for the run, imported by name, enters no sys.modules.
    importlib.import_module = hook.recording_import_module(importlib.import_module)
    shell.showtraceback = _hiding_frames(
        shell.showtraceback, builtins.__import__.__code__, importlib.import_module.__code__
    )
    setattr(builtins, HOOK_NAME, hook)
    shell.ast_transformers.append(ExpressionWrapper(hook))
    # plt.show(), fig.show() and display(fig) reach IPython's display machinery: a figure
    # shown that way is recorded as one left open at a group's end is.
    shell.display_formatter.ipython_display_formatter.for_type_by_name(
        "matplotlib.figure", "Figure", hook.figures.render
    )
    shell.events.register("pre_execute", hook.pre_execute)
    shell.events.register("pre_run_cell", hook.pre_run_cell)
    # Run before matplotlib-inline's flush so figures we render are not rendered twice.
    shell.events.callbacks["post_execute"].insert(0, hook.post_execute)
    if "matplotlib.pyplot" in sys.modules:
        # pyplot was preloaded by a warm template before any shell existed: hook inline up now.
        shell.enable_matplotlib("inline")


def _docstring(script_path: str) -> str | None:
    """The docstring of the script at ``script_path``, as ``__doc__`` holds it under python."""
    try:
        with tokenize.open(script_path) as source:
            return ast.get_docstring(ast.parse(source.read()), clean=False)
    except (OSError, SyntaxError, ValueError):
        return None


#: Seconds a cell's end waits for ZeroMQ to write what the cell showed (:meth:`_send_and_wait`).
SEND_TIMEOUT = 5.0
#: Four times the bytes ZeroMQ encodes before each write (``ZMQ_OUT_BATCH_SIZE``, 8 KiB).
_SEND_MARKER = bytes(32 * 1024)

#: Seconds ``os._exit`` in the kernel waits for what the run showed to leave the process.
EXIT_LINGER = 0.2


def _exit_leaving_traceback(exit_now: Any, log: Any, kernel_pid: int) -> Any:
    """``os._exit`` that first writes where it was called to the crash ``log``, as faulthandler
    does for a segfault, so the driver can name the statement's line; then lets what the run
    showed leave the process."""
    import faulthandler

    def _exit(status: int) -> None:
        if os.getpid() == kernel_pid:  # not in a process the script forked
            faulthandler.dump_traceback(file=log, all_threads=False)
            # ipykernel's I/O thread hands the run's messages to ZeroMQ, whose own thread sends
            # them: the flush waits for the first, a short sleep lets the second run, which on a
            # loaded machine may not have before the process ends (a value shown in an earlier
            # cell was lost in 1 suite of 3 run at once). The status and the skipped clean-up
            # stay those of os._exit.
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            time.sleep(EXIT_LINGER)
        exit_now(status)

    return _exit


class KernelCapture:
    """The capture hook of one kernel, reached by the builtin ``HOOK_NAME``: IPython's events,
    the calls of rewritten statements and of the driver's code (:mod:`.protocol`)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.cell_text = ""
        self.used_keys: set[str] = set()
        #: The run's parameters, in order (:meth:`expect_parameters`), until they are reported.
        self.unreported_parameters: list[str] = []
        self.figures_before: set[int] = set()
        self.figures = FigureRecorder(self.claim, self.publish)
        self.initial_modules: set[str] = set()
        self.machinery_modules: set[str] = set()
        self.imported_modules: set[str] = set()
        self.loaded_before_run: set[str] = set()
        self.streams: list[BoundedStream] = []
        self.script_dir = ""
        self.reads: ReadRecorder | None = None
        self.working_directory = os.getcwd()
        #: Set once a cell's end can wait until what the cell showed has left the process
        #: (:meth:`_send_and_wait`).
        self.sends_tracked = threading.Event()

    # events

    def pre_execute(self) -> None:
        # IPython 9 wraps each cell's stream writes and restores them when it ends, which
        # would leave the bound out; it runs this event inside that wrapping.
        for stream in self.streams:
            stream.outermost()
        # IPython 9 also keeps every cell's printed text and displayed bundles (our figures'
        # PNGs too) for `%notebook`; a kernel serves one run, which never reads them back.
        outputs = getattr(self.shell.history_manager, "outputs", None)
        if outputs:
            outputs.clear()

    def pre_run_cell(self, info: Any) -> None:
        # A thread may have written after the last cell ended: send its held tail first.
        self.end_streams()
        self.cell_text = self.shell.transform_cell(info.raw_cell or "")
        # `python` says nothing on sys.exit(). Set again when the script reset the filters, but
        # not at every cell: changing the filters would repeat warnings shown once already.
        import warnings

        if not any(f[1] is not None and f[1].pattern == _EXIT_WARNING for f in warnings.filters):
            warnings.filterwarnings("ignore", _EXIT_WARNING, UserWarning, r"IPython\.")

        self.figures.start_group()

    def post_execute(self) -> None:
        self.end_streams()
        self.figures.end_group()

    def keep_figures_across_groups(self) -> None:
        """Keep figures open from one group to the next, as ``python`` runs a plain script."""
        self.figures.across_groups = True

    def end_streams(self) -> None:
        for stream in self.streams:
            stream.end_cell()

    def read_scalars(self, pattern: str | None) -> None:
        """Send the stdout lines matching ``pattern`` that a cut leaves out (see the module)."""
        self.streams[0].read_scalars(pattern)

    # called by rewritten statements

    def mark(self) -> None:
        self.figures_before = set(pyplot_figures())

    def value(self, key: str, obj: Any) -> None:
        if key in self.unreported_parameters:
            # A parameter shown in the parameters cell itself: it is recorded once, as a
            # parameter, with the value the run got (the given one, not the default shown).
            return
        open_figures = pyplot_figures()
        opened = [open_figures[n] for n in sorted(open_figures) if n not in self.figures_before]
        referenced, artistic = matplotlib_parts(obj)
        if artistic and not referenced:
            # Only labels (`plt.title(...)`): they name no figure, not even one they opened, which
            # keeps its title as key.
            opened = []
        open_ids = {id(figure) for figure in open_figures.values()}
        for figure in opened + referenced:
            # A figure closed since is shown again only when it is the value itself, as the
            # displayhook would show it; an axes or a line of it is not a figure to show.
            if id(figure) in open_ids or figure is obj:
                self.figures.name(figure, key)
        if opened or artistic or obj is None:
            return  # the figure is the result; an artist's repr is not one
        data = self.formats(obj)
        if not _only_default_reprs(data):  # `<Legend at 0x7f...>` is not a result
            self.publish(self.claim(key), data)

    def expect_parameters(self, names: list[str]) -> None:
        """Note the run's parameters, which :meth:`report_parameters` will report."""
        self.unreported_parameters = list(names)

    def report_parameters(self) -> None:
        """Publish the value each parameter noted by :meth:`expect_parameters` has now."""
        names, self.unreported_parameters = self.unreported_parameters, []
        namespace = self.shell.user_ns
        for name in names:
            if name in namespace:
                self.publish(self.claim(name), self.formats(namespace[name]), kind="parameter")

    def recording_import(self, original_import: Any) -> Any:
        """Wrap ``__import__`` to note what the run imports, even modules already loaded."""

        def record_then_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0:
                self.imported_modules.add(name.partition(".")[0])
            return original_import(name, globals, locals, fromlist, level)

        return record_then_import

    def recording_import_module(self, original_import_module: Any) -> Any:
        """Wrap ``importlib.import_module`` as :meth:`recording_import` wraps ``__import__``."""

        def record_then_import(name, package=None):
            if not name.startswith("."):
                self.imported_modules.add(name.partition(".")[0])
            return original_import_module(name, package)

        return record_then_import

    def report_modules(self) -> None:
        """Publish the top-level third-party modules the run imported, for package versions."""
        stdlib = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
        loaded = {name.partition(".")[0] for name in self.modules_loaded_by_run()}
        imported = self.imported_modules | (loaded - self.initial_modules)
        # A preloaded module's own imports ran in the template: count them for the run too.
        imported = imported.union(*(PRELOAD_CLOSURES.get(name, ()) for name in imported))
        names = sorted(
            n for n in imported - self.machinery_modules - stdlib if not n.startswith("_")
        )
        self.publish("modules", {JSON_MIMETYPE: json.dumps(names)}, kind="modules")
        if PRELOAD_CLOSURES:
            # Forked from a template: what the run imported beyond it, with each module's file,
            # for the template to learn (see ploomber_like.kernels.learned).
            files = self.run_module_files()
            self.publish("run_imports", {JSON_MIMETYPE: json.dumps(files)}, kind="run_imports")

    def modules_loaded_by_run(self) -> list[str]:
        """The names of the modules the run loaded, in the order it loaded them."""
        return [name for name in list(sys.modules) if name not in self.loaded_before_run]

    def run_module_files(self) -> dict[str, str]:
        """The modules the run loaded (name -> file): only those, not the thousands the kernel
        and the template loaded before it."""
        files = {}
        for name in self.modules_loaded_by_run():
            file = getattr(sys.modules.get(name), "__dict__", {}).get("__file__")
            if isinstance(file, str):
                files[name] = file
        return files

    def report_inputs(self) -> None:
        """Publish the files the run read and the user modules it imported (see
        :mod:`.inputs`), as ``[kind, path]`` pairs; the driver hashes them."""
        if self.reads is None:
            return
        self.reads.active = False
        modules = self.run_module_files()
        roots = [self.script_dir, self.working_directory, os.getcwd()]
        # Our own package (a checkout of it may sit in the user's folder), and the caches and
        # settings libraries read from a home folder a run may work in.
        ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        home = os.path.expanduser("~")
        settings = [
            str(cache_home().parent),
            os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
            *(os.path.join(home, name) for name in (".ipython", ".jupyter", ".local")),
        ]
        found = self.reads.inputs(roots, modules, [*library_roots(), ours, *settings])
        self.publish("inputs", {JSON_MIMETYPE: json.dumps(found)}, kind="inputs")

    def run_cells(self, cells: list[tuple[str, int | None]]) -> None:
        """Run ``cells`` (source, group or None for ours) one after the other as cells of their
        own, publishing a :class:`~.protocol.CellEnd` after each; stop at the first that raises
        (see :mod:`.protocol`, **Cells**)."""
        shell = self.shell
        interrupted = False
        # The kernel's own objects (IPython, ipykernel, zmq: ~40,000 in a fresh kernel) are
        # left out of the run's garbage collections, which would otherwise walk them at each
        # full one as `python fit.py` never does: ~0.1 s of CPU in a run importing
        # scikit-learn. A kernel serves one run, so nothing frozen here needed collecting.
        gc.freeze()
        for index, (source, group) in enumerate(cells):
            if _CRASH_LOG:
                _CRASH_LOG[-1].write(cell_start_line(index))
                _CRASH_LOG[-1].flush()
            count = shell.execution_count if group is not None else None
            started = time.perf_counter()
            result = shell.run_cell(source, store_history=group is not None)
            error = result.error_before_exec or result.error_in_exec
            end = CellEnd(group, count, time.perf_counter() - started)
            if error is not None:
                traceback = None
                if isinstance(error, SystemExit):
                    # The error output has no frames; the failing line is in them.
                    traceback = shell.InteractiveTB.structured_traceback(
                        type(error), error, error.__traceback__
                    )
                end = CellEnd(group, count, end.seconds, type(error).__name__, str(error),
                              traceback)
                interrupted = isinstance(error, KeyboardInterrupt)
            # What the run showed leaves the process before a group of the file runs, which may
            # end it at once (os._exit, a crash): the end sent last before it is waited for.
            next_group = cells[index + 1][1] if index + 1 < len(cells) else None
            self.publish("cell_end", {JSON_MIMETYPE: end.to_json()}, kind="cell_end",
                         wait=error is None and next_group is not None)
            if error is not None:
                break
        if not interrupted:
            try:
                self.report_modules()
                self.report_inputs()
            except Exception:  # noqa: S110 - the run has ended; its record only lacks these
                pass

    # helpers

    def claim(self, key: str) -> str:
        """A key not used yet in this run: ``roc``, then ``roc_2``, ``roc_3``..."""
        unique, count = key, 1
        while unique in self.used_keys:
            count += 1
            unique = f"{key}_{count}"
        self.used_keys.add(unique)
        return unique

    def formats(self, obj: Any) -> dict[str, Any]:
        converted = to_json_value(obj)
        if converted is not _NOT_JSON:
            return {JSON_MIMETYPE: json.dumps(converted)}
        data, _ = self.shell.display_formatter.format(obj)
        return data

    def publish(
        self, key: str, data: dict[str, Any], kind: str = "value", wait: bool = False
    ) -> None:
        """Send ``data`` as a ``display_data`` message tagged ``key`` and ``kind``; with
        ``wait``, return once it and every message before it have left the process
        (:meth:`_send_and_wait`)."""
        from IPython.display import publish_display_data

        if kind in ("value", "parameter"):
            # An address differs on every run: kept, two identical runs would differ.
            data = {
                mimetype: without_addresses(content) if mimetype in _TEXT_TYPES else content
                for mimetype, content in data.items()
            }
        metadata = CaptureTag(key, kind).metadata()
        # ipykernel flushes stdout and stderr before every display, each time waiting for its
        # I/O thread to send them: two waits for each of a run's dozens of values and cell ends.
        # Only text written since the last display must go out before this one.
        # A list, not a generator: every stream's count is taken (and reset), not the first's.
        printed = any([stream.take_written() for stream in self.streams])
        sender = self.shell.display_pub
        if getattr(sender, "pub_socket", None) is None or (printed and not wait):
            publish_display_data(data, metadata=metadata)
            return
        if printed:
            # As publish_display_data does: the text printed before goes out first.
            sys.stdout.flush()
            sys.stderr.flush()
        content = {"data": data, "metadata": metadata, "transient": {}}
        if wait and self.sends_tracked.is_set():
            self._send_and_wait(sender, content)
            return
        sender.session.send(
            sender.pub_socket, "display_data", content, parent=sender.parent_header,
            ident=sender.topic,
        )
        if wait:
            # Not tracked (yet): at least handed to ZeroMQ.
            self.streams[0].stream.flush()

    def start_tracking_sends(self) -> None:
        """Start pyzmq's thread that reports when ZeroMQ lets go of a lent buffer (one per
        process), then let cell ends wait for their sends."""
        import zmq

        zmq.Frame(_SEND_MARKER, copy=False, track=True)
        self.sends_tracked.set()

    def _send_and_wait(self, sender: Any, content: dict[str, Any]) -> None:
        """Send ``content`` on ipykernel's I/O thread; return once ZeroMQ has written it, with
        every message before it, to the socket.

        ipykernel's flush only waits for its I/O thread to hand messages to ZeroMQ, whose own
        thread writes them later: a segfault a few milliseconds after a cell, on a loaded
        machine, lost the values of every cell since ZeroMQ's last write. The message carries
        a buffer ZeroMQ is lent, not given a copy of, and pyzmq's tracker reports when ZeroMQ
        lets go of it. Larger than the batch ZeroMQ encodes before each write, the buffer is
        let go of only after a write that sent every earlier byte.
        """
        import zmq

        lent = zmq.Frame(_SEND_MARKER, copy=False, track=True)
        tracker = lent.tracker
        sender.session.send(
            sender.pub_socket, "display_data", content, parent=sender.parent_header,
            ident=sender.topic, buffers=[lent],
        )
        # The tracker also waits for Python to drop the frame.
        del lent
        try:
            tracker.wait(SEND_TIMEOUT)
        except zmq.NotDone:
            # Something holds the frame: the run goes on without these waits.
            self.sends_tracked.clear()


def _hiding_frames(showtraceback: Callable[..., Any], *codes: Any) -> Callable[..., Any]:
    """Wrap IPython's ``showtraceback`` to leave the frames running ``codes`` (our import hooks)
    out of the tracebacks it shows: a failing import shows the user's frames only."""

    def showtraceback_without(exc_tuple: Any = None, *args: Any, **kwargs: Any) -> Any:
        error = (exc_tuple or sys.exc_info())[1]
        seen = 0
        while error is not None and seen < 10:  # the exception and those it was raised from
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                if tb.tb_next.tb_frame.f_code in codes:
                    tb.tb_next = tb.tb_next.tb_next
                else:
                    tb = tb.tb_next
            error, seen = error.__cause__ or error.__context__, seen + 1
        return showtraceback(exc_tuple, *args, **kwargs)

    return showtraceback_without


def _top_level_modules() -> set[str]:
    return {name.split(".")[0] for name in list(sys.modules)}


_TEXT_TYPES = ("text/plain", "text/html", JSON_MIMETYPE)
#: IPython warns this on sys.exit() in a cell; `python` exits silently.
_EXIT_WARNING = r"To exit: use 'exit', 'quit', or Ctrl-D\."


def _only_default_reprs(data: dict[str, Any]) -> bool:
    """True when a formatted value is only default reprs, or a list of them: no result."""
    return set(data) == {"text/plain"} and only_default_reprs(data["text/plain"])


class ExpressionWrapper(ast.NodeTransformer):
    """Rewrite ``expr`` at the top level of a cell into ``hook.mark(); hook.value(key, expr)``."""

    def __init__(self, hook: KernelCapture) -> None:
        self.hook = hook

    def visit_Module(self, node: ast.Module) -> ast.Module:
        lines = self.hook.cell_text.splitlines()
        body: list[ast.stmt] = []
        for stmt in node.body:
            key = None
            if isinstance(stmt, ast.Expr) and not _silenced(stmt, lines):
                key = expression_key(stmt.value, self.hook.cell_text)
            if key is None or _calls_hook(stmt):
                body.append(stmt)
                continue
            mark = ast.Expr(_hook_call("mark", []))
            value = ast.Expr(_hook_call("value", [ast.Constant(key), stmt.value]))
            body += [ast.copy_location(mark, stmt), ast.copy_location(value, stmt)]
        node.body = body
        return ast.fix_missing_locations(node)


def expression_key(node: ast.expr, source: str) -> str | None:
    """The key a shown expression is recorded under, or None for literals (not results)."""
    if isinstance(node, ast.Constant):
        return None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return node.slice.value
    text = ast.get_source_segment(source, node) or ast.unparse(node)
    return " ".join(text.split())[:80]


def _silenced(stmt: ast.Expr, lines: list[str]) -> bool:
    """True when the statement ends with ``;``, IPython's way of hiding a value."""
    if stmt.end_lineno is None or stmt.end_lineno > len(lines):
        return False
    line = lines[stmt.end_lineno - 1].encode()
    rest = line[stmt.end_col_offset or 0 :].decode(errors="replace")
    return rest.lstrip().startswith(";")


def _calls_hook(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Name) and n.id == HOOK_NAME for n in ast.walk(stmt))


def _hook_call(method: str, args: list[ast.expr]) -> ast.Call:
    target = ast.Attribute(ast.Name(HOOK_NAME, ast.Load()), method, ast.Load())
    return ast.Call(target, args, [])


def to_json_value(obj: Any, depth: int = 0) -> Any:
    """``obj`` as plain JSON data (NumPy and pandas scalars become numbers), or ``_NOT_JSON``."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | float) and type(obj) in (int, float):
        return obj
    module = type(obj).__module__.split(".")[0]
    if module == "numpy":
        return _numpy_to_json(obj)
    if module == "pandas":
        return _pandas_scalar_to_json(obj)
    if module == "datetime" and hasattr(obj, "isoformat"):
        return obj.isoformat()  # as pandas timestamps are
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if depth > 20:
        return _NOT_JSON
    if isinstance(obj, list | tuple) and len(obj) <= MAX_JSON_ITEMS:
        items = [to_json_value(item, depth + 1) for item in obj]
        return _NOT_JSON if any(item is _NOT_JSON for item in items) else items
    if isinstance(obj, dict) and len(obj) <= MAX_JSON_ITEMS:
        if not all(isinstance(k, str) for k in obj):
            return _NOT_JSON
        converted = {k: to_json_value(v, depth + 1) for k, v in obj.items()}
        return _NOT_JSON if any(v is _NOT_JSON for v in converted.values()) else converted
    return _NOT_JSON


def _numpy_to_json(obj: Any) -> Any:
    numpy = sys.modules["numpy"]
    if isinstance(obj, numpy.generic):
        if obj.dtype.kind in "biuf":
            return obj.item()
        if obj.dtype.kind in "US":
            return str(obj)
        return _NOT_JSON
    if isinstance(obj, numpy.ndarray):
        if obj.dtype.kind in "biufU" and obj.size <= MAX_JSON_ITEMS:
            return obj.tolist()
        return _NOT_JSON
    return _NOT_JSON


def _pandas_scalar_to_json(obj: Any) -> Any:
    pandas = sys.modules["pandas"]
    if obj is pandas.NA or obj is pandas.NaT:
        return None
    if isinstance(obj, pandas.Timestamp | pandas.Timedelta):
        return obj.isoformat()
    return _NOT_JSON
