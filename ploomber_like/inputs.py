"""What a run read: the files it opened for reading and the modules of the user's it imported,
hashed, and whether they changed since.

The kernel names them (:mod:`ploomber_like.capture.inputs`); :func:`hash_inputs` hashes them
once the run has ended, and :func:`changed_inputs` hashes the recorded paths again (a resumed
sweep, a rerun). Hashes are cached by real path, size, modification time and inode in
``$XDG_CACHE_HOME/ploomber_like/file_hashes.db``: a 10 GB data file read by a thousand runs is
hashed once, until it changes. A cache that cannot be opened (a read-only home) only costs
hashing again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ploomber_like.caches import cache_home
from ploomber_like.record import Input

#: Bytes read at a time while hashing.
CHUNK_BYTES = 2**20


@dataclass(frozen=True)
class InputChange:
    """An input that differs: ``changed`` (other content), ``added`` or ``removed``."""

    path: str
    change: str

    def __str__(self) -> str:
        return f"{self.path}: {self.change}"


def hash_inputs(
    found: Iterable[tuple[str, str]], script_path: str, skipped: Iterable[str] = ()
) -> list[Input]:
    """The inputs of a run of ``script_path``: each ``(kind, absolute path)`` the kernel found,
    hashed, its path made relative to the script's folder; the script itself and the
    ``skipped`` paths (what the run wrote, the database) are left out."""
    folder = os.path.dirname(os.path.realpath(script_path))
    left_out = {os.path.realpath(p) for p in [script_path, *skipped]}
    inputs = []
    for kind, path in found:
        real = os.path.realpath(path)
        if real in left_out:
            continue
        size, sha256 = file_hash(real)
        relative = os.path.relpath(real, folder).replace(os.sep, "/")
        inputs.append(Input(kind, relative, size, sha256))
    return sorted(inputs, key=lambda i: (i.kind, i.path))


def changed_inputs(inputs: Sequence[Input], script_path: str) -> list[InputChange]:
    """Which of a run's recorded ``inputs`` differ now: their paths, relative to the folder of
    ``script_path``, hashed again."""
    folder = os.path.dirname(os.path.realpath(script_path))
    now = []
    for recorded in inputs:
        size, sha256 = file_hash(os.path.join(folder, recorded.path))
        now.append(Input(recorded.kind, recorded.path, size, sha256))
    return compare_inputs(inputs, now)


def compare_inputs(a: Sequence[Input], b: Sequence[Input]) -> list[InputChange]:
    """What differs from inputs ``a`` to inputs ``b``, by path; a file gone reads as removed."""
    before = {i.path: i.sha256 for i in a if i.sha256 is not None}
    after = {i.path: i.sha256 for i in b if i.sha256 is not None}
    changes = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append(InputChange(path, "removed"))
        elif path not in before:
            changes.append(InputChange(path, "added"))
        elif before[path] != after[path]:
            changes.append(InputChange(path, "changed"))
    return changes


def file_hash(path: str | os.PathLike[str]) -> tuple[int | None, str | None]:
    """Size and sha256 of the file at ``path``; ``(None, None)`` when it cannot be read."""
    try:
        real = os.path.realpath(path)
        status = os.stat(real)
    except OSError:
        return None, None
    key = (real, status.st_size, status.st_mtime_ns, status.st_ino)
    sha256 = _CACHE.get(key)
    if sha256 is None:
        try:
            sha256 = sha256_of_file(real)
        except OSError:
            return None, None
        _CACHE.put(key, sha256)
    return status.st_size, sha256


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's content, read a chunk at a time (no cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _HashCache:
    """File hashes by ``(real path, size, mtime_ns, inode)``, on disk and in this process."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, int, int, int], str] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, int, int, int]) -> str | None:
        with self.lock:
            if key in self.known:
                return self.known[key]
        row = None
        with contextlib.suppress(sqlite3.Error, OSError), self._connection() as conn:
            row = conn.execute(
                "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ? "
                "AND inode = ?", key,
            ).fetchone()
        if row is not None:
            with self.lock:
                self.known[key] = row[0]
        return row[0] if row else None

    def put(self, key: tuple[str, int, int, int], sha256: str) -> None:
        with self.lock:
            self.known[key] = sha256
        with contextlib.suppress(sqlite3.Error, OSError), self._connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO hashes (path, size, mtime_ns, inode, sha256) "
                "VALUES (?, ?, ?, ?, ?)", (*key, sha256),
            )

    @contextlib.contextmanager
    def _connection(self):
        folder = cache_home()
        folder.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(Path(folder) / "file_hashes.db", timeout=30)
        try:
            with conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
                    "mtime_ns INTEGER, inode INTEGER, sha256 TEXT)"
                )
                yield conn
        finally:
            conn.close()


_CACHE = _HashCache()
