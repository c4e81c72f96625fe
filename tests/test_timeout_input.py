"""Timeouts that are not a finite number of seconds above zero are refused before any row."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import write_script

from ploomber_like import ParameterError, track_execution, track_grid
from ploomber_like.options import check_timeout

BAD = ["nan", "inf", "-inf", "0", "-1"]


@pytest.mark.parametrize("text", BAD)
def test_the_cli_refuses_a_bad_timeout_in_one_line_and_writes_nothing(tmp_path, text):
    script = write_script(tmp_path, "x = 1\nx\n")
    database = tmp_path / "runs.db"
    for grid in ([], ["-g", "x=1,2"]):
        done = subprocess.run(
            [sys.executable, "-m", "tracker", str(script), "-d", str(database),
             f"--timeout={text}", *grid],
            capture_output=True, text=True,
        )
        assert done.returncode == 2
        assert done.stderr.startswith("error: timeout must be")
        assert len(done.stderr.strip().splitlines()) == 1
        assert not database.exists()


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1, "10", True])
def test_the_api_refuses_a_bad_timeout_before_any_row(tmp_path, timeout):
    script = write_script(tmp_path, "x = 1\nx\n")
    database = tmp_path / "runs.db"
    with pytest.raises(ParameterError, match="timeout must be"):
        track_execution(script, database=database, timeout=timeout)
    with pytest.raises(ParameterError, match="timeout must be"):
        track_grid(script, {"x": [1, 2]}, database, timeout=timeout, quiet=True)
    assert not database.exists()


def test_good_timeouts_are_seconds_as_floats():
    assert check_timeout(None) is None
    assert check_timeout(2) == 2.0
    assert check_timeout(0.5) == 0.5
