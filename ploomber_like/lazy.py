"""Names a package exports without importing the modules that define them until first used.

Importing the package stays cheap (every kernel imports ``ploomber_like`` to load the capture
hooks, and the warm template imports ``ploomber_like.kernels``), while ``from ploomber_like
import track_grid`` still works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each name to the module,
    relative to ``package``, that defines it (``{"Store": "writes"}``)."""

    namespace = vars(importlib.import_module(package))

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            # Kept in the package: a name used in a loop is looked up here once, not each time.
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
