"""The messages between a driver and its warm template process.

The driver writes requests to the template's stdin; the template writes replies and reports to
its stdout. Each message is one line of UTF-8 JSON: an object with a ``"type"`` and the fields of
one of the dataclasses below. The conversation::

    driver -> template   Setup(preload, check, cwd)        first line, exactly once
    template -> driver   Preloaded(modules)                 the template is ready to fork
    driver -> template   Fork(connection_file, log_file,   any number of times
                              script_path)
    template -> driver   Forked(pid)                        one per Fork, in order
    driver -> template   Import(modules)                   any number of times, between forks
    template -> driver   Preloaded(modules)                 one per Import, in order
    template -> driver   Exited(pid, status)                whenever a forked kernel ends

``status`` is the exit status as :func:`os.waitstatus_to_exitcode` gives it (negative: killed by
that signal). End of the template's stdin means the driver is gone: the template kills the
kernels it forked and exits. A line that is not one of these messages raises
:class:`ProtocolError`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


class ProtocolError(ValueError):
    """A line that is not a message of the template protocol."""


@dataclass(frozen=True)
class Setup:
    """Driver to template, first: modules to import, modules to import unless importing one
    fails or writes output (as for :class:`Import`), and the kernels' working directory."""

    preload: list[str]
    check: list[str]
    cwd: str


@dataclass(frozen=True)
class Fork:
    """Driver to template: fork a kernel writing these connection and log files, with the
    capture installed for the script at ``script_path`` before it answers ("": not installed)."""

    connection_file: str
    log_file: str
    script_path: str


@dataclass(frozen=True)
class Import:
    """Driver to template: import these modules too, for the next forks, unless importing one
    fails or writes output (checked in a forked child first)."""

    modules: list[str]


@dataclass(frozen=True)
class Preloaded:
    """Template to driver: the modules of :class:`Setup` (both lists) or :class:`Import` that
    imported; ready to fork."""

    modules: list[str]


@dataclass(frozen=True)
class Forked:
    """Template to driver: the pid of the kernel forked for the last :class:`Fork`."""

    pid: int


@dataclass(frozen=True)
class Exited:
    """Template to driver: a forked kernel ended with ``status``."""

    pid: int
    status: int


Message = Setup | Fork | Import | Preloaded | Forked | Exited

_TYPES: dict[str, type] = {
    "setup": Setup, "fork": Fork, "import": Import, "preloaded": Preloaded, "forked": Forked,
    "exited": Exited,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode(message: Message) -> bytes:
    """One protocol line for ``message``, newline included."""
    return json.dumps({"type": _NAMES[type(message)], **asdict(message)}).encode() + b"\n"


def decode(line: bytes | str) -> Message:
    """The message a protocol line holds; raises :class:`ProtocolError` for anything else."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {line[:80]!r}") from exc
    if not isinstance(data, dict) or data.get("type") not in _TYPES:
        raise ProtocolError(f"not a template message: {line[:80]!r}")
    cls = _TYPES[data.pop("type")]
    expected = {f.name: f.type for f in fields(cls)}
    if set(data) != set(expected):
        raise ProtocolError(
            f"{_NAMES[cls]} needs the fields {sorted(expected)}, got {sorted(data)}"
        )
    for name, annotation in expected.items():
        value = data[name]
        kind = {"int": int, "str": str, "list[str]": list}[annotation]
        if not isinstance(value, kind) or isinstance(value, bool) or (
            kind is list and not all(isinstance(item, str) for item in value)
        ):
            raise ProtocolError(f"{_NAMES[cls]}.{name} must be {annotation}, got {value!r:.80}")
    return cls(**data)


class LineBuffer:
    """Collects bytes as they are read (a read may end mid-line) and gives complete lines."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return the lines it completed, without their newlines."""
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return lines

    @property
    def pending(self) -> bytes:
        """Bytes of a line not complete yet."""
        return self._pending
