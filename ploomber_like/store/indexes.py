"""What lets reads stay fast however many runs a database holds: the keys the runs show, which
blobs each run uses, and an index per numeric key on the exact expression the seed's SQL sorts
and filters by, ``json_extract(parameters, '$.f1')``.

``value_keys`` (one row per key: where it first appeared, how many runs hold it, how many of
them as a number) and ``blob_uses`` (run rowid, blob sha256) are kept by triggers on
``experiments``, so every writer keeps them right: our runs, hand logging, deletions,
migrations, a peer tool or a user's own SQL. The expression indexes are created by our writers
when a numeric key first appears (:func:`index_numeric_keys`, inside their transaction), and,
like the tables and triggers, rebuilt by :func:`ensure_read_indexes` when a writable open finds
them missing (a database written by a peer, an earlier version, or by hand). Building an index
reads every run, so a key that first appears in a table of more than :data:`INDEX_ON_WRITE_ROWS`
runs waits for ``tracker migrate``: writing that run, or opening the database, stays fast.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

#: At most this many keys get an expression index: each costs a JSON parse on every write.
MAX_INDEXED_KEYS = 32

#: Writes and opens index a new key only in a table of at most this many rows, or when the
#: transaction wrote a tenth of its rows itself (a bulk insert): an index reads every run (~0.15 s
#: at 20,000, ~3.5 s at a million), which a run's write must not wait for.
INDEX_ON_WRITE_ROWS = 20_000

#: Expression indexes are named this prefix and a hash of their JSON path.
INDEX_PREFIX = "experiments_value_"

#: Building takes longer than this many seconds: progress is printed on stderr.
PROGRESS_AFTER = 1.0

_TABLES = """
CREATE TABLE IF NOT EXISTS value_keys (
    fullkey TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    type TEXT NOT NULL,
    is_blob INTEGER NOT NULL,
    first_run INTEGER NOT NULL,
    position INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    numbers INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_uses (
    run INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blob_uses_run ON blob_uses (run);
CREATE INDEX IF NOT EXISTS blob_uses_sha256 ON blob_uses (sha256);
CREATE INDEX IF NOT EXISTS artifacts_sha256 ON artifacts (sha256);
-- Most recent first (every list's default order) without sorting every run.
CREATE INDEX IF NOT EXISTS experiments_created ON experiments (created);
-- Rows whose parameters are not JSON, found without a scan: an expression index would fail on
-- them (see index_numeric_keys).
CREATE INDEX IF NOT EXISTS experiments_not_json ON experiments (uuid)
    WHERE parameters IS NOT NULL AND NOT json_valid(parameters)
"""

_TRIGGERS = ("value_keys_insert", "value_keys_update", "value_keys_delete")

_NUMBER = "t.type IN ('integer', 'real')"
# Whether a json_tree node is an object referring to a blob. CASE, not AND: SQLite may
# evaluate both sides, and atoms are not JSON.
_IS_BLOB = (
    "CASE WHEN t.type = 'object' THEN json_type(t.value, '$.\"$blob\"') IS NOT NULL ELSE 0 END"
)
# The nodes value_keys counts: object members, not array elements nor anything inside an array.
_MEMBER = "typeof(t.key) = 'text' AND instr(t.path, '[') = 0"


def _parsed(row: str) -> str:
    # json_tree(NULL) has no rows: a row whose parameters are not JSON holds no keys.
    return f"json_tree(CASE WHEN json_valid({row}.parameters) THEN {row}.parameters END)"


def _add(row: str, rows: str = "") -> str:
    """Statements counting the keys and blobs of ``row``: ``new`` in a trigger, or ``e`` with
    ``rows``, a subquery of stored rows named ``e``, when filling (then the keys are counted
    once per key, not once per run: a fill of a million runs takes minutes, not ten)."""
    joined = f"{rows} AS {row}, " if rows else ""
    alone = f"FROM {rows} AS {row}" if rows else ""
    # With one min(), SQLite takes the other columns from the row holding it: the key's type
    # and position in the first run that has it.
    first, runs, numbers, grouped = (
        ("min(e.rowid)", "count(*)", f"sum({_NUMBER})", "GROUP BY t.fullkey") if rows
        else (f"{row}.rowid", "1", _NUMBER, "")
    )
    return f"""
    INSERT INTO value_keys (fullkey, parent, type, is_blob, first_run, position, runs, numbers)
    SELECT t.fullkey, t.path, t.type, {_IS_BLOB}, {first}, t.id, {runs}, {numbers}
    FROM {joined}{_parsed(row)} AS t
    WHERE {_MEMBER}
    {grouped}
    ON CONFLICT (fullkey) DO UPDATE SET
        runs = runs + excluded.runs, numbers = numbers + excluded.numbers;
    INSERT INTO blob_uses (run, sha256)
    SELECT run, sha256 FROM (
        SELECT {row}.rowid AS run,
               CASE WHEN t.type = 'object' THEN json_extract(t.value, '$."$blob"') END AS sha256
        FROM {joined}{_parsed(row)} AS t
        UNION ALL SELECT {row}.rowid, {row}.source_sha256 {alone}
        UNION ALL SELECT {row}.rowid, {row}.notebook {alone}
    ) WHERE typeof(sha256) = 'text';
    """


_REMOVE_OLD = f"""
    UPDATE value_keys SET runs = runs - 1, numbers = numbers - (
        SELECT count(*) FROM {_parsed("old")} AS t
        WHERE t.fullkey = value_keys.fullkey AND {_NUMBER})
    WHERE fullkey IN (SELECT t.fullkey FROM {_parsed("old")} AS t WHERE {_MEMBER});
    DELETE FROM value_keys WHERE runs <= 0;
    DELETE FROM blob_uses WHERE run = old.rowid;
"""

_TRIGGER_SQL = {
    "value_keys_insert": f"AFTER INSERT ON experiments BEGIN {_add('new')} END",
    "value_keys_update": (
        "AFTER UPDATE OF parameters, source_sha256, notebook ON experiments "
        f"BEGIN {_REMOVE_OLD} {_add('new')} END"
    ),
    "value_keys_delete": f"AFTER DELETE ON experiments BEGIN {_REMOVE_OLD} END",
}


def has_read_indexes(conn: sqlite3.Connection) -> bool:
    """True when the database has ``value_keys`` and ``blob_uses`` and the triggers keeping
    them (a database no writable open of this version has seen has not)."""
    return _missing_structures(conn) == set()


def build_read_indexes(
    conn: sqlite3.Connection, progress: Callable[[str], None] | None = None
) -> None:
    """Create ``value_keys``, ``blob_uses`` and their triggers, fill them from every stored run,
    and index the numeric keys; inside the caller's write transaction (a migration step)."""
    progress = progress or _stderr_progress()
    for statement in _TABLES.split(";"):
        conn.execute(statement)
    for name in _TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("DELETE FROM value_keys")
    conn.execute("DELETE FROM blob_uses")
    _fill_from_runs(conn, progress)
    for name in _TRIGGERS:
        conn.execute(f"CREATE TRIGGER {name} {_TRIGGER_SQL[name]}")
    index_numeric_keys(conn, progress, at_any_size=True)


#: Stored runs read at a time by :func:`_fill_from_runs`.
FILL_CHUNK = 20_000

# The keys of one stored run as the insert trigger counts them, read by SQLite itself.
_KEYS_OF_RUN = f"""
SELECT t.fullkey, t.path, t.type, {_IS_BLOB}, t.id, {_NUMBER}
FROM experiments AS e, {_parsed("e")} AS t
WHERE e.rowid = ? AND {_MEMBER}
"""

# A key's first run decides its parent, type and position: whichever of two counts of it
# comes first in the table wins, in whichever order they are written.
_ADD_COUNTED = """
INSERT INTO value_keys (fullkey, parent, type, is_blob, first_run, position, runs, numbers)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fullkey) DO UPDATE SET
    runs = runs + excluded.runs, numbers = numbers + excluded.numbers,
    parent = iif(excluded.first_run < first_run, excluded.parent, parent),
    type = iif(excluded.first_run < first_run, excluded.type, type),
    is_blob = iif(excluded.first_run < first_run, excluded.is_blob, is_blob),
    position = iif(excluded.first_run < first_run, excluded.position, position),
    first_run = min(first_run, excluded.first_run)
"""


def _fill_from_runs(conn: sqlite3.Connection, progress: Callable[[str], None]) -> None:
    """Count the keys and blobs of every stored run into ``value_keys`` and ``blob_uses``, as
    the triggers would have, a slice of :data:`FILL_CHUNK` runs at a time.

    The triggers' statements over a million runs take ~60 s, most of it SQLite's
    ``json_tree`` building every key's path for every run. Here Python parses each run once
    (:func:`_read_run`) and groups the runs that show the same keys with the same types, and
    SQLite's ``json_tree`` names the keys of the first run of each group only. A run Python
    might read otherwise than SQLite, or a group whose first run SQLite reads otherwise, is
    counted by the triggers' own statements.
    """
    last = last_rowid(conn)
    # What the triggers read of a run, here and for the runs counted by their statements.
    read = "SELECT rowid, parameters, source_sha256, notebook FROM experiments"
    alone_rows = f"({read} WHERE rowid IN (SELECT value FROM json_each(:alone)))"
    factory = conn.text_factory
    conn.text_factory = _text_or_undecodable
    try:
        for start in range(0, last, FILL_CHUNK):
            rows = conn.execute(
                f"{read} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
                (start, start + FILL_CHUNK),
            ).fetchall()
            groups: dict[tuple[Any, ...], list[tuple[int, list[str]]]] = {}
            alone: list[int] = []
            for rowid, parameters, source, notebook in rows:
                shape_and_blobs = _read_run(parameters, source, notebook)
                if shape_and_blobs is None:
                    alone.append(rowid)
                else:
                    shape, blobs = shape_and_blobs
                    groups.setdefault(shape, []).append((rowid, blobs))
            counted: dict[str, list[Any]] = {}
            uses: list[tuple[int, str]] = []
            for shape, runs in groups.items():
                keys = conn.execute(_KEYS_OF_RUN, (runs[0][0],)).fetchall()
                if [key[2] for key in keys] != [kind for _, kind in shape]:
                    alone += [rowid for rowid, _ in runs]
                    continue
                for fullkey, parent, kind, is_blob, position, number in keys:
                    entry = counted.setdefault(
                        fullkey, [parent, kind, is_blob, runs[0][0], position, 0, 0]
                    )
                    entry[5] += len(runs)
                    entry[6] += len(runs) * number
                uses += [(rowid, sha256) for rowid, blobs in runs for sha256 in blobs]
            if alone:
                for statement in _add("e", alone_rows).split(";"):
                    if statement.strip():
                        conn.execute(statement, {"alone": json.dumps(sorted(alone))})
            conn.executemany(_ADD_COUNTED, [(key, *entry) for key, entry in counted.items()])
            conn.executemany("INSERT INTO blob_uses (run, sha256) VALUES (?, ?)", uses)
            progress(f"indexing the stored runs: {min(start + FILL_CHUNK, last)} of {last} rows")
    finally:
        conn.text_factory = factory


class _Undecodable(bytes):
    """Text of a column that is not UTF-8: only SQLite reads it."""


def _text_or_undecodable(data: bytes) -> str | _Undecodable:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return _Undecodable(data)


_JSON_TYPES = {type(None): "null", int: "integer", float: "real", str: "text", list: "array",
               dict: "object"}


def _read_run(
    parameters: object, source: object, notebook: object
) -> tuple[tuple[tuple[tuple[str, ...], str], ...], list[str]] | None:
    """The keys a run's parameters hold as ``value_keys`` counts them (object members outside
    arrays: their path and JSON type, in order), and the blobs the run uses (references
    anywhere in its parameters, its source, its notebook); None when Python might read the run
    otherwise than SQLite: a key SQLite would name as written (any escape), NaN or Infinity, a
    key twice in one object, a ``$blob`` holding an object or array, text that is not JSON or
    not UTF-8."""
    blobs: list[str] = []
    for column in (source, notebook):
        if isinstance(column, _Undecodable):
            return None
    if parameters is None:
        keys: list[tuple[tuple[str, ...], str]] = []
    elif type(parameters) is not str or "\\" in parameters:
        return None
    else:
        keys = []
        try:
            value = json.loads(parameters, parse_constant=_refuse, object_pairs_hook=_unique)
            _walk(value, (), keys, blobs, inside_array=False)
        except (ValueError, RecursionError):
            return None
    blobs += [column for column in (source, notebook) if type(column) is str]
    return tuple(keys), blobs


def _walk(
    value: Any, path: tuple[str, ...], keys: list[tuple[tuple[str, ...], str]],
    blobs: list[str], *, inside_array: bool,
) -> None:
    if type(value) is dict:
        sha256 = value.get("$blob")
        if type(sha256) is str:
            blobs.append(sha256)
        elif type(sha256) is dict or type(sha256) is list:
            raise ValueError("SQLite takes this reference as its JSON text")
        for key, item in value.items():
            kind = type(item)
            if not inside_array:
                keys.append((path + (key,), ("true" if item else "false") if kind is bool
                             else _JSON_TYPES[kind]))
            if kind is dict or kind is list:
                _walk(item, path + (key,), keys, blobs, inside_array=inside_array)
    elif type(value) is list:
        for item in value:
            if type(item) is dict or type(item) is list:
                _walk(item, path, keys, blobs, inside_array=True)


def _refuse(constant: str) -> None:
    raise ValueError(constant)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a key twice in one object")
    return value


def ensure_read_indexes(
    conn: sqlite3.Connection, write: Callable[[], AbstractContextManager[None]]
) -> None:
    """On a writable open: rebuild what :func:`build_read_indexes` makes if any of it is
    missing, in a transaction opened by ``write`` (a context manager factory); an up-to-date
    database is only read (two small queries)."""
    if _missing_structures(conn):
        with write():
            # Checked again under the write lock: another process may have rebuilt them.
            if _missing_structures(conn):
                build_read_indexes(conn)
    elif _unindexed_keys(conn) and _small(conn):
        with write():
            index_numeric_keys(conn)


def index_numeric_keys(
    conn: sqlite3.Connection,
    progress: Callable[[str], None] | None = None,
    *,
    at_any_size: bool = False,
    written_after: int | None = None,
) -> list[str]:
    """Create the expression index of each numeric key that lacks one (up to
    :data:`MAX_INDEXED_KEYS` in all), inside the caller's write transaction; their JSON paths.
    Unless ``at_any_size``, none in a table of more than :data:`INDEX_ON_WRITE_ROWS` rows but
    when the rows after rowid ``written_after`` (the transaction's own) are a tenth of them.

    A database holding a row whose ``parameters`` is not JSON gets none: SQLite would refuse to
    build the index, and every later write of such a row.
    """
    missing = _unindexed_keys(conn)
    if not missing or not (at_any_size or _small(conn, written_after)):
        return []
    not_json = (
        "SELECT 1 FROM experiments "
        "WHERE parameters IS NOT NULL AND NOT json_valid(parameters) LIMIT 1"
    )
    if conn.execute(not_json).fetchone():
        return []
    progress = progress or _stderr_progress()
    for number, path in enumerate(missing, 1):
        progress(f"indexing {path} ({number} of {len(missing)})")
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(path)} "
            f"ON experiments ({value_expression(path)}, created)"
        )
    return missing


def index_name(path: str) -> str:
    """The name of the expression index on the JSON path ``path``."""
    return INDEX_PREFIX + hashlib.sha256(path.encode()).hexdigest()[:16]


def json_path(key: str) -> str:
    """The JSON path of a key: ``$...`` paths as they are, dotted keys of identifiers and
    double-quoted labels (``model.depth``, ``"f1-score"``) under ``$.``, anything else as one
    quoted label."""
    if key.startswith("$"):
        return key
    if _KEY_PATH.fullmatch(key):
        return f"$.{key}"
    return f'$."{key}"'


def value_expression(key: str) -> str:
    """``json_extract(parameters, '$.key')``: the SQL of a key's value, written as the seed's
    SQL writes it, which is the expression its index is on."""
    return f"json_extract(parameters, '{_sql_text(json_path(key))}')"


def key_from_fullkey(fullkey: str) -> str:
    """``$."n_estimators".depth`` -> ``n_estimators.depth``: SQLite quotes any key with an
    underscore, but only labels that are not identifiers need it."""
    segments = re.findall(r'"[^"]*"|[^.]+', fullkey[2:])
    return ".".join(
        s[1:-1] if s.startswith('"') and _IDENTIFIER.fullmatch(s[1:-1]) else s for s in segments
    )


_KEY_PATH = re.compile(r'(?:[A-Za-z_]\w*|"[^"]*")(?:\.(?:[A-Za-z_]\w*|"[^"]*"))*')
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _missing_structures(conn: sqlite3.Connection) -> set[str]:
    wanted = {
        "value_keys",
        "blob_uses",
        "blob_uses_run",
        "blob_uses_sha256",
        "artifacts_sha256",
        "experiments_created",
        "experiments_not_json",
        *_TRIGGERS,
    }
    present = {
        row[0]
        for row in conn.execute(
            f"SELECT name FROM sqlite_master WHERE name IN ({', '.join('?' for _ in wanted)})",
            sorted(wanted),
        )
    }
    return wanted - present


def last_rowid(conn: sqlite3.Connection) -> int:
    """The largest rowid of ``experiments``, read from the end of its b-tree: a bound on its
    number of rows."""
    return conn.execute("SELECT max(rowid) FROM experiments").fetchone()[0] or 0


def _small(conn: sqlite3.Connection, written_after: int | None = None) -> bool:
    last = last_rowid(conn)
    written = last - written_after if written_after is not None else 0
    return last <= INDEX_ON_WRITE_ROWS or written * 10 >= last


def _unindexed_keys(conn: sqlite3.Connection) -> list[str]:
    """JSON paths of the numeric keys, in order of first appearance, that should have an index
    and have none."""
    rows = conn.execute(
        "SELECT fullkey FROM value_keys WHERE numbers > 0 ORDER BY first_run, position LIMIT ?",
        (MAX_INDEXED_KEYS,),
    ).fetchall()
    present = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?",
            (INDEX_PREFIX + "%",),
        )
    }
    paths = [json_path(key_from_fullkey(fullkey)) for (fullkey,) in rows]
    return [path for path in paths if index_name(path) not in present]


def _stderr_progress() -> Callable[[str], None]:
    """Progress lines on stderr, once the work has taken :data:`PROGRESS_AFTER` seconds."""
    began = time.monotonic()

    def show(line: str) -> None:
        if time.monotonic() - began > PROGRESS_AFTER:
            print(f"ploomber_like: {line}", file=sys.stderr, flush=True)

    return show


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
