"""Package provenance: which distributions a run's modules came from, scanned once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

VERSIONS = (
    "from ploomber_like.provenance import package_versions; "
    "print(package_versions(('numpy',)))"
)


def test_the_map_of_distributions_is_scanned_once_for_the_installed_packages(tmp_path):
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    first = subprocess.run(
        [sys.executable, "-c", VERSIONS], env=environment, capture_output=True, text=True,
        check=True,
    )
    assert f"'numpy': '{metadata.version('numpy')}'" in first.stdout
    assert len(list((tmp_path / "ploomber_like" / "distributions").glob("*.json"))) == 1
    # The next process reads it: listing the distributions again would fail here.
    no_scan = "import importlib.metadata; importlib.metadata.distributions = None; "
    second = subprocess.run(
        [sys.executable, "-c", no_scan + VERSIONS], env=environment, capture_output=True,
        text=True, check=True,
    )
    assert second.stdout == first.stdout


def test_the_scan_finds_what_importlib_metadata_finds_with_each_version(tmp_path):
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    scanned = subprocess.run(
        [sys.executable, "-c", "import dataclasses, json; "
         "from ploomber_like.provenance import module_distributions; "
         "print(json.dumps(dataclasses.asdict(module_distributions())))"],
        env=environment, capture_output=True, text=True, check=True,
    )
    found = json.loads(scanned.stdout)
    expected = metadata.packages_distributions()
    expected.pop("__pycache__", None)  # listed by some Pythons: never a module a run imports
    assert len(expected) > 20
    for module, names in expected.items():
        assert sorted(set(found["providers"][module])) == sorted(set(names)), module
    # A module named apart from its distribution.
    assert found["providers"]["sklearn"] == ["scikit-learn"]
    for name, version in found["versions"].items():
        assert metadata.version(name) == version, name
