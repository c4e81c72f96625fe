"""Processes a run leaves behind: a kernel's descendants, and runtime folders of dead drivers.

A kernel is made a *child subreaper* (Linux): a process its script starts that loses its parent
(a double fork, a daemon) is re-parented to the kernel instead of to init, so it stays among the
kernel's descendants, which :func:`kill_process_tree` finds in ``/proc`` and kills when the run
ends, also those in a session of their own (``Popen(..., start_new_session=True)``).

Each driver's runtime folder (connection files, kernel logs) is named for the driver's pid and
holds an ``owner`` file; :func:`new_runtime_dir` removes the folders of drivers that are gone
(killed with SIGKILL, they could not remove their own). Runs' own working directories are made
in such a folder too (:func:`runs_folder`), so that those of a killed driver go the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Prefix of every runtime folder in the temporary directory.
RUNTIME_PREFIX = "ploomber-like-"
#: File in a runtime folder naming its owner: ``<pid> <start time>``.
OWNER_FILE = "owner"

# prctl(2) option; from <linux/prctl.h>.
_PR_SET_CHILD_SUBREAPER = 36
_RUNTIME_NAME = re.compile(re.escape(RUNTIME_PREFIX) + r"(\d+)-")
_orphans_removed = threading.Event()
_runs_folder_lock = threading.Lock()
#: Each process's :func:`runs_folder`, by pid: a forked child has a pid of its own, and needs
#: a folder of its own.
_runs_folders: dict[int, Path] = {}


def become_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the process group ``pid`` leads, or to ``pid`` alone if it leads none."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def kill_process_tree(pid: int) -> None:
    """Kill ``pid``, its process group, and every descendant, also those in other sessions.

    The process is stopped first so it starts nothing new; descendants are then killed until
    none is left (a killed one's orphans move to the stopped subreaper, and are found next).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGSTOP)
    for _ in range(10):
        living = descendants(pid)
        if not living:
            break
        for child in living:
            signal_group(child, signal.SIGKILL)
        time.sleep(0.005)
    signal_group(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Living (not zombie) descendants of ``pid``, from ``/proc``; empty where there is none."""
    if _children_files():
        return [child for child in _descendants_from_children_files(pid) if not _is_zombie(child)]
    return _descendants_from_process_table(pid)


@functools.cache
def _children_files() -> bool:
    """Whether Linux lists each thread's children (``/proc/PID/task/TID/children``)."""
    return os.path.exists("/proc/thread-self/children")


def _descendants_from_children_files(pid: int) -> list[int]:
    # A few files for a kernel and what it started, instead of one for every process.
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue  # ended meanwhile
        for thread in threads:
            try:
                with open(f"/proc/{parent}/task/{thread}/children", "rb") as listed:
                    children = [int(child) for child in listed.read().split()]
            except OSError:
                continue  # the thread ended meanwhile
            found += children
            todo += children
    return found


def _descendants_from_process_table(pid: int) -> list[int]:
    # Living ones only: each process's state is read along with its parent.
    children: dict[int, list[int]] = {}
    zombies = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except OSError:
            continue
        child = int(entry)
        children.setdefault(int(fields[1]), []).append(child)
        if fields[0] in (b"Z", b"X"):
            zombies.add(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return [child for child in found if child not in zombies]


def _is_zombie(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] in (b"Z", b"X")
    except OSError:
        return True  # gone: nothing to kill


def _stat_fields(pid: int | str) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command: state, parent, ... (Linux)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        # "pid (command) state ppid ...": the command may hold spaces and parentheses.
        return stat.read().rpartition(b")")[2].split()


def new_runtime_dir() -> Path:
    """A new runtime folder owned by this process; first removes those of dead owners."""
    if not _orphans_removed.is_set():
        _orphans_removed.set()
        remove_orphan_runtime_dirs()
    folder = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-"))
    (folder / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}")
    return folder


def runs_folder() -> Path:
    """This process's folder for runs' own working directories: a runtime folder (see
    :func:`new_runtime_dir`), made on first use and removed at exit.

    In the temporary directory's top level, a run's directory would stay there for good if its
    driver were killed with SIGKILL; in here, the next driver to start removes it.
    """
    pid = os.getpid()
    with _runs_folder_lock:
        folder = _runs_folders.get(pid)
        if folder is None or not folder.is_dir():
            folder = _runs_folders[pid] = new_runtime_dir()
            atexit.register(_remove_own_folder, pid, folder)
        return folder


def _remove_own_folder(pid: int, folder: Path) -> None:
    # A forked child runs its parent's exit handlers too: the folder is its parent's.
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)


def remove_orphan_runtime_dirs(parent: Path | None = None) -> list[Path]:
    """Remove this user's runtime folders in ``parent`` (default: the temporary directory)
    whose owner process has ended; returns them."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for folder in entries:
        match = _RUNTIME_NAME.match(folder.name)
        if match is None or not _is_orphan(folder, int(match.group(1))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _is_orphan(folder: Path, pid: int) -> bool:
    try:
        if folder.stat().st_uid != os.getuid():
            return False
        owner = (folder / OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        return False  # not ours, or its owner is writing the file right now
    if not pid_alive(pid):
        return True
    # The pid may have been reused by another process since the owner died.
    return len(owner) == 2 and owner[1] != str(_start_time(pid))


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it is another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux); tells a reused pid apart."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return None
