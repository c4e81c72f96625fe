"""Parameter-grid sweeps: expanding grids, running points on warm kernels or a cluster, resume.

The driver alone writes the database: runs execute in kernel processes (locally) or on Dask
workers, and their records come back to be written one transaction each, as they finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ploomber_like.errors import ParameterError
from ploomber_like.execute import module_distributions, new_record, run_on_pool
from ploomber_like.kernels import KernelPool, preloadable_modules
from ploomber_like.notebook import PreparedRun, prepare_runs
from ploomber_like.record import Environment, Record
from ploomber_like.store import Store
from ploomber_like.tracking import run_sync


@dataclass
class SweepSummary:
    """How a sweep went. ``failed`` counts every run that did not end ``ok``."""

    database: str
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    interrupted: bool = False
    #: uuid and status of every run executed (not of skipped points), in completion order.
    runs: list[tuple[str, str]] = field(default_factory=list)
    duration: float = 0.0


def track_grid(
    path: str | os.PathLike[str],
    grid: Any,
    database: str | os.PathLike[str] = "experiments.db",
    *,
    fixed: Mapping[str, Any] | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    force: bool = False,
    preload: bool = True,
    quiet: bool = False,
    comment: str | None = None,
    executor: Any = None,
    name: str | None = None,
) -> SweepSummary:
    """Run ``path`` once per point of ``grid``, recording each run in ``database``.

    Parameters
    ----------
    path : str or Path
        The script or notebook, as for :func:`~ploomber_like.track_execution`.
    grid : dict of lists, list of dicts, ParameterGrid, or iterable of dicts
        A dict of lists is expanded to its cartesian product; any other iterable of dicts is
        taken point by point.
    database : str or Path
        SQLite file to write.
    fixed : dict, optional
        Parameters added to every point (a point's own value wins).
    workers : int, optional
        Runs at once; default: the number of cores.
    timeout : float, optional
        Seconds each run may take.
    force : bool
        Rerun points already recorded ``ok`` for the same file content and parameters.
    preload : bool
        Fork kernels from a warm template that has imported the file's third-party modules
        (default); ``False`` starts a fresh kernel per run.
    quiet : bool
        No progress bar, warnings or summary.
    comment : str, optional
        Stored in every run's ``comment`` column.
    name : str, optional
        Stored in every run's ``name`` column: a label for the sweep.
    executor : distributed.Client, concurrent.futures.Executor or str, optional
        Run the points there (a string is a Dask scheduler address); default: local kernels.

    Returns
    -------
    SweepSummary
    """
    points = [{**(fixed or {}), **point} for point in expand_grid(grid)]
    prepared = prepare_runs(path, points)
    if workers is not None and workers < 1:
        raise ParameterError(f"workers must be at least 1, got {workers}")
    reporter = _Reporter(quiet)
    if not quiet:
        for message in dict.fromkeys(w for run in prepared for w in run.warnings):
            reporter.warn(message)

    with contextlib.ExitStack() as resources:
        client = executor
        if isinstance(executor, str):
            # A client made here from an address is ours to close; one passed in is the caller's.
            client = _dask_client(executor)
            resources.callback(client.close)
        workers = workers or _default_workers(client)
        store = resources.enter_context(Store(database))
        store.mark_orphans_interrupted()
        todo = prepared
        if not force:
            done = store.ok_fingerprints(run.fingerprint for run in prepared)
            todo = [run for run in prepared if run.fingerprint not in done]
        skipped = len(prepared) - len(todo)
        summary = SweepSummary(str(database), total=len(prepared), skipped=skipped)
        if summary.skipped:
            reporter.note(
                f"skipping {summary.skipped} of {len(prepared)} points already recorded ok "
                "(use force=True / --force to rerun them)"
            )
        environment = Environment.collect(Path(path))
        started = time.monotonic()
        try:
            with reporter.progress(len(todo)) as progress:
                sweep = _Sweep(store, environment, progress, summary, timeout, comment, name)
                if not todo:
                    pass  # every point was recorded ok before: nothing to start
                elif client is None:
                    run_sync(sweep.run_local(todo, workers, preload))
                else:
                    from ploomber_like.cluster import run_on_executor

                    run_on_executor(sweep, todo, client, workers, preload)
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            summary.duration = time.monotonic() - started
            reporter.summary(summary)
    return summary


def expand_grid(grid: Any) -> list[dict[str, Any]]:
    """The points of ``grid`` as a list of dicts; raises :class:`ParameterError` if malformed."""
    if isinstance(grid, Mapping):
        for name, values in grid.items():
            if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
                raise ParameterError(
                    f"grid values must be lists: {name!r} is {type(values).__name__}"
                )
        names = list(grid)
        combos = itertools.product(*grid.values())
        points = [dict(zip(names, combo, strict=True)) for combo in combos]
    elif isinstance(grid, str | bytes) or not isinstance(grid, Iterable):
        raise ParameterError(
            f"a grid must be a dict of lists or an iterable of dicts, got {type(grid).__name__}"
        )
    else:
        points = list(grid)
        for point in points:
            if not isinstance(point, Mapping):
                raise ParameterError(
                    f"every grid point must be a dict, got {type(point).__name__}: {point!r:.60}"
                )
        points = [dict(point) for point in points]
    if not points:
        raise ParameterError("the grid is empty: it has no points to run")
    return points


def load_grid_file(path: str | os.PathLike[str]) -> Any:
    """A grid from a YAML or JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"grid file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ParameterError(f"cannot read grid file {path}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError and its many subclasses
        raise ParameterError(f"cannot read grid file {path}: {str(exc).splitlines()[0]}") from None
    raise ParameterError(f"grid file {path} must end in .yaml, .yml or .json")


def _default_workers(client: Any) -> int:
    if client is not None and hasattr(client, "nthreads"):
        return max(1, sum(client.nthreads().values()))
    return os.cpu_count() or 1


def _dask_client(address: str) -> Any:
    from ploomber_like.cluster import connect_dask

    return connect_dask(address)


class _Sweep:
    """State shared by the runs of one sweep: the store, the progress, the counts."""

    def __init__(
        self,
        store: Store,
        environment: Environment,
        progress: _Progress,
        summary: SweepSummary,
        timeout: float | None,
        comment: str | None,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.environment = environment
        self.progress = progress
        self.summary = summary
        self.timeout = timeout
        self.comment = comment
        self.name = name

    def begin(self, run: PreparedRun) -> Record:
        """The ``running`` record of a point, written before it executes."""
        record = new_record(run, self.environment)
        record.comment = self.comment
        record.name = self.name
        self.store.start(record)
        self.progress.started()
        return record

    def end(self, record: Record) -> None:
        """Write a finished record and count it."""
        self.store.finish(record)
        if record.ok:
            self.summary.ok += 1
        else:
            self.summary.failed += 1
        self.summary.runs.append((record.uuid, record.status))
        self.progress.finished(record.ok)

    def interrupted(self, record: Record, started: float) -> None:
        """Write a run stopped by Ctrl-C, keeping what it captured if it got that far."""
        record.interrupt("the sweep was interrupted", started)
        self.end(record)

    async def run_local(self, todo: list[PreparedRun], workers: int, preload: bool) -> None:
        first = todo[0]  # every point runs the same file
        modules = None
        if preload:
            modules = preloadable_modules(
                [g.source for g in first.groups], Path(first.script_path).parent, Path.cwd()
            )
        pool = KernelPool(
            Path.cwd(), modules, ahead=min(workers, 2), script_path=first.script_path,
            threads=max(1, (os.cpu_count() or 1) // workers),
        )
        queue = list(reversed(todo))
        # Index the installed packages while the template starts, not when the first run ends.
        indexing = asyncio.ensure_future(asyncio.to_thread(module_distributions))
        try:
            await asyncio.gather(*(self._local_worker(queue, pool) for _ in range(workers)))
        finally:
            await pool.close()
            await indexing

    async def _local_worker(self, queue: list[PreparedRun], pool: KernelPool) -> None:
        while queue:
            run = queue.pop()
            record = self.begin(run)
            started = time.monotonic()
            try:
                await run_on_pool(
                    run, record, pool, timeout=self.timeout, still_needed=len(queue)
                )
            except asyncio.CancelledError:
                # Ctrl-C: asyncio cancels every worker; record the in-flight run, start no more.
                queue.clear()
                self.interrupted(record, started)
                raise
            self.end(record)


class _Reporter:
    """Progress bar, notes and the closing summary on the terminal (silent when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._console = None
        if not quiet:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)

    def warn(self, message: str) -> None:
        if self._console:
            self._console.print(f"[yellow]warning:[/yellow] {message}")

    def note(self, message: str) -> None:
        if self._console:
            self._console.print(message)

    def progress(self, total: int) -> _Progress:
        return _Progress(self._console, total)

    def summary(self, summary: SweepSummary) -> None:
        if not self._console:
            return
        ran = summary.ok + summary.failed
        head = "interrupted" if summary.interrupted else "done"
        line = (
            f"{head}: {ran} run{'s' if ran != 1 else ''} in {summary.duration:.1f} s, "
            f"[green]{summary.ok} ok[/green], "
            f"[{'red' if summary.failed else 'green'}]{summary.failed} failed[/]"
        )
        if summary.skipped:
            line += f", {summary.skipped} skipped"
        self._console.print(line)
        if summary.failed:
            self._console.print(
                f"see the failures: python -m tracker ls -d {summary.database} --status failed"
            )
        self._console.print(f"results in {summary.database}: python -m tracker ls -d "
                            f"{summary.database}")


class _Progress:
    """A rich progress bar with done / failed / running counts and the ETA."""

    def __init__(self, console: Any, total: int) -> None:
        self.console = console
        self.total = total
        self.running = 0
        self.failed = 0
        self._bar = None
        self._task = None

    def __enter__(self) -> _Progress:
        if self.console is not None and self.total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("sweep", total=self.total, counts=self._counts())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def started(self) -> None:
        self.running += 1
        self._update(0)

    def finished(self, ok: bool) -> None:
        self.running -= 1
        self.failed += 0 if ok else 1
        self._update(1)

    def _counts(self) -> str:
        failed = f"[red]{self.failed} failed[/red]" if self.failed else "0 failed"
        return f"{failed}, {self.running} running"

    def _update(self, advance: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, counts=self._counts())
