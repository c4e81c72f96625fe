"""The driver side of capture: a run's cell outputs decoded into parameters, values,
out-of-line blobs, stdout and stderr (the protocol: :mod:`.protocol`)."""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ploomber_like.capture.protocol import (
    JSON_MIMETYPE,
    MAX_STREAM_CHARS,
    cut_marker,
    read_tag,
)
from ploomber_like.record import BLOB_REF_KEY, Blob

#: A text value longer than this is stored out of line, with a preview of this length.
MAX_INLINE_TEXT_CHARS = 10_000
PREVIEW_CHARS = 200

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
    #: ``(kind, absolute path)`` of the files the run read and the user modules it imported.
    inputs: list[tuple[str, str]] = field(default_factory=list)

    def add_outputs(self, outputs: list[dict[str, Any]]) -> None:
        """Take the display outputs of one executed cell, in order (streams are written to
        :attr:`stdout` and :attr:`stderr` as they arrive)."""
        for output in outputs:
            if output.get("output_type") == "display_data":
                tag = read_tag(output)
                if tag:
                    self._add_value(tag.key, tag.kind, output.get("data", {}))

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
        if kind == "inputs":
            self.inputs = [(input_kind, path) for input_kind, path in _plain_value(data)]
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
