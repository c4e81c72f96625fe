"""Exceptions a user can cause. Each carries a one-line message; the CLI prints it and exits 2."""

from __future__ import annotations


class TrackerError(Exception):
    """Base class for every error caused by the user's input (file, parameters, database, SQL)."""


class InputFileError(TrackerError):
    """The file to run is missing, has an unsupported extension, or does not parse."""


class ParameterError(TrackerError):
    """A parameter name or value is invalid (not an identifier, not a Python literal, bad grid)."""


class DatabaseError(TrackerError):
    """The database cannot be opened, is not a SQLite file, or cannot be written."""


class QueryError(TrackerError):
    """A SQL query failed; carries SQLite's message and the query."""

    def __init__(self, message: str, sql: str) -> None:
        super().__init__(f"{message} (in query: {' '.join(sql.split())})")
        self.sqlite_message = message
        self.sql = sql


class UnknownRunError(TrackerError):
    """No run with the given uuid is stored."""
