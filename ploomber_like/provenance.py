"""Package provenance: the installed distributions, and versions, a run's imports came from."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=64)
def package_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """Versions of the distributions providing ``modules``."""
    from importlib import metadata

    providers = module_distributions()
    versions = {}
    for module in modules:
        for distribution in providers.get(module, []):
            try:
                versions[distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(versions.items()))


@lru_cache(maxsize=1)
def module_distributions() -> dict[str, list[str]]:
    """Which distributions provide each top-level module (scanning them takes ~0.5 s, once)."""
    from importlib import metadata

    return metadata.packages_distributions()
