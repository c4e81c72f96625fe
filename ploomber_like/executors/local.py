"""The ``local`` executor: runs on this machine, each in a kernel forked from a warm template.

The kernels are driven by an asyncio loop in a thread of its own, so the sweep driver stays a
plain loop (it blocks on the runs' futures, woken as each ends: no polling) and Ctrl-C reaches
it in the main thread, also inside Jupyter, whose own event loop is left alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import time
from pathlib import Path
from typing import Any

from ploomber_like.artifacts import run_directory
from ploomber_like.execute import run_on_pool
from ploomber_like.executors.base import Executor, fail_record
from ploomber_like.kernels import KernelPool, learned_modules
from ploomber_like.notebook import PreparedRun, plain_sources
from ploomber_like.provenance import module_distributions
from ploomber_like.pruning import PruneDecision, RunPruner
from ploomber_like.record import MetricPoint, Record, Status
from ploomber_like.run_messages import run_client_class


class LocalExecutor(Executor):
    """Runs points in kernels on this machine (the default executor, ``executor=None``)."""

    name = "local"

    @classmethod
    def accepts(cls, target: Any) -> bool:
        return target is None or target == cls.name

    def __init__(self, target: Any, options: Any) -> None:
        super().__init__(target, options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: KernelPool | None = None
        self._indexing: concurrent.futures.Future[Any] | None = None
        #: The thread building the template ahead of the first run (:meth:`prepare`), and
        #: whether the executor closed meanwhile (the builder then closes what it built).
        self._warming: threading.Thread | None = None
        self._abandoned = False
        self._warming_lock = threading.Lock()
        self._futures: dict[str, concurrent.futures.Future[Record]] = {}
        # Touched only on the loop's thread.
        self._tasks: dict[str, asyncio.Task[Record]] = {}
        self._stopping = False
        self._pruner: RunPruner | None = None
        #: Runs the pruner stopped (touched only on the loop's thread).
        self._pruned: dict[str, PruneDecision] = {}

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def watch(self, pruner: RunPruner) -> None:
        self._pruner = pruner

    def prepare(self, path: Path, text: str) -> None:
        # The template starts from the imports found without jupytext, so that it imports
        # while the driver reads the file's groups, opens the database and plans the points.
        sources = plain_sources(text, path.suffix) if self.options.preload else None
        if sources is None or self._loop is not None:
            return  # the first submit starts the pool, from the groups
        self._start(str(path.resolve()), text, sources)
        # A daemon thread: a sweep that ends before its first run (a database that cannot be
        # opened, no point left to run) neither waits for the template nor keeps it.
        self._warming = threading.Thread(
            target=self._build_template, args=(self._pool,), name="ploomber-like-template",
            daemon=True,
        )
        self._warming.start()

    def _build_template(self, pool: KernelPool) -> None:
        with contextlib.suppress(Exception):  # raised again to the first run that needs it
            pool.build_factory()
        with self._warming_lock:
            self._warming = None
            abandoned, self._abandoned = self._abandoned, False
        if abandoned:
            pool.close_unused()

    def submit(self, run: PreparedRun, record: Record, *, still_needed: int = 0) -> None:
        if self._loop is None:
            self._start(run.script_path, run.text, [g.source for g in run.groups])
        assert self._loop is not None and self._pool is not None
        if self._pool.directories is None:
            # Every run of the sweep records alike: the first one's options say where it runs.
            self._pool.directories = functools.partial(run_directory, run.options)
        self._futures[record.uuid] = asyncio.run_coroutine_threadsafe(
            self._run(run, record, still_needed), self._loop
        )

    def wait_some(self, timeout: float | None = None) -> list[Record]:
        done, _ = concurrent.futures.wait(
            list(self._futures.values()), timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        finished = [uuid for uuid, future in self._futures.items() if future in done]
        return [self._futures.pop(uuid).result() for uuid in finished]

    def cancel(self) -> list[Record]:
        if self._loop is None or not self._futures:
            return []
        self._loop.call_soon_threadsafe(self._stop_all)
        concurrent.futures.wait(list(self._futures.values()))
        records = [future.result() for future in self._futures.values()]
        self._futures.clear()
        return records

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            with self._warming_lock:
                # A template still being built is closed by its builder once built.
                self._abandoned = self._warming is not None
            if self._pool is not None:
                asyncio.run_coroutine_threadsafe(self._pool.close(), self._loop).result()
            if self._indexing is not None:
                self._indexing.result()
            asyncio.run_coroutine_threadsafe(_finish_leftover_tasks(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join()
            self._loop.close()
            self._loop = None

    def _start(self, script_path: str, text: str, sources: list[str]) -> None:
        """Start the loop thread and the pool for the file at ``script_path`` (its ``text``, its
        code ``sources``); every point of a sweep runs the same file."""
        modules = learned = None
        if self.options.preload:
            learned = learned_modules(script_path, text)
            modules = learned.template_modules(sources, Path(script_path).parent, Path.cwd())
        self._pool = KernelPool(
            Path.cwd(), modules, ahead=min(self.workers, 2), script_path=script_path,
            threads=self.threads_per_run(), learned=learned, while_starting=run_client_class,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ploomber-like-kernels", daemon=True
        )
        self._thread.start()
        # Index the installed packages while the template starts, not when the first run ends.
        self._indexing = asyncio.run_coroutine_threadsafe(
            asyncio.to_thread(module_distributions), self._loop
        )

    async def _run(self, run: PreparedRun, record: Record, still_needed: int) -> Record:
        started = time.monotonic()
        if self._stopping:  # submitted just before Ctrl-C: never started
            record.interrupt("the sweep was interrupted", started)
            return record
        assert self._pool is not None
        self._tasks[record.uuid] = asyncio.current_task()  # type: ignore[assignment]
        on_points = None
        if self._pruner is not None:
            def on_points(points: list[MetricPoint]) -> None:
                self._judge(record.uuid, points)
        try:
            return await run_on_pool(
                run, record, self._pool, timeout=self.options.timeout, still_needed=still_needed,
                on_points=on_points,
            )
        except asyncio.CancelledError:
            # Ctrl-C or pruning: run_on_pool killed the kernel and kept what the run had shown.
            decision = self._pruned.pop(record.uuid, None)
            if decision is not None and not self._stopping:
                record.prune(decision.step, decision.reason)
                return record
            record.interrupt("the sweep was interrupted", started)
            return record
        except Exception as exc:  # a fault of ours must not lose the run
            return fail_record(record, Status.CRASHED, exc, started)
        finally:
            self._tasks.pop(record.uuid, None)

    def _judge(self, uuid: str, points: list[MetricPoint]) -> None:
        """Stop the run ``uuid`` if the pruner decides so on its new ``points``."""
        assert self._pruner is not None
        decision = self._pruner.observe(uuid, points)
        task = self._tasks.get(uuid)
        if decision is not None and task is not None:
            self._pruned[uuid] = decision
            task.cancel()

    def _stop_all(self) -> None:
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()


async def _finish_leftover_tasks() -> None:
    """Cancel and await what runs left on the loop, as ``asyncio.run`` does before closing one.

    A run cancelled by Ctrl-C leaves nbclient's kernel-alive poller pending (nbclient cancels
    its other helper tasks, not that one): closing the loop over it would print "Task was
    destroyed but it is pending!".
    """
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
