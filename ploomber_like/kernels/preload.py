"""Which modules a template may preload: those a file imports from the stdlib or site-packages,
and the submodules of those libraries the file names in a string (:func:`named_modules`).

Also :func:`installed_packages_stamp`, which changes when packages are installed or removed, so
a template kept across calls is rebuilt rather than serve modules that changed on disk.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import re
import sys
import sysconfig
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from ploomber_like.capture.inputs import library_roots
from ploomber_like.notebook import parse_cell


def preloadable_modules(
    sources: Iterable[str], script_dir: Path, cwd: Path, learned: Iterable[str] = ()
) -> list[str]:
    """Modules the sources import, then the ``learned`` ones (what earlier runs of the file
    imported at run time, see :mod:`~ploomber_like.kernels.learned`), that resolve to the
    standard library or site-packages.

    Resolution uses the kernel's search path (script folder and working directory first), so a
    local ``utils.py`` shadowing an installed ``utils`` is never preloaded.
    """
    names: list[str] = []
    for source in sources:
        names += imported_modules(source)
    names += learned
    search_path = _search_path(script_dir, cwd)
    allowed = library_roots()
    chosen = []
    verdicts: dict[str, bool] = {}
    for name in dict.fromkeys(names):
        top = name.split(".")[0]
        if top not in verdicts:
            verdicts[top] = _is_library_module(top, search_path, allowed)
        if verdicts[top]:
            chosen.append(name)
    return chosen


def _search_path(script_dir: Path, cwd: Path) -> list[str]:
    """Where a kernel of the script in ``script_dir``, run from ``cwd``, finds modules: both
    folders before the installed packages."""
    return [str(script_dir), str(cwd), *[p for p in sys.path if p not in ("", ".")]]


def imported_modules(source: str) -> list[str]:
    """Names of the modules ``source`` imports, absolute imports only, in order."""
    return list(_names_in(source)[0])


def named_modules(
    sources: Iterable[str], preloaded: Iterable[str], script_dir: Path, cwd: Path
) -> dict[str, str]:
    """The modules the sources name in a string without importing them, by name, with their
    files: a configurable script names its model's module in the parameters cell and imports
    it after (``module_name = "sklearn.ensemble"``, then ``import_module(module_name)``), so
    the import is not in its source. A string naming a class (``"sklearn.svm.SVC"``) names
    its module. Only submodules of the libraries in ``preloaded`` (those the file imports,
    from :func:`preloadable_modules`): a string never brings in a library the file does not
    use. Found on disk, without importing anything here.

    They are suggestions rather than preloads: a template imports one only if its import
    succeeds silently (see :meth:`~ploomber_like.kernels.learned.LearnedModules.note`).
    """
    preloaded = set(preloaded)  # read twice, and may be an iterator
    libraries = {name.partition(".")[0] for name in preloaded}
    search_path = _search_path(script_dir, cwd)
    found: dict[str, str] = {}
    # Strings share their packages (`sklearn`, `sklearn.ensemble`): each is looked up once.
    specs: dict[str, importlib.machinery.ModuleSpec | None] = {}
    for source in sources:
        for text in _names_in(source)[1]:
            parts = text.split(".")
            # A package's `__main__` runs its command line when imported: never by a string.
            if parts[0] not in libraries or any(part.startswith("__") for part in parts):
                continue
            # The longest prefix that is a module: a class or function named after it is not.
            for end in range(len(parts), 1, -1):
                spec = _find_spec(".".join(parts[:end]), search_path, specs)
                if spec is not None and spec.has_location and spec.origin:
                    found[spec.name] = spec.origin
                    break
    return {name: file for name, file in found.items() if name not in preloaded}


#: A string that may name a module: two or more dotted identifiers.
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", re.ASCII)


@lru_cache(maxsize=64)
def _names_in(source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The modules ``source`` imports and the dotted names it holds as strings, parsed once
    for both (:func:`preloadable_modules` and :func:`named_modules` read the same cells)."""
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return (), ()
    imports: list[str] = []
    strings: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.append(node.module)
            # `from sklearn import metrics` imports the submodule sklearn.metrics.
            imports += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
            and _DOTTED_NAME.fullmatch(node.value)
        ):
            strings.append(node.value)
    return tuple(imports), tuple(dict.fromkeys(strings))


def _find_spec(
    name: str, search_path: list[str], specs: dict[str, importlib.machinery.ModuleSpec | None]
) -> importlib.machinery.ModuleSpec | None:
    """The spec of the module ``name``, found as the import system would but without importing
    its packages (their ``__init__`` may do anything), or None; kept in ``specs``."""
    if name not in specs:
        parent = name.rpartition(".")[0]
        locations: list[str] = search_path
        if parent:
            parent_spec = _find_spec(parent, search_path, specs)
            # A module that is not a package has no submodules.
            locations = list(parent_spec.submodule_search_locations or []) if parent_spec else []
        spec = None
        if locations:
            try:
                spec = importlib.machinery.PathFinder.find_spec(name, locations)
            except (ImportError, ValueError):
                spec = None
        specs[name] = spec
    return specs[name]


def installed_packages_stamp() -> tuple[int, ...]:
    """Modification times of the site-packages folders: installing or removing a package adds
    or removes entries there, which changes its folder's time. Costs a few ``stat`` calls."""
    paths = sysconfig.get_paths()
    import site

    folders = sorted({paths.get("purelib", ""), paths.get("platlib", ""),
                      *site.getsitepackages(), site.getusersitepackages()} - {""})
    stamp = []
    for folder in folders:
        try:
            stamp.append(os.stat(folder).st_mtime_ns)
        except OSError:
            stamp.append(0)
    return tuple(stamp)


def _is_library_module(top: str, search_path: list[str], roots: list[str]) -> bool:
    if top in sys.builtin_module_names:
        return True
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, search_path)
    except (ImportError, ValueError):
        return False
    if spec is None:
        # Not on the path: frozen stdlib modules, or meta-path finders (editable installs).
        spec = importlib.util.find_spec(top)
        if spec is None:
            return False
    locations = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    return all(
        loc in ("frozen", "built-in")
        or any(os.path.realpath(loc).startswith(root) for root in roots)
        for loc in locations
    )
