"""A database on read-only storage (a read-only mount: we run as root, for whom file modes do not
stop writes) can be read by every read command and the API; a write is a one-line error."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli, free_port, wait_for, write_script
from tracking_databases import SweepDatabase, build_sweep_database

from ploomber_like import DatabaseError, SQLiteTracker

SCRIPT = "# parameters\nn = 1\n\nscore = n / 10\nscore\n"


@contextlib.contextmanager
def mounted_tmpfs(folder: Path) -> Iterator[None]:
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("needs a read-only mount: the `mount` command is not installed")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tracker-test", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("needs a read-only mount (file modes do not stop root), and mounting a tmpfs "
                    f"was refused: {done.stderr.strip()} (run as root or with CAP_SYS_ADMIN)")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def make_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
    with pytest.raises(OSError):
        (folder / "probe").write_text("")


def contents(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Path]:
    """A folder on a tmpfs of its own, which the test makes read-only."""
    with mounted_tmpfs(tmp_path / "media"):
        yield tmp_path / "media"


@pytest.fixture
def read_only_database(media: Path) -> SweepDatabase:
    database = build_sweep_database(media / "experiments.db")
    make_read_only(media)
    return database


def test_every_read_command_works_on_read_only_storage(
    read_only_database: SweepDatabase, tmp_path: Path
):
    path = str(read_only_database.path)
    uuid = read_only_database.ok[(10, 5)]
    before = contents(read_only_database.path.parent)

    listed = cli("ls", "-d", path, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert uuid[:8] in listed.stdout
    queried = cli("query", "SELECT count(*) AS n FROM experiments", "-d", path, cwd=tmp_path)
    assert queried.returncode == 0 and "7" in queried.stdout, queried.stderr
    compared = cli("compare", "-d", path, cwd=tmp_path)
    assert compared.returncode == 0 and uuid[:8] in compared.stdout, compared.stderr
    shown = cli("show", uuid, "-d", path, "--export", str(tmp_path / "plots"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert any((tmp_path / "plots").iterdir())
    reported = cli("report", "-d", path, "-o", str(tmp_path / "report.html"), cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert uuid in (tmp_path / "report.html").read_text()
    tracker = SQLiteTracker(path)
    frame = tracker.query("SELECT uuid, json_extract(parameters, '$.f1') AS f1 FROM experiments")
    assert len(frame) == 7
    assert tracker.get(uuid)["f1"] == read_only_database.f1[uuid]
    assert len(tracker.runs()) == 7

    assert contents(read_only_database.path.parent) == before


def test_the_ui_serves_a_database_on_read_only_storage(
    read_only_database: SweepDatabase, tmp_path: Path
):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("starlette", reason="the UI needs the [ui] extra (starlette)")

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "ui", "-d", str(read_only_database.path), "--port",
         str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:

        def answered() -> httpx.Response | None:
            assert process.poll() is None, process.stderr.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/runs")
            except httpx.ConnectError:
                return None

        answer = wait_for(answered, 120, "tracker ui answering")
        assert answer.status_code == 200 and len(answer.json()["runs"]) == 7
        uuid = read_only_database.ok[(10, 5)]
        assert httpx.get(f"http://127.0.0.1:{port}/run/{uuid}").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_a_write_to_read_only_storage_is_one_line_and_changes_nothing(
    read_only_database: SweepDatabase, tmp_path: Path
):
    path = str(read_only_database.path)
    write_script(tmp_path, SCRIPT, "fit.py")
    before = contents(read_only_database.path.parent)
    expected = f"error: cannot write to database {path}: it is on read-only storage\n"

    for args in (
        ("fit.py", "-p", "n=2", "-d", path),
        ("fit.py", "-g", "n=2,3", "-d", path),
        ("tag", read_only_database.failed, "broken", "-d", path),
        ("rm", read_only_database.failed, "-y", "-d", path),
    ):
        done = cli(*args, cwd=tmp_path)
        assert (done.returncode, done.stderr) == (2, expected), args
    with pytest.raises(DatabaseError, match="read-only storage"):
        SQLiteTracker(path).insert("by-hand", {"f1": 1.0})

    assert contents(read_only_database.path.parent) == before
    assert len(SQLiteTracker(path).runs()) == 7


def test_a_database_left_with_its_wal_reads_on_read_only_storage(media: Path, tmp_path: Path):
    """A sweep killed before SQLite folded its write-ahead log into the file: the log holds the
    latest rows, and a copy on read-only media must show them."""
    database = build_sweep_database(media / "experiments.db")
    uuid = database.ok[(10, 5)]
    done = subprocess.run([sys.executable, "-c", (
        "import os, sqlite3\n"
        f"conn = sqlite3.connect({str(database.path)!r}, isolation_level=None)\n"
        "conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
        f"conn.execute(\"UPDATE experiments SET comment = 'in the log' WHERE uuid = '{uuid}'\")\n"
        "os._exit(0)\n"
    )], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (media / "experiments.db-wal").stat().st_size > 0
    make_read_only(media)

    assert SQLiteTracker(database.path).get(uuid).comment_text == "in the log"
    listed = cli("ls", "-d", str(database.path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
