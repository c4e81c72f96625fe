"""The profiling benchmark still fits the package: it wraps the driver's internals and installs
timers in each kernel, so a change of those internals breaks it without breaking any run. The
other benchmarks call the public API only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.kernel
def test_the_sweep_profile_measures_every_phase_of_its_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_sweep.py"), "--quick"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "4-point sweep of fit.py, 4 ok" in done.stdout
    rows = dict(re.findall(r"^(\S.*?)\s{2,}([-\d.]+)", done.stdout, re.M))
    # Measured in the kernels (the timers the probe installs there) and in the driver.
    for phase in ("user code (run_code - hooks)", "figure rendering (PNG)",
                  "kernel start (pid -> kernel_info)", "Store.finish (record + blobs)"):
        assert float(rows[phase]) > 0, (phase, done.stdout)
