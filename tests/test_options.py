"""The run options are declared once (``RunOptions``) and checked there: every entry point
refuses the same bad value with the same one-line error, before anything runs or is written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import write_script

from ploomber_like import ParameterError, track_execution, track_grid, track_search
from ploomber_like.options import RunOptions
from ploomber_like.record import RecordOptions

BAD = [
    ({"timeout": 0}, "timeout must be a finite number of seconds above 0, got 0"),
    ({"max_artifact_bytes": -1}, "max_artifact_bytes must be 0 or more, got -1"),
    ({"max_artifact_bytes": 1.5}, "max_artifact_bytes must be an int, got 1.5"),
    ({"output_scalars": "(?P<key>x"}, "output_scalars pattern '(?P<key>x'"),
    ({"output_scalars": "loss"}, "needs named groups (?P<key>...) and (?P<value>...)"),
]


@pytest.mark.parametrize(("option", "message"), BAD, ids=[str(o) for o, _ in BAD])
def test_every_entry_point_refuses_a_bad_option_the_same_way(tmp_path, option, message):
    script = write_script(tmp_path, "# parameters\nx = 1\n\nx\n")
    database = tmp_path / "runs.db"
    calls = [
        lambda: track_execution(script, database=database, quiet=True, **option),
        lambda: track_grid(script, {"x": [1, 2]}, database, quiet=True, **option),
        lambda: track_search(script, {"x": [1, 2]}, objective="x", sampler="random",
                             database=database, quiet=True, **option),
        lambda: RunOptions(**option),
    ]
    for call in calls:
        with pytest.raises(ParameterError) as raised:
            call()
        assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not database.exists()


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_below_one_are_refused(workers):
    with pytest.raises(ParameterError, match="workers must be at least 1"):
        RunOptions(workers=workers)


def test_the_cli_refuses_both_scalar_options_and_a_bad_pattern_in_one_line(tmp_path):
    script = write_script(tmp_path, "x = 1\nx\n")
    for args, message in [
        (["--no-output-scalars", "--output-scalars", "(?P<key>a)(?P<value>b)"],
         "error: --no-output-scalars and --output-scalars exclude each other"),
        (["--output-scalars", "loss"], "error: output_scalars pattern 'loss' needs named groups"),
        (["-g", "x=1,2", "-w", "0"], "error: workers must be at least 1, got 0"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "tracker", str(script), "-d", str(tmp_path / "c.db"), *args],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "c.db").exists()


def test_the_options_a_run_records_with_round_trip():
    options = RunOptions(output_scalars=r"(?P<key>\w+)=(?P<value>\S+)", save_notebook=True,
                         max_artifact_bytes=10, timeout=5)
    stored = options.record_options("runs.db").stored()
    assert stored == {"output_scalars": r"(?P<key>\w+)=(?P<value>\S+)", "save_notebook": True,
                      "max_artifact_bytes": 10}
    again = RunOptions.recorded({**stored, "from_a_later_version": 1}, timeout=5)
    assert again == options
    assert RunOptions.recorded({}) == RunOptions()
    assert RecordOptions().stored() == RunOptions().record_options("runs.db").stored()
