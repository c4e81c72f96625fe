"""Shared helpers: write a script into ``tmp_path``, track it, and read its stored row."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ploomber_like import Record, track_execution


@dataclass
class TrackedRun:
    """A tracked run: the returned record and its row as stored, JSON columns decoded."""

    record: Record
    row: dict[str, Any]
    database: Path

    @property
    def stored(self) -> dict[str, Any]:
        """The ``parameters`` column: parameters and captured values together."""
        return self.row["parameters"]


JSON_COLUMNS = ("parameters", "parameter_keys", "overrides", "group_durations", "environment")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_script(folder: Path, text: str, name: str = "script.py") -> Path:
    """Write ``text`` (dedented) to ``folder / name`` and return the path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def read_row(database: Path, uuid: str) -> dict[str, Any]:
    """The ``experiments`` row of ``uuid`` as a dict, JSON columns decoded."""
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    try:
        row = dict(conn.execute("SELECT * FROM experiments WHERE uuid = ?", (uuid,)).fetchone())
    finally:
        conn.close()
    for column in JSON_COLUMNS:
        if row[column] is not None:
            row[column] = json.loads(row[column])
    return row


def run(
    folder: Path,
    text: str,
    parameters: dict[str, Any] | None = None,
    *,
    name: str = "script.py",
    **options: Any,
) -> TrackedRun:
    """Write ``text`` as a script in ``folder``, track it into ``folder / runs.db``."""
    database = folder / "runs.db"
    record = track_execution(write_script(folder, text, name), parameters, database, **options)
    return TrackedRun(record, read_row(database, record.uuid), database)


@pytest.fixture
def track(tmp_path: Path):
    """``track(text, parameters, **options)``: run a script written in this test's tmp_path."""

    def track_in_tmp(text: str, parameters: dict[str, Any] | None = None, **options: Any):
        return run(tmp_path, text, parameters, **options)

    return track_in_tmp


@pytest.fixture(autouse=True, scope="session")
def private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What templates learn (kernels.learned) is cached under XDG_CACHE_HOME: keep the suite's
    out of the user's ~/.cache, for this process and the drivers and kernels it starts."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
