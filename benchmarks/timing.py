"""Timing a command from outside, shared by the benchmarks that compare two commands."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def time_process(argv: list[str], cwd: Path) -> float:
    """Seconds ``argv`` took as a process of its own in ``cwd``; exits with its stderr's end
    if it failed (a failed run's time means nothing)."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])}... failed:\n{done.stderr[-2000:]}")
    return elapsed
