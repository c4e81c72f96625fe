"""How a run ended, judged: its status and error from what the driver saw of its execution.

:func:`classify` is a pure function of an :data:`Ending` (no kernel, no clock, no I/O), so that
every way a run can end is tested without starting one (``tests/test_outcome.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ploomber_like.capture.outputs import cap_text, strip_ansi
from ploomber_like.notebook import Group
from ploomber_like.record import RunError, Status
from ploomber_like.tracebacks import crash_location, point_at_file

#: ``SystemExit`` messages of a script ending successfully (``sys.exit()``, ``sys.exit(0)``,
#: ``sys.exit(False)``: python exits with status 0 for each).
CLEAN_EXIT_CODES = ("", "0", "None", "False")
#: A run's error keeps the head and tail of a longer traceback.
MAX_TRACEBACK_CHARS = 50_000


@dataclass(frozen=True)
class Completed:
    """Every cell ran to its end."""


@dataclass(frozen=True)
class Raised:
    """A cell raised: the exception as the kernel named it, and its traceback as sent (ANSI
    colours and ``Cell In[N]`` frames in it). ``group``: the file's group that raised, ``None``
    for a cell of ours."""

    ename: str
    evalue: str
    traceback: tuple[str, ...] = ()
    group: Group | None = None


@dataclass(frozen=True)
class TimedOut:
    """The run passed its ``timeout`` (seconds) in ``group``; ``traceback``: the interrupted
    cell's, as sent, if the kernel answered the interrupt."""

    timeout: float
    traceback: tuple[str, ...] = ()
    group: Group | None = None


@dataclass(frozen=True)
class KernelDied:
    """The kernel process ended while running ``group``: ``description`` says how, ``log`` is
    the end of its stderr (faulthandler's frames of a crash in it)."""

    description: str
    log: str = ""
    group: Group | None = None
    #: The process's exit status, when known (negative: the signal that killed it).
    exit_status: int | None = None


@dataclass(frozen=True)
class Cancelled:
    """The driver stopped the run (Ctrl-C): its kernel was alive and running."""


#: What the driver saw when a run's execution stopped.
Ending = Completed | Raised | TimedOut | KernelDied | Cancelled


@dataclass(frozen=True)
class Outcome:
    """A run's status and, unless it is ``ok``, its error."""

    status: Status
    error: RunError | None = None


def classify(ending: Ending, path: str, groups_by_count: Mapping[int, Group]) -> Outcome:
    """The status and error of a run that ended with ``ending``.

    ``path``: the user's file as tracebacks and locations should name it; ``groups_by_count``:
    the group each execution count ran (the ``N`` of IPython's ``Cell In[N]`` frames). A clean
    ``sys.exit`` is ``ok`` (in a script also ``os._exit(0)``), a ``KeyboardInterrupt`` (raised
    or Ctrl-C) ``interrupted``.
    """
    if isinstance(ending, Completed):
        return Outcome(Status.OK)
    if isinstance(ending, Cancelled):
        return Outcome(Status.INTERRUPTED, RunError("KeyboardInterrupt", "interrupted by the user"))
    if isinstance(ending, Raised):
        if is_clean_exit(ending.ename, ending.evalue):
            return Outcome(Status.OK)  # stop here, successfully
        status = Status.INTERRUPTED if ending.ename == "KeyboardInterrupt" else Status.FAILED
        traceback, location = _readable(ending.traceback, path, groups_by_count)
        error = _error(ending.ename, ending.evalue, traceback, location, ending.group, path)
        return Outcome(status, error)
    if isinstance(ending, TimedOut):
        message = f"the run exceeded its timeout of {ending.timeout:g} s"
        traceback, location = _readable(ending.traceback, path, groups_by_count)
        return Outcome(
            Status.TIMEOUT, _error("Timeout", message, traceback, location, ending.group, path)
        )
    if ending.exit_status == 0 and not path.endswith(".ipynb"):
        # os._exit(0) in a script: `python` exits successfully; a notebook's kernel just died.
        return Outcome(Status.OK)
    group = ending.group
    location = crash_location(ending.log, group, path) if group is not None else None
    error = _error("KernelDied", ending.description, ending.log, location, group, path)
    return Outcome(Status.CRASHED, error)


def is_clean_exit(ename: str, evalue: str) -> bool:
    """Whether an exception a cell raised is ``sys.exit()`` or ``sys.exit(0)``: a script ending
    successfully."""
    return ename == "SystemExit" and evalue in CLEAN_EXIT_CODES


def _readable(
    traceback: tuple[str, ...], path: str, groups_by_count: Mapping[int, Group]
) -> tuple[str, str | None]:
    text, location = point_at_file(strip_ansi("\n".join(traceback)), groups_by_count, path)
    return cap_text(text, MAX_TRACEBACK_CHARS), location


def _error(
    name: str, message: str, traceback: str, location: str | None, group: Group | None, path: str
) -> RunError:
    """The error of a run stopped in ``group``; without a ``location`` from a traceback, the
    group's first line."""
    if group is None:
        return RunError(name, message, traceback, location=location)
    return RunError(
        name,
        message,
        traceback,
        group=group.index,
        group_source=group.source,
        location=location or group.location(path, 1),
    )
