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
- :mod:`~ploomber_like.store.reads`: rows of stored runs decoded, and blobs.
- :mod:`~ploomber_like.store.run_detail`: :class:`RunDetail`, what a run left beyond its row
  (source, output, series, files, notebook...), read from a database of any age.
- :mod:`~ploomber_like.store.writes`: :class:`Store`, every write.

The names below are imported from their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ploomber_like.lazy import lazy_exports

_EXPORTS = {
    "EXTRA_COLUMNS": "schema",
    "TABLES": "schema",
    "ANCHOR_COLUMNS": "schema",
    "experiment_columns": "schema",
    "table_names": "schema",
    "table_columns": "schema",
    "check_schema": "schema",
    "create_tables_and_columns": "schema",
    "to_json": "schema",
    "load_json": "schema",
    "MAX_INDEXED_KEYS": "indexes",
    "INDEX_ON_WRITE_ROWS": "indexes",
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
    "load_blob": "reads",
    "DETAIL_COLUMNS": "run_detail",
    "RunDetail": "run_detail",
    "read_run_detail": "run_detail",
    "StoredSource": "run_detail",
    "read_source": "run_detail",
    "load_metrics": "run_detail",
    "load_artifacts": "run_detail",
    "load_inputs": "run_detail",
    "RecordedTrial": "writes",
    "Store": "writes",
    "Deletion": "writes",
    "BLOB_REFERENCES": "writes",
    "delete_orphan_blobs": "writes",
    "move_inline_images": "writes",
    "index_every_numeric_key": "writes",
    "encode_run": "writes",
}

__all__ = [
    "ANCHOR_COLUMNS",
    "BLOB_REFERENCES",
    "BUSY_TIMEOUT",
    "DETAIL_COLUMNS",
    "EXTRA_COLUMNS",
    "MAX_INDEXED_KEYS",
    "INDEX_ON_WRITE_ROWS",
    "MEMORY",
    "MIGRATIONS",
    "MOVE_INLINE_IMAGES",
    "RUN_COLUMNS",
    "RunDetail",
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
    "load_inputs",
    "load_json",
    "load_metrics",
    "migrate",
    "move_inline_images",
    "index_every_numeric_key",
    "move_inline_images_in",
    "new_memory_database",
    "read_run_detail",
    "read_source",
    "reading",
    "retry_busy",
    "run_query",
    "schema_version",
    "select_list",
    "table_columns",
    "table_names",
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
        INDEX_ON_WRITE_ROWS,
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
        decode_run,
        load_blob,
        select_list,
    )
    from ploomber_like.store.run_detail import (
        DETAIL_COLUMNS,
        RunDetail,
        StoredSource,
        load_artifacts,
        load_inputs,
        load_metrics,
        read_run_detail,
        read_source,
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
        table_columns,
        table_names,
        to_json,
    )
    from ploomber_like.store.writes import (
        BLOB_REFERENCES,
        Deletion,
        RecordedTrial,
        Store,
        delete_orphan_blobs,
        encode_run,
        index_every_numeric_key,
        move_inline_images,
    )


__getattr__ = lazy_exports(__name__, _EXPORTS)
