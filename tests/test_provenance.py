"""Package provenance: which distributions a run's modules came from, scanned once."""

from __future__ import annotations

import os
import subprocess
import sys

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
    assert "'numpy': '" in first.stdout
    assert len(list((tmp_path / "ploomber_like" / "distributions").glob("*.json"))) == 1
    # The next process reads it: scanning again (~0.5 s) would fail here.
    no_scan = "import importlib.metadata; importlib.metadata.packages_distributions = None; "
    second = subprocess.run(
        [sys.executable, "-c", no_scan + VERSIONS], env=environment, capture_output=True,
        text=True, check=True,
    )
    assert second.stdout == first.stdout
