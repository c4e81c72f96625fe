"""Bounded stdout and stderr in a kernel: each cell sends its output's head and tail, and the
scalar lines of the middle it cuts (the protocol: :mod:`.protocol`). Standard library only."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ploomber_like.capture.protocol import (
    MAX_STREAM_CHARS,
    SCALAR_LINES_END,
    cut_marker,
    scalar_lines_block,
)
from ploomber_like.scalars import DEFAULT_PATTERN, MAX_LINE_CHARS, MAX_POINTS

#: The bounds of the kernel's streams, kept for its life (see :meth:`BoundedStream.wrap`).
_BOUNDED_STREAMS: list[BoundedStream] = []


class BoundedStream:
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
        #: Whether text went to the stream since :meth:`take_written` last said (at first,
        #: unknown: it may hold text written before).
        self.written = True

    @classmethod
    def wrap(cls, stream: Any) -> BoundedStream:
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

    def take_written(self) -> bool:
        """Whether anything was written to the stream since the last call."""
        written, self.written = self.written, False
        return written

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
        self.written = True
        self.forwarding = True
        try:
            self.forward(text)
        finally:
            self.forwarding = False

    def _unbounded(self, text: str) -> Any:
        # The stream's own write, under every wrapper: one that wraps this bound must not be
        # called again from it.
        self.written = True
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
