"""The options of running and recording files, declared once.

``track_execution``, ``track_grid``, ``track_search``, ``rerun`` and the CLI all take these; each
builds one :class:`RunOptions`, which checks them (one-line :class:`ParameterError`) before
anything runs or is written, and hands that object on: to the sweep driver, the executors and,
as :class:`~ploomber_like.record.RecordOptions`, to each run.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ploomber_like.errors import ParameterError
from ploomber_like.record import DEFAULT_MAX_ARTIFACT_BYTES, RECORDED_OPTIONS, RecordOptions
from ploomber_like.scalars import scalar_pattern


@dataclass(frozen=True)
class RunOptions:
    """How files are run and what their runs record; checked when built.

    Every field has the default the public functions document; a function that takes fewer
    (``track_execution`` has no ``workers``) leaves the others at their defaults.
    """

    #: Seconds each run may take; past it the run is stopped and recorded as ``timeout``.
    #: None: no limit.
    timeout: float | None = None
    #: No warnings, progress, summary or echoed output (everything is recorded either way).
    quiet: bool = False
    #: Stored in the ``comment`` column of every run.
    comment: str | None = None
    #: Stored in the ``name`` column of every run: a label to find the runs by.
    name: str | None = None
    #: Record ``name: number`` lines of stdout as series: True for the default pattern, a
    #: regular expression with groups ``(?P<key>...)`` and ``(?P<value>...)`` instead, False
    #: for none.
    output_scalars: bool | str = True
    #: Store each run's executed notebook, outputs included.
    save_notebook: bool = False
    #: Files a run writes are stored up to this many bytes; larger ones by size and hash only.
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    #: Fork kernels from a warm template that has imported the file's third-party modules;
    #: False: a fresh kernel per run, nothing preloaded or learned.
    preload: bool = True
    #: ``track_execution`` only: keep the warm template in this process for later calls.
    keep_warm: bool = True
    #: Runs at once in a sweep; None: the executor's default (the cores, a cluster's threads).
    workers: int | None = None
    #: Where a sweep's runs execute (see :func:`ploomber_like.executors.executor_for`): None for
    #: local kernels, a Dask address, client or a ``concurrent.futures`` executor.
    executor: Any = None
    #: Rerun sweep points already recorded ``ok`` for the same file content and parameters.
    force: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", check_timeout(self.timeout))
        workers = self.workers
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ParameterError(f"workers must be at least 1, got {workers!r:.60}")
        scalar_pattern(self.output_scalars)
        size = self.max_artifact_bytes
        if isinstance(size, bool) or not isinstance(size, int):
            raise ParameterError(f"max_artifact_bytes must be an int, got {size!r:.60}")
        if size < 0:
            raise ParameterError(f"max_artifact_bytes must be 0 or more, got {size}")

    @classmethod
    def recorded(cls, stored: Mapping[str, Any], **others: Any) -> RunOptions:
        """The options a run was recorded with (as :meth:`RecordOptions.stored` wrote them),
        with ``others`` for the rest; a key this version does not know is left out."""
        return cls(**{k: v for k, v in stored.items() if k in RECORDED_OPTIONS}, **others)

    def record_options(
        self,
        database: str | os.PathLike[str],
        *,
        own_directories: bool = False,
        stream_output: bool = False,
    ) -> RecordOptions:
        """What each run writing to ``database`` records beyond its values, and where it works.

        ``own_directories``: each run works in a temporary directory of its own, outside the
        current directory and holding links to its entries (a sweep's parallel runs), instead
        of the current directory itself. ``stream_output``: echo the run's stdout and stderr.
        """
        database = Path(database).absolute()
        journals = [database, *(Path(f"{database}{end}") for end in ("-wal", "-shm", "-journal"))]
        return RecordOptions(
            output_scalars=self.output_scalars,
            save_notebook=self.save_notebook,
            max_artifact_bytes=self.max_artifact_bytes,
            linked_directory=str(Path.cwd()) if own_directories else None,
            ignored_paths=tuple(str(path) for path in journals),
            stream_output=stream_output,
        )


def check_timeout(timeout: float | None) -> float | None:
    """``timeout`` in seconds as a float, or ``None`` for no timeout.

    Raises
    ------
    ParameterError
        Unless ``timeout`` is ``None`` or a finite number of seconds above zero (``nan``,
        ``inf``, ``0`` and negative numbers are refused, before any run is recorded).
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise ParameterError(f"timeout must be a number of seconds, got {timeout!r:.60}")
    seconds = float(timeout)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ParameterError(f"timeout must be a finite number of seconds above 0, got {seconds:g}")
    return seconds
