"""A tracking database: its schema, migrations, connections, the query sandbox, writes, reads.

Modules, from the bottom up (each imports only those above it):

- :mod:`~ploomber_like.store.schema`: the tables and columns, and the JSON encoding of values.
- :mod:`~ploomber_like.store.indexes`: what keeps reads independent of the number of runs: the
  keys table and blob uses kept by triggers, expression indexes on numeric keys.
- :mod:`~ploomber_like.store.migrations`: the named steps that bring a database (a peer's, or
  an older one of ours) to :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``.
- :mod:`~ploomber_like.store.connections`: opening files, read-only and in-memory databases;
  :func:`writing`, the one write transaction; ``IN`` lists in chunks.
- :mod:`~ploomber_like.store.sandbox`: :func:`run_query`, a user's SQL that cannot write.
- :mod:`~ploomber_like.store.reads`: stored runs decoded, their series, files, output, blobs.
- :mod:`~ploomber_like.store.writes`: :class:`Store`, every write.

The names below are imported from their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "EXTRA_COLUMNS": "schema",
    "TABLES": "schema",
    "ANCHOR_COLUMNS": "schema",
    "experiment_columns": "schema",
    "check_schema": "schema",
    "create_tables_and_columns": "schema",
    "to_json": "schema",
    "load_json": "schema",
    "MAX_INDEXED_KEYS": "indexes",
    "build_read_indexes": "indexes",
    "ensure_read_indexes": "indexes",
    "has_read_indexes": "indexes",
    "index_name": "indexes",
    "index_numeric_keys": "indexes",
    "json_path": "indexes",
    "key_from_fullkey": "indexes",
    "value_expression": "indexes",
    "InlineMigration": "migrations",
    "move_inline_images_in": "migrations",
    "Migration": "migrations",
    "MOVE_INLINE_IMAGES": "migrations",
    "MIGRATIONS": "migrations",
    "SCHEMA_VERSION": "migrations",
    "schema_version": "migrations",
    "migrate": "migrations",
    "inline_image": "migrations",
    "BUSY_TIMEOUT": "connections",
    "MEMORY": "connections",
    "new_memory_database": "connections",
    "is_memory": "connections",
    "display_name": "connections",
    "exists": "connections",
    "connect": "connections",
    "reading": "connections",
    "writing": "connections",
    "upgrade": "connections",
    "in_chunks": "connections",
    "retry_busy": "connections",
    "run_query": "sandbox",
    "RUN_COLUMNS": "reads",
    "StoredRun": "reads",
    "select_list": "reads",
    "decode_run": "reads",
    "StoredSource": "reads",
    "read_source": "reads",
    "load_metrics": "reads",
    "load_output": "reads",
    "load_artifacts": "reads",
    "load_blob": "reads",
    "RecordedTrial": "writes",
    "Store": "writes",
    "Deletion": "writes",
    "BLOB_REFERENCES": "writes",
    "delete_orphan_blobs": "writes",
    "move_inline_images": "writes",
    "encode_run": "writes",
}

__all__ = [
    "ANCHOR_COLUMNS",
    "BLOB_REFERENCES",
    "BUSY_TIMEOUT",
    "EXTRA_COLUMNS",
    "MAX_INDEXED_KEYS",
    "MEMORY",
    "MIGRATIONS",
    "MOVE_INLINE_IMAGES",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "Deletion",
    "InlineMigration",
    "Migration",
    "RecordedTrial",
    "Store",
    "StoredRun",
    "StoredSource",
    "build_read_indexes",
    "check_schema",
    "connect",
    "create_tables_and_columns",
    "decode_run",
    "delete_orphan_blobs",
    "display_name",
    "encode_run",
    "ensure_read_indexes",
    "exists",
    "experiment_columns",
    "has_read_indexes",
    "in_chunks",
    "index_name",
    "index_numeric_keys",
    "inline_image",
    "is_memory",
    "json_path",
    "key_from_fullkey",
    "load_artifacts",
    "load_blob",
    "load_json",
    "load_metrics",
    "load_output",
    "migrate",
    "move_inline_images",
    "move_inline_images_in",
    "new_memory_database",
    "read_source",
    "reading",
    "retry_busy",
    "run_query",
    "schema_version",
    "select_list",
    "to_json",
    "upgrade",
    "value_expression",
    "writing",
]

if TYPE_CHECKING:
    from ploomber_like.store.connections import (
        BUSY_TIMEOUT,
        MEMORY,
        connect,
        display_name,
        exists,
        in_chunks,
        is_memory,
        new_memory_database,
        reading,
        retry_busy,
        upgrade,
        writing,
    )
    from ploomber_like.store.indexes import (
        MAX_INDEXED_KEYS,
        build_read_indexes,
        ensure_read_indexes,
        has_read_indexes,
        index_name,
        index_numeric_keys,
        json_path,
        key_from_fullkey,
        value_expression,
    )
    from ploomber_like.store.migrations import (
        MIGRATIONS,
        MOVE_INLINE_IMAGES,
        SCHEMA_VERSION,
        InlineMigration,
        Migration,
        inline_image,
        migrate,
        move_inline_images_in,
        schema_version,
    )
    from ploomber_like.store.reads import (
        RUN_COLUMNS,
        StoredRun,
        StoredSource,
        decode_run,
        load_artifacts,
        load_blob,
        load_metrics,
        load_output,
        read_source,
        select_list,
    )
    from ploomber_like.store.sandbox import (
        run_query,
    )
    from ploomber_like.store.schema import (
        ANCHOR_COLUMNS,
        EXTRA_COLUMNS,
        TABLES,
        check_schema,
        create_tables_and_columns,
        experiment_columns,
        load_json,
        to_json,
    )
    from ploomber_like.store.writes import (
        BLOB_REFERENCES,
        Deletion,
        RecordedTrial,
        Store,
        delete_orphan_blobs,
        encode_run,
        move_inline_images,
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"ploomber_like.store.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value  # found once: later lookups do not come back here
        return value
    raise AttributeError(f"module 'ploomber_like.store' has no attribute {name!r}")
