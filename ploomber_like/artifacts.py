"""Files a run leaves: its working directory, what changed in it, and writing files back.

Before a run its working directory is listed (size and modification time of each file); after
it, files that are new or whose size or time changed are hashed and recorded as
:class:`~ploomber_like.record.Artifact` with their content as blobs. Listing is bounded
(:data:`MAX_SCAN_ENTRIES`) and never follows symbolic links, so a home directory or the links
of a run's own directory cost little.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ploomber_like.errors import ExportError
from ploomber_like.inputs import sha256_of_file
from ploomber_like.kernels.processes import runs_folder
from ploomber_like.record import Artifact, Blob, RecordOptions

#: Directories never looked into: caches, checkpoints, version control, environments.
IGNORED_DIRECTORIES = frozenset({
    "__pycache__", ".ipynb_checkpoints", ".git", ".hg", ".svn", ".venv", "venv",
    "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox",
})
#: Files and folders looked at per listing, at most; past it the rest is not tracked.
MAX_SCAN_ENTRIES = 20_000
#: Start of the name of a run's own temporary working directory (see :func:`run_directory`).
RUN_DIRECTORY_PREFIX = "run-"
#: Start of the name of the folder of links that run directories share (see :func:`run_directory`).
LINK_SET_PREFIX = "links-"
#: Longest file name written on export (bytes); longer ones are shortened with a hash.
MAX_NAME_BYTES = 200

Snapshot = dict[str, tuple[int, int]]


def run_directory(options: RecordOptions) -> Path | None:
    """Create a working directory for one run alone, or return None if runs have none.

    It is made in this process's runtime folder in the system's temporary folder (``$TMPDIR``,
    see :func:`~ploomber_like.kernels.processes.runs_folder`), outside the user's tree, so no
    repository or recursive tool ever walks into it, and holds a symbolic link to each entry of
    ``options.linked_directory``: a run reads its inputs (``data.csv``) by the same relative
    path, while what it writes stays its own. Its caller removes it once the run has ended and
    its files are recorded. A sweep makes each kernel's directory while the kernel starts
    (:class:`~ploomber_like.kernels.pool.KernelPool`), not as its run begins.

    The links are hard links to the symbolic links of a :class:`_LinkSet` made once per folder:
    on ext4, making a symbolic link allocates an inode (0.25 - 0.8 ms of CPU each on this
    project's 2-core machine, ~30 ms a run in a folder of 56 entries), a hard link does not
    (~25 us). Each run still has its own names: one it removes or replaces is gone from its
    directory alone, and a symbolic link cannot be changed in place.
    """
    if options.linked_directory is None:
        return None
    directory = tempfile.mkdtemp(prefix=RUN_DIRECTORY_PREFIX, dir=runs_folder())
    if os.path.isdir(options.linked_directory):
        # Not linked: the database (a run must not write it).
        skipped = frozenset(os.path.abspath(p) for p in options.ignored_paths)
        _link_set(os.path.abspath(options.linked_directory), skipped).link_into(directory)
    return Path(directory)


@dataclass(frozen=True)
class _LinkSet:
    """A symbolic link to each entry of a folder, made once, for every run directory to
    hard-link (see :func:`run_directory`)."""

    #: The folder's modification time when its entries were listed.
    mtime_ns: int
    #: (name, absolute path) of each entry linked.
    entries: tuple[tuple[str, str], ...]
    #: Where the symbolic links are, or None: the folder changed too recently to keep them.
    folder: str | None

    def link_into(self, directory: str) -> None:
        for name, target in self.entries:
            link = os.path.join(directory, name)
            if self.folder is not None:
                try:
                    os.link(os.path.join(self.folder, name), link, follow_symlinks=False)
                    continue
                except OSError:  # a file system without hard links, a set replaced meanwhile
                    pass
            os.symlink(target, link)


#: Link sets of this process, by (process, folder, paths skipped).
_link_sets: dict[tuple[int, str, frozenset[str]], _LinkSet] = {}
_link_sets_lock = threading.Lock()
#: A folder modified this recently (ns) may change again within the same tick of the file
#: system's clock, with no new modification time to tell: its links are not kept.
_SETTLED_NS = 2_000_000_000


def _link_set(source: str, skipped: frozenset[str]) -> _LinkSet:
    """The links of ``source``'s entries (but ``skipped`` and :data:`IGNORED_DIRECTORIES`),
    made again once its entries may have changed (its modification time is another)."""
    key = (os.getpid(), source, skipped)
    mtime_ns = os.stat(source).st_mtime_ns
    with _link_sets_lock:
        known = _link_sets.get(key)
        if (known is not None and known.mtime_ns == mtime_ns and known.folder is not None
                and os.path.isdir(known.folder)):  # not removed with the runs' folder
            return known
        # ``source`` is absolute and normalized, so each entry's path is too.
        entries = tuple(
            (entry.name, entry.path)
            for entry in os.scandir(source)
            if entry.name not in IGNORED_DIRECTORIES and entry.path not in skipped
        )
        folder = None
        if time.time_ns() - mtime_ns > _SETTLED_NS:
            folder = tempfile.mkdtemp(prefix=LINK_SET_PREFIX, dir=runs_folder())
            for name, target in entries:
                os.symlink(target, os.path.join(folder, name))
        _link_sets[key] = made = _LinkSet(mtime_ns, entries, folder)
    if known is not None and known.folder is not None:
        shutil.rmtree(known.folder, ignore_errors=True)
    return made


def snapshot(directory: Path, options: RecordOptions) -> Snapshot:
    """Size and modification time of each regular file under ``directory`` (bounded)."""
    # Made absolute once, every path listed below is absolute too: it is compared with the
    # ignored paths as it is, and a file's relative path is the rest of its path (`abspath`
    # and `relpath` per file took two thirds of a listing's time).
    root = os.path.abspath(directory)
    start = len(root) if root.endswith(os.sep) else len(root) + 1
    ignored = {os.path.abspath(p) for p in options.ignored_paths}
    found: Snapshot = {}
    pending = [root]
    seen = 0
    while pending and seen < MAX_SCAN_ENTRIES:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_SCAN_ENTRIES:
                break
            # Links (a run's own directory is made of them) are never followed nor listed.
            if entry.path in ignored or entry.is_symlink():
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if entry.name not in IGNORED_DIRECTORIES:
                    pending.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                relative = entry.path[start:].replace(os.sep, "/")
                found[relative] = (info.st_size, info.st_mtime_ns)
    return found


def changed_files(
    directory: Path, before: Snapshot, options: RecordOptions
) -> tuple[list[Artifact], list[Blob], list[str]]:
    """Files new or changed since ``before``: their artifacts, the blobs of those stored, and a
    note for each file over the size limit."""
    artifacts, blobs, notes = [], [], []
    for relative, (size, mtime) in sorted(snapshot(directory, options).items()):
        if before.get(relative) == (size, mtime):
            continue
        path = directory / relative
        try:
            if size <= options.max_artifact_bytes:
                data = path.read_bytes()
                blob = Blob(_mimetype(relative), data)
                artifacts.append(Artifact(relative, len(data), blob.sha256, stored=True))
                blobs.append(blob)
            else:
                artifacts.append(Artifact(relative, size, sha256_of_file(path), stored=False))
                notes.append(
                    f"[ploomber_like] {relative} ({size:,} bytes) is over the artifact limit of "
                    f"{options.max_artifact_bytes:,} bytes: only its path, size and sha256 are "
                    "recorded\n"
                )
        except OSError:
            continue  # removed or unreadable since it was listed
    return artifacts, blobs, notes


def write_file(directory: str | os.PathLike[str], relative: str, data: bytes) -> Path:
    """Write ``data`` at ``directory/relative``, never through a symbolic link or outside.

    Each folder on the way is created or checked not to be a link; the file is opened with
    ``O_NOFOLLOW``; a name too long for the file system is shortened with a hash of it.
    """
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(p in ("..", "") for p in parts):
        raise ExportError(f"refusing to write {relative!r}: not a relative path")
    folder = Path(directory)
    for part in [None, *parts[:-1]]:
        if part is not None:
            folder = folder / _short_name(part)
        if folder.is_symlink():
            raise ExportError(f"not writing through the symbolic link {folder}")
        try:
            folder.mkdir(parents=part is None, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create {folder}: {exc.strerror}") from None
    target = folder / _short_name(parts[-1])
    if target.is_symlink():
        raise ExportError(f"not writing through the symbolic link {target}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(target, flags, 0o644)
    except OSError as exc:
        # ELOOP: a link appeared between the check and the open.
        raise ExportError(f"cannot write {target}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    return target


def _short_name(name: str) -> str:
    encoded = name.encode()
    if len(encoded) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix}" if dot and len(suffix) <= 16 else ""
    keep = encoded[: MAX_NAME_BYTES - len(digest) - len(suffix) - 1].decode(errors="ignore")
    return f"{keep}-{digest}{suffix}"


def _mimetype(relative: str) -> str:
    return mimetypes.guess_type(relative)[0] or "application/octet-stream"


