"""Our caches on disk, under ``$XDG_CACHE_HOME/ploomber_like`` (``~/.cache`` without it).

Each holds what can be found again, only slower: the modules a file's runs import
(``preload/``), how long each point of a file's sweeps took (``durations/``), the modules a
kernel imports as it starts (``kernel_imports/``), which
distribution provides each module (``distributions/``), the groups of files read before
(``groups/``), file hashes (``file_hashes.db``), compiled page templates (``templates/``).
A cache that cannot be read or written (a read-only home) is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_home() -> Path:
    """The folder of our caches: ``$XDG_CACHE_HOME/ploomber_like`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ploomber_like"


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; None if it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, value: Any) -> bool:
    """Write ``value`` to ``path`` whole, then rename it there: a reader never sees half a
    file. False if the folder is not writable (the cache is then only missed)."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, suffix=".tmp", delete=False
        ) as out:
            temporary = out.name
            json.dump(value, out)
        os.replace(temporary, path)
        return True
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return False
