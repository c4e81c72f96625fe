"""Sweeps on a real Dask cluster (and a thread pool): records come back to the driver's SQLite."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import as_in_a_terminal, rows, wait_for, write_script

from ploomber_like.cluster import connect_dask
from ploomber_like.errors import TrackerError
from ploomber_like.sweep import track_grid

distributed = pytest.importorskip("distributed")

SQUARE = """\
# parameters
x = 1

square = x * x
square
"""
#: Runs in the order they were recorded.
BY_CREATED = "SELECT * FROM experiments ORDER BY created"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
    ) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=300)
        yield client


@pytest.fixture
def doomed_cluster():
    """A cluster of its own for a test that kills a worker: on a loaded machine a nanny may
    give up restarting its worker, which would leave the shared cluster one worker short."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=300)
        yield cluster, client


@pytest.mark.cluster
@pytest.mark.kernel
def test_grid_on_dask_records_every_point_in_the_driver_database(client, tmp_path, capfd):
    database = tmp_path / "runs.db"
    summary = track_grid(
        write_script(tmp_path, SQUARE), {"x": [1, 2, 3, 4]}, database, executor=client, quiet=True,
    )

    assert (summary.total, summary.ok, summary.failed) == (4, 4, 0)
    found = rows(database, BY_CREATED)
    assert [row["status"] for row in found] == ["ok"] * 4
    squares = {json.loads(r["parameters"])["x"]: json.loads(r["parameters"])["square"]
               for r in found}
    assert squares == {1: 1, 2: 4, 3: 9, 4: 16}
    assert {row["uuid"] for row in found} == {uuid for uuid, _ in summary.runs}
    assert capfd.readouterr().err == ""  # quiet: no progress bar, no summary


@pytest.mark.cluster
@pytest.mark.kernel
def test_workers_use_the_shipped_source_not_the_file(client, tmp_path):
    # Every run deletes the file; the runs after the first still execute from the source
    # carried in the PreparedRun. Workers share nothing with the driver but that.
    path = tmp_path / "vanishing.py"
    text = f"""\
# parameters
x = 1

import pathlib
pathlib.Path({str(path)!r}).unlink(missing_ok=True)

doubled = 2 * x
doubled
"""
    path.write_text(text)
    database = tmp_path / "runs.db"
    summary = track_grid(
        path, {"x": [1, 2, 3]}, database, executor=client, workers=1, quiet=True
    )

    assert summary.ok == 3
    assert not path.exists()
    assert sorted(json.loads(r["parameters"])["doubled"] for r in rows(database)) == [2, 4, 6]


@pytest.mark.cluster
@pytest.mark.kernel
def test_a_failing_point_is_recorded_failed_and_the_sweep_goes_on(client, tmp_path):
    text = SQUARE + "\nif x == 2:\n    raise ValueError('two is not allowed')\n"
    database = tmp_path / "runs.db"
    summary = track_grid(
        write_script(tmp_path, text), {"x": [1, 2, 3]}, database, executor=client, quiet=True
    )

    assert (summary.ok, summary.failed) == (2, 1)
    by_x = {json.loads(r["parameters"])["x"]: r for r in rows(database)}
    assert by_x[2]["status"] == "failed"
    assert by_x[2]["error_type"] == "ValueError"
    assert by_x[2]["error_message"] == "two is not allowed"
    assert json.loads(by_x[2]["parameters"])["square"] == 4  # captured before the failure
    assert by_x[3]["status"] == "ok"


@pytest.mark.cluster
@pytest.mark.kernel
def test_runs_record_the_worker_host_and_resume_skips_done_points(client, tmp_path):
    path = write_script(tmp_path, SQUARE)
    database = tmp_path / "runs.db"
    track_grid(path, {"x": [1, 2]}, database, executor=client, quiet=True)
    again = track_grid(path, {"x": [1, 2, 3]}, database, executor=client, quiet=True)

    assert (again.skipped, again.ok) == (2, 1)
    found = rows(database, BY_CREATED)
    assert len(found) == 3
    assert all(json.loads(r["environment"])["host"] == socket.gethostname() for r in found)


@pytest.mark.kernel
def test_a_thread_pool_executor_takes_the_same_path(tmp_path):
    database = tmp_path / "runs.db"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        summary = track_grid(
            write_script(tmp_path, SQUARE), {"x": [3, 5, 7]}, database, executor=pool, quiet=True
        )

    assert summary.ok == 3
    assert sorted(json.loads(r["parameters"])["square"] for r in rows(database)) == [9, 25, 49]


def test_connect_dask_names_an_unreachable_scheduler_in_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"  # nothing listens there any more

    with pytest.raises(TrackerError) as caught:
        connect_dask(address, timeout=1)

    message = str(caught.value)
    assert message.startswith(f"cannot reach the Dask scheduler at {address}")
    assert "\n" not in message


@pytest.mark.cluster
@pytest.mark.kernel
def test_the_cli_runs_a_grid_on_the_scheduler_given_by_dask(cluster, tmp_path):
    path = write_script(tmp_path, SQUARE)
    database = tmp_path / "runs.db"
    result = subprocess.run(
        [sys.executable, "-m", "tracker", str(path), "-g", "x=1,2", "-d", str(database),
         "-q", "--dask", cluster.scheduler_address],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    found = rows(database, BY_CREATED)
    assert sorted(json.loads(r["parameters"])["square"] for r in found) == [1, 4]
    assert {r["status"] for r in found} == {"ok"}


# Names its kernel process in a marker file in {markers}, then waits for the test's `release`.
WAITING = """\
# parameters
x = 1

import os, pathlib, time
markers = pathlib.Path({markers!r})
(markers / "started.part").write_text(str(os.getpid()))
(markers / "started.part").rename(markers / f"started-{{os.getpid()}}")
deadline = time.monotonic() + 600
while not (markers / "release").exists() and time.monotonic() < deadline:
    time.sleep(0.05)

slept = x
slept
"""


def waiting_script(tmp_path: Path) -> tuple[Path, Path]:
    """A script whose runs wait for the test (see ``WAITING``), and its markers folder."""
    markers = tmp_path / "markers"
    markers.mkdir()
    return write_script(tmp_path, WAITING.format(markers=str(markers))), markers


def started_kernel(markers: Path, alive=lambda: True) -> int:
    """The process of the first run to reach the user's code, once one has."""

    def started() -> list[Path]:
        assert alive(), "the sweep ended before a run started"
        return list(markers.glob("started-*"))

    found = wait_for(started, what="a run reaching the user's code")
    return int(found[0].name.removeprefix("started-"))


def is_dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # a zombie only waits for its parent to read its status


def _kill_worker_running_a_point(client, database: Path, tmp_path: Path) -> tuple[dict, str]:
    """Run one point, SIGKILL the worker process executing it while the point is in the user's
    code, then let every run finish; the row and the worker's address."""
    path, markers = waiting_script(tmp_path)
    outcome: dict = {}
    sweep = threading.Thread(
        target=lambda: outcome.update(
            summary=track_grid(path, {"x": [7]}, database, executor=client, quiet=True)
        )
    )
    sweep.start()
    started_kernel(markers, sweep.is_alive)
    (victim,) = [addr for addr, keys in client.processing().items() if keys]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    (markers / "release").touch()
    sweep.join(timeout=300)
    assert not sweep.is_alive()
    found = rows(database, BY_CREATED)
    assert len(found) == 1  # never recorded twice, never lost
    assert outcome["summary"].runs == [(found[0]["uuid"], found[0]["status"])]
    return found[0], victim


@pytest.mark.cluster
@pytest.mark.kernel
def test_a_killed_worker_is_survived_by_retrying_the_point_elsewhere(doomed_cluster, tmp_path):
    _, client = doomed_cluster
    row, _ = _kill_worker_running_a_point(client, tmp_path / "runs.db", tmp_path)

    assert row["status"] == "ok"  # the scheduler ran it again on the other worker
    assert json.loads(row["parameters"])["slept"] == 7


@pytest.mark.cluster
@pytest.mark.kernel
def test_a_point_whose_worker_dies_past_the_allowed_failures_is_recorded_crashed(
    doomed_cluster, tmp_path
):
    cluster, client = doomed_cluster
    cluster.scheduler.allowed_failures = 0  # no retry: the first lost worker is final
    row, victim = _kill_worker_running_a_point(client, tmp_path / "runs.db", tmp_path)

    assert row["status"] == "crashed"
    assert row["error_type"] == "KilledWorker"
    assert victim in row["error_message"]


@pytest.mark.cluster
@pytest.mark.kernel
def test_ctrl_c_stops_the_sweep_and_the_runs_on_the_workers(cluster, client, tmp_path):
    path, markers = waiting_script(tmp_path)
    database = tmp_path / "runs.db"
    driver = subprocess.Popen(
        [sys.executable, "-m", "tracker", str(path), "-g", "x=1,2,3", "-w", "1", "-q",
         "-d", str(database), "--dask", cluster.scheduler_address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        preexec_fn=as_in_a_terminal,
    )
    try:
        kernel = started_kernel(markers, lambda: driver.poll() is None)
        driver.send_signal(signal.SIGINT)  # the first point is waiting in its kernel
        _, stderr = driver.communicate(timeout=300)
        assert driver.returncode == 130, stderr
        found = rows(database, BY_CREATED)
        assert [r["status"] for r in found] == ["interrupted"]  # no further point was started
        # Its kernel was stopped, not left running (a bounded wait for a process told to end).
        wait_for(lambda: is_dead(kernel), 120, "the kernel ending")
        assert len(list(markers.glob("started-*"))) == 1
    finally:
        driver.kill()
        (markers / "release").touch()  # a kernel left running ends
