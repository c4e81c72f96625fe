"""Ctrl-C in a sweep's driver, noticed even when the ``KeyboardInterrupt`` it raised was lost.

Python raises ``KeyboardInterrupt`` wherever its main thread runs when SIGINT arrives. Raised in
a finalizer (a ``__del__``, a weakref callback: frequent while kernels' sockets are collected)
it is printed as "Exception ignored" and dropped. A SIGINT that the system hands to another
thread trips Python's flag without waking a main thread that waits on a lock. Either way a
driver waiting on its runs would wait on: it waits in slices instead (:data:`WAKE_SECONDS`) and
asks :meth:`CtrlC.check` after each.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

#: Seconds the driver waits on its runs before it looks whether Ctrl-C was pressed.
WAKE_SECONDS = 0.5


class CtrlC:
    """While entered (in the main thread, with Python's own SIGINT handler in place), remembers
    that SIGINT arrived; :meth:`check` raises ``KeyboardInterrupt`` if it did. A handler the
    program installed, or SIGINT ignored (``nohup``, ``cmd &``), is left as it is."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if SIGINT arrived (its own may have been lost)."""
        if self.pressed:
            raise KeyboardInterrupt

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
