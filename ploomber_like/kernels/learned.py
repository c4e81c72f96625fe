"""What a file's runs import while they run, learned so that later kernels have it preloaded.

A template preloads the modules a file imports in its source. Runs import more as they run: a
model class picked by name after the parameters cell (``import_module(module_name)``), the
submodules a library loads on first use (``sklearn.ensemble._forest``, ``scipy.sparse.linalg``,
pandas' io modules). A kernel forked from a template reports the modules new in its
``sys.modules`` after the run, with their files (see ``report_modules`` in
:mod:`ploomber_like.capture.kernel`); :meth:`LearnedModules.note` keeps those whose file is in the
standard library or site-packages, never one of the user's folder; it also takes, before the
first run, the submodules the file names in strings (``module_name = "sklearn.ensemble"``, see
:func:`~ploomber_like.kernels.named_modules`). Before the template's next fork,
:meth:`LearnedModules.extend` has it import them (it leaves out any whose import fails or
writes output); those it imported are *learned*: later forks of the same sweep and later
``track_execution`` calls in the process get them, and a small cache file keeps them for the
next sweep of the file, which then preloads them from the start.

The cache file is ``$XDG_CACHE_HOME/ploomber_like/preload/<key>.json`` (``~/.cache`` without
``XDG_CACHE_HOME``), one per script path and Python interpreter, holding the hash of the source
it was learned from (an edited file starts afresh), the learned modules and the refused ones.
It is a cache rather than a table of the database: it describes the file and this machine's
packages, not the runs, and a Dask worker learns without ever opening the database. A cache
that cannot be read or written (a read-only home) is ignored: the process still learns.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ploomber_like.caches import cache_home, read_json, write_json
from ploomber_like.capture.inputs import library_roots
from ploomber_like.kernels.preload import named_modules, preloadable_modules

if TYPE_CHECKING:
    from ploomber_like.kernels.template import KernelTemplate

#: Learned modules kept per file (and, apart, refused ones). Lazily loaded submodules of the
#: usual libraries are tens to a few hundred (a run-time ``sklearn.ensemble`` brings ~110); the
#: bound stops a script that imports a whole package tree by name from making every later
#: template import thousands of modules (seconds at each start, memory in every fork). Parents
#: are imported before their submodules, so what the bound leaves out is deepest.
MAX_LEARNED_MODULES = 500
#: Files whose learned modules this process keeps in memory at once.
MAX_FILES = 16


def learned_modules(script_path: str, source: str) -> LearnedModules:
    """This process's :class:`LearnedModules` for the script at ``script_path`` with ``source``,
    loaded from the cache on first use."""
    key = (script_path, hashlib.sha256(source.encode()).hexdigest())
    with _KEPT_LOCK:
        learned = _KEPT.pop(key, None) or LearnedModules(script_path, key[1])
        _KEPT[key] = learned
        while len(_KEPT) > MAX_FILES:
            _KEPT.popitem(last=False)
        return learned


def cache_folder() -> Path:
    """Where the learned modules of every script are cached."""
    return cache_home() / "preload"


class LearnedModules:
    """The library modules runs of one file imported at run time (see the module's docstring).

    Parameters
    ----------
    script_path : str
        The script's absolute path.
    source_hash : str
        sha256 of its source: what is learned holds for this content.
    """

    def __init__(self, script_path: str, source_hash: str) -> None:
        self.script_path = script_path
        self.source_hash = source_hash
        key = hashlib.sha256(f"{script_path}\0{sys.executable}".encode()).hexdigest()[:24]
        #: The cache file (see the module's docstring).
        self.cache_file = cache_folder() / f"{key}.json"
        self._lock = threading.Lock()
        self._roots: list[str] | None = None
        learned, refused = self._read_cache()
        self._learned: dict[str, None] = dict.fromkeys(learned)
        self._refused: set[str] = set(refused)
        self._noted: dict[str, None] = {}

    def modules(self) -> list[str]:
        """The learned modules, in the order runs imported them."""
        with self._lock:
            return list(self._learned)

    def template_modules(self, sources: list[str], script_dir: Path, cwd: Path) -> list[str]:
        """What a template for the file (its code ``sources``, in ``script_dir``, run from
        ``cwd``) preloads from the start: what the sources import and what was learned (see
        :func:`~ploomber_like.kernels.preloadable_modules`). The modules the sources only name
        (:func:`~ploomber_like.kernels.named_modules`) are noted (:meth:`noted`): a template
        built now tries them as it starts, one already running by :meth:`extend`."""
        modules = preloadable_modules(sources, script_dir, cwd, self.modules())
        self.note(named_modules(sources, modules, script_dir, cwd))
        return modules

    def noted(self) -> list[str]:
        """The modules noted since the last :meth:`extend`, which waits for them. A template
        built now takes them as its ``check`` (see
        :class:`~ploomber_like.kernels.KernelTemplate`): it tries them while it warms up, and
        :meth:`extend` then only learns how that went."""
        with self._lock:
            return list(self._noted)

    def note(self, imported: Mapping[str, str]) -> None:
        """Take the modules a run imported, or the file names (name -> file, in import
        order): those from the standard library or site-packages, neither learned nor refused
        yet, wait for :meth:`extend`, up to :data:`MAX_LEARNED_MODULES`."""
        with self._lock:
            if self._roots is None:
                self._roots = library_roots()
            for name, file in imported.items():
                if len(self._learned) + len(self._noted) >= MAX_LEARNED_MODULES:
                    break
                if name in self._learned or name in self._refused or name in self._noted:
                    continue
                if _under(file, self._roots):
                    self._noted[name] = None

    def extend(self, template: KernelTemplate) -> None:
        """Have ``template`` import the modules noted since the last call, before its next
        fork; learn those it imported, refuse the others (their import failed or printed)."""
        with self._lock:
            noted, self._noted = list(self._noted), {}
        if not noted:
            return
        imported = set(template.extend(noted))
        with self._lock:
            for name in noted:
                if name in imported:
                    self._learned[name] = None
                elif len(self._refused) < MAX_LEARNED_MODULES:
                    self._refused.add(name)
            learned, refused = list(self._learned), sorted(self._refused)
        self._write_cache(learned, refused)

    def _read_cache(self) -> tuple[list[str], list[str]]:
        data = read_json(self.cache_file)
        try:
            if data.get("source_sha256") != self.source_hash:
                return [], []
            learned, refused = data["modules"], data["refused"]
            if all(isinstance(name, str) for name in [*learned, *refused]):
                return learned[:MAX_LEARNED_MODULES], refused[:MAX_LEARNED_MODULES]
        except (TypeError, KeyError, AttributeError):
            pass  # missing, unreadable or not ours: start afresh
        return [], []

    def _write_cache(self, learned: list[str], refused: list[str]) -> None:
        # Another process may have learned meanwhile (two sweeps of the same file): keep both.
        cached, cached_refused = self._read_cache()
        learned = list(dict.fromkeys([*cached, *learned]))[:MAX_LEARNED_MODULES]
        refused = sorted(set(cached_refused) | set(refused))[:MAX_LEARNED_MODULES]
        # Not written (a read-only cache): the next sweep starts cold, this process learned.
        write_json(self.cache_file, {
            "script": self.script_path, "source_sha256": self.source_hash,
            "modules": learned, "refused": refused,
        })


def _under(file: str, roots: list[str]) -> bool:
    real = os.path.realpath(file)
    return any(real.startswith(root) for root in roots)


_KEPT: OrderedDict[tuple[str, str], LearnedModules] = OrderedDict()
_KEPT_LOCK = threading.Lock()
