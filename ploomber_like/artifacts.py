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
import stat
import tempfile
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
    its files are recorded. A link costs ~0.15 ms, so a sweep makes each kernel's directory
    while the kernel starts (:class:`~ploomber_like.kernels.pool.KernelPool`), not as its run
    begins.
    """
    if options.linked_directory is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix=RUN_DIRECTORY_PREFIX, dir=runs_folder()))
    source = Path(options.linked_directory)
    if source.is_dir():
        # Not linked: the database (a run must not write it).
        skipped = {os.path.abspath(p) for p in options.ignored_paths}
        for entry in os.scandir(source):
            target = os.path.abspath(entry.path)
            if target not in skipped and entry.name not in IGNORED_DIRECTORIES:
                (directory / entry.name).symlink_to(target)
    return directory


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


