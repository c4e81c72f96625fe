"""Rerunning a stored run from its stored source text, and comparing what it shows.

A run stores the exact text it ran (in ``blobs``, under ``source_sha256``), the values it was
given (``overrides``) and its working directory (``environment.cwd``). :func:`rerun` runs that
text again with those values, from that directory, records a new row whose ``reproduces``
column names the original, and compares every parameter and value of the two rows.
"""

from __future__ import annotations

import math
import os
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ploomber_like import store
from ploomber_like.errors import TrackerError
from ploomber_like.inputs import changed_inputs
from ploomber_like.options import RunOptions
from ploomber_like.record import BLOB_REF_KEY, Environment, Input, Record, is_blob_reference

#: Default relative tolerance for numbers: tight enough that only float noise passes.
DEFAULT_RTOL = 1e-9


class ReproductionWarning(UserWarning):
    """The rerun's conditions differ from the original's (versions, inputs, working
    directory)."""


@dataclass
class Difference:
    """A parameter or value that did not reproduce (``None`` on a side that lacks the key)."""

    key: str
    recorded: Any
    rerun: Any


@dataclass
class OutputComparison:
    """A plot or HTML output of the original run and of the rerun, compared by content hash.

    Kept apart from the values: the same figure drawn by another matplotlib (or freetype)
    version has other bytes, so a changed hash says little about the numbers behind it.
    """

    key: str
    mimetype: str
    recorded: str | None
    rerun: str | None

    @property
    def identical(self) -> bool:
        return self.recorded == self.rerun


@dataclass
class Reproduction:
    """What :func:`rerun` found: the new run and how its values compare with the original's."""

    #: uuid of the run that was rerun.
    original: str
    #: The new run, as stored (its ``reproduces`` is ``original``).
    record: Record
    #: Parameters, values and status that differ; empty when everything reproduced.
    differences: list[Difference]
    #: Every plot and HTML output, identical or not (they do not decide :attr:`reproduced`).
    outputs: list[OutputComparison]
    #: Python and package versions and inputs that differ, a missing working directory...
    warnings: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        """True when every parameter and value (and the status) came out the same."""
        return not self.differences


def rerun(
    uuid: str,
    database: str | os.PathLike[str] = "experiments.db",
    *,
    rtol: float = DEFAULT_RTOL,
    timeout: float | None = None,
    quiet: bool = False,
) -> Reproduction:
    """Run a stored run again from its stored source and compare the values it shows.

    Parameters
    ----------
    uuid : str
        The run to rerun (or a unique prefix of its uuid).
    database : str or Path
        The tracking database holding the run; the rerun is recorded there too.
    rtol : float
        Relative tolerance for numbers; strings, booleans and None compare exactly.
    timeout : float, optional
        Seconds the rerun may take.
    quiet : bool
        Do not emit :class:`ReproductionWarning` (they are in the result all the same).

    Returns
    -------
    Reproduction
        The new record, the differences, the outputs compared by hash, and the warnings.

    Raises
    ------
    TrackerError
        Unknown uuid, a run without a stored source (logged by hand or by another tracker),
        an unusable database, or a negative ``rtol``; nothing is written then.

    Examples
    --------
    >>> result = rerun("3b3b921d", database="experiments.db")  # doctest: +SKIP
    >>> result.reproduced, result.differences  # doctest: +SKIP
    (True, [])
    """
    from ploomber_like.notebook import prepare_source
    from ploomber_like.tracker import SQLiteTracker
    from ploomber_like.tracking import track_prepared

    if not rtol >= 0:
        raise TrackerError(f"rtol must be a number >= 0, got {rtol!r}")
    original = SQLiteTracker(database, create=False).get(uuid)
    stored = store.read_source(database, original.uuid)
    # Recorded the way the original was: its series, its notebook, its artifact limit.
    options = RunOptions.recorded(stored.recording_options, timeout=timeout, quiet=True)
    cwd, notes = _working_directory(original.uuid, original.environment)
    script = Path(stored.source_path)
    script = script if script.is_absolute() else cwd / script
    notes += _input_changes(original.uuid, original.inputs, script)
    prepared = prepare_source(stored.source, script, stored.overrides)
    record = track_prepared(prepared, database, options, cwd=cwd, reproduces=original.uuid)
    notes += _version_changes(original.environment, record.environment)
    again = store.read_source(database, record.uuid)
    differences, outputs = compare_values(stored.values, again.values, rtol)
    if (original.status or "") != record.status:
        differences.insert(0, Difference("(status)", original.status, str(record.status)))
    if not quiet:
        for note in notes:
            warnings.warn(note, ReproductionWarning, stacklevel=2)
    return Reproduction(original.uuid, record, differences, outputs, notes)


def compare_values(
    recorded: dict[str, Any], rerun: dict[str, Any], rtol: float = DEFAULT_RTOL
) -> tuple[list[Difference], list[OutputComparison]]:
    """Compare two runs' ``parameters`` objects (as stored: outputs as blob references).

    Numbers (also inside lists and dicts) match within the relative tolerance ``rtol``;
    everything else matches exactly. Outputs are compared by hash, separately.
    """
    differences: list[Difference] = []
    outputs: list[OutputComparison] = []
    for key in dict.fromkeys([*recorded, *rerun]):
        before, after = recorded.get(key), rerun.get(key)
        if is_blob_reference(before) or is_blob_reference(after):
            reference = before if is_blob_reference(before) else after
            outputs.append(OutputComparison(
                key, reference["mimetype"], _blob_hash(before), _blob_hash(after)
            ))
        elif key not in recorded or key not in rerun or not _same(before, after, rtol):
            differences.append(Difference(key, before, after))
    return differences, outputs


def _same(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, rtol) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rtol) for k in a)
    return type(a) is type(b) and a == b


def _blob_hash(value: Any) -> str | None:
    return value[BLOB_REF_KEY] if is_blob_reference(value) else None


def _working_directory(uuid: str, environment: Environment | None) -> tuple[Path, list[str]]:
    """Where the original ran, or this process's directory with a note saying why not.

    Running from here rather than refusing: a database copied to another machine can still be
    rerun, and the comparison then shows what the missing directory changed.
    """
    here = Path.cwd()
    recorded = environment.cwd if environment is not None else None
    if recorded is None:
        return here, [f"run {uuid[:8]} recorded no working directory: running from {here}"]
    if not Path(recorded).is_dir():
        return here, [f"{recorded}, where run {uuid[:8]} ran, no longer exists: "
                      f"running from {here}"]
    return Path(recorded), []


def _input_changes(uuid: str, recorded: list[Input], script: Path) -> list[str]:
    """A note naming the files and user modules the run read that differ now, if any."""
    changes = changed_inputs(recorded, str(script))
    if not changes:
        return []
    return [f"inputs changed since run {uuid[:8]}: " + ", ".join(str(c) for c in changes)]


def _version_changes(recorded: Environment | None, now: Environment | None) -> list[str]:
    """One note naming each version that differs: Python, then the packages both runs used.

    A package only one side lists is left out: a warm-template kernel and a fresh one import
    different machinery (psutil, matplotlib-inline), which says nothing about the user's code.
    """
    if recorded is None:
        return []
    changes = []
    python_now = now.python if now is not None else platform.python_version()
    if recorded.python != python_now:
        changes.append(f"python {python_now} (recorded {recorded.python})")
    packages_now = now.packages if now is not None else {}
    for name in sorted(set(recorded.packages) & set(packages_now)):
        if recorded.packages[name] != packages_now[name]:
            changes.append(f"{name} {packages_now[name]} (recorded {recorded.packages[name]})")
    if not changes:
        return []
    return ["versions differ from the recorded run: " + ", ".join(changes)]
