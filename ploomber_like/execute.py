"""Running a prepared file on a kernel, group by group, and turning the outcome into a Record."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ploomber_like.artifacts import changed_files, run_directory, snapshot
from ploomber_like.capture.outputs import CapturedRun
from ploomber_like.capture.protocol import (
    HOOK_NAME,
    CellEnd,
    expect_parameters_code,
    keep_figures_code,
    run_cells_code,
    scalar_lines_code,
    setup_code,
    started_cell,
)
from ploomber_like.inputs import hash_inputs
from ploomber_like.kernels import KernelPool, ReadyKernel
from ploomber_like.notebook import Group, PreparedRun
from ploomber_like.outcome import (
    Cancelled,
    Completed,
    Ending,
    KernelDied,
    Outcome,
    Raised,
    TimedOut,
    classify,
)
from ploomber_like.output_notebook import INJECTED_TAG, PARAMETERS_TAG, executed_notebook
from ploomber_like.provenance import package_versions
from ploomber_like.record import (
    Environment,
    MetricPoint,
    Record,
    Status,
    new_created,
    new_uuid,
)
from ploomber_like.run_messages import RequestClient, RunOutput, run_client_class
from ploomber_like.scalars import scalar_pattern


def new_record(prepared: PreparedRun, environment: Environment | None = None) -> Record:
    """The ``running`` record of a run that is about to start."""
    return Record(
        uuid=new_uuid(),
        created=new_created(),
        path=str(prepared.path),
        source=prepared.text,
        parameters=dict(prepared.overrides),
        overrides=dict(prepared.overrides),
        environment=environment or Environment.collect(prepared.path),
        fingerprint=prepared.fingerprint,
        options=prepared.options,
    )


async def run_on_pool(
    prepared: PreparedRun,
    record: Record,
    pool: KernelPool,
    *,
    timeout: float | None = None,
    still_needed: int = 0,
    on_group: Callable[[int], None] | None = None,
    on_points: Callable[[list[MetricPoint]], None] | None = None,
) -> Record:
    """Take a kernel from ``pool``, run ``prepared`` on it, always release the kernel.

    The time spent waiting for the kernel is the record's ``kernel_wait``, not its
    ``duration``: the first runs of a sweep wait seconds for the warm template, later ones not.
    """
    waiting = time.monotonic()
    try:
        kernel = await pool.acquire(still_needed)
    except Exception as exc:  # the run is recorded as failed rather than lost
        record.kernel_wait = time.monotonic() - waiting
        record.fail(Status.CRASHED, exc, time.monotonic())
        return record
    record.kernel_wait = time.monotonic() - waiting
    made_here = None
    learned = pool.learned
    try:
        own_directory = kernel.directory
        if own_directory is None:
            own_directory = made_here = run_directory(prepared.options)
        return await execute_run(
            prepared, record, kernel, timeout=timeout, on_group=on_group,
            own_directory=own_directory, on_points=on_points,
            on_imports=learned.note if learned is not None else None,
        )
    finally:
        # Its files are recorded (or the run is over): nothing of its directory stays on disk.
        kernel.shutdown()
        if made_here is not None:
            shutil.rmtree(made_here, ignore_errors=True)


async def execute_run(
    prepared: PreparedRun,
    record: Record,
    kernel: ReadyKernel,
    *,
    timeout: float | None = None,
    on_group: Callable[[int], None] | None = None,
    own_directory: Path | None = None,
    on_imports: Callable[[dict[str, str]], None] | None = None,
    on_points: Callable[[list[MetricPoint]], None] | None = None,
) -> Record:
    """Execute every group of ``prepared`` on ``kernel``; fill in and return ``record``.

    ``on_group`` is called with a group's index as it starts (for progress); ``on_points``
    with the output scalars' new points as their lines are printed (for pruning); ``on_imports``,
    once the run has ended, with the modules it imported beyond those of the template the
    kernel was forked from (name -> file; not called for a fresh kernel). What else the run
    records (output scalars, files, the executed notebook, echoing its output) is set by
    ``prepared.options``. ``own_directory``: where the run works, if not in the kernel's
    working directory (see :func:`~ploomber_like.artifacts.run_directory`).

    Failures are recorded, never raised: an exception, ``sys.exit``, a dead kernel or a timeout
    each end the run with their status and error (:func:`~ploomber_like.outcome.classify`),
    keeping every value captured before.
    """
    started = time.monotonic()
    options = prepared.options
    output = RunOutput(options, on_points)
    # The kernel's working directory unless the run has its own (a sweep's parallel runs).
    workdir = own_directory or Path(options.working_directory or Path.cwd())
    record.workdir = str(workdir)
    before = snapshot(workdir, options) if own_directory is None else {}

    setup, steps = _plan_steps(prepared, kernel, own_directory)
    execution = _Execution(prepared, setup, steps, kernel, output, timeout, on_group)
    try:
        ending = await execution.run(record.group_durations)
    except asyncio.CancelledError:
        # Ctrl-C: keep what the run showed so far, then go on.
        _set_outcome(record, classify(Cancelled(), str(prepared.path), {}))
        _fill_record(record, output, started)
        raise
    _set_outcome(record, classify(ending, str(prepared.path), execution.groups_by_count))
    # The kernel reported them once the run ended, unless it was interrupted or died.
    if on_imports is not None and output.captured.run_imports:
        on_imports(output.captured.run_imports)

    if options.save_notebook:
        record.notebook = _save_notebook(prepared, steps, execution, output.captured)
    artifacts, blobs, notes = changed_files(workdir, before, options)
    record.artifacts = artifacts
    # What the run wrote is its output, not an input, even when it read it back. Off the event
    # loop: the first hash of a large data file takes seconds, while other runs stream output.
    written = [str(workdir / a.path) for a in artifacts]
    record.inputs = await asyncio.to_thread(
        hash_inputs, output.captured.inputs, prepared.script_path,
        [*written, *options.ignored_paths],
    )
    for blob in blobs:
        output.captured.add_blob(blob)
    for note in notes:
        output.stream("stderr", note, [])
    _fill_record(record, output, started)
    return record


def _set_outcome(record: Record, outcome: Outcome) -> Outcome:
    record.status, record.error = outcome.status, outcome.error
    return outcome


def _code_cell(source: str) -> Any:
    """A code cell for nbclient to execute.

    Not nbformat's ``new_code_cell`` / ``new_notebook``: they check every cell and then the
    notebook against the JSON schema, ~14 ms of the driver's CPU for a run of a dozen cells,
    to check cells we build from strings ourselves.
    """
    from nbformat import NotebookNode

    return NotebookNode(
        cell_type="code", metadata=NotebookNode(), execution_count=None, source=source, outputs=[]
    )


class _Execution:
    """A run's cells executed on its kernel in one request, up to the first that ends the run,
    and what the kernel reports on the way.

    The kernel runs each cell as a cell of its own and reports its end (its execution count,
    seconds, and exception if any: :class:`~ploomber_like.capture.protocol.CellEnd`), so a run
    costs one round trip of Jupyter messages instead of one per group.
    """

    def __init__(
        self,
        prepared: PreparedRun,
        setup: str,
        steps: list[_Step],
        kernel: ReadyKernel,
        output: RunOutput,
        timeout: float | None,
        on_group: Callable[[int], None] | None,
    ) -> None:
        from nbformat import NotebookNode

        self.prepared = prepared
        self.steps = steps
        self.kernel = kernel
        self.output = output
        self.timeout = timeout
        self.on_group = on_group
        # Our set-up first, in the same request: the capture it installs runs the cells.
        cells = [(step.source, step.group) for step in steps]
        self.cell = _code_cell("\n".join(filter(None, [setup, run_cells_code(cells)])))
        # The timeout covers the user's code, not our kernel start-up: a busy machine that starts
        # kernels slowly must not turn runs into timeouts before their first line.
        self.deadline = None if timeout is None else time.monotonic() + timeout
        #: The last traceback the kernel sent (an ``error`` output, or a failed request's reply).
        self.traceback: list[str] = []
        #: How each cell ended, in order.
        self.ends: list[CellEnd] = []
        #: The outputs of each cell that ended, in order (for the executed notebook).
        self.step_outputs: list[list[Any]] = []
        #: Group of each execution count, to name the user's file in tracebacks.
        self.groups_by_count: dict[int, Group] = {}
        #: The step the kernel died in (from its log), or where our own code failed.
        self.died_in: int | None = None
        #: When the running cell started, as far as the driver knows (its predecessor's end).
        self.cell_started = time.monotonic()
        self.client = run_client_class()(
            NotebookNode(metadata=NotebookNode(), cells=[self.cell]), km=None, allow_errors=False,
            interrupt_on_timeout=False, record_timing=False, timeout_func=self.seconds_left,
            on_cell_error=self._request_failed,
            # What the run showed can reach us after its request's reply: a loaded kernel's I/O
            # thread sends it late (its flush gives up after 10 s). nbclient waits 4 s for it,
            # then drops it without a word; wait as long as the run may take. A kernel that dies
            # meanwhile still ends the wait within a second.
            iopub_timeout=math.ceil(timeout) if timeout else NO_TIMEOUT,
            raise_on_iopub_timeout=True,
        )
        self.requests = RequestClient(kernel.client)
        self.client.kc = self.requests
        self.client.on_stream = output.stream
        self.client.on_error = self._error_shown
        self.client.on_cell_end = self._cell_ended

    async def run(self, durations: list[float]) -> Ending:
        """Execute the cells until one ends the run; append each group's duration (as the
        kernel timed it) to ``durations``. Raises ``CancelledError`` when the run is cancelled
        (Ctrl-C)."""
        self._starting(0)
        try:
            ending = await self._execute()
        except asyncio.CancelledError:
            # What the kernel showed before Ctrl-C may still wait in its I/O thread, or unread
            # in the channel. Interrupted, the kernel sends it, then its request's end: read up
            # to that end, all of it arrives in order before it.
            await self._interrupt(seconds=CANCEL_GRACE)
            raise
        finally:
            durations += [end.seconds for end in self.ends if end.group is not None]
            reported = bool(self.ends) and self.ends[-1].ename is not None
            if not reported and self._group_at(self._running_index()) is not None:
                # The cell that was stopped (a crash, Ctrl-C) never reported its end.
                durations.append(time.monotonic() - self.cell_started)
            # What the cell that did not end showed.
            self.output.captured.add_outputs(self.cell.outputs)
        return ending

    def executed_cells(self) -> list[tuple[list[Any], int | None]]:
        """The outputs and execution count of each cell that ran, the last maybe stopped."""
        ended = zip(self.step_outputs, self.ends, strict=True)
        cells = [(outputs, end.count) for outputs, end in ended]
        if len(cells) < len(self.steps):
            cells.append((list(self.cell.outputs), None))
        return cells

    def seconds_left(self, cell: Any) -> int | None:
        if self.deadline is None:
            return None
        # nbclient's timeout is a whole number of seconds.
        return max(math.ceil(self.deadline - time.monotonic()), 1)

    async def _execute(self) -> Ending:
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        try:
            await self.client.async_execute_cell(self.cell, 0, store_history=False)
        except CellTimeoutError:
            group = self._running_group()
            # Interrupted first, the kernel's traceback says where the run was.
            return TimedOut(self.timeout or 0.0, await self._interrupted_traceback(), group)
        except DeadKernelError:
            handle = self.kernel.handle
            if handle.is_alive():
                # nbclient reports a cancelled wait (Ctrl-C) as a dead kernel: it is not.
                raise asyncio.CancelledError from None
            # What the run showed before the kernel died (earlier cells' values, too) may still
            # wait, unread, in the channel; its last messages may never have left it: its log
            # says which cell ran. Every cell before that one sent its end before it started:
            # on a loaded machine they may take a while to be handed over, so they are waited
            # for (bounded); then what the dying cell sent, until the channel stays quiet.
            self.died_in = started_cell(handle.log())
            ended = self.died_in or 0
            await self._read_messages(
                lambda: False, DRAIN_SECONDS, settled=lambda: len(self.ends) >= ended
            )
            return KernelDied(
                handle.describe_exit(), handle.log_tail(), self._running_group(),
                handle.exit_status(),
            )
        except CellExecutionError as exc:
            # Our set-up failed (no cell ran), or our code was interrupted between cells.
            self.died_in = len(self.steps)
            name, message = exc.ename or "Error", exc.evalue or ""
            return Raised(name, message, tuple(self.traceback))
        last = self.ends[-1] if self.ends else None
        if last is not None and last.ename is not None:
            group = self.prepared.groups[last.group] if last.group is not None else None
            # IPython shows SystemExit without its frames; the kernel sent them.
            traceback = last.traceback if last.traceback is not None else self.traceback
            return Raised(last.ename, last.evalue or "", tuple(traceback), group)
        return Completed()

    def _running_index(self) -> int:
        """The index of the step running when the run stopped (past the steps: none)."""
        return self.died_in if self.died_in is not None else len(self.ends)

    def _running_group(self) -> Group | None:
        """The group of the cell running when the run stopped (None: one of ours, or none)."""
        group = self._group_at(self._running_index())
        return self.prepared.groups[group] if group is not None else None

    def _group_at(self, index: int) -> int | None:
        return self.steps[index].group if index < len(self.steps) else None

    def _starting(self, index: int) -> None:
        self.cell_started = time.monotonic()
        group = self._group_at(index)
        if group is not None and self.on_group is not None:
            self.on_group(group)

    def _cell_ended(self, end: CellEnd, outputs: list[Any]) -> None:
        """The kernel reported the end of the next cell; ``outputs``: what it showed so far."""
        self.ends.append(end)
        if end.group is not None and end.count is not None:
            self.groups_by_count[end.count] = self.prepared.groups[end.group]
        # Each cell's outputs apart, as if it had been a request of its own: the executed
        # notebook keeps them by cell, and a clear_output() clears its own cell's only.
        self.step_outputs.append(outputs[:])
        self.output.captured.add_outputs(outputs)
        outputs.clear()
        self.client.clear_display_id_mapping(0)
        if end.ename is None:
            self._starting(len(self.ends))

    def _error_shown(self, content: dict[str, Any]) -> None:
        self.traceback = content.get("traceback") or []

    def _request_failed(self, cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        self.traceback = execute_reply.get("content", {}).get("traceback") or self.traceback

    async def _interrupted_traceback(self) -> tuple[str, ...]:
        """Interrupt a kernel past its timeout (SIGINT, as Jupyter's interrupt does) and wait
        briefly for the interrupted cell's end: its traceback, as sent.

        Code that does not return to Python on SIGINT (a long C call) gives nothing: the kernel
        is killed after :data:`INTERRUPT_GRACE` seconds all the same.
        """
        ended = len(self.ends)
        if await self._interrupt(lambda: len(self.ends) > ended):
            return tuple(self.traceback)
        return ()

    async def _interrupt(
        self, done: Callable[[], bool] = lambda: False, seconds: float | None = None
    ) -> bool:
        """Interrupt the kernel and read what it sends for up to ``seconds`` (by default
        :data:`INTERRUPT_GRACE`), until ``done()`` or the request's end; whether either came."""
        try:
            os.kill(self.kernel.handle.pid, signal.SIGINT)
        except OSError:
            return False
        return await self._read_messages(done, INTERRUPT_GRACE if seconds is None else seconds)

    async def _read_messages(
        self, done: Callable[[], bool], seconds: float,
        settled: Callable[[], bool] | None = None,
    ) -> bool:
        """Handle the request's messages nbclient left unread (it stopped reading), for up to
        ``seconds``, until ``done()`` or idle; whether done. Once the kernel is dead, reading
        stops when ``settled()`` (nothing more is expected) and the channel has been quiet
        for :data:`QUIET_SECONDS`."""
        from queue import Empty

        from nbclient.exceptions import CellExecutionComplete

        deadline = time.monotonic() + seconds
        heard = time.monotonic()
        while time.monotonic() < deadline:
            try:
                message = await self.kernel.client.iopub_channel.get_msg(timeout=0.1)
            except Empty:
                quiet = time.monotonic() - heard >= QUIET_SECONDS
                if quiet and (settled is None or settled()) and not self.kernel.handle.is_alive():
                    return False  # nothing more can come
                continue
            heard = time.monotonic()
            if message["parent_header"].get("msg_id") != self.requests.request_id:
                continue
            try:
                self.client.process_message(message, self.cell, 0)
            except CellExecutionComplete:
                return True
            if done():
                return True
        return False


def _fill_record(record: Record, output: RunOutput, started: float) -> None:
    captured = output.captured
    # The parameters cell's order first, then given values it does not define.
    record.parameters = {**captured.parameters, **record.parameters, **captured.parameters}
    record.values = captured.values
    record.blobs = captured.blobs
    record.stdout = captured.stdout_text()
    record.stderr = captured.stderr_text()
    record.metrics = output.metrics()
    if record.environment is not None:
        record.environment = replace(
            record.environment, packages=package_versions(tuple(captured.modules))
        )
    record.duration = time.monotonic() - started


@dataclass
class _Step:
    """A cell to execute: a group of the file, or one of ours (``group`` None)."""

    source: str
    group: int | None = None
    #: The cell assigning the given parameters (kept in a saved notebook).
    injected: bool = False


def _plan_steps(
    prepared: PreparedRun, kernel: ReadyKernel, directory: Path | None
) -> tuple[str, list[_Step]]:
    """Our set-up code, then the cells to execute, in order."""
    steps: list[_Step] = []
    # Our set-up: capture (unless the pool installed it), the run's directory, the scalar
    # pattern the kernel reads in the output it cuts (a kernel serves a single run).
    ours = []
    if kernel.capture_installed_for != prepared.script_path:
        ours.append(setup_code(prepared.script_path))
    if directory is not None:
        ours.append(f"__import__('os').chdir({str(directory)!r})")
    pattern = scalar_pattern(prepared.options.output_scalars)
    if pattern is not None:
        ours.append(scalar_lines_code(pattern.pattern))
    if prepared.parameter_names:
        ours.append(expect_parameters_code(prepared.parameter_names))
    if prepared.plain_script:
        ours.append(keep_figures_code())
    # The injected values and the report of the parameters' effective values: one cell.
    parameter_code = []
    if prepared.overrides:
        parameter_code.append(prepared.injected_source)
    if prepared.parameter_names:
        # The names are those the first cell gave the capture (expect_parameters_code).
        parameter_code.append(f"{HOOK_NAME}.report_parameters()")
    parameter_steps = []
    if parameter_code:
        parameter_steps.append(_Step("\n".join(parameter_code), injected=bool(prepared.overrides)))
    if prepared.inject_after < 0:
        steps += parameter_steps
    for group in prepared.groups:
        steps.append(_Step(group.source, group.index))
        if group.index == prepared.inject_after:
            steps += parameter_steps
    return "\n".join(ours), steps


def _save_notebook(
    prepared: PreparedRun, steps: list[_Step], execution: _Execution, captured: CapturedRun
) -> str:
    """Store the executed notebook as a blob; return its sha256."""
    kept = []
    for step, (outputs, count) in zip(steps, execution.executed_cells(), strict=False):
        if step.group is not None:
            tags = [PARAMETERS_TAG] if step.group == prepared.inject_after else []
            kept.append((step.source, outputs, count, tags))
        elif step.injected:
            kept.append((prepared.injected_source, [], None, [INJECTED_TAG]))
    blob = executed_notebook(kept, captured.add_blob)
    captured.add_blob(blob)
    return blob.sha256


#: Seconds a timed-out run has to stop on an interrupt (and say where it was) before its
#: kernel is killed.
INTERRUPT_GRACE = 3.0
#: Seconds a run stopped by Ctrl-C has to send what it showed, at most: a loaded machine's
#: kernel may take seconds to answer, and what it would send is the run's record.
CANCEL_GRACE = 10.0
#: Seconds nbclient may wait for a run without a timeout (it takes a number).
NO_TIMEOUT = 10**9
#: Seconds to read what a kernel sent before it died, at most.
DRAIN_SECONDS = 10.0
#: Seconds without a message after which a dead kernel's channel is taken to hold no more.
QUIET_SECONDS = 0.5
