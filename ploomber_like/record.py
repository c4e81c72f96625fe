"""The record of one run, and the environment it ran in."""

from __future__ import annotations

import dataclasses
import enum
import getpass
import hashlib
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class Status(str, enum.Enum):
    """How a run ended. ``running`` is written when the run starts and replaced when it ends.

    A ``str``: it compares equal to, is stored as, and prints as its value (``"ok"``).
    """

    RUNNING = "running"
    OK = "ok"
    #: The user's code raised (or called ``sys.exit`` with a non-zero code).
    FAILED = "failed"
    TIMEOUT = "timeout"
    #: The kernel process died (segfault, ``os._exit``, out of memory) or never started.
    CRASHED = "crashed"
    INTERRUPTED = "interrupted"
    #: Stopped early by the sweep's pruning rule (see :mod:`ploomber_like.pruning`): its
    #: values and series are those shown up to ``pruned_step``.
    PRUNED = "pruned"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: Every status's value, in the order above (for CLI choices and error messages).
STATUSES = tuple(status.value for status in Status)

#: Key that marks a reference to a rich output stored out of line in the ``blobs`` table.
BLOB_REF_KEY = "$blob"


@dataclass
class Blob:
    """A rich output (PNG, SVG, HTML) or a source text, stored once under its sha256."""

    mimetype: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def reference(self) -> dict[str, str]:
        """The small JSON object stored in ``parameters`` in place of the content."""
        return {BLOB_REF_KEY: self.sha256, "mimetype": self.mimetype}


def is_blob_reference(value: Any) -> bool:
    """True for a value stored as a reference to the ``blobs`` table."""
    return isinstance(value, dict) and BLOB_REF_KEY in value and "mimetype" in value


@dataclass
class RunError:
    """Why a run did not end ``ok``."""

    type: str
    message: str
    traceback: str = ""
    #: 0-based index of the failing group among the file's code groups (None: outside a group);
    #: people read it counted from 1 (:meth:`summary`, ``show``).
    group: int | None = None
    group_source: str | None = None
    #: Where in the user's file the failing statement is: ``fit.py:42``, or
    #: ``fit.ipynb:cell 3, line 2`` for a notebook.
    location: str | None = None

    def summary(self) -> str:
        """One line: ``ZeroDivisionError in group 3 (fit.py:42): division by zero``."""
        where = ""
        if self.group is not None:
            where = f" in group {self.group + 1}"
        if self.location:
            where += f" ({self.location})" if where else f" at {self.location}"
        return f"{self.type}{where}: {self.message}" if self.message else f"{self.type}{where}"


@dataclass
class MetricPoint:
    """One point of a series a run printed (``loss: 0.41``): see :mod:`ploomber_like.scalars`."""

    key: str
    step: int
    value: float
    #: Seconds since the epoch when the line was printed.
    time: float


@dataclass
class Artifact:
    """A file a run created or changed under its working directory."""

    #: Relative to the run's working directory, with ``/`` separators.
    path: str
    size: int
    sha256: str
    #: False when the file was over the size limit: only path, size and hash are kept.
    stored: bool = True


@dataclass
class Input:
    """A file a run read, or a module of the user's it imported (see
    :mod:`ploomber_like.inputs`)."""

    #: ``file`` or ``module``.
    kind: str
    #: Relative to the script's folder, with ``/`` separators (``data.csv``, ``../shared.py``).
    path: str
    #: None when the file was gone before it could be hashed.
    size: int | None
    sha256: str | None


#: Files larger than this are listed (path, size, sha256) but their content is not stored.
DEFAULT_MAX_ARTIFACT_BYTES = 100 * 2**20

#: The options stored with each run (column ``recording_options``): a rerun records with them.
RECORDED_OPTIONS = ("output_scalars", "save_notebook", "max_artifact_bytes")


@dataclass
class RecordOptions:
    """What a run records beyond the values it shows; travels with the run to its executor."""

    #: Parse ``name: number`` lines of stdout into series: True for the default pattern, a
    #: regular expression with named groups ``key`` and ``value`` (optionally ``step``) to
    #: replace it, False for none.
    output_scalars: bool | str = True
    #: Store the executed notebook (outputs included) with the run.
    save_notebook: bool = False
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    #: When set, each run works in a temporary directory of its own (see
    #: :func:`ploomber_like.artifacts.run_directory`) holding links to the entries of this
    #: directory, instead of the kernel's working directory.
    linked_directory: str | None = None
    #: The kernel's working directory, where a run without its own directory writes (None:
    #: this process's).
    working_directory: str | None = None
    #: Absolute paths never recorded as artifacts (the database and its journal files).
    ignored_paths: tuple[str, ...] = ()
    #: Echo the script's stdout and stderr to this process's as they arrive.
    stream_output: bool = False

    def stored(self) -> dict[str, Any]:
        """The options that decide what the run records, as stored with it."""
        return {name: getattr(self, name) for name in RECORDED_OPTIONS}


@dataclass
class Environment:
    """Where and how a run was executed."""

    python: str
    platform: str
    host: str
    user: str
    command: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    #: Versions of the third-party distributions the run imported.
    packages: dict[str, str] = field(default_factory=dict)
    #: The kernel's working directory: where a rerun runs, since relative paths in the file and
    #: a relative ``source_path`` mean something only from there.
    cwd: str | None = None

    @classmethod
    def collect(cls, source_path: Path, cwd: Path | None = None) -> Environment:
        """The environment of a run of ``source_path`` whose kernel works in ``cwd`` (default:
        this process's working directory)."""
        commit, dirty = git_state(source_path)
        return cls(
            python=platform.python_version(),
            platform=platform.platform(),
            host=socket.gethostname(),
            user=_user_name(),
            # orig_argv is the command as typed (`python -m tracker ...`), argv[0] a file path.
            command=shlex.join(getattr(sys, "orig_argv", sys.argv)),
            git_commit=commit,
            git_dirty=dirty,
            cwd=str(cwd or Path.cwd()),
        )


@dataclass
class SearchTrial:
    """Where a run stands in a search (:func:`ploomber_like.track_search`)."""

    #: The search's name: every trial of one search shares it.
    search: str
    #: 0-based, in the order the trials were asked.
    number: int
    #: The objective's value; None while running and for a failed trial.
    objective: float | None = None
    #: Why the trial failed (the run failed, or it showed no number for the objective); None
    #: for a complete trial.
    error: str | None = None


@dataclass
class Record:
    """Everything recorded about one run of a file."""

    uuid: str
    created: str
    path: str
    source: str
    #: Effective parameters: the parameters cell's variables after injection (defaults included).
    parameters: dict[str, Any]
    #: The values the caller passed (a subset of ``parameters`` plus any the cell lacks).
    overrides: dict[str, Any]
    status: Status = Status.RUNNING
    #: Captured values; rich ones are blob references (see :class:`Blob`).
    values: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    error: RunError | None = None
    #: Seconds from the run's kernel being ready to its end: the run's own cost.
    duration: float | None = None
    #: Seconds the run waited for its kernel before that (a kernel starting, a warm template
    #: being built), not part of ``duration``.
    kernel_wait: float | None = None
    group_durations: list[float] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    environment: Environment | None = None
    comment: str | None = None
    #: Series of ``name: number`` lines printed to stdout.
    metrics: list[MetricPoint] = field(default_factory=list)
    #: Files created or changed under ``workdir``; their contents are in ``blobs``.
    artifacts: list[Artifact] = field(default_factory=list)
    #: Files the run read and modules of the user's it imported.
    inputs: list[Input] = field(default_factory=list)
    #: The directory the run worked in.
    workdir: str | None = None
    #: sha256 of the executed notebook's blob, when it was saved.
    notebook: str | None = None
    #: A label the user gave the run or its sweep (``--name``), shown next to the uuid.
    name: str | None = None
    #: uuid of the run this one reruns (see :func:`ploomber_like.reproduction.rerun`).
    reproduces: str | None = None
    #: Identity of the run for resuming sweeps (see :attr:`PreparedRun.fingerprint
    #: <ploomber_like.notebook.PreparedRun.fingerprint>`); None for runs logged by hand.
    fingerprint: str | None = None
    #: The search trial this run is, if it belongs to a search (see :class:`SearchTrial`).
    trial: SearchTrial | None = None
    #: The step of the watched series at which pruning stopped the run.
    pruned_step: int | None = None
    #: 0-based index of the run among the replicates of its point (``repeat=N``).
    replicate: int | None = None
    #: The run's replicate group: a hash of its file and effective parameters but the seed
    #: (see :mod:`ploomber_like.replicates`).
    replicate_group: str | None = None
    #: What the run was set to record beyond its values; None for runs logged by hand.
    options: RecordOptions | None = None

    @property
    def source_sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def fail(self, status: Status, exc: BaseException, started: float, traceback: str = "") -> None:
        """End the run with ``status`` because ``exc`` stopped it outside the user's code."""
        self.status = status
        self.error = RunError(type(exc).__name__, str(exc) or repr(exc), traceback)
        self.duration = time.monotonic() - started

    def interrupt(self, message: str, started: float | None = None) -> None:
        """Mark the run ``interrupted``; an error it already has (what stopped it) is kept."""
        self.status = Status.INTERRUPTED
        if self.error is None:
            self.error = RunError("KeyboardInterrupt", message)
        if self.duration is None and started is not None:
            self.duration = time.monotonic() - started

    def prune(self, step: int, reason: str) -> None:
        """Mark the run ``pruned`` at ``step`` of its watched series, for ``reason``."""
        self.status = Status.PRUNED
        self.error = RunError("Pruned", reason)
        self.pruned_step = step

    def merged(self) -> dict[str, Any]:
        """Parameters and values in one object: the ``parameters`` column of the anchor's schema."""
        return {**self.parameters, **self.values}

    def environment_dict(self) -> dict[str, Any] | None:
        return dataclasses.asdict(self.environment) if self.environment else None


def new_uuid() -> str:
    """A run's uuid: 32 hex digits, as sklearn-evaluation's tests and docs use (its tracker and
    ploomber-engine store only 8, which collide past a few thousand runs). Views show a prefix."""
    return uuid.uuid4().hex


def new_created() -> str:
    """UTC timestamp in SQLite's ``current_timestamp`` layout, with microseconds to keep order."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def run_fingerprint(source: str, parameters: dict[str, Any]) -> str:
    """Hash of a file's content and the parameters a run of it uses."""
    payload = json.dumps(parameters, sort_keys=True, default=repr)
    return hashlib.sha256(f"{source}\0{payload}".encode()).hexdigest()


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the git repository holding ``path``, or (None, None)."""
    folder = str(path.resolve().parent)
    # One git process for both (its status headers name the commit): each run of a
    # track_execution loop waits for it.
    try:
        status = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    lines = status.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if status.returncode != 0 or commit is None or commit == "(initial)":
        return None, None
    return commit, any(not line.startswith("#") for line in lines)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
