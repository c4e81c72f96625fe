"""Which modules a template may preload: those a file imports from the stdlib or site-packages.

Also :func:`installed_packages_stamp`, which changes when packages are installed or removed, so
a template kept across calls is rebuilt rather than serve modules that changed on disk.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Iterable
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
    search_path = [str(script_dir), str(cwd), *[p for p in sys.path if p not in ("", ".")]]
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


def imported_modules(source: str) -> list[str]:
    """Names of the modules ``source`` imports, absolute imports only, in order."""
    try:
        tree = parse_cell(source)
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            # `from sklearn import metrics` imports the submodule sklearn.metrics.
            names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


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
