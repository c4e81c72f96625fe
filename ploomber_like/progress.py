"""Progress in a Jupyter notebook without ipywidgets.

rich draws its live displays (progress bars, spinners) in Jupyter through ipywidgets, and
without them only warns. :class:`NotebookProgress` shows the same line as one output of the
cell instead, rewritten in place through an IPython display handle, as HTML with a plain-text
twin. It takes the calls of the ``rich.progress.Progress`` subset the sweep and a single run
use, so they pick one or the other and drive both alike.
"""

from __future__ import annotations

import html
import time
from typing import Any

#: Seconds between two redraws: a fast sweep must not flood the notebook with messages.
MIN_INTERVAL = 0.25


class NotebookProgress:
    """One line of progress in the current cell's output: ``label done/total  fields  time``."""

    def __init__(self, label: str, min_interval: float = MIN_INTERVAL) -> None:
        self.label = label
        self.min_interval = min_interval
        self.total: float | None = None
        self.completed = 0.0
        self.fields: dict[str, Any] = {}
        self._handle: Any = None
        self._started = time.monotonic()
        self._drawn = 0.0

    def __enter__(self) -> NotebookProgress:
        from IPython.display import display

        self._started = time.monotonic()
        self._handle = display(self._bundle(), raw=True, display_id=True)
        self._drawn = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._draw()  # the last state stays, whatever the throttle skipped

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        """Start the (only) task: ``description`` replaces the label."""
        self.label, self.total, self.fields = description, total, dict(fields)
        self._draw()
        return 0

    def update(
        self,
        task: int = 0,
        *,
        total: float | None = None,
        advance: float = 0,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        if total is not None:
            self.total = total
        if description is not None:
            self.label = description
        self.completed += advance
        self.fields.update(fields)
        if time.monotonic() - self._drawn >= self.min_interval:
            self._draw()

    def text(self) -> str:
        """The line as plain text (rich markup in the fields dropped)."""
        from rich.text import Text

        parts = [self.label]
        if self.total is not None:
            parts.append(f"{self.completed:g}/{self.total:g}")
        parts += [Text.from_markup(str(v)).plain for v in self.fields.values()]
        elapsed = int(time.monotonic() - self._started)
        parts.append(f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}")
        return "  ".join(parts)

    def _bundle(self) -> dict[str, str]:
        bar = ""
        if self.total:
            bar = (f'<progress value="{self.completed:g}" max="{self.total:g}" '
                   'style="width:16em;vertical-align:middle"></progress> ')
        line = f'<span style="font-family:monospace">{html.escape(self.text())}</span>'
        return {"text/plain": self.text(), "text/html": f"<div>{bar}{line}</div>"}

    def _draw(self) -> None:
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)
            self._drawn = time.monotonic()
