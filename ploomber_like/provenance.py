"""Package provenance: the installed distributions, and versions, a run's imports came from."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from functools import lru_cache
from pathlib import Path

from ploomber_like.caches import cache_home, read_json, write_json


@lru_cache(maxsize=64)
def package_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """Versions of the distributions providing ``modules``."""
    from importlib import metadata

    if not modules:
        return {}
    providers = module_distributions()
    versions = {}
    for module in modules:
        for distribution in providers.get(module, []):
            try:
                versions[distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(versions.items()))


def module_distributions() -> dict[str, list[str]]:
    """Which distributions provide each top-level module.

    Scanning the installed distributions takes ~0.5 s of CPU: it is done once per process, by
    one thread (others wait for it rather than scan too), and its result is cached on disk for
    as long as the installed packages stay the same, so that a single run does not pay it.
    """
    with _SCANNING:
        return _module_distributions()


_SCANNING = threading.Lock()


@lru_cache(maxsize=1)
def _module_distributions() -> dict[str, list[str]]:
    from importlib import metadata

    cache = _cache_file()
    found = read_json(cache)
    if isinstance(found, dict):
        return found
    found = metadata.packages_distributions()
    write_json(cache, found)  # not written (a read-only cache): the next process scans again
    return found


def _cache_file() -> Path:
    """The cache of this interpreter's map, named for what the scan reads: the interpreter, its
    search path and the state of its site-packages folders."""
    from ploomber_like.kernels.preload import installed_packages_stamp

    key = json.dumps([sys.executable, sys.path, installed_packages_stamp()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_home() / "distributions" / f"{digest}.json"
