"""Starting kernels: fresh processes, or forks of a warm template; and a pool keeping them ready.

Modules, split at the process boundary:

- :mod:`~ploomber_like.kernels.handle`: :class:`KernelHandle` (a kernel process as the driver
  sees it) and :class:`FreshKernels`.
- :mod:`~ploomber_like.kernels.template`: :class:`KernelTemplate`, the driver side of a warm
  template; :mod:`~ploomber_like.kernels.template_process`, the code running inside it; and
  :mod:`~ploomber_like.kernels.protocol`, the messages between the two.
- :mod:`~ploomber_like.kernels.registry`: templates kept for the life of a process
  (:func:`shared_factory`).
- :mod:`~ploomber_like.kernels.pool`: :class:`KernelPool` and :class:`ReadyKernel`.
- :mod:`~ploomber_like.kernels.preload`: which modules a template may preload;
  :mod:`~ploomber_like.kernels.learned`: those runs of a file imported at run time, learned.
- :mod:`~ploomber_like.kernels.environment` and :mod:`~ploomber_like.kernels.processes`: a
  kernel's options and environment; cleaning up what a run leaves behind.

The names below are imported from their modules on first use, so that the template process,
which imports :mod:`~ploomber_like.kernels.template_process`, loads nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ploomber_like.lazy import lazy_exports

_EXPORTS = {
    "CRASH_LOG_TAIL": "handle",
    "STARTUP_TIMEOUT": "handle",
    "STATUS_UNKNOWN": "handle",
    "FreshKernels": "handle",
    "KernelHandle": "handle",
    "KernelStartError": "handle",
    "kernel_started_ahead": "handle",
    "KernelTemplate": "template",
    "fork_available": "template",
    "make_factory": "template",
    "KernelPool": "pool",
    "ReadyKernel": "pool",
    "connect_client": "pool",
    "TemplateRegistry": "registry",
    "shared_factory": "registry",
    "template_registry": "registry",
    "installed_packages_stamp": "preload",
    "named_modules": "preload",
    "preloadable_modules": "preload",
    "LearnedModules": "learned",
    "learned_modules": "learned",
    "KERNEL_OPTIONS": "environment",
    "THREAD_VARIABLES": "environment",
    "kernel_environment": "environment",
    "kill_process_tree": "processes",
    "new_runtime_dir": "processes",
    "remove_orphan_runtime_dirs": "processes",
}

__all__ = [
    "CRASH_LOG_TAIL",
    "FreshKernels",
    "KERNEL_OPTIONS",
    "KernelHandle",
    "KernelPool",
    "KernelStartError",
    "KernelTemplate",
    "LearnedModules",
    "ReadyKernel",
    "STARTUP_TIMEOUT",
    "STATUS_UNKNOWN",
    "THREAD_VARIABLES",
    "TemplateRegistry",
    "connect_client",
    "fork_available",
    "installed_packages_stamp",
    "kernel_environment",
    "kernel_started_ahead",
    "kill_process_tree",
    "learned_modules",
    "make_factory",
    "new_runtime_dir",
    "named_modules",
    "preloadable_modules",
    "remove_orphan_runtime_dirs",
    "shared_factory",
    "template_registry",
]

if TYPE_CHECKING:
    from ploomber_like.kernels.environment import (
        KERNEL_OPTIONS,
        THREAD_VARIABLES,
        kernel_environment,
    )
    from ploomber_like.kernels.handle import (
        CRASH_LOG_TAIL,
        STARTUP_TIMEOUT,
        STATUS_UNKNOWN,
        FreshKernels,
        KernelHandle,
        KernelStartError,
        kernel_started_ahead,
    )
    from ploomber_like.kernels.learned import LearnedModules, learned_modules
    from ploomber_like.kernels.pool import KernelPool, ReadyKernel, connect_client
    from ploomber_like.kernels.preload import (
        installed_packages_stamp,
        named_modules,
        preloadable_modules,
    )
    from ploomber_like.kernels.processes import (
        kill_process_tree,
        new_runtime_dir,
        remove_orphan_runtime_dirs,
    )
    from ploomber_like.kernels.registry import (
        TemplateRegistry,
        shared_factory,
        template_registry,
    )
    from ploomber_like.kernels.template import KernelTemplate, fork_available, make_factory


__getattr__ = lazy_exports(__name__, _EXPORTS)
