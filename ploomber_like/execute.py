"""Running a prepared file on a kernel, group by group, and turning the outcome into a Record."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from ploomber_like.capture import HOOK_NAME, CapturedRun, cap_text, setup_code, strip_ansi
from ploomber_like.kernels import KernelPool, ReadyKernel
from ploomber_like.notebook import PreparedRun
from ploomber_like.record import Environment, Record, RunError, Status, new_created, new_uuid


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
    )


async def run_on_pool(
    prepared: PreparedRun,
    record: Record,
    pool: KernelPool,
    *,
    timeout: float | None = None,
    still_needed: int = 0,
    on_group: Callable[[int], None] | None = None,
) -> Record:
    """Take a kernel from ``pool``, run ``prepared`` on it, always release the kernel."""
    started = time.monotonic()
    try:
        kernel = await pool.acquire(still_needed)
    except Exception as exc:  # the run is recorded as failed rather than lost
        record.fail(Status.CRASHED, exc, started)
        return record
    try:
        return await execute_run(
            prepared, record, kernel, timeout=timeout, started=started, on_group=on_group
        )
    finally:
        kernel.shutdown()


async def execute_run(
    prepared: PreparedRun,
    record: Record,
    kernel: ReadyKernel,
    *,
    timeout: float | None = None,
    started: float | None = None,
    on_group: Callable[[int], None] | None = None,
) -> Record:
    """Execute every group of ``prepared`` on ``kernel``; fill in and return ``record``.

    ``on_group`` is called with a group's index as it starts (for progress).

    Failures are recorded, never raised: an exception, ``sys.exit``, a dead kernel or a timeout
    each end the run with their status and error, keeping every value captured before.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbformat.v4 import new_code_cell, new_notebook

    started = time.monotonic() if started is None else started
    # The timeout covers the user's code, not our kernel start-up: a busy machine that starts
    # kernels slowly must not turn runs into timeouts before their first line.
    deadline = None if timeout is None else time.monotonic() + timeout
    captured = CapturedRun()
    steps = _plan_steps(prepared, kernel)
    notebook = new_notebook(cells=[new_code_cell(source) for _, source in steps])
    client = NotebookClient(
        notebook, km=None, allow_errors=False, interrupt_on_timeout=False, record_timing=False
    )
    client.kc = kernel.client

    try:
        for cell_index, ((group, _), cell) in enumerate(zip(steps, notebook.cells, strict=True)):
            if deadline is not None:
                # nbclient's timeout is a whole number of seconds.
                client.timeout = max(math.ceil(deadline - time.monotonic()), 1)
            if group is not None and on_group is not None:
                on_group(group)
            step_started = time.monotonic()
            stopped = True
            try:
                await client.async_execute_cell(cell, cell_index, store_history=group is not None)
                stopped = False
            except CellTimeoutError:
                record.status = Status.TIMEOUT
                record.error = RunError(
                    "Timeout", f"the run exceeded its timeout of {timeout:g} s",
                    group=group, group_source=_group_source(prepared, group),
                )
            except DeadKernelError:
                if kernel.handle.is_alive():
                    # nbclient reports a cancelled wait (Ctrl-C) as a dead kernel: it is not.
                    raise asyncio.CancelledError from None
                record.status = Status.CRASHED
                record.error = RunError(
                    "KernelDied", kernel.handle.describe_exit(), traceback=kernel.handle.log_tail(),
                    group=group, group_source=_group_source(prepared, group),
                )
            except CellExecutionError:
                record.status, record.error = _error_from_outputs(cell.outputs, prepared, group)
            finally:
                if group is not None:
                    record.group_durations.append(time.monotonic() - step_started)
                captured.add_outputs(cell.get("outputs", []))
            if stopped:
                break
    except asyncio.CancelledError:
        # Ctrl-C: keep what the run showed so far, then let the cancellation go on.
        record.interrupt("interrupted by the user")
        _fill_record(record, captured, started)
        raise
    if record.error is None:
        record.status = Status.OK  # also after sys.exit(0): it ends a script successfully
    if record.status in (Status.OK, Status.FAILED):
        # The kernel still runs: ask which modules the run imported, for package versions.
        modules_cell = new_code_cell(f"{HOOK_NAME}.report_modules()")
        notebook.cells.append(modules_cell)
        client.timeout = 10
        with contextlib.suppress(Exception):
            await client.async_execute_cell(modules_cell, len(steps), store_history=False)
            captured.add_outputs(modules_cell.outputs)

    _fill_record(record, captured, started)
    return record


def _fill_record(record: Record, captured: CapturedRun, started: float) -> None:
    # The parameters cell's order first, then given values it does not define.
    record.parameters = {**captured.parameters, **record.parameters, **captured.parameters}
    record.values = captured.values
    record.blobs = captured.blobs
    record.stdout = captured.stdout_text()
    record.stderr = captured.stderr_text()
    if record.environment is not None:
        record.environment = replace(
            record.environment, packages=package_versions(tuple(captured.modules))
        )
    record.duration = time.monotonic() - started


def _plan_steps(prepared: PreparedRun, kernel: ReadyKernel) -> list[tuple[int | None, str]]:
    """Cells to execute, each with its group index (None for our own cells)."""
    steps: list[tuple[int | None, str]] = []
    if kernel.capture_installed_for != prepared.script_path:
        steps.append((None, setup_code(prepared.script_path)))
    # The injected values and the report of the parameters' effective values: one cell.
    parameter_code = []
    if prepared.overrides:
        parameter_code.append(prepared.injected_source)
    if prepared.parameter_names:
        parameter_code.append(f"{HOOK_NAME}.report_parameters({prepared.parameter_names!r})")
    parameter_steps = [(None, "\n".join(parameter_code))] if parameter_code else []
    if prepared.inject_after < 0:
        steps += parameter_steps
    for group in prepared.groups:
        steps.append((group.index, group.source))
        if group.index == prepared.inject_after:
            steps += parameter_steps
    return steps


def _group_source(prepared: PreparedRun, group: int | None) -> str | None:
    return prepared.groups[group].source if group is not None else None


def _error_from_outputs(
    outputs: list[dict[str, Any]], prepared: PreparedRun, group: int | None
) -> tuple[Status, RunError | None]:
    error = next((o for o in outputs if o.get("output_type") == "error"), None)
    name = error.get("ename", "Error") if error else "Error"
    message = error.get("evalue", "") if error else ""
    if name == "SystemExit" and message in ("", "0", "None"):
        return Status.OK, None  # stop here, successfully
    traceback = strip_ansi("\n".join(error.get("traceback", []))) if error else ""
    status = Status.INTERRUPTED if name == "KeyboardInterrupt" else Status.FAILED
    return status, RunError(
        name, message, cap_text(traceback, 50_000),
        group=group, group_source=_group_source(prepared, group),
    )


@lru_cache(maxsize=64)
def package_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """Versions of the distributions providing ``modules``."""
    from importlib import metadata

    providers = module_distributions()
    versions = {}
    for module in modules:
        for distribution in providers.get(module, []):
            try:
                versions[distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(versions.items()))


@lru_cache(maxsize=1)
def module_distributions() -> dict[str, list[str]]:
    """Which distributions provide each top-level module (scanning them takes ~0.5 s, once)."""
    from importlib import metadata

    return metadata.packages_distributions()
