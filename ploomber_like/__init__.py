"""ploomber_like: zero-instrumentation experiment tracking.

Run a plain script or notebook with injected parameters in a Jupyter kernel, record every value
it shows, and query the runs from SQLite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the module holding each: imported on first use, so importing the package
# (which every kernel does to load the capture hooks) stays cheap.
_EXPORTS = {
    "track_execution": "ploomber_like.tracking",
    "track_grid": "ploomber_like.sweep",
    "track_search": "ploomber_like.search",
    "SearchSummary": "ploomber_like.search",
    "SweepSummary": "ploomber_like.sweep",
    "rerun": "ploomber_like.reproduction",
    "export_mlflow": "ploomber_like.mlflow_export",
    "SQLiteTracker": "ploomber_like.tracker",
    "Results": "ploomber_like.results",
    "Run": "ploomber_like.results",
    "RichOutput": "ploomber_like.results",
    "Experiment": "ploomber_like.experiment",
    "Comparison": "ploomber_like.comparing",
    "RunDiff": "ploomber_like.comparing",
    "Record": "ploomber_like.record",
    "RunError": "ploomber_like.record",
    "TrackerError": "ploomber_like.errors",
    "InputFileError": "ploomber_like.errors",
    "ParameterError": "ploomber_like.errors",
    "DatabaseError": "ploomber_like.errors",
    "QueryError": "ploomber_like.errors",
    "UnknownRunError": "ploomber_like.errors",
    "ExportError": "ploomber_like.errors",
    "ObjectiveError": "ploomber_like.errors",
}

__all__ = [
    "Comparison",
    "DatabaseError",
    "Experiment",
    "ExportError",
    "InputFileError",
    "ObjectiveError",
    "ParameterError",
    "QueryError",
    "Record",
    "Results",
    "SearchSummary",
    "RichOutput",
    "Run",
    "RunDiff",
    "RunError",
    "SQLiteTracker",
    "SweepSummary",
    "TrackerError",
    "UnknownRunError",
    "__version__",
    "export_mlflow",
    "rerun",
    "track_execution",
    "track_grid",
    "track_search",
]

if TYPE_CHECKING:
    from ploomber_like.comparing import Comparison, RunDiff
    from ploomber_like.errors import (
        DatabaseError,
        ExportError,
        InputFileError,
        ObjectiveError,
        ParameterError,
        QueryError,
        TrackerError,
        UnknownRunError,
    )
    from ploomber_like.experiment import Experiment
    from ploomber_like.mlflow_export import export_mlflow
    from ploomber_like.record import Record, RunError
    from ploomber_like.reproduction import rerun
    from ploomber_like.results import Results, RichOutput, Run
    from ploomber_like.search import SearchSummary, track_search
    from ploomber_like.sweep import SweepSummary, track_grid
    from ploomber_like.tracker import SQLiteTracker
    from ploomber_like.tracking import track_execution


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ploomber_like' has no attribute {name!r}")
