"""Tracebacks that name the user's file: IPython's cell frames and faulthandler's crash frames
turned into locations (``fit.py:42``, ``fit.ipynb:cell 3, line 2``).

A kernel executes each group as a cell, so its tracebacks say ``Cell In[4], line 2`` and a
crash's say ``File "/tmp/ipykernel_81/2203.py", line 8``; the user wrote neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ploomber_like.notebook import Group

#: A traceback frame in a cell, as IPython prints it: ``Cell In[4], line 8, in f()``.
_CELL_FRAME = re.compile(r"^Cell In\[(\d+)\], line (\d+)(.*)$")
#: A source line of such a frame: ``      7 b = 0`` or ``----> 8 a / b``.
_FRAME_LINE = re.compile(r"^(-*>?\s*)(\d+)(\s.*|)$")
#: A frame of a cell in faulthandler's output (``File "/tmp/ipykernel_81/2203.py", line 8``).
_CRASH_FRAME = re.compile(r'File "([^"]*ipykernel_\d+[/\\][^"/\\]+\.py)", line (\d+)')
#: The frame of the capture running a run's cells, in faulthandler's output.
_RUN_CELLS_FRAME = re.compile(r'File "[^"]*capture[/\\]kernel\.py", line \d+ in run_cells')


def point_at_file(
    traceback: str, groups_by_count: Mapping[int, Group], path: str
) -> tuple[str, str | None]:
    """``traceback`` with frames of the user's cells naming ``path`` and its real line numbers,
    and the location of the innermost such frame (``fit.py:42``), if any.

    ``groups_by_count``: the group each execution count ran (the ``N`` of ``Cell In[N]``).
    """
    lines: list[str] = []
    location = None
    offset = None  # while in a frame of a .py group: add this to its line numbers
    for line in traceback.splitlines():
        frame = _CELL_FRAME.match(line)
        if frame:
            group = groups_by_count.get(int(frame[1]))
            offset = None
            if group is not None and group.start is not None:
                location = group.location(path, int(frame[2]))
                lines.append(f"File {location}{frame[3]}")
                if not path.endswith(".ipynb"):
                    offset = group.start - 1
                continue
        elif offset is not None:
            numbered = _FRAME_LINE.match(line)
            if numbered:
                lines.append(f"{numbered[1]}{int(numbered[2]) + offset}{numbered[3]}")
                continue
            if not line.strip():
                offset = None
        lines.append(line)
    return "\n".join(lines), location


def crash_location(log: str, group: Group, path: str) -> str | None:
    """Where a kernel that died was in ``group``, from faulthandler's output in its ``log``
    (a segfault, and ``os._exit``, which capture makes leave the same kind of traceback).

    Frames list the most recent call first; the last frame in a cell's file is the running
    cell's top level, and the first frame in that same file the innermost line reached in it.
    """
    # A run's cells run inside our request's cell, through the capture's run_cells (see
    # capture.protocol, **Cells**): the frames from there outwards are ours.
    ours = _RUN_CELLS_FRAME.search(log)
    frames = _CRASH_FRAME.findall(log[: ours.start()] if ours else log)
    if not frames:
        return None
    running_cell = frames[-1][0]
    line = next(int(number) for file, number in frames if file == running_cell)
    return group.location(path, line)
