"""The kernel side of a run's inputs: the files it opens for reading and the user modules it
imports, under the script's folder and the run's working directory.

An audit hook (:func:`sys.addaudithook`) sees every ``open`` event: the builtin ``open``,
``io.open_code`` (imports) and ``os.open``. It only notes the absolute path of a file opened
for reading, and only while a run is :attr:`ReadRecorder.active`; which of them are inputs
(not the interpreter's, site-packages', ours, or a module's source) is decided once, when the
run ends (:meth:`ReadRecorder.inputs`). The driver hashes them
(:mod:`ploomber_like.inputs`): the hook itself never reads a file.

Audit hooks cannot be removed: one hook per process (:func:`recorder`), installed by the
capture of the kernel serving a run. A template never runs user code, and each kernel forked
from it serves one run.

Standard library only: every run imports it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

#: The kind of a file the run opened for reading, and of a user module it imported.
FILE = "file"
MODULE = "module"
#: Paths noted per run and per way of opening, at most: a run opening a file per sample must
#: not grow the kernel's memory without bound.
MAX_PATHS = 100_000


class ReadRecorder:
    """The paths a run opened for reading (and for writing), as absolute paths, in the order
    first opened."""

    def __init__(self) -> None:
        self.active = False
        self.opened: dict[str, None] = {}
        #: Opened for writing: what the run wrote is its output, even when it reads it back.
        self.written: dict[str, None] = {}

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        # Runs on every audited event of the process: return at once for all but a run's opens.
        if event != "open" or not self.active:
            return
        path, mode, flags = args
        if isinstance(mode, str):
            reading = not any(c in mode for c in "wax+")
        else:
            reading = isinstance(flags, int) and flags & os.O_ACCMODE == os.O_RDONLY
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return  # a file descriptor: opened before, by path
        if not os.path.isabs(path):
            # Relative to the directory now: the script may change directory later.
            try:
                path = os.path.join(os.getcwd(), path)
            except OSError:  # the directory was removed: an exception here would fail the open
                return
        paths = self.opened if reading else self.written
        if len(paths) < MAX_PATHS:
            paths[path] = None

    def inputs(
        self, roots: list[str], modules: dict[str, str], excluded: list[str]
    ) -> list[tuple[str, str]]:
        """``(kind, real path)`` of the run's inputs: files opened under one of ``roots``
        (folders) and the user modules among ``modules`` (name -> file) found under them, none
        under an ``excluded`` folder or a cache of compiled modules."""
        real_roots = _folders([*roots, *(os.path.realpath(r) for r in roots)])
        excluded_folders = _folders([os.path.realpath(e) for e in excluded])
        realpath = _realpath_by_folder()

        def kept(path: str) -> str | None:
            real = realpath(path)
            if not (path.startswith(real_roots) or real.startswith(real_roots)):
                return None
            if real.startswith(excluded_folders) or "__pycache__" in real.split(os.sep):
                return None
            return real if os.path.isfile(real) else None

        written = {realpath(path) for path in self.written}
        found: dict[str, str] = {}
        for file in modules.values():
            real = kept(file)
            if real is not None:
                found[real] = MODULE
        for path in list(self.opened):
            real = kept(path)
            if real is None or real in found or real in written or real.endswith(".pyc"):
                continue
            found[real] = FILE
        return [(kind, path) for path, kind in found.items()]


def recorder() -> ReadRecorder:
    """This process's recorder, its audit hook added on first use."""
    if not _RECORDERS:
        _RECORDERS.append(ReadRecorder())
        sys.addaudithook(_RECORDERS[0].audit)
    return _RECORDERS[0]


def library_roots() -> list[str]:
    """The standard library's and site-packages' folders, real paths ending in a separator."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return [os.path.realpath(r) + os.sep for r in roots]


def _realpath_by_folder() -> Callable[[str], str]:
    """``os.path.realpath``, resolving each folder once: a run's paths (its imports, the
    metadata files libraries read) share their folders, and resolving every component of every
    path took ~10 ms of a run's CPU (an ``lstat`` per component)."""
    real_paths: dict[str, str] = {}

    def resolved(path: str) -> str:  # absolute and normalized
        real = real_paths.get(path)
        if real is None:
            folder, name = os.path.split(path)
            if not name:
                return os.path.realpath(path)  # the root: `//` is `/`
            joined = os.path.join(resolved(folder), name)
            real = real_paths[path] = (
                os.path.realpath(joined) if os.path.islink(joined) else joined
            )
        return real

    def realpath(path: str) -> str:
        if ".." in path:  # `link/..` is the parent of the link's target, not the link's folder
            return os.path.realpath(path)
        return resolved(os.path.abspath(path))

    return realpath


def _folders(paths: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.rstrip(os.sep) + os.sep for p in paths if p))


_RECORDERS: list[ReadRecorder] = []

