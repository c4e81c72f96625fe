"""Tracking one run: ``track_execution``. ``python -m ploomber_like.tracking`` is the CLI (see
``__main__.py``: the CLI imports this module, so this module does not import the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import os
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ploomber_like.execute import new_record, run_on_pool
from ploomber_like.kernels import (
    FreshKernels,
    KernelPool,
    KernelTemplate,
    LearnedModules,
    learned_modules,
    shared_factory,
)
from ploomber_like.notebook import PreparedRun, prepare_run
from ploomber_like.options import RunOptions
from ploomber_like.provenance import module_distributions
from ploomber_like.record import DEFAULT_MAX_ARTIFACT_BYTES, Environment, Record, Status
from ploomber_like.run_messages import run_client_class
from ploomber_like.store import Store

T = TypeVar("T")

#: Counts the runs started by this process: the first one is run differently (see _run_once).
_CALLS = itertools.count()


class TrackingWarning(UserWarning):
    """Something about the file or parameters the user should know (e.g. no parameters cell)."""


def track_execution(
    filename: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    database: str | os.PathLike[str] = "experiments.db",
    *,
    quiet: bool = False,
    timeout: float | None = None,
    comment: str | None = None,
    output_scalars: bool | str = True,
    save_notebook: bool = False,
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    name: str | None = None,
    keep_warm: bool = True,
    preload: bool = True,
) -> Record:
    """Run a script or notebook once with ``parameters`` and record it in ``database``.

    Parameters
    ----------
    filename : str or Path
        A ``.py`` file (jupytext light or percent format) or an ``.ipynb`` notebook (the name
        ploomber-engine gives this argument, so ``filename=...`` calls work unchanged).
    parameters : dict, optional
        Values injected after the parameters cell; Python literals only.
    database : str or Path
        SQLite file to write; created if missing.
    quiet : bool
        Do not warn about a missing parameters cell or unknown parameters, do not show the
        running group, and do not echo the script's output (recorded either way).
    timeout : float, optional
        Seconds the whole run may take; past it the run is stopped and recorded as ``timeout``.
    comment : str, optional
        Stored in the ``comment`` column.
    output_scalars : bool or str
        Record ``name: number`` lines of stdout as series in the ``metrics`` table (default);
        a regular expression with groups ``(?P<key>...)`` and ``(?P<value>...)`` replaces the
        default pattern; ``False`` records none.
    save_notebook : bool
        Store the executed notebook, outputs included.
    max_artifact_bytes : int
        Files the run writes are stored up to this size (default 100 MB); larger ones are
        listed with their size and sha256 only.
    name : str, optional
        Stored in the ``name`` column: a label to find the run by (``ls``, ``compare``, the UI).
    keep_warm : bool
        Keep a warm kernel template in this process for later calls (default): the first call
        runs in a fresh kernel and builds the template meanwhile, on the core its run leaves
        free; later calls fork theirs from it, each still a process of its own. ``False``
        starts a fresh kernel and builds nothing: for a process that makes a single call,
        such as the CLI.
    preload : bool
        Fork kernels from the warm template (default), which imports the file's modules and
        learns those its runs import at run time (see docs/sweeps.md); ``False``: every call
        runs in a fresh kernel, nothing is preloaded or learned (``keep_warm`` is then moot).

    Returns
    -------
    Record
        The stored record. A failing run is returned with its status and error, not raised.

    Raises
    ------
    TrackerError
        For bad input (missing file, bad parameters, unusable database), before any kernel starts.
    """
    options = RunOptions(
        quiet=quiet, timeout=timeout, comment=comment, output_scalars=output_scalars,
        save_notebook=save_notebook, max_artifact_bytes=max_artifact_bytes, name=name,
        keep_warm=keep_warm, preload=preload,
    )
    return track_prepared(prepare_run(filename, parameters), database, options)


def track_prepared(
    prepared: PreparedRun,
    database: str | os.PathLike[str],
    options: RunOptions,
    *,
    cwd: Path | None = None,
    reproduces: str | None = None,
    fresh: FreshKernels | None = None,
) -> Record:
    """:func:`track_execution` for a run already prepared (e.g. from a stored source text by
    :func:`ploomber_like.notebook.prepare_source`), with its options built.

    ``cwd`` is the kernel's working directory (default: this process's); ``reproduces`` the
    uuid of the run this one reruns, stored in the ``reproduces`` column; ``fresh``: where to
    take the run's kernel from instead, such as one
    :func:`~ploomber_like.kernels.kernel_started_ahead` started.
    """
    quiet = options.quiet
    if not quiet:
        for message in prepared.warnings:
            warnings.warn(message, TrackingWarning, stacklevel=2)
    cwd = cwd or Path.cwd()
    # The run writes where `python fit.py` would: its working directory, where its files are
    # looked for afterwards.
    prepared.options = dataclasses.replace(
        options.record_options(database, stream_output=not quiet), working_directory=str(cwd)
    )
    # Preloading off: nothing is kept warm either (a fresh kernel per call).
    keep_warm = options.keep_warm and options.preload
    with Store(database) as store:
        record = new_record(prepared, Environment.collect(prepared.path, cwd))
        record.comment = options.comment
        record.reproduces = reproduces
        record.name = options.name
        store.start(record)
        started = time.monotonic()
        try:
            with _group_progress(prepared, quiet) as on_group:
                run_sync(
                    _run_once(prepared, record, options.timeout, on_group, cwd, keep_warm, fresh)
                )
        except BaseException as exc:
            # Whatever stops the driver (Ctrl-C, a bug of ours), the row must not stay `running`.
            if isinstance(exc, KeyboardInterrupt):
                record.interrupt("interrupted by the user", started)
            else:
                record.fail(Status.CRASHED, exc, started)
            store.finish(record)
            raise
        store.finish(record)
    return record


async def _run_once(
    prepared: PreparedRun,
    record: Record,
    timeout: float | None,
    on_group: Callable[[int], None] | None,
    cwd: Path,
    keep_warm: bool,
    fresh: FreshKernels | None = None,
) -> Record:
    # The installed packages are indexed (for the record's package versions) while the kernel
    # starts and runs, on the core the run leaves free, not after the run on its critical path.
    threading.Thread(target=module_distributions, daemon=True).start()
    warm = learned = None
    if keep_warm and fresh is None:
        learned = learned_modules(prepared.script_path, prepared.text)
        sources = [group.source for group in prepared.groups]
        modules = learned.template_modules(sources, Path(prepared.script_path).parent, cwd)
        # The process-wide template for this file (built when it cannot serve it, rebuilt when
        # it has died), with a kernel forked ahead if an earlier call prepared one.
        warm = functools.partial(_file_template, cwd, modules, learned)
    # The first call starts a fresh kernel rather than wait seconds for a template to build,
    # and builds the template meanwhile, from the start: the fresh kernel's start-up and the
    # file's imports keep one core busy, the build takes the other. Later calls fork their
    # kernel from the template, then fork the next call's once theirs runs the user's code
    # (earlier, it could take the spare this call is about to use).
    first = next(_CALLS) == 0
    shared = (lambda: fresh) if fresh is not None else None if first else warm
    # The run's client (nbclient, ~0.1 s to import) is imported while the kernel starts: a
    # single run's critical path is that start, with this process idle. On the loop's thread,
    # as the client's own imports are: two threads importing jupyter_client can each find it
    # half imported.
    pool = KernelPool(
        cwd, preload=None, ahead=0, shared=shared, script_path=prepared.script_path,
        learned=learned, while_starting=run_client_class,
    )
    preparing = False

    def prepare_next() -> None:
        nonlocal preparing
        if warm is not None and not preparing:
            preparing = True
            # Not awaited: the call returns as soon as its run is recorded, and a later call
            # waits for the template if it must.
            threading.Thread(
                target=_prepare_next_kernel, args=(warm, learned, prepared.script_path),
                daemon=True,
            ).start()

    def on_group_and_prepare_next(group: int) -> None:
        prepare_next()
        if on_group is not None:
            on_group(group)

    if first:
        prepare_next()
    try:
        return await run_on_pool(
            prepared, record, pool, timeout=timeout, on_group=on_group_and_prepare_next
        )
    finally:
        await pool.close()
        if learned is not None and learned.noted():
            # The run imported modules the spare lacks: the template imports them and forks
            # the next call's kernel again, while this process goes on.
            preparing = False
            prepare_next()


def _file_template(
    cwd: Path, modules: list[str], learned: LearnedModules
) -> FreshKernels | KernelTemplate:
    # Built now, it tries the modules the file names as it warms up, not after.
    return shared_factory(cwd, modules, check=learned.noted())


def _prepare_next_kernel(
    warm: Callable[[], FreshKernels | KernelTemplate],
    learned: LearnedModules | None,
    script_path: str,
) -> None:
    # Failures are left to the next call, which builds the template again and records its
    # run as crashed if it still cannot start a kernel; this call has its kernel already.
    with contextlib.suppress(Exception):
        template = warm()
        if isinstance(template, KernelTemplate):
            if learned is not None:
                learned.extend(template)
            template.prepare_spare(script_path)


@contextlib.contextmanager
def _group_progress(
    prepared: PreparedRun, quiet: bool
) -> Iterator[Callable[[int], None] | None]:
    """A spinner on stderr naming the group being run (nothing when quiet)."""
    if quiet:
        yield None
        return
    from rich.console import Console

    total = len(prepared.groups)
    console = Console(stderr=True)
    if console.is_jupyter:
        from ploomber_like.progress import NotebookProgress

        # rich's spinner needs ipywidgets in Jupyter: a line of the cell's output instead.
        line = NotebookProgress(f"{prepared.path.name}: starting a kernel")
        with line:
            yield lambda group: line.update(
                description=f"{prepared.path.name}: group {group + 1} of {total}"
            )
        return
    status = console.status(f"{prepared.path.name}: starting a kernel")

    def show(group: int) -> None:
        status.update(f"{prepared.path.name}: group {group + 1} of {total}")

    with status:
        yield show


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion, also from inside a running event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coroutine).result()
