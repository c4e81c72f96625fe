"""How a run ended, judged without a kernel: each ending the driver can see, its status and error.

The tracebacks are IPython's, as a kernel sends them (ANSI colours, ``Cell In[N]`` frames); the
crash logs are faulthandler's. The same endings from real kernels: tests/test_leaves.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from ploomber_like.notebook import Group
from ploomber_like.outcome import (
    MAX_TRACEBACK_CHARS,
    Cancelled,
    Completed,
    Ending,
    KernelDied,
    Raised,
    TimedOut,
    classify,
)
from ploomber_like.record import RunError, Status

#: fit.py: the parameters at line 1, ``f`` defined at line 4, called at line 8.
PARAMETERS = Group(0, "# parameters\nb = 0", start=1)
DEFINES_F = Group(1, "def f(b):\n    return 1 / b", start=4)
CALLS_F = Group(2, "a = 0\nf(a)", start=7)
#: Execution counts as a run gives them: 1 is our set-up cell, then one per group.
GROUPS_BY_COUNT = {2: PARAMETERS, 3: DEFINES_F, 4: CALLS_F}

ESC = "\x1b"
#: ``f(a)`` in CALLS_F raising in DEFINES_F, as IPython's kernel sends it.
RULE = "-" * 75
DIVISION_TRACEBACK = (
    f"{ESC}[31m{RULE}{ESC}[39m",
    f"{ESC}[31mZeroDivisionError{ESC}[39m{' ' * 25}Traceback (most recent call last)",
    f"{ESC}[36mCell{ESC}[39m{ESC}[36m {ESC}[39m{ESC}[32mIn[4]{ESC}[39m{ESC}[32m, line 2{ESC}[39m\n"
    f"{ESC}[32m      1{ESC}[39m a = {ESC}[32m0{ESC}[39m\n"
    f"{ESC}[32m----> {ESC}[39m{ESC}[32m2{ESC}[39m f(a)\n",
    f"{ESC}[36mCell{ESC}[39m{ESC}[36m {ESC}[39m{ESC}[32mIn[3]{ESC}[39m{ESC}[32m, line 2{ESC}[39m"
    f", in {ESC}[36mf{ESC}[39m{ESC}[34m(b){ESC}[39m\n"
    f"{ESC}[32m      1{ESC}[39m def f(b):\n"
    f"{ESC}[32m----> {ESC}[39m{ESC}[32m2{ESC}[39m     return 1 / b\n",
    f"{ESC}[31mZeroDivisionError{ESC}[39m: division by zero",
)
#: The same frames, naming the file: what the run's error keeps.
DIVISION_IN_FILE = """\
---------------------------------------------------------------------------
ZeroDivisionError                         Traceback (most recent call last)
File fit.py:8
      7 a = 0
----> 8 f(a)

File fit.py:5, in f(b)
      4 def f(b):
----> 5     return 1 / b

ZeroDivisionError: division by zero"""


def interrupted_in(count: int, line: int, name: str = "KeyboardInterrupt") -> tuple[str, ...]:
    return (f"{name}  Traceback (most recent call last)", f"Cell In[{count}], line {line}", name)


#: A segfault in ``f`` (cell file 1111.py) called from CALLS_F (2203.py), as faulthandler logs it.
SEGFAULT_LOG = """\
Fatal Python error: Segmentation fault

Current thread 0x00007f3a (most recent call first):
  File "/tmp/ipykernel_81/1111.py", line 2 in f
  File "/tmp/ipykernel_81/2203.py", line 2 in <module>
  File "/usr/lib/python3/site-packages/IPython/core/interactiveshell.py", line 3577 in run_code
"""

#: The same, as a run's cells run: inside capture's run_cells, in the request's own cell 3333.py.
SEGFAULT_UNDER_REQUEST = SEGFAULT_LOG + (
    '  File "/site-packages/ploomber_like/capture/kernel.py", line 9 in run_cells\n'
    '  File "/tmp/ipykernel_81/3333.py", line 1 in <module>\n'
)


def error(type_: str, message: str, traceback: str, group: Group | None, location: str | None):
    if group is None:
        return RunError(type_, message, traceback, location=location)
    return RunError(type_, message, traceback, group.index, group.source, location)


CASES: list[tuple[str, Ending, Status, RunError | None]] = [
    ("every cell ran", Completed(), Status.OK, None),
    (
        "an exception in a group: the traceback names the file, at the innermost frame",
        Raised("ZeroDivisionError", "division by zero", DIVISION_TRACEBACK, CALLS_F),
        Status.FAILED,
        error("ZeroDivisionError", "division by zero", DIVISION_IN_FILE, CALLS_F, "fit.py:5"),
    ),
    (
        "an exception without a traceback: the group's first line",
        Raised("ValueError", "bad", (), CALLS_F),
        Status.FAILED,
        error("ValueError", "bad", "", CALLS_F, "fit.py:7"),
    ),
    (
        "an exception in a cell of ours: no group, no location",
        Raised("ModuleNotFoundError", "No module named 'x'", ("ModuleNotFoundError: x",), None),
        Status.FAILED,
        error("ModuleNotFoundError", "No module named 'x'", "ModuleNotFoundError: x", None, None),
    ),
    ("sys.exit()", Raised("SystemExit", "", (), CALLS_F), Status.OK, None),
    ("sys.exit(0)", Raised("SystemExit", "0", interrupted_in(4, 2, "SystemExit"), CALLS_F),
     Status.OK, None),
    ("sys.exit(None)", Raised("SystemExit", "None", (), CALLS_F), Status.OK, None),
    (
        "sys.exit(1)",
        Raised("SystemExit", "1", interrupted_in(4, 1, "SystemExit"), CALLS_F),
        Status.FAILED,
        error("SystemExit", "1", "SystemExit  Traceback (most recent call last)\nFile fit.py:7\n"
              "SystemExit", CALLS_F, "fit.py:7"),
    ),
    (
        "sys.exit('a message')",
        Raised("SystemExit", "no data", (), DEFINES_F),
        Status.FAILED,
        error("SystemExit", "no data", "", DEFINES_F, "fit.py:4"),
    ),
    (
        "KeyboardInterrupt raised in the user's code",
        Raised("KeyboardInterrupt", "", interrupted_in(4, 2), CALLS_F),
        Status.INTERRUPTED,
        error("KeyboardInterrupt", "",
              "KeyboardInterrupt  Traceback (most recent call last)\nFile fit.py:8\n"
              "KeyboardInterrupt", CALLS_F, "fit.py:8"),
    ),
    (
        "a timeout, the interrupted kernel saying where it was",
        TimedOut(2.0, interrupted_in(4, 2), CALLS_F),
        Status.TIMEOUT,
        error("Timeout", "the run exceeded its timeout of 2 s",
              "KeyboardInterrupt  Traceback (most recent call last)\nFile fit.py:8\n"
              "KeyboardInterrupt", CALLS_F, "fit.py:8"),
    ),
    (
        "a timeout in a C call that never answered the interrupt",
        TimedOut(0.5, (), DEFINES_F),
        Status.TIMEOUT,
        error("Timeout", "the run exceeded its timeout of 0.5 s", "", DEFINES_F, "fit.py:4"),
    ),
    (
        "a segfault: the log's innermost line in the running cell",
        KernelDied("the kernel was killed by SIGSEGV", SEGFAULT_LOG, CALLS_F),
        Status.CRASHED,
        error("KernelDied", "the kernel was killed by SIGSEGV", SEGFAULT_LOG, CALLS_F, "fit.py:8"),
    ),
    (
        "os._exit(3): the same kind of log, from within f's own cell",
        KernelDied("the kernel exited with code 3",
                   'File "/tmp/ipykernel_81/1111.py", line 2 in f\n'
                   'File "/tmp/ipykernel_81/1111.py", line 5 in <module>', DEFINES_F),
        Status.CRASHED,
        error("KernelDied", "the kernel exited with code 3",
              'File "/tmp/ipykernel_81/1111.py", line 2 in f\n'
              'File "/tmp/ipykernel_81/1111.py", line 5 in <module>', DEFINES_F, "fit.py:5"),
    ),
    (
        "a segfault under the request running the run's cells: their frames are not the run's",
        KernelDied("the kernel was killed by SIGSEGV", SEGFAULT_UNDER_REQUEST, CALLS_F),
        Status.CRASHED,
        error("KernelDied", "the kernel was killed by SIGSEGV", SEGFAULT_UNDER_REQUEST, CALLS_F,
              "fit.py:8"),
    ),
    (
        "killed for memory, no frames: the group's first line",
        KernelDied("the kernel was killed by SIGKILL", "", CALLS_F),
        Status.CRASHED,
        error("KernelDied", "the kernel was killed by SIGKILL", "", CALLS_F, "fit.py:7"),
    ),
    (
        "the kernel died in a cell of ours",
        KernelDied("the kernel exited with code 1", SEGFAULT_LOG, None),
        Status.CRASHED,
        error("KernelDied", "the kernel exited with code 1", SEGFAULT_LOG, None, None),
    ),
    (
        "Ctrl-C in the driver",
        Cancelled(),
        Status.INTERRUPTED,
        RunError("KeyboardInterrupt", "interrupted by the user"),
    ),
]


@pytest.mark.parametrize(
    ("ending", "status", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_ending_has_its_status_and_error(ending: Ending, status: Status, expected: Any):
    outcome = classify(ending, "fit.py", GROUPS_BY_COUNT)
    assert outcome.status == status
    assert outcome.error == expected


def test_in_a_notebook_locations_name_the_cell_and_its_own_line_numbers():
    cell = Group(2, "a = 0\nf(a)", start=3)  # the notebook's third cell
    outcome = classify(
        Raised("ZeroDivisionError", "division by zero", DIVISION_TRACEBACK, cell),
        "fit.ipynb", {3: DEFINES_F, 4: cell},
    )
    assert outcome.error is not None
    assert outcome.error.location == "fit.ipynb:cell 4, line 2"  # DEFINES_F: start=4
    assert "File fit.ipynb:cell 3, line 2\n      1 a = 0\n----> 2 f(a)" in outcome.error.traceback


def test_a_frame_of_a_cell_not_of_the_file_is_kept_as_it_is():
    traceback = ("Cell In[1], line 1", "----> 1 setup()", "Cell In[4], line 2", "----> 2 f(a)")
    outcome = classify(Raised("NameError", "setup", traceback, CALLS_F), "fit.py",
                       GROUPS_BY_COUNT)
    assert outcome.error is not None
    assert outcome.error.traceback == (
        "Cell In[1], line 1\n----> 1 setup()\nFile fit.py:8\n----> 8 f(a)"
    )


def test_a_long_traceback_keeps_its_head_and_tail():
    frames = tuple(f"frame {n}" for n in range(20_000))
    outcome = classify(TimedOut(1, frames, CALLS_F), "fit.py", GROUPS_BY_COUNT)
    assert outcome.error is not None
    kept = outcome.error.traceback
    assert len(kept) < MAX_TRACEBACK_CHARS + 100
    assert kept.startswith("frame 0\n") and kept.endswith("frame 19999")
    assert "characters cut by ploomber_like" in kept
