"""Turning what a group shows into named values.

Two halves live here because they speak one protocol:

* **kernel side** (:func:`install`): run inside every kernel. An IPython AST transformer wraps
  each top-level expression statement of a cell (``accuracy``, ``plot.roc(y, p)``) in a call to
  the capture hook, which converts the value *in the kernel* (so ``numpy.float64`` stays a
  number) and publishes it as a ``display_data`` message tagged with its key. Figures are
  rendered to PNG when shown (``plt.show()``) or when the cell ends, named by the statement
  that drew them or by their title (:class:`_FigureRecorder`); an artist or a default repr
  (``<... at 0x7f...>``) is not a value, and addresses are dropped from the values kept.
* **driver side** (:func:`collect_outputs`): turns a run's cell outputs into parameters, values,
  out-of-line blobs, stdout and stderr.

Stdout and stderr are bounded in the kernel (:class:`_BoundedStream`): of each cell's output the
driver receives the head, then a :func:`cut_marker` line and the tail. So that output scalars
printed in the cut middle still count, the driver tells the kernel its scalar pattern
(:func:`scalar_lines_code`, a statement of the run's first cell), and the kernel sends the
complete lines of the dropped text that match it, on stdout itself, each batch wrapped as
``SCALAR_LINES_START + "line\nline\n" + SCALAR_LINES_END`` (:func:`scalar_lines_block`), before
the cut marker. :func:`split_stream` takes these blocks out of the received text: the driver
reads their lines as scalar input only, never as stdout (not stored, echoed or kept in the
notebook). The kernel sends at most ``MAX_POINTS`` lines per run, and none longer than
``MAX_LINE_CHARS``; the line the head ends in and the one the tail starts in, which the driver
reads only in pieces, are sent whole. Matching runs in the script's time, and only on text the
cut drops (the default pattern only on lines holding ``:`` or ``=``).

The kernel side imports only the standard library at module level: every run pays for it.
"""

from __future__ import annotations

import ast
import base64
import builtins
import importlib
import json
import numbers
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ploomber_like.record import BLOB_REF_KEY, Blob
from ploomber_like.scalars import DEFAULT_PATTERN, MAX_LINE_CHARS, MAX_POINTS

#: Private mimetype carrying a value converted to JSON text in the kernel.
JSON_MIMETYPE = "application/x.ploomber-like+json"
#: Key of the display metadata that marks a captured output.
METADATA_KEY = "ploomber_like"
#: Builtin name the rewritten statements call; a builtin keeps the user's namespace clean.
HOOK_NAME = "__ploomber_like_capture__"
#: Arrays and sequences up to this many items are stored as JSON lists, larger ones as text.
MAX_JSON_ITEMS = 10_000
#: Stdout and stderr are kept up to this many characters each (head and tail).
MAX_STREAM_CHARS = 200_000
#: A text value longer than this is stored out of line, with a preview of this length.
MAX_INLINE_TEXT_CHARS = 10_000
PREVIEW_CHARS = 200

#: Around the scalar lines of a cut middle sent on stdout (see the module's docstring). Control
#: characters, so that no printed text is taken for them in practice.
SCALAR_LINES_START = "\x02ploomber_like scalar lines\x1e"
SCALAR_LINES_END = "\x03"

#: Environment variable naming the kernel's log file, where a crash leaves its traceback.
KERNEL_LOG_VARIABLE = "PLOOMBER_LIKE_KERNEL_LOG"

_NOT_JSON = object()
_CRASH_LOG: list[Any] = []
#: The bounds of the kernel's streams, kept for its life (see :meth:`_BoundedStream.wrap`).
_BOUNDED_STREAMS: list[_BoundedStream] = []

#: For each top-level module a warm template preloaded, the top-level modules its import
#: brought in (itself included); set in the template before forking.
PRELOAD_CLOSURES: dict[str, frozenset[str]] = {}


# --- kernel side ----------------------------------------------------------------------------


def setup_code(script_path: str) -> str:
    """Code that runs :func:`install` in a kernel, for the script at ``script_path``."""
    return f"__import__('ploomber_like.capture').capture.install(get_ipython(), {script_path!r})"


def scalar_lines_code(pattern: str | None) -> str:
    """Code that makes an installed capture send the cut middle's lines matching ``pattern``
    (a regular expression's source; None: none) for the run about to start."""
    return f"{HOOK_NAME}.read_scalars({pattern!r})"


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
    # As under `python script.py`: the script's own modules importable, and `__file__` set
    # (scripts find their data with Path(__file__).parent).
    script_dir = os.path.dirname(script_path)
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)
    shell.user_ns["__file__"] = script_path
    hook = _KernelCapture(shell)
    hook.initial_modules = _top_level_modules()
    hook.loaded_before_run = set(sys.modules)
    # What the kernel machinery imported is not the run's; what a warm template preloaded on
    # the script's behalf is, once the run imports it.
    hook.machinery_modules = hook.initial_modules.difference(*PRELOAD_CLOSURES.values())
    hook.streams = [_BoundedStream.wrap(sys.stdout), _BoundedStream.wrap(sys.stderr)]
    builtins.__import__ = hook.recording_import(builtins.__import__)
    # A module the template preloaded for the run, imported by name, enters no sys.modules.
    importlib.import_module = hook.recording_import_module(importlib.import_module)
    shell.showtraceback = _hiding_frames(
        shell.showtraceback, builtins.__import__.__code__, importlib.import_module.__code__
    )
    setattr(builtins, HOOK_NAME, hook)
    shell.ast_transformers.append(_ExpressionWrapper(hook))
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


def _exit_leaving_traceback(exit_now: Any, log: Any, kernel_pid: int) -> Any:
    """``os._exit`` that first writes where it was called to the crash ``log``, as faulthandler
    does for a segfault, so the driver can name the statement's line."""
    import faulthandler

    def _exit(status: int) -> None:
        if os.getpid() == kernel_pid:  # not in a process the script forked
            faulthandler.dump_traceback(file=log, all_threads=False)
        exit_now(status)

    return _exit


class _KernelCapture:
    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.cell_text = ""
        self.used_keys: set[str] = set()
        self.figures_before: set[int] = set()
        self.figures = _FigureRecorder(self.claim, self.publish)
        self.initial_modules: set[str] = set()
        self.machinery_modules: set[str] = set()
        self.imported_modules: set[str] = set()
        self.loaded_before_run: set[str] = set()
        self.streams: list[_BoundedStream] = []

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
        self.figures_before = set(_open_figures())

    def value(self, key: str, obj: Any) -> None:
        open_figures = _open_figures()
        opened = [open_figures[n] for n in sorted(open_figures) if n not in self.figures_before]
        referenced, artistic = _matplotlib_parts(obj)
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

    def report_parameters(self, names: list[str]) -> None:
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
        imported = self.imported_modules | (_top_level_modules() - self.initial_modules)
        # A preloaded module's own imports ran in the template: count them for the run too.
        imported = imported.union(*(PRELOAD_CLOSURES.get(name, ()) for name in imported))
        names = sorted(
            n for n in imported - self.machinery_modules - stdlib if not n.startswith("_")
        )
        self.publish("modules", {JSON_MIMETYPE: json.dumps(names)}, kind="modules")
        if PRELOAD_CLOSURES:
            # Forked from a template: what the run imported beyond it, with each module's file,
            # for the template to learn (see ploomber_like.kernels.learned).
            files = {}
            for name, module in list(sys.modules.items()):
                file = getattr(module, "__dict__", {}).get("__file__")
                if name not in self.loaded_before_run and isinstance(file, str):
                    files[name] = file
            self.publish("run_imports", {JSON_MIMETYPE: json.dumps(files)}, kind="run_imports")

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

    def publish(self, key: str, data: dict[str, Any], kind: str = "value") -> None:
        from IPython.display import publish_display_data

        # An address differs on every run: kept, two identical runs would differ.
        data = {
            mimetype: without_addresses(content) if mimetype in _TEXT_TYPES else content
            for mimetype, content in data.items()
        }
        publish_display_data(data, metadata={METADATA_KEY: {"key": key, "kind": kind}})


class _BoundedStream:
    """Bounds what one cell sends on a kernel stream (``sys.stdout`` or ``sys.stderr``).

    ipykernel sends all that is written between two flushes (0.2 s apart) as one message, so a
    loop printing megabytes makes messages of tens of megabytes that the driver decodes only to
    keep their head and tail. Per cell, the first half of ``MAX_STREAM_CHARS`` passes as written
    (live output still streams); of the rest only the last half is held here, and sent after a
    :func:`cut_marker` when the cell ends. A crash mid-cell loses that held tail.

    The bound is the stream's outermost ``write`` in every cell (:meth:`outermost`), so what
    wraps the stream in a cell, such as IPython 9's copy of each cell's output into its history,
    sees only the bounded text.

    Output scalars of the cut middle still reach the driver (see :meth:`read_scalars`): the
    complete lines of the dropped text that match the run's pattern are sent, in order, in
    :func:`scalar_lines_block` s the driver reads as scalar input only, never as stdout.
    """

    def __init__(self, stream: Any, limit: int = MAX_STREAM_CHARS) -> None:
        self.stream = stream
        # Where the bounded text goes: the write this bound last took the place of.
        self.forward: Callable[[str], Any] = stream.write
        # True while the text goes to `forward`, which may itself call `write` (see outermost).
        self.forwarding = False
        self.half = limit // 2
        self.pid = os.getpid()
        # Threads and ipykernel's watcher of file descriptor 1 and 2 write concurrently; and a
        # signal handler that prints mid-write runs on the same thread, so the lock re-enters.
        self.lock = threading.RLock()
        self.passed = 0
        self.tail: deque[str] = deque()
        self.tail_chars = 0
        self.dropped = 0
        # Scalar lines of the dropped text: the pattern's source (None: none are read), the
        # pattern compiled when first needed, lines sent this run, lines waiting to be sent.
        self.scalar_source: str | None = None
        self.scalar_pattern: re.Pattern[str] | None = None
        self.scalar_lines_sent = 0
        self.pending: list[str] = []
        self.pending_chars = 0
        self.last_sent = 0.0
        # The line the passed head ends in, from its last MAX_LINE_CHARS (None: longer, so not
        # read), then the incomplete line of the dropped text.
        self.head_line: str | None = ""
        self.line: str | None = ""

    @classmethod
    def wrap(cls, stream: Any) -> _BoundedStream:
        """Route ``stream.write`` through the stream's bound, made once per kernel; the object
        stays the kernel's own, so ``isinstance`` checks, ``flush`` and ``fileno`` behave as
        before."""
        for bounded in _BOUNDED_STREAMS:
            if bounded.stream is stream:  # capture installed again in this kernel
                break
        else:
            bounded = cls(stream)
            _BOUNDED_STREAMS.append(bounded)
        bounded.outermost()
        return bounded

    def outermost(self) -> None:
        """Be ``stream.write`` again if another write took its place: the text then goes
        through that write, which only ever sees the bounded text."""
        with self.lock:
            if self.stream.write != self.write:
                self.forward = self.stream.write
                self.stream.write = self.write

    def read_scalars(self, pattern: str | None) -> None:
        """Send the dropped lines matching ``pattern`` (a regular expression) from now on, up to
        ``MAX_POINTS`` lines; ``None``: send none. Called once per run."""
        with self.lock:
            self.scalar_source, self.scalar_pattern = pattern, None
            self.scalar_lines_sent = 0

    def write(self, text: str) -> int:
        if os.getpid() != self.pid:
            # A forked child (multiprocessing) never sees its cell end: hold nothing there.
            return self._unbounded(text)
        written = len(text)
        with self.lock:
            if self.forwarding:
                # `forward` wraps this bound in turn (a cell started while the bound was in
                # place wraps it, then :meth:`outermost` put it above): bounded already.
                return self._unbounded(text)
            if self.passed < self.half:
                head = text[: self.half - self.passed]
                before, self.passed = self.passed, self.passed + len(head)
                if self.passed >= self.half - MAX_LINE_CHARS:
                    # Near the cut: follow the line the head ends in, for the scalar lines.
                    self._follow_head_line(head, before)
                text = text[len(head) :]
                self._send(head)
                if self.passed == self.half:  # what is dropped continues the head's last line
                    self.line = self.head_line
            if text:
                if len(text) > self.half:
                    # The text alone fills the tail: all held before it is dropped, then its start.
                    for chunk in self.tail:
                        self._drop(chunk)
                    self.tail.clear()
                    self.tail_chars = 0
                    self._drop(text[: -self.half])
                    text = text[-self.half :]
                self.tail.append(text)
                self.tail_chars += len(text)
                while self.tail_chars - len(self.tail[0]) >= self.half:
                    chunk = self.tail.popleft()
                    self.tail_chars -= len(chunk)
                    self._drop(chunk)
                if self.pending and (
                    self.pending_chars >= MAX_STREAM_CHARS // 20
                    or time.monotonic() - self.last_sent >= 0.2
                ):
                    self._send_scalar_lines()
        return written

    def end_cell(self) -> None:
        """Send the held tail, after a marker if part of it was dropped; start a new cell."""
        with self.lock:
            tail = "".join(self.tail)
            excess = max(len(tail) - self.half, 0)
            if excess:
                self._drop(tail[:excess])
                tail = tail[excess:]
            cut = self.dropped
            if cut and self.line is not None and self.scalar_source is not None:
                # The line the kept tail starts in: the driver reads no piece of a cut line.
                end = tail.find("\n")
                self._check_line(self.line + (tail[:end] if end >= 0 else tail))
            self._send_scalar_lines()
            self.passed, self.tail_chars, self.dropped = 0, 0, 0
            self.tail.clear()
            self.head_line, self.line = "", ""
            if tail:
                self._send(cut_marker(cut) + tail if cut else tail)

    def _send(self, text: str) -> None:
        self.forwarding = True
        try:
            self.forward(text)
        finally:
            self.forwarding = False

    def _unbounded(self, text: str) -> Any:
        # The stream's own write, under every wrapper: one that wraps this bound must not be
        # called again from it.
        return type(self.stream).write(self.stream, text)

    def _follow_head_line(self, head: str, before: int) -> None:
        newline = head.rfind("\n")
        if newline >= 0:
            self.head_line = head[newline + 1 :]
        elif self.head_line is not None and (before == 0 or before >= self.half - MAX_LINE_CHARS):
            self.head_line += head
        else:  # the line started before the followed stretch: longer than a line read
            self.head_line = None

    def _drop(self, text: str) -> None:
        """Leave out ``text``, the next of the cut middle; keep its scalar lines."""
        self.dropped += len(text)
        if self.scalar_source is None or self.scalar_lines_sent >= MAX_POINTS:
            return
        lines = text.split("\n")
        last = lines.pop()
        if lines:
            if self.line is not None:
                self._check_line(self.line + lines[0])
            for line in lines[1:]:
                self._check_line(line)
            self.line = last
        elif self.line is not None:
            self.line += last
        if self.line is not None and len(self.line) > MAX_LINE_CHARS:
            self.line = None

    def _check_line(self, line: str) -> None:
        # As the driver reads a line: what shows after the last \r, up to MAX_LINE_CHARS.
        line = line.rpartition("\r")[2]
        if len(line) > MAX_LINE_CHARS or self.scalar_lines_sent >= MAX_POINTS:
            return
        if self.scalar_pattern is None:
            self.scalar_pattern = re.compile(self.scalar_source or "")
        if self.scalar_source == DEFAULT_PATTERN and ":" not in line and "=" not in line:
            return  # cheaper than the pattern on the filler lines of a chatty loop
        if self.scalar_pattern.search(line) and SCALAR_LINES_END not in line:
            self.pending.append(line)
            self.pending_chars += len(line) + 1
            self.scalar_lines_sent += 1

    def _send_scalar_lines(self) -> None:
        if self.pending:
            self._send(scalar_lines_block(self.pending))
            self.pending.clear()
            self.pending_chars = 0
        self.last_sent = time.monotonic()


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


def _open_figures() -> dict[int, Any]:
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return {}
    return {m.num: m.canvas.figure for m in helpers.Gcf.get_all_fig_managers()}


class _FigureRecorder:
    """The figures of a run: the key each is recorded under, and when it is rendered.

    Jupyter's rule: every figure open when a group ends is shown (then closed), as is one shown
    with ``plt.show()``. A statement that draws or returns a figure names it (``roc``); another
    is named after its suptitle, or its axes' title, else ``figure``, ``figure_2``..., in drawing
    order. In a plain script (:attr:`across_groups`) figures stay open from group to group, as
    under ``python``: a figure is rendered as it stands when a group ends, and again, under the
    same key, whenever a later group changes it, so its value is the figure the script leaves.
    """

    def __init__(self, claim: Callable[[str], str], publish: Callable[..., None]) -> None:
        self.claim = claim
        self.publish = publish
        self.across_groups = False
        # id -> (figure, key): the reference keeps the id from being reused while it is here.
        self.keys: dict[int, tuple[Any, str]] = {}
        self.rendered: set[int] = set()

    def name(self, figure: Any, key: str) -> None:
        """Record ``figure`` under ``key`` unless it has a key already."""
        if id(figure) not in self.keys:
            self.keys[id(figure)] = (figure, self.claim(key))

    def render(self, figure: Any) -> None:
        """Publish ``figure`` as a PNG under its key, unless unchanged since it last was."""
        if id(figure) in self.rendered and not figure.stale:
            return
        self.name(figure, figure_key(figure))
        from IPython.core.pylabtools import print_figure

        self.rendered.add(id(figure))
        try:
            png = print_figure(figure, "png")
        except Exception as exc:  # one figure that cannot be drawn must not cost the others
            key = self.keys[id(figure)][1]
            print(f"ploomber_like: figure {key!r} not drawn: {exc!r}", file=sys.stderr)
            png = None
        # Rendering leaves the figure stale; from here on, stale means the script changed it.
        figure.stale = False
        if png:  # nothing for a figure without axes, as Jupyter shows nothing
            data = {"image/png": base64.b64encode(png).decode("ascii")}
            self.publish(self.keys[id(figure)][1], data, kind="figure")

    def start_group(self) -> None:
        if self.across_groups:
            # plt.show() in the group shows and closes the figures, as a window would.
            self._close_figures_on_flush(True)

    def end_group(self) -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        if self.across_groups:
            # The inline backend's flush runs next: it must leave the figures open.
            self._close_figures_on_flush(False)
        open_figures = _open_figures()
        named = [figure for figure, _ in self.keys.values()]
        for figure in dict.fromkeys([*named, *(open_figures[n] for n in sorted(open_figures))]):
            self.render(figure)
        if self.across_groups:
            # A figure the group closed was rendered above, as the group left it: it is done.
            still_open = {id(figure) for figure in open_figures.values()}
            self.keys = {i: entry for i, entry in self.keys.items() if i in still_open}
            self.rendered &= still_open
        else:
            pyplot.close("all")  # as Jupyter's inline backend does when a cell ends
            self.keys.clear()
            self.rendered.clear()

    def _close_figures_on_flush(self, close: bool) -> None:
        inline = sys.modules.get("matplotlib_inline.config")
        if inline is not None:  # not loaded: pyplot has not drawn yet
            inline.InlineBackend.instance().close_figures = close


def keep_figures_code() -> str:
    """Code that makes an installed capture keep figures open from one group to the next (a
    plain script) rather than close them when each group ends (Jupyter's rule, the default)."""
    return f"{HOOK_NAME}.keep_figures_across_groups()"


def figure_key(figure: Any) -> str:
    """The key of a figure no statement named: its suptitle, or the one title of its axes."""
    titles = [figure.get_suptitle()] if hasattr(figure, "get_suptitle") else []  # mpl 3.8
    if not any(title.strip() for title in titles):
        titles = [
            title
            for axes in figure.axes
            for title in (axes.get_title(loc) for loc in ("center", "left", "right"))
            if title.strip()
        ]
    text = " ".join(titles[0].split())[:80] if len(titles) == 1 else ""
    return text or "figure"


def _matplotlib_parts(obj: Any) -> tuple[list[Any], bool]:
    """The figures ``obj`` is, belongs to or holds (a Figure, Axes, Line2D, a container or a
    nest of them, an object with a ``figure_`` such as scikit-learn's displays), and whether it
    holds a matplotlib artist."""
    artist = sys.modules.get("matplotlib.artist")
    if artist is None:
        return [], False
    figures: list[Any] = []
    found = False
    budget = 1_000  # items looked at, at most: a value may be a large nest of lists

    def visit(item: Any, depth: int) -> None:
        nonlocal found, budget
        budget -= 1
        if budget < 0:
            return
        if isinstance(item, artist.Artist):
            found = True
            figure = item if type(item).__name__ == "Figure" else item.get_figure()
            while figure is not None and getattr(figure, "figure", figure) is not figure:
                figure = figure.figure  # a SubFigure belongs to a Figure
            if figure is not None and all(figure is not f for f in figures):
                figures.append(figure)
        elif depth >= 3:
            return
        elif isinstance(item, list | tuple):  # matplotlib's containers are tuples
            for part in item[:100]:
                visit(part, depth + 1)
        elif isinstance(item, dict):  # plt.boxplot's lines
            for part in list(item.values())[:100]:
                visit(part, depth + 1)
        elif type(item).__name__ == "ndarray" and getattr(item.dtype, "kind", "") == "O":
            for part in item.ravel()[:100]:
                visit(part, depth + 1)
        elif depth == 0:
            for name in ("figure_", "figure"):  # scikit-learn displays, seaborn grids
                try:
                    held = getattr(item, name, None)
                except Exception:  # a property of the user's object may raise anything
                    continue
                if type(held).__name__ == "Figure" and isinstance(held, artist.Artist):
                    visit(held, depth + 1)
                    return

    visit(obj, 0)
    return figures, found


#: An object's default repr (``<module.Class object at 0x7f...>``), and the address in one.
_DEFAULT_REPR = re.compile(r"<[^<>\n]*? at 0x[0-9a-fA-F]+>")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+(?=>|&gt;)")
_TEXT_TYPES = ("text/plain", "text/html")
#: IPython warns this on sys.exit() in a cell; `python` exits silently.
_EXIT_WARNING = r"To exit: use 'exit', 'quit', or Ctrl-D\."


def _only_default_reprs(data: dict[str, Any]) -> bool:
    """True when a formatted value is only default reprs, or a list of them: no result."""
    if set(data) != {"text/plain"}:
        return False
    text = data["text/plain"]
    rest = _DEFAULT_REPR.sub("", text)
    return rest != text and not rest.strip("[](), \n")


def without_addresses(text: Any) -> Any:
    """``text`` with the address of each default repr dropped: ``<Foo object at 0x7f..>``
    becomes ``<Foo object>``, the same in every run. Anything but a string is returned as is."""
    return _ADDRESS.sub("", text) if isinstance(text, str) and " at 0x" in text else text


class _ExpressionWrapper(ast.NodeTransformer):
    """Rewrite ``expr`` at the top level of a cell into ``hook.mark(); hook.value(key, expr)``."""

    def __init__(self, hook: _KernelCapture) -> None:
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


# --- driver side ----------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class StreamText:
    """The head and tail of a stream, kept as it arrives: the middle is never held.

    :meth:`text` equals :func:`cap_text` of the whole stream with ANSI codes removed, so a
    script printing gigabytes costs the driver at most ``limit`` characters. Where the kernel
    already cut a cell's output (see :meth:`cut`), the text counts what it cut.
    """

    def __init__(self, limit: int = MAX_STREAM_CHARS) -> None:
        self.half = limit // 2
        self.head: list[str] = []
        self.head_chars = 0
        self.head_open = True
        self.tail: deque[str] = deque()
        self.tail_chars = 0
        self.total = 0

    def write(self, text: str) -> None:
        text = strip_ansi(text)
        self.total += len(text)
        if self.head_open and self.head_chars < self.half:
            taken = text[: self.half - self.head_chars]
            self.head.append(taken)
            self.head_chars += len(taken)
            text = text[len(taken) :]
        if text:
            self.tail.append(text)
            self.tail_chars += len(text)
            while self.tail_chars - len(self.tail[0]) >= self.half:
                self.tail_chars -= len(self.tail.popleft())

    def cut(self, count: int) -> None:
        """Note that the kernel left out ``count`` characters here (a :func:`cut_marker`)."""
        self.total += count
        # What follows continues neither the head nor the tail held so far.
        self.head_open = False
        self.tail.clear()
        self.tail_chars = 0

    def text(self) -> str:
        head, tail = "".join(self.head), "".join(self.tail)
        if self.total == len(head) + len(tail) <= 2 * self.half:
            return head + tail
        tail = tail[-self.half :]
        return head + cut_marker(self.total - len(head) - len(tail)) + tail


@dataclass
class CapturedRun:
    """What a run's outputs hold, ready for a :class:`~ploomber_like.record.Record`."""

    parameters: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    stdout: StreamText = field(default_factory=StreamText)
    stderr: StreamText = field(default_factory=StreamText)
    #: Top-level third-party modules the run imported.
    modules: list[str] = field(default_factory=list)
    #: Modules new in a forked kernel after the run, name -> file, in import order.
    run_imports: dict[str, str] = field(default_factory=dict)

    def add_outputs(self, outputs: list[dict[str, Any]]) -> None:
        """Take the display outputs of one executed cell, in order (streams are written to
        :attr:`stdout` and :attr:`stderr` as they arrive)."""
        for output in outputs:
            if output.get("output_type") == "display_data":
                tag = output.get("metadata", {}).get(METADATA_KEY)
                if tag:
                    self._add_value(tag["key"], tag.get("kind"), output.get("data", {}))

    def _add_value(self, key: str, kind: str | None, data: dict[str, Any]) -> None:
        if kind == "parameter":
            self.parameters[key] = _plain_value(data)
            return
        if kind == "modules":
            self.modules = _plain_value(data)
            return
        if kind == "run_imports":
            self.run_imports = _plain_value(data)
            return
        if kind == "figure" and key in self.values:
            # A plain script's figure changed by a later group: its last rendering replaces it.
            replaced = _blob_sha(self.values.pop(key))
            if all(_blob_sha(value) != replaced for value in self.values.values()):
                self.blobs.pop(replaced, None)
        for mimetype in ("image/png", "image/svg+xml", "text/html"):
            if mimetype in data and JSON_MIMETYPE not in data:
                content = data[mimetype]
                raw = base64.b64decode(content) if mimetype == "image/png" else content.encode()
                self.values[key] = self.add_blob(Blob(mimetype, raw))
                return
        value = _plain_value(data)
        if isinstance(value, str) and len(value) > MAX_INLINE_TEXT_CHARS:
            # Out of line as plots are: `parameters` stays small, so json_extract stays fast.
            reference = self.add_blob(Blob("text/plain", value.encode()))
            value = {**reference, "preview": value[:PREVIEW_CHARS]}
        self.values[key] = value

    def add_blob(self, blob: Blob) -> dict[str, str]:
        """Keep ``blob`` once; return the reference stored in its place."""
        self.blobs[blob.sha256] = blob
        return blob.reference()

    def stdout_text(self) -> str:
        return self.stdout.text()

    def stderr_text(self) -> str:
        return self.stderr.text()


def _blob_sha(value: Any) -> str | None:
    return value.get(BLOB_REF_KEY) if isinstance(value, dict) else None


def _plain_value(data: dict[str, Any]) -> Any:
    if JSON_MIMETYPE in data:
        return json.loads(data[JSON_MIMETYPE])
    text = data.get("text/plain", "")
    return "\n".join(text) if isinstance(text, list) else text


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def cap_text(text: str, limit: int = MAX_STREAM_CHARS) -> str:
    """Keep the head and tail of a long text with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + cut_marker(len(text) - 2 * half) + text[-half:]


def cut_marker(count: int) -> str:
    """The line standing for ``count`` characters left out between a head and a tail."""
    return f"\n[... {count} characters cut by ploomber_like ...]\n"


def scalar_lines_block(lines: list[str]) -> str:
    """Complete stdout ``lines`` the kernel left out, wrapped to be read as scalars only."""
    return SCALAR_LINES_START + "".join(line + "\n" for line in lines) + SCALAR_LINES_END


@dataclass(frozen=True)
class ScalarLines:
    """Lines of a :func:`scalar_lines_block`: scalar input, not stdout."""

    text: str


#: Finds :func:`cut_marker` lines (built from it, so the wording lives in one place) and
#: :func:`scalar_lines_block` s.
_PRIVATE = re.compile(
    re.escape(cut_marker(0)).replace("0", r"(\d+)")
    + f"|{re.escape(SCALAR_LINES_START)}(.*?){re.escape(SCALAR_LINES_END)}",
    re.DOTALL,
)


def split_stream(text: str) -> list[str | int | ScalarLines]:
    """Received stream ``text`` in pieces: printed text, the count of each :func:`cut_marker`
    and the lines of each :func:`scalar_lines_block`, in order."""
    if "ploomber_like" not in text:  # the usual case: nothing of ours
        return [text]
    pieces: list[str | int | ScalarLines] = []
    # re.split alternates the text around matches with the groups each match captured.
    parts = _PRIVATE.split(text)
    for index in range(0, len(parts) - 1, 3):
        count, lines = parts[index + 1], parts[index + 2]
        pieces += [parts[index], int(count) if count is not None else ScalarLines(lines)]
    pieces.append(parts[-1])
    return [piece for piece in pieces if piece != ""]
