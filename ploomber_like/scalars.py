"""Output scalars: series read from the ``name: number`` lines a script prints.

A training loop that prints ``epoch: 3 loss: 0.41 - val_loss: 0.52`` leaves three numbers per
line; each name becomes a series of :class:`~ploomber_like.record.MetricPoint`. A ``step`` or
``epoch`` pair on the line gives the step of the others; without one, a name's steps count
0, 1, 2... Lines are read as they stream in, so nothing depends on how much stdout is stored:
of a group printing more than ``MAX_STREAM_CHARS`` the kernel sends only the head and tail, but
also, apart, the lines of the cut middle that match the pattern (see
``ploomber_like.capture.protocol``).
"""

from __future__ import annotations

import math
import re

from ploomber_like.errors import ParameterError
from ploomber_like.record import MetricPoint

#: ``name: number`` or ``name=number``, the number ending at a space, comma, semicolon, bracket
#: or the line's end (so ``time: 2ms`` and ``12:30`` are not scalars).
DEFAULT_PATTERN = (
    r"(?<![\w.\-/])(?P<key>[A-Za-z_][\w.\-/]*?)\s*[:=]\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)\b)"
    r"(?=$|[\s,;)\]}|])"
)
#: Pair names whose value is the step of the other pairs on the line.
STEP_KEYS = ("step", "epoch")
#: Points kept per run; later ones are dropped (a loop printing every batch for hours).
MAX_POINTS = 200_000
#: A line longer than this is not read for scalars (a dumped array, a progress bar gone wild).
MAX_LINE_CHARS = 10_000


def scalar_pattern(option: bool | str) -> re.Pattern[str] | None:
    """The compiled pattern for an ``output_scalars`` option; raise ParameterError if unusable."""
    if option is False or option is None:
        return None
    if option is True:
        return re.compile(DEFAULT_PATTERN)
    if not isinstance(option, str):
        raise ParameterError(
            f"output_scalars must be True, False or a regular expression, got {option!r:.60}"
        )
    try:
        pattern = re.compile(option)
    except re.error as exc:
        raise ParameterError(f"output_scalars pattern {option!r}: {exc}") from None
    if not {"key", "value"} <= set(pattern.groupindex):
        raise ParameterError(
            f"output_scalars pattern {option!r} needs named groups (?P<key>...) and (?P<value>...)"
        )
    return pattern


class ScalarReader:
    """Reads streamed stdout text into series, line by line."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.points: list[MetricPoint] = []
        self._partial = ""
        self._after_cut = False
        self._next_step: dict[str, int] = {}

    def feed(self, text: str, now: float) -> None:
        """Take a chunk of stdout printed at ``now`` (seconds since the epoch)."""
        if self._after_cut:
            end = text.find("\n")
            if end < 0:
                return
            text, self._after_cut = text[end + 1 :], False
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE_CHARS:
            self._partial = ""
        for line in lines:
            self._read_line(line, now)

    def read_lines(self, text: str, now: float) -> None:
        """Take complete lines (each ending in a newline) the kernel cut from stdout and sent
        for their scalars, in their place in the output: the line being fed stays open."""
        for line in text.split("\n")[:-1]:
            self._read_line(line, now)

    def cut(self) -> None:
        """Note that the kernel cut the output here: the line it ends and the one it starts are
        pieces, whose numbers may be cut too, so neither is read."""
        self._partial, self._after_cut = "", True

    def finish(self, now: float) -> list[MetricPoint]:
        """Read the last line (printed without a newline) and return every point."""
        if self._partial:
            self._read_line(self._partial, now)
            self._partial = ""
        return self.points

    def _read_line(self, line: str, now: float) -> None:
        # A progress bar rewrites its line with \r: the text after the last one is what shows.
        line = line.rpartition("\r")[2]
        if len(line) > MAX_LINE_CHARS or len(self.points) >= MAX_POINTS:
            return
        pairs = []
        step = None
        for match in self.pattern.finditer(line):
            try:
                value = float(match["value"])
            except (TypeError, ValueError):
                continue
            key = match["key"]
            given = match.groupdict().get("step")
            if given is not None:
                step = _as_step(given, step)
            if key.lower() in STEP_KEYS and value.is_integer():
                step = int(value)
                continue
            pairs.append((key, value))
        for key, value in pairs:
            point_step = step if step is not None else self._next_step.get(key, 0)
            self._next_step[key] = point_step + 1
            self.points.append(MetricPoint(key, point_step, value, now))


def _as_step(text: str, current: int | None) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return current
    return int(number) if math.isfinite(number) else current
