"""Exceptions a user can cause. Each carries a one-line message; the CLI prints it and exits 2."""

from __future__ import annotations


class TrackerError(Exception):
    """Base class for every error caused by the user's input (file, parameters, database, SQL)."""


class InputFileError(TrackerError):
    """The file to run is missing, has an unsupported extension, or does not parse."""


class ParameterError(TrackerError, ValueError):
    """A parameter name or value is invalid (not an identifier, not a Python literal, bad grid).

    Also a ``ValueError``, which is what sklearn-evaluation raises for a value it cannot log."""


class ObjectiveError(TrackerError):
    """A search's objective is not a value the file shows: the search stops at its first
    complete run."""


class DatabaseError(TrackerError):
    """The database cannot be opened, is not a SQLite file, or cannot be written."""


class QueryError(TrackerError):
    """A SQL query failed; carries SQLite's message and the query."""

    def __init__(self, message: str, sql: str) -> None:
        super().__init__(f"{message} (in query: {' '.join(sql.split())})")
        self.sqlite_message = message
        self.sql = sql


class UnknownRunError(TrackerError, ValueError):
    """No run with the given uuid is stored.

    Also a ``ValueError``: code written for sklearn-evaluation catches that."""


class ExportError(TrackerError):
    """An output cannot be written where ``export`` was asked to put it."""
