"""The interface between the sweep driver and the places runs execute.

The driver writes every record; an executor only runs points and hands their records back.
Four calls make the whole interface: :meth:`Executor.submit`, :meth:`Executor.wait_some`,
:meth:`Executor.cancel`, :meth:`Executor.close`; :meth:`Executor.prepare` is a hint before them.
"""

from __future__ import annotations

import os
import traceback
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ploomber_like.errors import ParameterError
from ploomber_like.notebook import PreparedRun
from ploomber_like.options import RunOptions
from ploomber_like.record import Record, Status

if TYPE_CHECKING:
    from ploomber_like.pruning import RunPruner


class Executor(ABC):
    """Runs sweep points somewhere and hands their finished records back to the driver.

    Subclasses set :attr:`name` and :meth:`accepts`, and are registered with
    :func:`ploomber_like.executors.register_executor`.

    Parameters
    ----------
    target : object
        What the user passed as ``executor`` (None for the local pool, a client, an address...).
    options : RunOptions
        The sweep's options: workers, timeout and preloading matter here.
    """

    #: The registry key (``"local"``, ``"futures"``, ``"dask"``).
    name: ClassVar[str]

    def __init__(self, target: Any, options: RunOptions) -> None:
        self.target = target
        self.options = options
        #: Runs at once: the option, or this executor's default.
        self.workers = options.workers or self.default_workers()

    @classmethod
    @abstractmethod
    def accepts(cls, target: Any) -> bool:
        """Whether this executor runs on ``target`` (the user's ``executor`` argument)."""

    def default_workers(self) -> int:
        """Runs at once when the user gives no ``workers``: the cores of this machine."""
        return os.cpu_count() or 1

    def threads_per_run(self) -> int:
        """Threads each kernel's numerical libraries may use: a share of this machine's cores."""
        return max(1, (os.cpu_count() or 1) // self.workers)

    def prepare(self, path: Path, text: str) -> None:
        """The file every run will execute, known before its groups are read (jupytext takes
        ~0.25 s the first time it reads a file): an executor may start what its runs need
        meanwhile. Called at most once, before any :meth:`submit`; by default, nothing."""
        return None

    def watch(self, pruner: RunPruner) -> None:
        """Show ``pruner`` every run's output scalars as they are printed, and stop a run it
        decides to prune (recorded ``pruned``). Only executors that see the output live can.
        """
        raise ParameterError(
            f"pruning needs runs whose output is read as it is printed: the {self.name} "
            "executor hands runs back only when they end (use the local executor)"
        )

    @abstractmethod
    def submit(self, run: PreparedRun, record: Record, *, still_needed: int = 0) -> None:
        """Start running ``run``, whose ``running`` record the driver has written.

        ``still_needed`` is how many more points the driver expects to submit after this one
        (a hint: a pool may start kernels ahead for them).
        """

    @abstractmethod
    def wait_some(self, timeout: float | None = None) -> list[Record]:
        """Wait until at least one submitted run ends, or ``timeout`` seconds (None: no limit);
        the finished records (failures included), none if the time ran out. The driver waits
        in slices, to notice Ctrl-C (:mod:`ploomber_like.interrupts`).

        Raises :class:`~ploomber_like.errors.TrackerError` if the executor itself is lost.
        """

    @abstractmethod
    def cancel(self) -> list[Record]:
        """Stop every run in flight; their records, as far as each got (values shown so far).

        A record the executor could not get back stays ``running``: the driver decides how
        it ends.
        """

    @abstractmethod
    def close(self) -> None:
        """Release what :meth:`submit` started (kernels, templates, a client made here)."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Runs submitted and not yet handed back."""


def fail_record(record: Record, status: Status, exc: BaseException, started: float) -> Record:
    """``record`` ended with ``status`` by ``exc`` raised outside the user's code."""
    record.fail(status, exc, started, "".join(traceback.format_exception(exc)).strip())
    return record
