"""How a sweep went (:class:`SweepSummary`), and what it shows on the terminal (or in a
notebook): a progress bar of runs done, those not ok by status and those running; warnings and
notes; and the closing summary with a command listing exactly the runs that were not ok. Silent
when the sweep is quiet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ploomber_like.record import Status


@dataclass
class SweepSummary:
    """How a sweep went. ``failed`` counts every run that did not end ``ok`` or ``pruned``;
    ``statuses`` counts the runs by the status each ended with."""

    database: str
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    interrupted: bool = False
    #: uuid and status of every run executed (not of skipped points), in completion order.
    runs: list[tuple[str, str]] = field(default_factory=list)
    duration: float = 0.0
    #: Runs executed per status (``{"ok": 3, "crashed": 1}``).
    statuses: dict[str, int] = field(default_factory=dict)
    #: ``created`` of the sweep's first run: its runs are those created since.
    started: str | None = None
    #: Why the sweep stopped early other than by Ctrl-C (an executor lost, a search whose
    #: objective the file does not show), or None.
    stopped_by: str | None = None
    #: Runs stopped by pruning, and the seconds they did not spend (each pruned run estimated
    #: to take the mean duration of the completed ones; None without a completed run).
    pruned: int = 0
    time_saved: float | None = None


class SweepReporter:
    """Progress bar, notes and the closing summary on the terminal (silent when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._console = None
        if not quiet:
            from rich.console import Console

            # Lines are not wrapped by rich: a path in a command to copy stays one piece.
            self._console = Console(stderr=True, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        if self._console:
            self._console.print(f"[yellow]warning:[/yellow] {message}")

    def note(self, message: str) -> None:
        if self._console:
            self._console.print(message)

    def progress(self, total: int | None) -> SweepProgress:
        return SweepProgress(self._console, total)

    def summary(self, summary: SweepSummary) -> None:
        if not self._console:
            return
        ran = summary.ok + summary.failed + summary.pruned
        head = "done"
        if summary.interrupted:
            head = "interrupted"
        elif summary.stopped_by is not None:
            head = "stopped"
        line = (
            f"{head}: {ran} run{'s' if ran != 1 else ''} in {summary.duration:.1f} s, "
            f"{status_counts(summary.statuses, markup=True)}"
        )
        if summary.skipped:
            line += f", {summary.skipped} skipped"
        if summary.pruned:
            saved = (
                "unknown without a completed run" if summary.time_saved is None
                else f"~{summary.time_saved:.1f} s"
            )
            line += f"; pruning saved {saved} of compute"
        self._console.print(line)
        others = [status for status in summary.statuses if status != Status.OK]
        if others:
            # Exactly this sweep's runs: those created since its first, with these statuses.
            command = (
                f"python -m tracker ls -d {summary.database} --status {','.join(others)} "
                f"--where \"created >= '{summary.started}'\""
            )
            command += f" -n {sum(summary.statuses[status] for status in others)}"
            self._console.print(f"see them: {command}", soft_wrap=True)
        self._console.print(f"results in {summary.database}: python -m tracker ls -d "
                            f"{summary.database}", soft_wrap=True)


def status_counts(statuses: Mapping[str, int], markup: bool = False) -> str:
    """``3 ok, 1 failed, 2 interrupted``: runs per status, ``ok`` first (``0 ok`` if none)."""
    colours = {Status.OK: "green", Status.INTERRUPTED: "yellow", Status.PRUNED: "yellow"}
    parts = []
    for status in (Status.OK, *(s for s in Status if s != Status.OK)):
        count = statuses.get(status.value, 0)
        if count or status == Status.OK:
            text = f"{count} {status.value}"
            colour = colours.get(status, "red") if count else "green"
            parts.append(f"[{colour}]{text}[/]" if markup else text)
    return ", ".join(parts)


class SweepProgress:
    """A rich progress bar: runs done, those not ok by status, those running, and the ETA."""

    def __init__(self, console: Any, total: int | None) -> None:
        self.console = console
        self.total = total
        self.running = 0
        #: Runs ended per status other than ``ok``.
        self.ended: dict[str, int] = {}
        self._bar = None
        self._task = None

    def __enter__(self) -> SweepProgress:
        # An unknown total (a grid read from a generator) shows a bar without an end.
        if self.console is not None and self.total != 0 and self.console.is_jupyter:
            from ploomber_like.progress import NotebookProgress

            # rich's bar needs ipywidgets in Jupyter: a line of the cell's output instead.
            self._bar = NotebookProgress("sweep")
            self._bar.__enter__()
            self._task = self._bar.add_task("sweep", total=self.total, counts=self._counts())
        elif self.console is not None and self.total != 0:
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

    def skip(self, points: int) -> None:
        """``points`` more were found recorded ok: fewer to run."""
        if points and self.total is not None:
            self.total -= points
            if self._bar is not None:
                self._bar.update(self._task, total=self.total)

    def started(self) -> None:
        self.running += 1
        self._update(0)

    def finished(self, status: str) -> None:
        self.running -= 1
        if status != Status.OK:
            self.ended[status] = self.ended.get(status, 0) + 1
        self._update(1)

    def _counts(self) -> str:
        ended = [
            f"[{'yellow' if status == Status.PRUNED else 'red'}]{n} {status}[/]"
            for status, n in self.ended.items()
        ]
        return ", ".join([*ended, f"{self.running} running"])

    def _update(self, advance: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, counts=self._counts())
