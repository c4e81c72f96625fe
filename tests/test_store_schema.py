"""The schema version: a new database carries it, opening an up-to-date one changes nothing and
takes no lock, and databases from before it (an earlier version of ours, sklearn-evaluation's)
migrate on their first writable open."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from conftest import rows
from tracking_databases import build_sweep_database, user_version

from ploomber_like import SQLiteTracker
from ploomber_like.store import EXTRA_COLUMNS, SCHEMA_VERSION, Store, connect

#: What a migration must keep of every row.
OLD_COLUMNS = "SELECT uuid, created, parameters, comment, status FROM experiments ORDER BY uuid"


def columns(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[1] for row in conn.execute("PRAGMA table_info(experiments)")}
    finally:
        conn.close()


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_a_new_database_carries_the_schema_version(tmp_path: Path):
    path = tmp_path / "new.db"
    Store(path).close()
    assert user_version(path) == SCHEMA_VERSION >= 1
    assert set(EXTRA_COLUMNS) <= columns(path)


def test_opening_an_up_to_date_database_changes_nothing(tmp_path: Path):
    database = build_sweep_database(tmp_path / "sweep.db")
    before = snapshot(database.path)

    for _ in range(3):
        Store(database.path).close()
        connect(database.path).close()
    tracker = SQLiteTracker(database.path)
    assert len(tracker.runs()) == 7

    assert snapshot(database.path) == before
    assert user_version(database.path) == SCHEMA_VERSION


def test_opening_an_up_to_date_database_takes_no_write_lock(tmp_path: Path):
    """Every Store() and Experiment.log opens the database: a sweep writing meanwhile must not
    make them wait for its transaction (before, each open ran BEGIN IMMEDIATE and CREATEs)."""
    path = build_sweep_database(tmp_path / "sweep.db").path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    opened = threading.Event()

    def open_store() -> None:
        Store(path).close()
        opened.set()

    thread = threading.Thread(target=open_store, daemon=True)
    try:
        thread.start()
        # Generous against a loaded machine, and still well under the 60 s busy timeout the
        # open waited for before.
        assert opened.wait(30), "opening an up-to-date database waited for the write lock"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        thread.join(120)


def test_a_database_of_an_earlier_version_migrates_on_first_open(tmp_path: Path):
    database = build_sweep_database(tmp_path / "old.db")
    # As an earlier version of ours left it: no schema version, no tags or search columns, no
    # artifacts table.
    conn = sqlite3.connect(database.path, isolation_level=None)
    for column in ("tags", "search", "trial", "objective", "trial_error", "reproduces"):
        conn.execute(f"ALTER TABLE experiments DROP COLUMN {column}")
    conn.execute("DROP TABLE artifacts")
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    old_rows = rows(database.path, OLD_COLUMNS)
    # Reading it needs no migration, and makes none.
    assert len(SQLiteTracker(database.path).runs()) == 7
    assert user_version(database.path) == 0

    Store(database.path).close()

    assert user_version(database.path) == SCHEMA_VERSION
    assert set(EXTRA_COLUMNS) <= columns(database.path)
    assert rows(database.path, OLD_COLUMNS) == old_rows
    tracker = SQLiteTracker(database.path)
    tracker.tag(database.failed, "broken")
    assert tracker.get(database.failed).tags == ["broken"]
    assert tracker.artifacts(database.failed) == []


def test_a_database_of_version_3_gets_the_inputs_table(tmp_path: Path):
    database = build_sweep_database(tmp_path / "v3.db")
    conn = sqlite3.connect(database.path, isolation_level=None)
    conn.execute("DROP TABLE inputs")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    # Read as it is, before any migration: no table, no inputs.
    assert SQLiteTracker(database.path).inputs(database.failed).empty

    Store(database.path).close()

    assert user_version(database.path) == SCHEMA_VERSION
    conn = sqlite3.connect(database.path)
    try:
        names = [row[1] for row in conn.execute("PRAGMA table_info(inputs)")]
    finally:
        conn.close()
    assert names == ["uuid", "kind", "path", "size", "sha256"]


def test_every_column_is_in_the_schema_version(tmp_path: Path):
    """Databases at the current version never get a column added to EXTRA_COLUMNS later: a new
    column needs a new migration (appended to store.migrations.MIGRATIONS), and then this list
    and version move on together."""
    assert (SCHEMA_VERSION, sorted(EXTRA_COLUMNS)) == (7, sorted([
        "status", "duration", "error_type", "error_message", "traceback", "error_group",
        "error_source", "parameter_keys", "overrides", "group_durations", "source_path",
        "source_sha256", "environment", "stdout", "stderr", "fingerprint", "driver",
        "error_location", "workdir", "notebook", "name", "tags", "reproduces", "search",
        "trial", "objective", "trial_error", "kernel_wait", "pruned_step", "replicate",
        "replicate_group", "recording_options",
    ])), "a column was added to EXTRA_COLUMNS without a migration adding it"


def test_a_database_at_version_4_gains_the_pruning_and_replicate_columns(tmp_path: Path):
    database = build_sweep_database(tmp_path / "v4.db")
    conn = sqlite3.connect(database.path, isolation_level=None)
    for column in ("pruned_step", "replicate", "replicate_group"):
        conn.execute(f"ALTER TABLE experiments DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    # Read as it is: the runs have no step, replicate or group.
    run = SQLiteTracker(database.path).runs()[0]
    assert (run.pruned_step, run.replicate, run.replicate_group) == (None, None, None)

    Store(database.path).close()

    assert user_version(database.path) == SCHEMA_VERSION
    assert {"pruned_step", "replicate", "replicate_group"} <= columns(database.path)


def test_the_store_does_not_import_kernels():
    code = (
        "import sys\n"
        "import ploomber_like.store.writes, ploomber_like.store.sandbox\n"
        "print(sorted(m for m in sys.modules if m.startswith('ploomber_like.kernels')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
