"""The sweep driver: one loop for every kind of sweep, on every executor.

It asks a *sampler* (:mod:`ploomber_like.samplers`: a grid, random or Optuna search) for up to
``workers`` points, submits them to an *executor* (:mod:`ploomber_like.executors`: local warm
kernels, a ``concurrent.futures`` pool, Dask), writes each record as it comes back, tells the
sampler, and repeats. It alone writes the database: one transaction per record, as runs finish.
It owns planning, resuming, the progress bar and Ctrl-C; it never knows which sampler or
executor it has.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Mapping
from typing import Any

from ploomber_like.durations import PointDurations
from ploomber_like.execute import new_record
from ploomber_like.executors import Executor, executor_for
from ploomber_like.executors.base import fail_record
from ploomber_like.inputs import InputChange, changed_inputs
from ploomber_like.interrupts import WAKE_SECONDS, CtrlC
from ploomber_like.kernels.processes import pid_alive
from ploomber_like.notebook import (
    PreparedRun,
    assigned_names,
    groups_from_text,
    groups_known,
    literal_defaults,
    plan_runs,
    read_text,
    validate_parameters,
)
from ploomber_like.options import RunOptions
from ploomber_like.pruning import (
    DEFAULT_MIN_STEPS,
    PruneOptions,
    RunPruner,
    prune_options,
    time_saved,
)
from ploomber_like.record import (
    DEFAULT_MAX_ARTIFACT_BYTES,
    Environment,
    Input,
    Record,
    RecordOptions,
    Status,
)
from ploomber_like.replicates import Replicates, group_key
from ploomber_like.samplers.base import Point, Sampler
from ploomber_like.samplers.grid import Grid, GridSampler, expand_grid
from ploomber_like.store import Store
from ploomber_like.sweep_report import SweepProgress, SweepReporter, SweepSummary

__all__ = ["expand_grid", "run_sweep", "track_grid"]

#: Points of a planned sweep (a grid) read, checked and looked up in the database at a time.
PLAN_CHUNK = 1000


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
    output_scalars: bool | str = True,
    save_notebook: bool = False,
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    name: str | None = None,
    prune: str | PruneOptions | None = None,
    prune_on: str | None = None,
    min_steps: int = DEFAULT_MIN_STEPS,
    repeat: int = 1,
    seed_param: str | None = None,
) -> SweepSummary:
    """Run ``path`` once per point of ``grid``, recording each run in ``database``.

    Parameters
    ----------
    path : str or Path
        The script or notebook, as for :func:`~ploomber_like.track_execution`.
    grid : dict of lists, list of dicts, ParameterGrid, or iterable of dicts
        A dict of lists is its cartesian product; any other iterable of dicts is taken point by
        point. Points are read as the sweep goes, never all at once.
    database : str or Path
        SQLite file to write.
    fixed : dict, optional
        Parameters added to every point (a point's own value wins).
    workers : int, optional
        Runs at once; default: the number of cores (on a cluster: its threads).
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
    executor : None, str, distributed.Client or concurrent.futures.Executor, optional
        Where the points run (see :mod:`ploomber_like.executors`): default, local kernels; a
        string other than ``"local"`` is a Dask scheduler address.
    output_scalars, save_notebook, max_artifact_bytes
        As for :func:`~ploomber_like.track_execution`. With several workers, each run works in
        a temporary directory of its own, outside the current directory, with links to the
        current directory's entries, so runs writing the same file name keep their own files;
        it is removed once the run's files are recorded. With one worker (or one point), runs
        work in the current directory.
    name : str, optional
        Stored in every run's ``name`` column: a label for the sweep.
    prune : {"median", "patience:K"}, optional
        Stop runs early from the output scalar ``prune_on`` as they print it (see
        :mod:`ploomber_like.pruning`): ``"median"`` stops a run worse than the median of the
        other runs at the same step, ``"patience:K"`` one without improvement in ``K`` steps.
        A stopped run is recorded ``pruned`` with what it showed so far; resuming does not
        rerun it. Needs the local executor.
    prune_on : str, optional
        ``KEY``, ``KEY:min`` (the default direction) or ``KEY:max``: the series pruning reads.
    min_steps : int
        No run is pruned before this step of the series (default 3).
    repeat : int
        Runs of each point (default 1); replicates past the first get distinct seeds (see
        :mod:`ploomber_like.replicates`).
    seed_param : str, optional
        The parameter holding the seed, if not ``seed`` or ``random_state``.

    Returns
    -------
    SweepSummary
    """
    options = RunOptions(
        workers=workers, timeout=timeout, force=force, preload=preload, quiet=quiet,
        comment=comment, executor=executor, output_scalars=output_scalars,
        save_notebook=save_notebook, max_artifact_bytes=max_artifact_bytes, name=name,
    )
    sampler = GridSampler(grid if isinstance(grid, Grid) else Grid(grid))
    return run_sweep(
        path, sampler, database, options, fixed=fixed, prune=prune, prune_on=prune_on,
        min_steps=min_steps, repeat=repeat, seed_param=seed_param,
    )


def run_sweep(
    path: str | os.PathLike[str],
    sampler: Sampler,
    database: str | os.PathLike[str],
    options: RunOptions,
    *,
    fixed: Mapping[str, Any] | None = None,
    prune: str | PruneOptions | None = None,
    prune_on: str | None = None,
    min_steps: int = DEFAULT_MIN_STEPS,
    repeat: int = 1,
    seed_param: str | None = None,
) -> SweepSummary:
    """Run the points ``sampler`` proposes; the driver behind :func:`track_grid` and searches.

    Bad input (the file, the first points, an unreachable executor) raises a
    :class:`~ploomber_like.errors.TrackerError` before the database is opened; ``options``
    were checked when built. ``path`` and ``fixed`` as for :func:`track_grid`.
    """
    fixed = validate_parameters(fixed or {})
    pruning = prune_options(prune, prune_on, min_steps)
    replicates = Replicates(repeat, seed_param)
    sampler.replicated(replicates.repeat)
    path, text = read_text(path)
    reporter = SweepReporter(options.quiet)
    plan = _Plan(sampler, fixed, reporter, replicates)
    if sampler.planned:
        plan.read_ahead(1)  # the first points are checked before anything starts or is written
    runner = executor_for(options.executor, options)
    try:
        if not groups_known(text, path):
            # A file new or changed since it was last read: the kernels' template starts now,
            # while jupytext reads it (its points have not run: they will need the template).
            runner.prepare(path, text)
        plan.read_file((path, text, *groups_from_text(text, path)))
        if pruning is not None:
            runner.watch(RunPruner(pruning, sampler.pruning_rule(pruning)))
    except BaseException:
        runner.close()
        raise
    # A plan's points start longest first, as earlier sweeps of the file timed them: not a
    # search's (each trial is asked when it can run), and not one at a time (nothing to gain).
    durations = PointDurations(path) if sampler.planned else None
    plan.point_durations = durations if runner.workers > 1 else None
    # Runs that may execute at once get a directory each, so files they write by the same name
    # stay apart; one at a time, they write where `python fit.py` would.
    single = runner.workers == 1 or (sampler.total == 1 and replicates.repeat == 1)
    record_options = options.record_options(database, own_directories=not single)
    try:
        with Store(database) as store:
            store.mark_orphans_interrupted(pid_alive)
            sampler.resume(store)
            plan.store, plan.force = store, options.force
            driver = _Driver(store, runner, sampler, plan, reporter, options, record_options)
            driver.point_durations = durations
            return driver.run(database)
    finally:
        runner.close()
        if durations is not None:
            durations.save()


class _Plan:
    """The points still to run, planned as runs of the file (one per replicate); skips those
    recorded ``ok`` or ``pruned``."""

    def __init__(
        self,
        sampler: Sampler,
        fixed: dict[str, Any],
        reporter: SweepReporter,
        replicates: Replicates | None = None,
    ) -> None:
        #: The file read (path, text, groups, parameters group): set by :meth:`read_file`.
        self.file: tuple[Any, ...] = ()
        self.replicates = replicates or Replicates()
        self.seed: str | None = None
        self.defaults: dict[str, Any] = {}
        self.sampler = sampler
        self.fixed = fixed
        self.reporter = reporter
        #: Set once the database is open; points read before wait to be looked up there.
        self.store: Store | None = None
        self.force = False
        self.ready: collections.deque[tuple[Point, PreparedRun]] = collections.deque()
        self.exhausted = False
        self.drawn = 0
        self.skipped = 0
        self._unchecked: list[tuple[Point, PreparedRun]] = []
        #: Points drawn and their parameters checked before the file was read: planned then.
        self._drawn: list[tuple[Point, dict[str, Any]]] = []
        self._warned: set[str] = set()
        #: Set to start each chunk's longest points first (see ploomber_like.durations).
        self.point_durations: PointDurations | None = None

    def read_file(self, file: tuple[Any, ...]) -> None:
        """Plan the runs of ``file`` (path, text, groups, parameters group's index), the points
        drawn before it was read first."""
        self.file = file
        _, _, groups, parameters_index = file
        cell = None if parameters_index is None else groups[parameters_index].source
        self.seed = self.replicates.seed_name([] if cell is None else assigned_names(cell))
        self.defaults = {} if cell is None else literal_defaults(cell)
        drawn, self._drawn = self._drawn, []
        if drawn:
            self._unchecked = self._planned(drawn)

    def take(self, n: int) -> list[tuple[Point, PreparedRun]]:
        """Up to ``n`` points to submit now."""
        self.read_ahead(n)
        return [self.ready.popleft() for _ in range(min(n, len(self.ready)))]

    def still_needed(self, in_flight: int) -> int:
        """Points expected after those in flight (a hint for starting kernels ahead)."""
        if self.sampler.planned:
            return len(self.ready) + (0 if self.exhausted else PLAN_CHUNK)
        return max(0, (self.sampler.total or 0) - in_flight)

    def read_ahead(self, n: int) -> None:
        """Have ``n`` points ready if the sampler has them.

        A plan is read a chunk at a time (one database lookup per chunk); a search is asked for
        exactly the points it will run now, since it learns from each result.
        """
        while len(self.ready) < n and (self._unchecked or not self.exhausted):
            if not self._unchecked:
                points = self.sampler.ask(PLAN_CHUNK if self.sampler.planned else n)
                if not points:
                    self.exhausted = True
                    return
                self.drawn += len(points)
                # A plan that has given all it holds says so now, not at the next (empty) ask:
                # meanwhile the hint of points to come (still_needed) would have kernels
                # started ahead for runs that never come.
                total = self.sampler.total if self.sampler.planned else None
                self.exhausted = total is not None and self.drawn >= total
                checked = [
                    (point, validate_parameters({**self.fixed, **point.parameters}))
                    for point in points
                ]
                if not self.file:
                    self._drawn += checked
                    return
                self._unchecked = self._planned(checked)
            if self.store is None:
                return
            self._keep_unrecorded()

    def _planned(
        self, points: list[tuple[Point, dict[str, Any]]]
    ) -> list[tuple[Point, PreparedRun]]:
        """Each point (with its checked parameters) planned as a run per replicate."""
        owners, checked = [], []
        for point, parameters in points:
            for copy in self.replicates.expand(parameters, self.seed, self.defaults):
                owners.append(point)
                checked.append(copy)
        path, text, groups, parameters_index = self.file
        runs = plan_runs(path, text, groups, parameters_index, checked)
        for i, run in enumerate(runs):
            run.replicate = i % self.replicates.repeat
            effective = {**run.defaults, **run.overrides}
            run.replicate_group = group_key(path.name, effective, self.seed)
            for message in run.warnings:
                if message not in self._warned:
                    self._warned.add(message)
                    self.reporter.warn(message)
        return list(zip(owners, runs, strict=True))

    def _keep_unrecorded(self) -> None:
        batch, self._unchecked = self._unchecked, []
        if self.sampler.planned and not self.force and self.store is not None:
            recorded = self.store.done_inputs(run.fingerprint for _, run in batch)
            kept = [
                (point, run) for point, run in batch
                if not self._still_current(run, recorded.get(run.fingerprint, []))
            ]
            self.skipped += len(batch) - len(kept)
            batch = kept
        if self.point_durations is not None:
            batch = self.point_durations.longest_first(batch, lambda item: item[1].overrides)
        self.ready.extend(batch)


    def _still_current(self, run: PreparedRun, recorded: list[list[Input]]) -> bool:
        """Whether a run recorded ``ok`` with ``run``'s fingerprint read inputs (files, user
        modules) that all hash the same now; notes the inputs that changed otherwise."""
        changes: list[InputChange] = []
        for inputs in recorded:
            changes = changed_inputs(inputs, run.script_path)
            if not changes:
                return True
        message = "recorded ok but inputs changed since, rerunning: " + ", ".join(
            str(c) for c in changes
        )
        if changes and message not in self._warned:
            self._warned.add(message)
            self.reporter.note(message)
        return False


class _Driver:
    """One sweep: ask, submit, wait for some, write, tell; until the sampler has no more."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        sampler: Sampler,
        plan: _Plan,
        reporter: SweepReporter,
        options: RunOptions,
        record_options: RecordOptions,
    ) -> None:
        self.store = store
        self.record_options = record_options
        self.executor = executor
        self.sampler = sampler
        self.plan = plan
        self.reporter = reporter
        self.comment = options.comment
        self.name = options.name
        self.environment = Environment.collect(plan.file[0])
        self.in_flight: dict[str, tuple[Point, Record, float]] = {}
        self.started: str | None = None
        #: Durations of the runs that ended ``ok`` and ``pruned``: the time pruning saved.
        self.durations: dict[str, list[float]] = {Status.OK: [], Status.PRUNED: []}
        #: Where the duration of each point that ended ``ok`` is noted for the next sweep.
        self.point_durations: PointDurations | None = None

    def run(self, database: str | os.PathLike[str]) -> SweepSummary:
        summary = SweepSummary(str(database), total=0)
        # Read until the first point to run, so the note below is exact for every grid that
        # is entirely recorded (and for the first chunk of a larger one).
        self.plan.read_ahead(1)
        repeat = self.plan.replicates.repeat
        if self.plan.skipped:
            seen = self.plan.drawn if self.plan.exhausted else self.sampler.total
            runs = "points" if repeat == 1 else "runs"
            self.reporter.note(
                f"skipping {self.plan.skipped} of {(seen or 0) * repeat} {runs} already "
                "recorded ok (use force=True / --force to rerun them)"
            )
        total = self.sampler.total
        total = None if total is None else total * repeat
        expected = None if total is None else total - self.plan.skipped
        summary.total = total or 0
        started = time.monotonic()
        try:
            with CtrlC() as ctrl_c, self.reporter.progress(expected) as progress:
                self._loop(summary, progress, ctrl_c)
        except BaseException as exc:
            summary.interrupted = isinstance(exc, KeyboardInterrupt)
            if not summary.interrupted:
                summary.stopped_by = str(exc) or type(exc).__name__
            self._stop(summary, exc)
            raise
        finally:
            summary.duration = time.monotonic() - started
            summary.skipped = self.plan.skipped
            summary.started = self.started
            summary.time_saved = time_saved(
                self.durations[Status.PRUNED], self.durations[Status.OK]
            )
            if total is None:
                summary.total = self.plan.drawn * repeat
            self.reporter.summary(summary)
        return summary

    def _loop(self, summary: SweepSummary, progress: SweepProgress, ctrl_c: CtrlC) -> None:
        workers = self.executor.workers
        while True:
            free = workers - self.executor.in_flight
            skipped = self.plan.skipped
            for point, run in self.plan.take(free) if free > 0 else []:
                self._submit(point, run, progress)
            progress.skip(self.plan.skipped - skipped)
            if not self.executor.in_flight:
                return
            for record in self.executor.wait_some(timeout=WAKE_SECONDS):
                self._end(record, summary, progress)
            ctrl_c.check()

    def _submit(self, point: Point, run: PreparedRun, progress: SweepProgress) -> None:
        run.options = self.record_options
        record = new_record(run, self.environment)
        record.comment = self.comment
        record.name = self.name
        record.replicate, record.replicate_group = run.replicate, run.replicate_group
        self.sampler.begin(point, record)
        self.store.start(record)
        if self.started is None:
            self.started = record.created
        self.in_flight[record.uuid] = (point, record, time.monotonic())
        progress.started()
        still_needed = self.plan.still_needed(len(self.in_flight))
        self.executor.submit(run, record, still_needed=still_needed)

    def _end(self, record: Record, summary: SweepSummary, progress: SweepProgress) -> None:
        point, _, _ = self.in_flight.pop(record.uuid)
        try:
            # The sampler may stop the sweep (a search's objective is not shown): the record
            # it was told about is written and counted all the same.
            self.sampler.tell(point, record)
        finally:
            self.store.finish(record)
            if record.ok:
                summary.ok += 1
            elif record.status == Status.PRUNED:
                summary.pruned += 1
            else:
                summary.failed += 1
            if record.status in self.durations and record.duration is not None:
                self.durations[record.status].append(record.duration)
            if record.ok and record.duration is not None and self.point_durations is not None:
                self.point_durations.note(record.overrides, record.duration)
            status = str(record.status)
            summary.statuses[status] = summary.statuses.get(status, 0) + 1
            summary.runs.append((record.uuid, status))
            progress.finished(status)

    def _stop(self, summary: SweepSummary, exc: BaseException) -> None:
        """Ctrl-C, or the executor lost: start nothing more, stop what runs, leave no row
        ``running``."""
        returned = {record.uuid: record for record in self.executor.cancel()}
        for uuid, (_, record, started) in list(self.in_flight.items()):
            record = returned.get(uuid, record)
            if record.status == Status.RUNNING and not isinstance(exc, KeyboardInterrupt):
                fail_record(record, Status.INTERRUPTED, exc, started)
            elif record.status in (Status.RUNNING, Status.INTERRUPTED):
                record.interrupt("the sweep was interrupted", started)
            # A run that ended just before the stop keeps how it ended.
            self._end(record, summary, SweepProgress(None, None))
