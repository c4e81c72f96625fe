"""Package provenance: the installed distributions, and versions, a run's imports came from."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ploomber_like.caches import cache_home, read_json, write_json


@dataclass(frozen=True)
class Distributions:
    """The installed distributions, as a run's record names them."""

    #: The distributions providing each top-level module, by their ``Name``.
    providers: dict[str, list[str]]
    #: Each distribution's ``Version``, as the first one of its name on ``sys.path`` gives it.
    versions: dict[str, str]


@lru_cache(maxsize=64)
def package_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """Versions of the distributions providing ``modules``."""
    if not modules:
        return {}
    installed = module_distributions()
    versions = {}
    for module in modules:
        for distribution in installed.providers.get(module, []):
            if distribution in installed.versions:
                versions[distribution] = installed.versions[distribution]
    return dict(sorted(versions.items()))


def module_distributions() -> Distributions:
    """Which distributions provide each top-level module, and their versions.

    Scanning the installed distributions reads a few files of each (~60 ms of CPU for 150): it
    is done once per process, by one thread (others wait for it rather than scan too), and its
    result is cached on disk for as long as the installed packages stay the same.
    """
    with _SCANNING:
        return _module_distributions()


_SCANNING = threading.Lock()
#: Bumped when what the cache holds changes shape: an older cache is then not read.
_CACHE_FORMAT = 2


@lru_cache(maxsize=1)
def _module_distributions() -> Distributions:
    cache = _cache_file()
    found = read_json(cache)
    if isinstance(found, dict) and isinstance(found.get("providers"), dict) and isinstance(
        found.get("versions"), dict
    ):
        return Distributions(found["providers"], found["versions"])
    scanned = _scan()
    # Not written (a read-only cache): the next process scans again.
    write_json(cache, {"providers": scanned.providers, "versions": scanned.versions})
    return scanned


def _scan() -> Distributions:
    """What :func:`importlib.metadata.packages_distributions` finds, with each version, about
    5 x quicker: a distribution's name and version are read from its metadata's headers
    (importlib.metadata parses the whole file, long description included, for each), and the
    modules of one that declares none from its ``RECORD`` lines as text (importlib.metadata
    makes a path object of every file)."""
    from importlib import metadata

    providers: dict[str, list[str]] = {}
    versions: dict[str, str] = {}
    for distribution in metadata.distributions():
        headers = _headers(distribution.read_text("METADATA") or
                           distribution.read_text("PKG-INFO") or "")
        name = headers.get("name")
        if not name:
            continue
        if "version" in headers:
            versions.setdefault(name, headers["version"])
        declared = (distribution.read_text("top_level.txt") or "").split()
        for module in declared or _recorded_modules(distribution.read_text("RECORD") or ""):
            providers.setdefault(module, []).append(name)
    return Distributions(providers, versions)


def _headers(text: str) -> dict[str, str]:
    """The first ``Name`` and ``Version`` of core metadata (RFC 822 headers, then a blank line
    and the long description)."""
    found: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if colon and key in ("name", "version") and key not in found:
            found[key] = value.strip()
    return found


def _recorded_modules(record: str) -> set[str]:
    """The top-level modules a wheel's ``RECORD`` installed: a folder's name, or a module file's
    (``six.py``, ``_cffi_backend.cpython-311-x86_64-linux-gnu.so``)."""
    import csv
    import inspect

    modules = set()
    for row in csv.reader(record.splitlines()):
        if not row:
            continue
        top, slash, _ = row[0].partition("/")
        module = top if slash else inspect.getmodulename(top)
        if module and module.isidentifier() and module != "__pycache__":
            modules.add(module)
    return modules


def _cache_file() -> Path:
    """The cache of this interpreter's map, named for what the scan reads: the interpreter, its
    search path and the state of its site-packages folders."""
    from ploomber_like.kernels.preload import installed_packages_stamp

    key = json.dumps([_CACHE_FORMAT, sys.executable, sys.path, installed_packages_stamp()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_home() / "distributions" / f"{digest}.json"
