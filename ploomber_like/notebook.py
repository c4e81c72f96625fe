"""Reading a script or notebook into groups, finding its parameters cell, injecting values."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import keyword
import math
import numbers
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ploomber_like.caches import cache_home, read_json, write_json
from ploomber_like.errors import InputFileError, ParameterError
from ploomber_like.record import RecordOptions, run_fingerprint

SUPPORTED_SUFFIXES = (".py", ".ipynb")
PARAMETERS_TAG = "parameters"


@dataclass
class Group:
    """One code cell of the file: the unit that is executed and timed."""

    index: int
    source: str
    #: Where the group starts in the file, for error locations: the 1-based line of its first
    #: source line in a ``.py`` file, or the 1-based cell number in a notebook.
    start: int | None = None

    def location(self, path: str, line: int) -> str:
        """``fit.py:42`` (or ``fit.ipynb:cell 3, line 2``) for ``line`` (1-based) of the group."""
        if path.endswith(".ipynb"):
            return f"{path}:cell {self.start}, line {line}" if self.start else f"{path}"
        return f"{path}:{self.start + line - 1}" if self.start else f"{path}"


@dataclass
class PreparedRun:
    """A file read and parameterized, ready to execute."""

    path: Path
    text: str
    groups: list[Group]
    #: Index in ``groups`` after which the injected cell runs (-1: before the first group).
    inject_after: int
    injected_source: str
    #: Names whose values are the run's parameters: the parameters cell's variables plus overrides.
    parameter_names: list[str]
    overrides: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: What the run records beyond its shown values (set by the caller before executing).
    options: RecordOptions = field(default_factory=RecordOptions)
    #: Literal defaults of the parameters cell (see :func:`literal_defaults`).
    defaults: dict[str, Any] = field(default_factory=dict)
    #: A plain script (see :func:`is_plain_script`): its figures stay open from group to group.
    plain_script: bool = False
    #: Index among its point's replicates, and the replicate group (see
    #: :mod:`ploomber_like.replicates`; set by a sweep).
    replicate: int = 0
    replicate_group: str | None = None

    @property
    def script_path(self) -> str:
        """The script's absolute path: its ``__file__`` in the kernel, its folder on sys.path."""
        return str(self.path.resolve())

    @property
    def fingerprint(self) -> str:
        """Identity of the run for resuming sweeps: same file content, same effective parameters.

        Effective: the cell's literal defaults with the given values on top, so passing a
        parameter with its default value is the same run as not passing it. Replicates past
        the first are runs of their own, so a resumed sweep counts them.
        """
        effective = {**self.defaults, **self.overrides}
        if self.replicate:
            return run_fingerprint(self.text, {"replicate": self.replicate, "of": effective})
        return run_fingerprint(self.text, effective)


def read_groups(path: str | Path) -> tuple[Path, str, list[Group], int | None]:
    """Read ``path`` with jupytext: its text, code groups and the parameters group's index.

    Markdown and raw cells are skipped. Raises :class:`InputFileError` for a missing file, an
    unsupported extension, a file that is not a notebook or script, or a script that does not
    parse (``python`` would run none of it); a notebook's cell that does not parse fails the run
    when it is reached, as in Jupyter.
    """
    path, text = read_text(path)
    groups, parameters_index = groups_from_text(text, path)
    return path, text, groups, parameters_index


def read_text(path: str | Path) -> tuple[Path, str]:
    """The text of the script or notebook ``path``, unparsed (:func:`read_groups` parses it);
    raises :class:`InputFileError` for an unsupported extension, a missing or unreadable file."""
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise InputFileError(f"file not found: {path}")
    try:
        # utf-8-sig: a byte-order mark is dropped, as `python` drops it.
        return path, path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from None


def plain_sources(text: str, suffix: str) -> list[str] | None:
    """The code of a script's or notebook's ``text`` as plain Python sources, read without
    jupytext (whose import costs ~0.2 s): the whole script, or a notebook's code cells. None if
    a source is not plain Python (a %magic), or the notebook not JSON: only jupytext and
    IPython read those. Gives a sweep the file's imports while jupytext reads its groups."""
    if suffix == ".ipynb":
        try:
            cells = json.loads(text)["cells"]
            sources = [
                "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                for cell in cells if cell["cell_type"] == "code"
            ]
        except (ValueError, TypeError, KeyError):
            return None
    else:
        sources = [text]
    try:
        for source in sources:
            ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    return sources


def groups_from_text(text: str, path: Path) -> tuple[list[Group], int | None]:
    """The code groups of ``text``, read as the file ``path`` (its suffix gives the format),
    and the parameters group's index; raises :class:`InputFileError` as :func:`read_groups`."""
    groups, parameters_index, _ = _parsed_groups(text, path)
    return [replace(group) for group in groups], parameters_index


def groups_known(text: str, path: Path) -> bool:
    """Whether the groups of ``text`` (read as the file ``path``) were read before and kept on
    disk: :func:`groups_from_text` then takes milliseconds, not jupytext's ~0.25 s."""
    return _groups_cache_file(text, path.suffix).is_file()


@lru_cache(maxsize=16)
def _parsed_groups(text: str, path: Path) -> tuple[tuple[Group, ...], int | None, bool]:
    """The groups of ``text`` read as the file ``path``, the parameters group's index, and
    whether it is a plain script (:func:`is_plain_script`)."""
    # The same text read again is parsed once: in this process (a loop of track_execution
    # calls), and across processes through a cache file (a CLI run of a file run before).
    # Parsing imports jupytext (~0.2 s, more than a kernel's own start) and checks every cell
    # it builds against the notebook schema (~40 ms for a script).
    cache_file = _groups_cache_file(text, path.suffix)
    cached = _cached_groups(cache_file)
    if cached is not None:
        return cached
    parsed = _parse_groups(text, path)
    groups, parameters_index, plain = parsed
    if write_json(cache_file, {
        "groups": [[group.source, group.start] for group in groups],
        "parameters_index": parameters_index, "plain": plain,
    }):
        _forget_oldest(cache_file.parent)
    return parsed


def _parse_groups(text: str, path: Path) -> tuple[tuple[Group, ...], int | None, bool]:
    import jupytext  # heavy: only when a file is actually read
    from jupytext.formats import guess_format

    try:
        nb = jupytext.reads(text, fmt=path.suffix.lstrip("."))
        if path.suffix == ".ipynb":
            import nbformat

            # jupytext accepts any JSON object (`{"cells": 5}`): check it is a notebook.
            nbformat.validate(nb)
    except Exception as exc:  # jupytext/nbformat raise many types for broken files
        raise InputFileError(f"cannot read {path} as a notebook: {_first_line(exc)}") from None

    groups: list[Group] = []
    parameters_index = None
    lines = text.splitlines()
    cursor = 0
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if path.suffix == ".ipynb":
            start: int | None = number
        else:
            start, cursor = _find_source_line(lines, cell.source, cursor)
        group = Group(len(groups), cell.source, start)
        if path.suffix != ".ipynb":
            _check_syntax(path, group)
        if parameters_index is None and _is_parameters_cell(cell):
            parameters_index = group.index
        groups.append(group)
    plain = path.suffix == ".py" and guess_format(text, ".py")[0] == "light"
    return tuple(groups), parameters_index, plain


#: Files whose groups the cache keeps, at most (the least recently parsed are forgotten).
MAX_CACHED_FILES = 256


def _groups_cache_file(text: str, suffix: str) -> Path:
    """The cache file of ``text`` read as a ``suffix`` file: its groups depend on the text,
    on jupytext (its version: its files' times and sizes) and on the Python that checked their
    syntax."""
    spec = importlib.util.find_spec("jupytext")
    origin = spec.origin if spec is not None and spec.origin else ""
    try:
        stat = os.stat(origin)
        installed = f"{origin}:{stat.st_mtime_ns}:{stat.st_size}"
    except OSError:
        installed = origin
    key = "\0".join([suffix, sys.version, installed, text])
    return cache_home() / "groups" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def _cached_groups(cache_file: Path) -> tuple[tuple[Group, ...], int | None, bool] | None:
    data = read_json(cache_file)
    try:
        groups = tuple(
            Group(index, source, start) for index, (source, start) in enumerate(data["groups"])
        )
        parameters_index, plain = data["parameters_index"], data["plain"]
        if all(isinstance(g.source, str) and isinstance(g.start, (int, type(None)))
               for g in groups) and isinstance(parameters_index, (int, type(None))
        ) and isinstance(plain, bool):
            return groups, parameters_index, plain
    except (TypeError, KeyError, ValueError):
        pass  # missing, or not ours: parsed again
    return None


def _forget_oldest(folder: Path) -> None:
    try:
        files = sorted(folder.glob("*.json"), key=lambda file: file.stat().st_mtime)
        for file in files[:-MAX_CACHED_FILES]:
            file.unlink()
    except OSError:
        pass  # another process forgot them first, or the cache is not ours to change


def prepare_run(path: str | Path, parameters: Mapping[str, Any] | None = None) -> PreparedRun:
    """Read ``path`` and plan the injection of ``parameters`` after its parameters cell."""
    return prepare_runs(path, [parameters or {}])[0]


def prepare_runs(path: str | Path, points: list[Mapping[str, Any]]) -> list[PreparedRun]:
    """Read ``path`` once and plan one run per set of parameters in ``points``."""
    checked = [validate_parameters(point) for point in points]
    path, text, groups, parameters_index = read_groups(path)
    return plan_runs(path, text, groups, parameters_index, checked)


def plan_runs(
    path: Path,
    text: str,
    groups: list[Group],
    parameters_index: int | None,
    points: list[dict[str, Any]],
) -> list[PreparedRun]:
    """Plan one run per set of validated parameters in ``points``, on a file already read.

    A sweep reads its file once (:func:`read_groups`) and plans its points chunk by chunk.
    """
    cell = None if parameters_index is None else groups[parameters_index].source
    defined = [] if cell is None else assigned_names(cell)
    defaults = {} if cell is None else literal_defaults(cell)
    plain = is_plain_script(text, path)
    return [
        _plan(path, text, groups, parameters_index, defined, point, defaults, plain)
        for point in points
    ]


def is_plain_script(text: str, path: Path) -> bool:
    """True for a ``.py`` file in jupytext's light format (no ``# %%`` cells): ``python`` runs
    it as one program, so a figure drawn over several blank-line blocks is one figure."""
    return path.suffix == ".py" and _parsed_groups(text, path)[2]


def prepare_source(
    text: str, path: str | Path, parameters: Mapping[str, Any] | None = None
) -> PreparedRun:
    """Plan a run of ``text`` as if it were the file ``path`` (e.g. a stored source to rerun).

    ``path`` need not exist: its suffix says how to read ``text`` (the script text for ``.py``,
    the notebook JSON for ``.ipynb``), and it is the script's ``__file__`` in the kernel.
    """
    checked = validate_parameters(parameters or {})
    path = Path(path)
    _check_suffix(path)
    groups, parameters_index = groups_from_text(text, path)
    return plan_runs(path, text, groups, parameters_index, [checked])[0]


def _plan(
    path: Path,
    text: str,
    groups: list[Group],
    parameters_index: int | None,
    defined: list[str],
    overrides: dict[str, Any],
    defaults: dict[str, Any],
    plain_script: bool,
) -> PreparedRun:
    warnings = []
    if parameters_index is None:
        if overrides:
            warnings.append(
                f"{path.name} has no parameters cell (tag a cell 'parameters' or start it with "
                "'# parameters'); injecting the parameters before the first cell"
            )
    else:
        missing = [name for name in overrides if name not in defined]
        if missing:
            warnings.append(
                f"parameters not defined in the parameters cell of {path.name}, "
                f"injected anyway: {', '.join(missing)}"
            )
    return PreparedRun(
        path=path,
        text=text,
        groups=groups,
        inject_after=-1 if parameters_index is None else parameters_index,
        injected_source=injected_cell_source(overrides),
        parameter_names=list(dict.fromkeys([*defined, *overrides])),
        overrides=overrides,
        warnings=warnings,
        defaults=defaults,
        plain_script=plain_script,
    )


def validate_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check names are identifiers and values Python literals; raise :class:`ParameterError`."""
    if not isinstance(parameters, Mapping):
        raise ParameterError(
            f"parameters must be a dict of name -> value, got {type(parameters).__name__}"
        )
    checked = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ParameterError(f"parameter name {name!r} is not a Python identifier")
        value = _builtin_number(value)
        python_literal(value, name)
        checked[name] = value
    return checked


def _builtin_number(value: Any) -> Any:
    # Grids built with numpy (np.arange, np.logspace) hold numpy scalars: inject and store them
    # as the int or float they stand for, not as `np.float64(0.1)`, which the kernel cannot eval.
    if type(value) in (bool, int, float):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def injected_cell_source(overrides: Mapping[str, Any]) -> str:
    """Source of the cell assigning the given values."""
    lines = ["# Injected parameters"]
    lines += [f"{name} = {python_literal(value, name)}" for name, value in overrides.items()]
    return "\n".join(lines)


def python_literal(value: Any, name: str = "value") -> str:
    """Source text that evaluates to ``value``; only Python literals are accepted."""
    if value is None or isinstance(value, bool | int | str | bytes):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v, name) for v in value) + "]"
    if isinstance(value, tuple):
        items = [python_literal(v, name) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f"{python_literal(k, name)}: {python_literal(v, name)}" for k, v in value.items()
            )
            + "}"
        )
    raise ParameterError(
        f"parameter {name!r}: {type(value).__name__} value {value!r:.60} is not a Python literal "
        "(use numbers, strings, bools, None, lists, tuples or dicts)"
    )


def assigned_names(source: str) -> list[str]:
    """Names assigned at the top level of ``source``, in order."""
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.append(sub.id)
    return list(dict.fromkeys(names))


def literal_defaults(source: str) -> dict[str, Any]:
    """The values a parameters cell assigns that can be known without running it.

    ``n = 10_000`` gives ``{"n": 10000}``; a name assigned anything but a Python literal
    (``n = 2 ** 10``, ``a, b = f()``), or assigned more than once, is left out.
    """
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return {}
    defaults: dict[str, Any] = {}
    unknown: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets, value = [node.target], getattr(node, "value", None)
        for target in targets:
            names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
            if isinstance(target, ast.Name) and value is not None and not (
                isinstance(node, ast.AugAssign) or target.id in defaults
            ):
                try:
                    defaults[target.id] = ast.literal_eval(value)
                    continue
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    pass
            unknown.update(names)
    return {name: value for name, value in defaults.items() if name not in unknown}


def _is_parameters_cell(cell: Any) -> bool:
    if PARAMETERS_TAG in cell.metadata.get("tags", []):
        return True
    first = cell.source.lstrip().splitlines()[0].strip()
    return first.lstrip("#").strip().lower() == PARAMETERS_TAG and first.startswith("#")


def _check_suffix(path: Path) -> None:
    if path.suffix not in SUPPORTED_SUFFIXES:
        raise InputFileError(
            f"unsupported file type {path.suffix or '(none)'!r} for {path}: use .py or .ipynb"
        )


def _check_syntax(path: Path, group: Group) -> None:
    try:
        parse_cell(group.source)
    except SyntaxError as exc:
        raise InputFileError(
            f"{group.location(str(path), exc.lineno or 1)}: syntax error in group "
            f"{group.index + 1}: {exc.msg}"
        ) from None


def parse_cell(source: str) -> ast.Module:
    """Parse a cell as the kernel will: %magics and !shell lines become Python first."""
    try:
        return ast.parse(source)
    except SyntaxError:
        # Only then pay for IPython's transformer (0.4 s to import): most cells are plain Python.
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))


def _find_source_line(lines: list[str], source: str, cursor: int) -> tuple[int | None, int]:
    """The 1-based line of ``source``'s first line in ``lines``, searched from ``cursor``.

    jupytext drops cell markers and blank lines around cells but keeps code lines as written,
    so a cell's first line is found verbatim; the cursor keeps repeated lines in order.
    """
    first = source.splitlines()[0].rstrip()
    for index in range(cursor, len(lines)):
        if lines[index].rstrip() == first:
            return index + 1, index + len(source.splitlines())
    return None, cursor


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
