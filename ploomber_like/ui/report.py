"""``tracker report``: the UI's pages in one self-contained HTML file (plotly.js, styles and
images inline), to open without a server or send around."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ploomber_like.errors import TrackerError


def write_report(
    database: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    where: str | None = None,
    compare: Sequence[str] = (),
) -> Path:
    """Write the report of ``database`` to ``output``; returns its path.

    Parameters
    ----------
    database
        The tracking database (read only).
    output
        The HTML file to write.
    where
        A SQL condition selecting the runs, as in :meth:`SQLiteTracker.runs`.
    compare
        2 to 4 runs (uuids or prefixes) whose compare page the report includes.
    """
    from ploomber_like.query import RunQuery
    from ploomber_like.ui import pages

    parts = pages.report_html(RunQuery.existing(database), where=where, compare=compare)
    path = Path(output)
    try:
        with path.open("w", encoding="utf-8") as file:
            file.writelines(parts)
    except OSError as exc:
        raise TrackerError(f"cannot write the report to {path}: {exc.strerror}") from None
    return path
