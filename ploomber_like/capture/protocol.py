"""The stream protocol between the capture in a kernel and the driver that reads its outputs.

A run's kernel speaks Jupyter's messages; on top of them the capture (:mod:`.kernel`) and the
driver (:mod:`.outputs`) agree on the following, and on nothing else.

**Set-up.** The driver sets the environment variable ``KERNEL_LOG_VARIABLE`` to a file the
kernel leaves a crash's traceback in, then executes :func:`setup_code` (installs the capture for
a script) and, in the run's first cell, :func:`scalar_lines_code` (the run's scalar pattern),
:func:`expect_parameters_code` (the parameters' names) and, for a plain script,
:func:`keep_figures_code`. These statements call the capture through the
builtin ``HOOK_NAME``.

**Values.** Each value the kernel captures is one ``display_data`` message whose metadata holds
``{METADATA_KEY: {"key": key, "kind": kind}}`` (:class:`CaptureTag`). ``kind`` is ``"value"``
(a shown value), ``"parameter"``, ``"figure"`` (an ``image/png``; a later one of the same key
replaces it), ``"modules"`` (the third-party modules imported), ``"run_imports"`` (modules a
forked kernel imported, name -> file), ``"inputs"`` (``[kind, path]`` pairs: the files the run
read and the user modules it imported, see :mod:`.inputs`) or ``"cell_end"`` (:class:`CellEnd`,
see **Cells**). A value the kernel converted to JSON travels as ``JSON_MIMETYPE`` (JSON text);
others as the usual mimetypes. Any other output is not ours.

**Cells.** The driver sends a run's cells (its groups, and the cell assigning the given
parameters) in one request, :func:`run_cells_code`: the kernel runs each as a cell of its own
(events, history, ``Cell In[N]`` frames: as if sent one by one) and publishes a :class:`CellEnd`
when each ends, so one round trip serves the whole run. It stops at the first cell that raises,
whose traceback is the ``error`` output just before its ``CellEnd``. Unless that was a
``KeyboardInterrupt``, it then reports the run's modules and inputs. As each cell starts, the
kernel also writes a :func:`cell_start_line` to its log (``KERNEL_LOG_VARIABLE``): a kernel that
dies may not have sent its last messages, and the log still says which cell was running.

**Streams.** Of each cell's stdout and stderr the kernel sends at most ``MAX_STREAM_CHARS``
characters: the head as it is written, then, when the cell ends, a :func:`cut_marker` line
counting what it left out and the tail. So that output scalars printed in the cut middle still
count, the kernel sends the complete lines of the dropped text that match the run's pattern, on
stdout itself, each batch wrapped as ``SCALAR_LINES_START + "line\nline\n" + SCALAR_LINES_END``
(:func:`scalar_lines_block`), before the cut marker. :func:`split_stream` takes markers and blocks
out of the received text: the driver reads a block's lines as scalar input only, never as stdout
(not stored, echoed or kept in the notebook). The kernel sends at most ``MAX_POINTS`` lines per
run, and none longer than ``MAX_LINE_CHARS`` (:mod:`ploomber_like.scalars`); the line the head
ends in and the one the tail starts in, which the driver reads only in pieces, are sent whole.

Standard library only: the kernel imports this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: Private mimetype carrying a value converted to JSON text in the kernel.
JSON_MIMETYPE = "application/x.ploomber-like+json"
#: Key of the display metadata that marks a captured output.
METADATA_KEY = "ploomber_like"
#: Builtin name the rewritten statements call; a builtin keeps the user's namespace clean.
HOOK_NAME = "__ploomber_like_capture__"
#: Stdout and stderr are kept up to this many characters each (head and tail).
MAX_STREAM_CHARS = 200_000

#: Around the scalar lines of a cut middle sent on stdout (see the module's docstring). Control
#: characters, so that no printed text is taken for them in practice.
SCALAR_LINES_START = "\x02ploomber_like scalar lines\x1e"
SCALAR_LINES_END = "\x03"

#: Environment variable naming the kernel's log file, where a crash leaves its traceback.
KERNEL_LOG_VARIABLE = "PLOOMBER_LIKE_KERNEL_LOG"
#: Start of a :func:`cell_start_line`.
CELL_START_PREFIX = "ploomber_like: cell "
_CELL_START = re.compile("^" + re.escape(CELL_START_PREFIX) + r"(\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class CaptureTag:
    """The tag of a display output the kernel published: the key its value is recorded under
    and its kind (see the module's docstring; a missing kind reads as a value)."""

    key: str
    kind: str | None = "value"

    def metadata(self) -> dict[str, Any]:
        """The display metadata carrying this tag."""
        return {METADATA_KEY: {"key": self.key, "kind": self.kind}}


def read_tag(output: dict[str, Any]) -> CaptureTag | None:
    """The tag of a cell ``output`` (a notebook output dict); None when it is not ours."""
    tag = output.get("metadata", {}).get(METADATA_KEY)
    return CaptureTag(tag["key"], tag.get("kind")) if tag else None


@dataclass(frozen=True)
class CellEnd:
    """A cell of :func:`run_cells_code` ended: its ``group`` (None: a cell of ours), the
    execution count it ran as (``Cell In[count]``), its seconds, and, if it raised, the
    exception's name and message; ``traceback`` is sent for ``SystemExit`` only, whose ``error``
    output IPython gives without frames."""

    group: int | None
    count: int | None
    seconds: float
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> CellEnd:
        return cls(**json.loads(text))


def read_cell_end(output: dict[str, Any]) -> CellEnd | None:
    """The :class:`CellEnd` a display output (or its message's content) carries, if any."""
    tag = read_tag(output)
    if tag is None or tag.kind != "cell_end":
        return None
    return CellEnd.from_json(output.get("data", {}).get(JSON_MIMETYPE, "{}"))


def cell_start_line(index: int) -> str:
    """The kernel log's line saying cell ``index`` of :func:`run_cells_code` starts."""
    return f"{CELL_START_PREFIX}{index}\n"


def started_cell(log: str) -> int | None:
    """The index of the last cell a kernel ``log`` says started, if any."""
    found = _CELL_START.findall(log)
    return int(found[-1]) if found else None


def run_cells_code(cells: list[tuple[str, int | None]]) -> str:
    """Code that runs ``cells`` (source, group or None) in order, as :class:`CellEnd` says."""
    return f"{HOOK_NAME}.run_cells({cells!r})"


def setup_code(script_path: str) -> str:
    """Code that installs the capture in a kernel, for the script at ``script_path``."""
    return (
        "__import__('ploomber_like.capture.kernel').capture.kernel"
        f".install(get_ipython(), {script_path!r})"
    )


def scalar_lines_code(pattern: str | None) -> str:
    """Code that makes an installed capture send the cut middle's lines matching ``pattern``
    (a regular expression's source; None: none) for the run about to start."""
    return f"{HOOK_NAME}.read_scalars({pattern!r})"


def expect_parameters_code(names: list[str]) -> str:
    """Code that tells an installed capture the names of the run's parameters: shown by the
    parameters cell, before the cell after it reports them, they are not values of their own."""
    return f"{HOOK_NAME}.expect_parameters({names!r})"


def keep_figures_code() -> str:
    """Code that makes an installed capture keep figures open from one group to the next (a
    plain script) rather than close them when each group ends (Jupyter's rule, the default)."""
    return f"{HOOK_NAME}.keep_figures_across_groups()"


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
