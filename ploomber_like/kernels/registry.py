"""Warm templates kept for the life of a process, shared by every call that can use them.

``track_execution`` called in a loop or a notebook, and a Dask or futures worker running sweep
points, each ask :func:`shared_factory` for a kernel factory; runs of the same working
directory share one template, which keeps a spare kernel forked ahead. A template is rebuilt
when it can no longer serve: it died, the file imports a module it has not preloaded, the
environment variables or the installed packages changed. Every template, with its kernels, is
shut down when the interpreter exits.
"""

from __future__ import annotations

import atexit
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ploomber_like.kernels.environment import kernel_environment
from ploomber_like.kernels.handle import FreshKernels
from ploomber_like.kernels.preload import installed_packages_stamp
from ploomber_like.kernels.processes import new_runtime_dir
from ploomber_like.kernels.template import KernelTemplate, fork_available

#: Templates kept at once (each holds the imports of its files in memory); the least recently
#: used one beyond it is shut down once its kernels have ended.
MAX_TEMPLATES = 2


@dataclass
class _Kept:
    template: KernelTemplate
    packages: tuple[int, ...]


class TemplateRegistry:
    """Warm templates by working directory and thread limit, rebuilt when they cannot serve."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, int | None], _Kept] = OrderedDict()
        #: Replaced templates whose kernels still run: closed once those have ended.
        self._retired: list[KernelTemplate] = []
        self._runtime_dir: Path | None = None

    def factory(
        self, cwd: Path, modules: Iterable[str] | None, threads: int | None = None,
        check: Iterable[str] = (),
    ) -> FreshKernels | KernelTemplate:
        """A factory whose kernels run in ``cwd`` with ``modules`` already imported.

        Parameters
        ----------
        cwd : Path
            Working directory of the kernels.
        modules : iterable of str, or None
            Modules to preload (see :func:`~ploomber_like.kernels.preloadable_modules`);
            ``None``, or a platform without ``fork``, gives fresh kernels.
        threads : int, optional
            Threads each kernel's numerical libraries may use.
        check : iterable of str
            Modules a template built now also preloads, unless importing one fails or writes
            output (see :class:`~ploomber_like.kernels.KernelTemplate`).

        Returns
        -------
        FreshKernels or KernelTemplate
            Shared: the caller must not close it.
        """
        with self._lock:
            if self._runtime_dir is None:
                self._runtime_dir = new_runtime_dir()
            if modules is None or not fork_available():
                return FreshKernels(self._runtime_dir, cwd, threads)
            wanted = frozenset(modules)
            key = (str(Path(cwd).resolve()), threads)
            kept = self._kept.pop(key, None)
            packages = installed_packages_stamp()
            if kept is not None and not self._serves(kept, wanted, threads, packages):
                if kept.template.is_alive() and kept.packages == packages:
                    # Keep serving what it served too: what it imported, not what it was asked
                    # for, or a module it refused (its import printed) would be preloaded now.
                    wanted |= kept.template.imported
                self._retire(kept.template)
                kept = None
            if kept is None:
                template = KernelTemplate(self._runtime_dir, cwd, wanted, threads, check)
                kept = _Kept(template, packages)
            self._kept[key] = kept  # most recently used last
            while len(self._kept) > MAX_TEMPLATES:
                self._retire(self._kept.popitem(last=False)[1].template)
            self._close_idle_retired()
            return kept.template

    def close(self) -> None:
        """Shut down every template and the kernels forked from them."""
        with self._lock:
            templates = [kept.template for kept in self._kept.values()] + self._retired
            self._kept.clear()
            self._retired.clear()
            for template in templates:
                template.close()
            if self._runtime_dir is not None:
                shutil.rmtree(self._runtime_dir, ignore_errors=True)
                self._runtime_dir = None

    @staticmethod
    def _serves(
        kept: _Kept, wanted: frozenset[str], threads: int | None, packages: tuple[int, ...]
    ) -> bool:
        template = kept.template
        return (
            template.is_alive()
            and wanted <= template.preload
            and kept.packages == packages
            and template.environment == kernel_environment(threads=threads)
        )

    def _retire(self, template: KernelTemplate) -> None:
        self._retired.append(template)

    def _close_idle_retired(self) -> None:
        for template in list(self._retired):
            if template.running_kernels() == 0 or not template.is_alive():
                template.close()
                self._retired.remove(template)


_registry: TemplateRegistry | None = None
_registry_lock = threading.Lock()


def template_registry() -> TemplateRegistry:
    """This process's registry, made on first use and closed when the interpreter exits."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = TemplateRegistry()
            atexit.register(_registry.close)
        return _registry


def shared_factory(
    cwd: Path, modules: Iterable[str] | None, threads: int | None = None,
    check: Iterable[str] = (),
) -> FreshKernels | KernelTemplate:
    """:meth:`TemplateRegistry.factory` of this process's registry (:func:`template_registry`)."""
    return template_registry().factory(cwd, modules, threads, check)
