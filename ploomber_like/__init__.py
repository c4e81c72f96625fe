"""ploomber_like: zero-instrumentation experiment tracking.

Run a plain script or notebook with injected parameters in a Jupyter kernel, record every value
it shows, and query the runs from SQLite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ploomber_like.lazy import lazy_exports

__version__ = "0.1.0"

# Public names and the module holding each: imported on first use, so importing the package
# (which every kernel does to load the capture hooks) stays cheap.
_EXPORTS = {
    "track_execution": "tracking",
    "track_grid": "sweep",
    "track_search": "search",
    "SearchSummary": "search",
    "SweepSummary": "sweep_report",
    "rerun": "reproduction",
    "export_mlflow": "mlflow_export",
    "SQLiteTracker": "tracker",
    "Results": "results",
    "Run": "results",
    "RichOutput": "results",
    "Experiment": "experiment",
    "Comparison": "comparing",
    "RunDiff": "comparing",
    "Record": "record",
    "RunError": "record",
    "TrackerError": "errors",
    "InputFileError": "errors",
    "ParameterError": "errors",
    "DatabaseError": "errors",
    "QueryError": "errors",
    "UnknownRunError": "errors",
    "ExportError": "errors",
    "ObjectiveError": "errors",
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
    from ploomber_like.sweep import track_grid
    from ploomber_like.sweep_report import SweepSummary
    from ploomber_like.tracker import SQLiteTracker
    from ploomber_like.tracking import track_execution


__getattr__ = lazy_exports(__name__, _EXPORTS)
