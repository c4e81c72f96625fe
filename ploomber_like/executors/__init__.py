"""Executors: where the points of a sweep run, found by a registry as papermill finds engines.

========== ====================================================== ===========================
name       runs points                                            ``executor=``
========== ====================================================== ===========================
``local``  in kernels forked from a warm template on this machine ``None`` (default), "local"
``futures`` on any ``concurrent.futures.Executor``                the executor
``dask``   on a Dask cluster                                      a ``Client``, or an address
========== ====================================================== ===========================

A new backend is a subclass of :class:`~ploomber_like.executors.base.Executor` passed to
:func:`register_executor`; the sweep driver never names one.
"""

from __future__ import annotations

import importlib
from typing import Any

from ploomber_like.errors import TrackerError
from ploomber_like.executors.base import Executor
from ploomber_like.options import RunOptions

__all__ = ["Executor", "executor_for", "register_executor"]

#: Registered executors, asked in order which one accepts the user's ``executor`` argument;
#: the built-in ones by module path, imported only when a sweep looks them up.
_REGISTRY: dict[str, type[Executor] | str] = {
    "local": "ploomber_like.executors.local:LocalExecutor",
    "futures": "ploomber_like.executors.futures:FuturesExecutor",
    "dask": "ploomber_like.executors.dask:DaskExecutor",
}


def register_executor(executor: type[Executor]) -> type[Executor]:
    """Register an executor class under its ``name`` (usable as a class decorator).

    Parameters
    ----------
    executor : type
        A subclass of :class:`Executor`; its :meth:`Executor.accepts` decides which
        ``executor=`` arguments it takes. A class registered later is asked first.
    """
    _REGISTRY.pop(executor.name, None)
    # Later registrations first: a user's backend can claim targets a built-in one would take.
    items = list(_REGISTRY.items())
    _REGISTRY.clear()
    _REGISTRY.update({executor.name: executor, **dict(items)})
    return executor


def executor_for(target: Any, options: RunOptions) -> Executor:
    """The executor that runs on ``target`` (the ``executor`` argument of a sweep).

    Raises
    ------
    TrackerError
        If no registered executor accepts ``target``, or it cannot be reached.
    """
    if isinstance(target, Executor):
        return target
    for name in list(_REGISTRY):
        executor = _executor_class(name)
        if executor.accepts(target):
            return executor(target, options)
    raise TrackerError(
        "executor must be a Dask scheduler address, a distributed.Client or a "
        f"concurrent.futures.Executor, got {type(target).__name__}"
    )


def _executor_class(name: str) -> type[Executor]:
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)
        _REGISTRY[name] = entry
    return entry
