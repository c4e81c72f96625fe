"""Where the per-run time of a sweep goes: a table of mean ms per run, per phase.

Runs a small sweep of examples/fit.py (12 points, 10,000 rows, two plots per run) with timing
wrappers monkeypatched around the driver's functions, and installs timers inside every kernel
(through the capture set-up code the pool runs in each kernel before its run), so no line of
the package changes for the measurement. Each phase is reported as wall time and CPU time:

- driver side (this process): ``time.perf_counter`` and ``time.thread_time`` of the thread
  doing the work (the main thread drives and writes; a second thread runs the kernels' asyncio
  loop);
- kernel side: ``time.perf_counter`` and ``time.process_time`` around IPython's ``run_code``,
  our capture hooks and figure rendering; the kernel's whole CPU from ``/proc/self/stat``.

Phases:

- fork + kernel start: the fork request until the pid comes back, then until the kernel
  answers ``kernel_info`` on shell and iopub; then installing our capture hook. Kernels are
  started ahead, while other runs execute; ``waited for a kernel`` is what a run lost to it.
- Jupyter protocol: each cell's ``execute_request`` until nbclient has its reply and the
  kernel's idle status, minus the kernel's handling of the request (wire, ZeroMQ, nbclient);
  ipykernel/IPython per cell: the handling minus the code run in it (our hooks, IPython's
  cell machinery, ipykernel's messages).
- figure rendering: PNG of each captured figure (``print_figure``) in the kernel.
- capture: our AST rewrite, the hook calls (value conversion, publishing), the report of
  parameters and modules.
- run bookkeeping: the rest of ``execute_run`` in the driver (snapshotting files, building
  the record, package versions), and shutting the kernel down.
- database: ``Store.start`` and ``Store.finish`` (one transaction each).
- driver loop: from a run's end (in the kernels' thread) to the driver's next submit, which
  includes the wake-up, ``Store.finish`` and ``Store.start`` of the next run.
- user code: ``run_code`` minus our hooks in it; compared with the same points executed in
  this process with ``exec`` (figures rendered as Jupyter does), as benchmarks/sweep_fit.py's
  floor does.

    python benchmarks/profile_sweep.py                  # 12 points, default workers
    python benchmarks/profile_sweep.py -w 1 --samples 2000
    python benchmarks/profile_sweep.py --quick          # 4 points: checks the probes still fit
"""

from __future__ import annotations

import argparse
import collections
import contextvars
import functools
import inspect
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
EXAMPLE = HERE.parent.parent / "examples" / "fit.py"
GRID = {
    "n_estimators": [10, 25, 50],
    "max_depth": [5, None],
    "criterion": ["gini", "entropy"],
}


# --- kernel side: run by every kernel's set-up cell -------------------------------------------


def proc_cpu(pid: int | str = "self") -> float:
    """User + system CPU seconds of process ``pid`` itself (not of its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def instrument_kernel(shell: Any, out_dir: str) -> None:
    """Wrap the kernel's request handling, our hooks and figure rendering with timers; write
    the totals to ``out_dir/<pid>.json`` once the run's request (``run_cells``) ends."""
    import builtins

    import IPython.core.pylabtools as pylabtools

    from ploomber_like.capture.kernel import ExpressionWrapper
    from ploomber_like.capture.protocol import HOOK_NAME

    totals: dict[str, float] = collections.defaultdict(float)
    started_cpu = proc_cpu()
    depth = {"hooks": 0}

    def timed(key: str, function: Any, nested_in_hooks: bool = False) -> Any:
        def account(wall: float, cpu: float) -> None:
            totals[key] += wall
            totals[key + "_cpu"] += cpu

        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return await function(*args, **kwargs)
                finally:
                    account(time.perf_counter() - wall, time.process_time() - cpu)
            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # A hook called by another hook (publish inside value) is counted once.
            if nested_in_hooks and depth["hooks"]:
                return function(*args, **kwargs)
            depth["hooks"] += nested_in_hooks
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                account(time.perf_counter() - wall, time.process_time() - cpu)
                depth["hooks"] -= nested_in_hooks
        return wrapper

    hook = getattr(builtins, HOOK_NAME)
    for name in ("mark", "value", "report_parameters", "report_modules"):
        setattr(hook, name, timed("hooks", getattr(hook, name), nested_in_hooks=True))
    for event, key in (("pre_run_cell", "pre_run_cell"), ("post_execute", "post_execute")):
        callbacks = shell.events.callbacks[event]
        callbacks[:] = [
            timed(key, cb) if getattr(cb, "__self__", None) is hook else cb for cb in callbacks
        ]
    for transformer in shell.ast_transformers:
        if isinstance(transformer, ExpressionWrapper):
            transformer.visit_Module = timed("ast_rewrite", transformer.visit_Module)
    pylabtools.print_figure = timed("render", pylabtools.print_figure)
    # A run's cells run inside one request (capture.protocol, **Cells**): only the inner
    # run_code calls run the user's code; the outer one is the request's.
    nested_run_code = timed("run_code", shell.run_code)
    outer_run_code = shell.run_code

    async def run_code(*args: Any, **kwargs: Any) -> Any:
        depth["code"] = depth.get("code", 0) + 1
        try:
            run = nested_run_code if depth["code"] > 1 else outer_run_code
            return await run(*args, **kwargs)
        finally:
            depth["code"] -= 1

    shell.run_code = run_code

    kernel = shell.kernel
    handle = timed("handler", kernel.shell_handlers["execute_request"])

    async def execute_request(stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        totals["requests"] += 1
        await handle(stream, ident, parent)
        if ".run_cells(" in parent["content"].get("code", ""):
            report = {**totals, "cpu_at_setup": started_cpu, "cpu_at_end": proc_cpu()}
            Path(out_dir, f"{os.getpid()}.json").write_text(json.dumps(report))

    kernel.shell_handlers["execute_request"] = execute_request


# --- driver side ------------------------------------------------------------------------------


class Probe:
    """Timings gathered in the driver: per run (by uuid), per kernel start, and events."""

    def __init__(self) -> None:
        self.run: contextvars.ContextVar[str | None] = contextvars.ContextVar("run", default=None)
        self.per_run: dict[str, dict[str, float]] = collections.defaultdict(
            lambda: collections.defaultdict(float)
        )
        self.per_kernel: list[dict[str, float]] = []
        self.kernel_of_run: dict[str, int] = {}
        self.run_ends: list[float] = []
        self.submits: list[float] = []
        self.template_pids: list[int] = []
        self.template_cpu = 0.0
        #: CPU seconds of each of the driver's threads, by name, read before the kernels' loop
        #: thread and its helpers end.
        self.thread_cpu: dict[str, float] = {}

    def add(self, key: str, wall: float, cpu: float, uuid: str | None = None) -> None:
        uuid = uuid or self.run.get()
        if uuid is not None:
            self.per_run[uuid][key] += wall
            self.per_run[uuid][key + "_cpu"] += cpu

    def wrap(self, owner: Any, name: str, key: str) -> None:
        """Time ``owner.name`` (sync or async) under ``key`` for the current run."""
        function = getattr(owner, name)
        probe = self
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return await function(*args, **kwargs)
                finally:
                    # Thread CPU of the loop thread, other tasks' included while awaiting.
                    probe.add(key, time.perf_counter() - wall, time.thread_time() - cpu)
            setattr(owner, name, async_wrapper)
            return

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                uuid = getattr(args[1], "uuid", None) if len(args) > 1 else None
                probe.add(key, time.perf_counter() - wall, time.thread_time() - cpu, uuid)
        setattr(owner, name, wrapper)


def install_probe(probe: Probe, kernel_out: Path) -> None:
    import ploomber_like.execute as execute
    import ploomber_like.kernels as kernels
    import ploomber_like.kernels.pool as pool_module
    import ploomber_like.sweep as sweep
    from ploomber_like.executors.local import LocalExecutor
    from ploomber_like.store import Store

    run_method = LocalExecutor._run

    async def timed_run(self: Any, run: Any, record: Any, still_needed: int) -> Any:
        probe.run.set(record.uuid)
        wall = time.perf_counter()
        try:
            return await run_method(self, run, record, still_needed)
        finally:
            now = time.perf_counter()
            probe.add("run", now - wall, 0.0)
            probe.run_ends.append(now)

    LocalExecutor._run = timed_run

    execute_run = execute.execute_run

    # A forked kernel has the capture installed before it answers: our timers go in with a
    # request of their own, before the run's (and outside its timing and the install's row).
    run_silently = pool_module._run_silently
    instrument = (f"__import__('runpy').run_path({str(HERE)!r}, run_name='profile')"
                  f"['instrument_kernel'](get_ipython(), {str(kernel_out)!r})")

    async def timed_execute_run(prepared: Any, record: Any, kernel: Any, **kwargs: Any) -> Any:
        probe.kernel_of_run[record.uuid] = kernel.handle.pid
        await run_silently(kernel, instrument)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return await execute_run(prepared, record, kernel, **kwargs)
        finally:
            probe.add("execute_run", time.perf_counter() - wall, time.thread_time() - cpu)

    execute.execute_run = timed_execute_run
    probe.wrap(kernels.KernelPool, "acquire", "acquire")
    probe.wrap(execute.run_client_class(), "async_execute_cell", "cells")
    probe.wrap(kernels.ReadyKernel, "shutdown", "shutdown")
    probe.wrap(Store, "finish", "store_finish")
    probe.wrap(Store, "start", "store_start")
    probe.wrap(sweep._Driver, "_end", "driver_end")

    submit = sweep._Driver._submit

    def timed_submit(self: Any, point: Any, run: Any, progress: Any) -> None:
        probe.submits.append(time.perf_counter())
        submit(self, point, run, progress)

    sweep._Driver._submit = timed_submit

    # Kernel starts: not per run (they are started ahead, for whichever run comes next).
    fork = kernels.KernelTemplate.start
    connect = pool_module.connect_client
    install = pool_module._run_silently
    start_one = kernels.KernelPool._start_one

    def timed_fork(self: Any, *args: Any) -> Any:
        wall = time.perf_counter()
        handle = fork(self, *args)
        starts[handle.pid] = {"fork": time.perf_counter() - wall}
        return handle

    async def timed_connect(handle: Any, *args: Any) -> Any:
        wall = time.perf_counter()
        try:
            return await connect(handle, *args)
        finally:
            starts.setdefault(handle.pid, {})["connect"] = time.perf_counter() - wall

    async def timed_install(kernel: Any, code: str) -> None:
        wall = time.perf_counter()
        try:
            await install(kernel, code)
        finally:
            starts.setdefault(kernel.handle.pid, {})["install"] = time.perf_counter() - wall

    async def timed_start_one(self: Any) -> Any:
        wall = time.perf_counter()
        kernel = await start_one(self)
        starts[kernel.handle.pid]["total"] = time.perf_counter() - wall
        probe.per_kernel.append(starts[kernel.handle.pid])
        return kernel

    starts: dict[int, dict[str, float]] = {}
    kernels.KernelTemplate.start = timed_fork
    pool_module.connect_client = timed_connect
    pool_module._run_silently = timed_install
    kernels.KernelPool._start_one = timed_start_one

    template_init = kernels.KernelTemplate.__init__
    template_close = kernels.KernelTemplate.close

    def timed_template(self: Any, *args: Any, **kwargs: Any) -> None:
        wall = time.perf_counter()
        template_init(self, *args, **kwargs)
        probe.template_start = time.perf_counter() - wall

    def close_template(self: Any) -> None:
        probe.template_cpu += proc_cpu(self._process.pid)
        template_close(self)

    executor_close = LocalExecutor.close

    def close_executor(self: Any) -> None:
        import threading

        for thread in threading.enumerate():
            name = thread.name
            if name.startswith("asyncio_"):
                name = "to_thread workers (fork)"
            elif name not in ("MainThread", "ploomber-like-kernels"):
                name = "other threads"
            cpu = proc_cpu(f"self/task/{thread.native_id}")
            probe.thread_cpu[name] = probe.thread_cpu.get(name, 0.0) + cpu
        executor_close(self)

    LocalExecutor.close = close_executor
    kernels.KernelTemplate.__init__ = timed_template
    kernels.KernelTemplate.close = close_template


def in_process(points: list[dict]) -> tuple[float, float]:
    """Mean wall and CPU seconds per point of the same code exec'd in this process."""
    sys.path.insert(0, str(HERE.parent))
    from sweep_fit import in_process_runner

    run = in_process_runner()
    run(points[0])  # warm: the imports and the first figure are the template's job in a sweep
    wall, cpu = time.perf_counter(), time.process_time()
    for point in points:
        run(point)
    return (time.perf_counter() - wall) / len(points), (time.process_time() - cpu) / len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workers", type=int, default=None)
    parser.add_argument("--samples", type=int, default=10_000, help="rows of fit.py's data")
    parser.add_argument("--quick", action="store_true",
                        help="4 points on 1,000 rows: checks the probes still fit the package")
    args = parser.parse_args()
    points = [
        {**dict(zip(GRID, combo, strict=True)), "n_samples": 1000 if args.quick else args.samples}
        for combo in itertools.product(*GRID.values())
    ][: 4 if args.quick else None]
    probe = Probe()
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        kernel_out = Path(folder, "kernels")
        kernel_out.mkdir()
        install_probe(probe, kernel_out)
        from ploomber_like import track_grid

        probe.thread_cpu["MainThread"] = -time.thread_time()
        wall, cpu = time.perf_counter(), time.process_time()
        summary = track_grid(EXAMPLE, points, "profile.db", workers=args.workers, quiet=True)
        sweep_wall, driver_cpu = time.perf_counter() - wall, time.process_time() - cpu
        if summary.failed:  # a probe that no longer fits the package fails the runs: say how
            from ploomber_like import SQLiteTracker

            first = SQLiteTracker("profile.db").query(
                "SELECT error_type, error_message FROM experiments WHERE status != 'ok' LIMIT 1")
            raise SystemExit(f"{summary.failed} runs failed: {first.iloc[0].tolist()}")
        kernel_side = {int(p.stem): json.loads(p.read_text()) for p in kernel_out.glob("*.json")}
        exec_wall, exec_cpu = in_process(points)
        os.chdir(home)
    workers = args.workers or os.cpu_count() or 1
    report(probe, kernel_side, len(points), workers, summary, sweep_wall, driver_cpu, exec_wall,
           exec_cpu)


def report(
    probe: Probe, kernel_side: dict[int, dict[str, float]], n: int, workers: int,
    summary: Any, sweep_wall: float, driver_cpu: float, exec_wall: float, exec_cpu: float,
) -> None:
    runs = list(probe.per_run.values())
    kernels = [kernel_side[probe.kernel_of_run[u]] for u in probe.per_run]
    ms = 1000.0

    def mean(values: list[float]) -> float:
        return statistics.fmean(values) * ms if values else float("nan")

    def driver(key: str) -> tuple[float, float]:
        return mean([r.get(key, 0.0) for r in runs]), mean([r.get(key + "_cpu", 0.0) for r in runs])

    def kernel(key: str) -> tuple[float, float]:
        return (mean([k.get(key, 0.0) for k in kernels]),
                mean([k.get(key + "_cpu", 0.0) for k in kernels]))

    def minus(a: tuple[float, float], *others: tuple[float, float]) -> tuple[float, float]:
        return a[0] - sum(o[0] for o in others), a[1] - sum(o[1] for o in others)

    hooks, rewrite, pre = kernel("hooks"), kernel("ast_rewrite"), kernel("pre_run_cell")
    post, render, run_code = kernel("post_execute"), kernel("render"), kernel("run_code")
    handler, cells = kernel("handler"), driver("cells")
    starts = probe.per_kernel
    start_cpu = mean([k["cpu_at_setup"] for k in kernels])
    kernel_cpu = mean([k["cpu_at_end"] for k in kernels])
    # Runs in submit order: the first ones wait for the template to import the file's modules.
    waits = [r.get("acquire", 0.0) for r in runs]
    ends = sorted(probe.run_ends)
    submits = sorted(probe.submits)
    # The first `workers` submits fill the slots; each later one fills the slot a run freed.
    gaps = [submits[i + workers] - end for i, end in enumerate(ends) if i + workers < n]
    rows = [
        ("fork (request -> pid)", mean([s.get("fork", 0) for s in starts]), None, "driver*"),
        ("kernel start (pid -> kernel_info)", mean([s.get("connect", 0) for s in starts]), None,
         "driver*"),
        ("capture install (a fresh kernel's request)",
         mean([s.get("install", 0) for s in starts]), None, "driver*"),
        ("  kernel CPU up to here (fork, init, install)", None, start_cpu, "kernel"),
        ("waited for a kernel, first runs (template)", mean(waits[:workers]), None, "driver"),
        ("waited for a kernel, later runs", mean(waits[workers:]), None, "driver"),
        ("Jupyter protocol (cells - handling)", *minus(cells, (handler[0], 0.0)), "both"),
        ("ipykernel/IPython per cell machinery", *minus(handler, run_code, pre, post, rewrite),
         "kernel"),
        ("figure rendering (PNG)", *render, "kernel"),
        ("capture (rewrite, hooks, events)", *minus((hooks[0] + rewrite[0] + pre[0] + post[0],
                                                     hooks[1] + rewrite[1] + pre[1] + post[1]),
                                                    render), "kernel"),
        ("run bookkeeping (execute_run - cells)", *minus(driver("execute_run"), cells), "driver"),
        ("kernel shutdown", *driver("shutdown"), "driver"),
        ("Store.start (row 'running')", *driver("store_start"), "driver"),
        ("Store.finish (record + blobs)", *driver("store_finish"), "driver"),
        ("driver loop: run end -> next submit", mean(gaps) if gaps else None, None,
         "driver"),
        ("user code (run_code - hooks)", *minus(run_code, hooks), "kernel"),
        ("  same points exec'd in-process", exec_wall * ms, exec_cpu * ms, "driver"),
    ]
    print(f"{n}-point sweep of {EXAMPLE.name}, {summary.ok} ok, workers={workers}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}")
    print(f"{'phase':46} {'wall ms/run':>12} {'CPU ms/run':>11}  measured in")
    for name, wall, cpu, where in rows:
        wall_text = f"{wall:12.1f}" if wall is not None else f"{'':12}"
        cpu_text = f"{cpu:11.1f}" if cpu is not None else f"{'':11}"
        print(f"{name:46} {wall_text} {cpu_text}  {where}")
    print(f"{'run wall (submit -> record back), mean':46} {driver('run')[0]:12.1f}")
    print(f"{'kernel CPU per run, whole process':46} {'':12} {kernel_cpu:11.1f}")
    print(f"{'driver CPU per run (process_time / runs)':46} {'':12} {driver_cpu / n * ms:11.1f}")
    for name, cpu in sorted(probe.thread_cpu.items(), key=lambda item: -item[1]):
        print(f"{'  driver thread ' + name:46} {'':12} {cpu / n * ms:11.1f}")
    print(f"template: ready in {probe.template_start:.2f} s, {probe.template_cpu:.2f} CPU-s; "
          f"sweep {sweep_wall:.1f} s")
    print("* kernels start ahead, during other runs: off a run's critical path unless it waited")


if __name__ == "__main__":
    main()
