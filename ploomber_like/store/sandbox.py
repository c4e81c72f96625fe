"""The read-only query sandbox: one SQL statement a user typed, run so that it cannot change
anything on disk."""

from __future__ import annotations

import functools
import os
import re
import sqlite3
from typing import Any

from ploomber_like.errors import QueryError
from ploomber_like.store.connections import reading


def run_query(path: str | os.PathLike[str], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL statement that may only read: the column names and the rows.

    Besides the read-only connection, an authorizer refuses what would still change something
    on disk (``ATTACH``, which also creates files, and ``VACUUM INTO``, which attaches its
    target) and every statement that writes, with a one-line :class:`QueryError`.
    """
    with reading(path) as conn:
        refused: list[str] = []
        conn.set_authorizer(functools.partial(_authorize_read, refused))
        try:
            cursor = conn.execute(sql)
            rows = cursor.fetchall()
        # sqlite3.Warning is what "You can only execute one statement at a time" raises.
        except (sqlite3.Error, sqlite3.Warning) as exc:
            if refused:
                message = f"{_refused_verb(sql, refused)} is refused: queries are read-only"
                raise QueryError(message, sql) from None
            raise QueryError(str(exc), sql) from None
        return [d[0] for d in cursor.description or ()], rows


#: Pragmas that take a table or index name and only describe it.
_DESCRIBING_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list",
})
#: Authorizer actions a query may never take, by name (read from sqlite3 at first use).
_REFUSED_ACTIONS = (
    "ATTACH", "DETACH", "INSERT", "DELETE", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "TRANSACTION", "SAVEPOINT", "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX",
    "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "CREATE_TRIGGER",
    "CREATE_VIEW", "CREATE_VTABLE", "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX",
    "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW",
    "DROP_VTABLE",
)


def _refused_verb(sql: str, refused: list[str]) -> str:
    """What to call a refused statement: its own first word when that is what writes
    (``VACUUM INTO`` shows to the authorizer as an ``ATTACH``), else the refused action."""
    words = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).split()
    verb = words[0].upper() if words else ""
    return verb if verb in _WRITING_VERBS else refused[0]


_WRITING_VERBS = frozenset({
    "VACUUM", "ATTACH", "DETACH", "CREATE", "DROP", "ALTER", "INSERT", "REPLACE", "UPDATE",
    "DELETE", "REINDEX", "ANALYZE", "BEGIN", "SAVEPOINT",
})


def _authorize_read(
    refused: list[str], action: int, arg1: str | None, arg2: str | None, *_: str | None
) -> int:
    name = _action_names().get(action)
    denied = (
        name in _REFUSED_ACTIONS
        # SQLite reports reading the schema as an update of sqlite_master: that one is fine.
        or (name == "UPDATE" and arg1 not in ("sqlite_master", "sqlite_temp_master"))
        # PRAGMA x = value sets something; a describing pragma's argument is a table name.
        or (name == "PRAGMA" and arg2 is not None and (arg1 or "").lower()
            not in _DESCRIBING_PRAGMAS)
    )
    if not denied:
        return sqlite3.SQLITE_OK
    what = f"PRAGMA {arg1}" if name == "PRAGMA" else str(name).replace("_", " ")
    refused.append(what)
    return sqlite3.SQLITE_DENY


@functools.cache
def _action_names() -> dict[int, str]:
    return {
        getattr(sqlite3, f"SQLITE_{name}"): name
        for name in (*_REFUSED_ACTIONS, "UPDATE", "PRAGMA")
        if hasattr(sqlite3, f"SQLITE_{name}")
    }

