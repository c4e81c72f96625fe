"""What a run's kernel sends, as the driver reads it: nbclient's client adapted to a run, and
where the run's stream output goes as it arrives."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ploomber_like.capture.outputs import CapturedRun
from ploomber_like.capture.protocol import (
    MAX_STREAM_CHARS,
    CellEnd,
    ScalarLines,
    cut_marker,
    read_cell_end,
    read_tag,
    split_stream,
)
from ploomber_like.record import MetricPoint, RecordOptions
from ploomber_like.scalars import ScalarReader, scalar_pattern


class RunOutput:
    """Where a run's stream output goes as it arrives: the kept head and tail, the output
    scalars, this process's terminal, the executed notebook."""

    def __init__(
        self,
        options: RecordOptions,
        on_points: Callable[[list[MetricPoint]], None] | None = None,
    ) -> None:
        self.captured = CapturedRun()
        pattern = scalar_pattern(options.output_scalars)
        self.scalars = ScalarReader(pattern) if pattern is not None else None
        self.on_points = on_points
        self.points_reported = 0
        self.echo = options.stream_output
        self.keep_in_notebook = options.save_notebook
        self.notebook_chars = 0

    def stream(self, name: str, text: str, outputs: list[Any]) -> None:
        """Take ``text`` the kernel printed on ``name``; ``outputs`` are its cell's outputs."""
        kept = self.captured.stdout if name == "stdout" else self.captured.stderr
        scalars = self.scalars if name == "stdout" else None
        now = time.time()
        pieces = split_stream(text)
        shown = []
        for piece in pieces:
            if isinstance(piece, ScalarLines):
                # Lines the kernel cut from stdout, sent for their scalars only.
                if scalars is not None:
                    scalars.read_lines(piece.text, now)
            elif isinstance(piece, int):
                kept.cut(piece)
                if scalars is not None:
                    scalars.cut()
                shown.append(cut_marker(piece))
            else:
                kept.write(piece)
                if scalars is not None:
                    scalars.feed(piece, now)
                shown.append(piece)
        if scalars is not None and self.on_points is not None:
            fresh = scalars.points[self.points_reported :]
            if fresh:
                self.points_reported = len(scalars.points)
                self.on_points(fresh)
        if len(pieces) > 1:
            text = "".join(shown)
        if not text:
            return
        if self.echo:
            print(text, end="", file=sys.stdout if name == "stdout" else sys.stderr, flush=True)
        if self.keep_in_notebook:
            self._add_to_cell(name, text, outputs)

    def _add_to_cell(self, name: str, text: str, outputs: list[Any]) -> None:
        from nbformat.v4 import new_output

        # The notebook keeps at most as much stream text as the record does.
        room = MAX_STREAM_CHARS - self.notebook_chars
        if room <= 0:
            return
        if len(text) > room:
            text = text[:room] + "\n[... output cut by ploomber_like ...]\n"
        self.notebook_chars += len(text)
        last = outputs[-1] if outputs else None
        if last is not None and last.get("output_type") == "stream" and last.get("name") == name:
            last["text"] += text
        else:
            outputs.append(new_output("stream", name=name, text=text))

    def metrics(self) -> list[MetricPoint]:
        return self.scalars.finish(time.time()) if self.scalars is not None else []


@lru_cache(maxsize=1)
def run_client_class() -> type:
    from nbclient import NotebookClient

    class RunClient(NotebookClient):
        """nbclient's client, handing stream output to the run as it arrives.

        nbclient declares no hook per output, and would keep every printed character in the
        cell: ``output`` is the method it documents for handling one.
        """

        on_stream: Callable[[str, str, list[Any]], None] | None = None
        on_error: Callable[[dict[str, Any]], None] | None = None
        on_cell_end: Callable[[CellEnd, list[Any]], None] | None = None

        def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
            from nbformat import NotebookNode

            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and self.on_stream is not None:
                self.on_stream(content.get("name", "stdout"), content.get("text", ""), outs)
                return None
            if kind == "error" and self.on_error is not None:
                self.on_error(content)
            elif kind == "display_data" and read_tag(content) is not None:
                end = read_cell_end(content)
                if end is not None and self.on_cell_end is not None:
                    self.on_cell_end(end, outs)
                    return None
                if not (display_id or self.clear_before_next_output):
                    # Our own outputs, taken as sent: nbclient would check each against the
                    # notebook's schema (~0.5 ms each, a dozen or more per run).
                    out = NotebookNode(
                        output_type="display_data", data=content.get("data", {}),
                        metadata=content.get("metadata", {}),
                    )
                    outs.append(out)
                    return out
            return super().output(outs, msg, display_id, cell_index)

    return RunClient


class RequestClient:
    """A kernel's client as nbclient uses it, noting the id of the request nbclient sends.

    Once nbclient stopped reading (Ctrl-C, a timeout, a dead kernel), the driver reads the
    channel itself, where our own earlier requests left their status messages: only this
    request's messages are the run's, and only its ``idle`` ends it.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.request_id: str | None = None

    def execute(self, *args: Any, **kwargs: Any) -> str:
        self.request_id = self.client.execute(*args, **kwargs)
        return self.request_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)
