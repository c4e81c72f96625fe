"""Reading at scale (issue 20), checked for correctness, not timed: the keys table, blob uses
and expression indexes stay what a rebuild from scratch would make after every write path; the
seed's SQL is served by an index; ``compare`` shows the top runs and counts the rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import matplotlib
import pytest
from conftest import cli
from tracking_databases import build_anchor_database, build_sweep_database

from ploomber_like import SQLiteTracker
from ploomber_like.store import (
    INDEX_ON_WRITE_ROWS,
    SCHEMA_VERSION,
    Store,
    build_read_indexes,
    index_name,
    json_path,
)

matplotlib.use("Agg")

SEED_QUERY = (
    "SELECT uuid, json_extract(parameters, '$.f1') AS f1 FROM experiments ORDER BY f1 DESC LIMIT 3"
)


def read_state(conn: sqlite3.Connection) -> tuple[list, list, set]:
    """What the read side relies on: keys with their counts, blob uses, expression indexes
    (where and as what a key first appeared stays that of a run deleted since)."""
    keys = conn.execute(
        "SELECT fullkey, parent, is_blob, runs, numbers FROM value_keys ORDER BY fullkey"
    ).fetchall()
    uses = conn.execute(
        "SELECT e.uuid, u.sha256 FROM blob_uses AS u JOIN experiments AS e ON e.rowid = u.run "
        "ORDER BY 1, 2"
    ).fetchall()
    indexes = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master "
            "WHERE type = 'index' AND name LIKE 'experiments_value_%'"
        )
    }
    return keys, uses, indexes


def assert_consistent(path: Path, tmp_path: Path) -> None:
    """The database's read indexes equal those rebuilt from its rows, on a copy."""
    source = sqlite3.connect(path)
    copy = sqlite3.connect(tmp_path / "rebuilt.db", isolation_level=None)
    try:
        source.backup(copy)
        kept = read_state(source)
        copy.execute("BEGIN")
        build_read_indexes(copy, progress=lambda line: None)
        copy.execute("COMMIT")
        assert kept == read_state(copy)
    finally:
        source.close()
        copy.close()
        (tmp_path / "rebuilt.db").unlink()


def plan(path: Path, sql: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    finally:
        conn.close()


def test_every_writer_keeps_the_read_indexes(tmp_path: Path):
    import matplotlib.pyplot as plt

    path = tmp_path / "runs.db"
    tracker = SQLiteTracker(path)
    assert_consistent(path, tmp_path)

    experiment = tracker.new_experiment()
    experiment.log("f1", 0.75)
    experiment.log_dict({"n_estimators": 10, "model": {"depth": 3}, "label": "first"})
    figure, ax = plt.subplots()
    ax.plot([1, 2])
    experiment.log_figure("curve", figure)
    plt.close(figure)
    assert_consistent(path, tmp_path)

    uuids = tracker.insert_many([{"f1": 0.5, "f1-score": 0.4}, {"f1": None}, {"f1": "n/a"}])
    tracker.upsert(uuids[0], {"f1": 0.9, "recall": 0.3})
    tracker.update(uuids[1], {"f1": 0.1}, allow_overwrite=True)
    tracker.comment(uuids[2], "text f1")
    assert_consistent(path, tmp_path)

    tracker.remove([experiment.uuid, uuids[2]])
    assert_consistent(path, tmp_path)
    assert tracker.get_parameters_keys() == ["f1", '"f1-score"', "recall"]

    # A key some run shows as a number got its index at its first write.
    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    for key in ("f1", "f1-score", "recall"):
        assert index_name(json_path(key)) in names, key


def test_a_sweep_database_and_rm_keep_the_read_indexes_and_shared_blobs(tmp_path: Path):
    database = build_sweep_database(tmp_path / "sweep.db")
    assert_consistent(database.path, tmp_path)
    first, second = list(database.ok.values())[:2]
    tracker = SQLiteTracker(database.path)
    before = tracker.get(second).values
    removed = tracker.remove([first, database.failed])
    assert sorted(removed.runs) == sorted([first, database.failed])
    assert_consistent(database.path, tmp_path)
    # The runs left still show their plots: blobs they share with the deleted ones stay.
    after = tracker.get(second).values
    for key, value in before.items():
        if hasattr(value, "sha256"):
            assert after[key].data == value.data


# Parameters as peers, hand-written SQL and our writers leave them: the fill from stored runs
# reads most in Python and the rest in SQLite, and must count each as the triggers did.
ODD_PARAMETERS = [
    None, "{}", "5", '"text"', '[1, {"$blob": "aa"}]', "not json", '{"n": 1.5}', '{"n": NaN}',
    '{"ord": 1}', '{"ord": 2, "escaped\\u0041": 1}', '{"ord": 3}',  # an escape, first or not
    '{"plainA": 1}', '{"plain\\u0041": 1}',  # one key to Python, two to SQLite
    '{"ord2": "x"}', '{"ord2": 1, "a": 1}', '{"ord2": 1, "a": 1, "a": 2}',  # a key twice
    '{"a": 1, "b": {"c": 2.5, "d": [1, {"e": 3, "$blob": "bb"}]}, "f": true, "g": null}',
    '{"a": 2, "b": {"c": 3.5, "d": [2]}, "f": false, "g": null}',
    '{"a": 1.5, "b": {"c": 2, "d": []}, "f": true, "g": "n/a"}',
    '{"é ü": 1, "x y": {"z": 2}}', '{"k[0]": {"child": 1}, "k": 0}',
    '{"big": 123456789012345678901234567890, "tiny": 1e-400, "huge": 1e400}',
    '{"$blob": {"x": 1}}', '{"p": {"$blob": "cc", "mimetype": "image/png"}, "q": {"$blob": "cc"}}',
]


def full_state(conn: sqlite3.Connection) -> tuple[list, list]:
    keys = conn.execute("SELECT * FROM value_keys ORDER BY fullkey").fetchall()
    uses = conn.execute("SELECT run, sha256 FROM blob_uses ORDER BY 1, 2").fetchall()
    return keys, uses


@pytest.mark.parametrize("chunk", [3, 1000])
def test_filling_from_stored_runs_counts_what_the_triggers_counted(tmp_path: Path, monkeypatch,
                                                                   chunk: int):
    import ploomber_like.store.indexes as indexes

    path = tmp_path / "runs.db"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.text_factory = bytes  # the rows with text that is not UTF-8 are read back
    rows = [(f"run{i}", text, "src" if i % 2 else None, None) for i, text in enumerate(
        ODD_PARAMETERS * 3)]
    rows += [
        ("blob-parameters", b"{}", None, None),
        ("latin-1", b'{"a": "caf\xe9"}', b"\xff", "nb"),
        ("binary-source", '{"a": 1}', b"\x00\x01", None),
    ]
    with conn:
        for uuid, parameters, source, notebook in rows:
            conn.execute(
                "INSERT INTO experiments (uuid, parameters, source_sha256, notebook) "
                "VALUES (?, CAST(? AS TEXT), ?, ?)" if uuid == "latin-1" else
                "INSERT INTO experiments (uuid, parameters, source_sha256, notebook) "
                "VALUES (?, ?, ?, ?)",
                (uuid, parameters, source, notebook),
            )
        conn.execute(
            "UPDATE experiments SET source_sha256 = CAST(source_sha256 AS TEXT) "
            "WHERE uuid = 'latin-1'"
        )
    kept = full_state(conn)
    assert len(kept[0]) > 15 and len(kept[1]) > 10
    monkeypatch.setattr(indexes, "FILL_CHUNK", chunk)
    rebuilding = sqlite3.connect(path, isolation_level=None)  # as a Store's: text as str
    rebuilding.execute("BEGIN")
    build_read_indexes(rebuilding, progress=lambda line: None)
    rebuilding.execute("COMMIT")
    rebuilding.close()
    assert full_state(conn) == kept
    conn.close()


def test_the_seed_sql_is_served_by_an_index(tmp_path: Path):
    path = tmp_path / "runs.db"
    tracker = SQLiteTracker(path)
    tracker.insert_many([{"f1": i / 10, "n_estimators": i} for i in range(10)])

    assert f"USING INDEX {index_name('$.f1')}" in plan(path, SEED_QUERY)
    best = tracker.query(SEED_QUERY)
    assert best["f1"].tolist() == [0.9, 0.8, 0.7]
    # Our own sorts and filters use the same expression, so the same index.
    assert index_name("$.f1") in plan(
        path, "SELECT uuid FROM experiments WHERE json_extract(parameters, '$.f1') > 0.5"
    )
    assert [run.values["f1"] for run in tracker.runs(sort="f1", limit=2)] == [0.9, 0.8]
    assert [run.values["f1"] for run in tracker.runs(sort="f1", ascending=True, limit=2)] == [
        0.0,
        0.1,
    ]


def test_runs_without_the_sort_key_come_last_either_way(tmp_path: Path):
    tracker = SQLiteTracker(tmp_path / "runs.db")
    tracker.insert_many([{"f1": 0.2}, {"other": 1}, {"f1": 0.7}, {"f1": None}])
    descending = [run.values.get("f1") for run in tracker.runs(sort="f1")]
    ascending = [run.values.get("f1") for run in tracker.runs(sort="f1", ascending=True)]
    assert descending[:2] == [0.7, 0.2] and descending[2:] == [None, None]
    assert ascending[:2] == [0.2, 0.7] and ascending[2:] == [None, None]
    assert [run.values.get("f1") for run in tracker.runs(sort="f1", limit=3)] == [0.7, 0.2, None]


def test_a_peer_database_gets_its_read_indexes_on_its_first_writable_open(tmp_path: Path):
    path = tmp_path / "anchor.db"
    build_anchor_database(path)
    Store(path).close()
    assert_consistent(path, tmp_path)
    assert index_name("$.accuracy") in plan(
        path, "SELECT uuid FROM experiments ORDER BY json_extract(parameters, '$.accuracy')"
    )

    # The peer keeps writing with its own SQL: the triggers count its rows too.
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO experiments (uuid, parameters) VALUES ('c0ffee00', '{\"precision\": 0.5}')"
    )
    conn.commit()
    conn.close()
    assert "precision" in SQLiteTracker(path, create=False).get_parameters_keys()
    # Its new numeric key is indexed at the next writable open.
    assert index_name("$.precision") not in read_state(sqlite3.connect(path))[2]
    Store(path).close()
    assert_consistent(path, tmp_path)
    assert index_name("$.precision") in read_state(sqlite3.connect(path))[2]


def test_a_database_holding_text_that_is_not_json_gets_no_expression_index(tmp_path: Path):
    """SQLite would refuse to index such a row, and every later write of one: the database
    keeps working without."""
    path = tmp_path / "anchor.db"
    build_anchor_database(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO experiments (uuid, parameters) VALUES ('c0ffee01', 'not json')")
    conn.commit()
    conn.close()
    tracker = SQLiteTracker(path)
    tracker.insert_many([{"accuracy": 0.95}])
    assert_consistent(path, tmp_path)
    assert read_state(sqlite3.connect(path))[2] == set()
    assert len(tracker.runs()) == 5
    assert tracker.get_parameters_keys()[:2] == ["accuracy", "n_estimators"]


def test_an_older_database_is_rebuilt_when_its_read_indexes_are_missing(tmp_path: Path):
    database = build_sweep_database(tmp_path / "sweep.db")
    conn = sqlite3.connect(database.path)
    expected = read_state(conn)
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' OR name LIKE 'experiments_value_%'"
    ).fetchall():
        kind = "TRIGGER" if name.startswith("value_keys") else "INDEX"
        conn.execute(f"DROP {kind} {name}")
    conn.execute("DROP TABLE value_keys")
    conn.execute("DROP TABLE blob_uses")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.commit()
    # Read-only, an older database still answers, by scanning.
    keys = SQLiteTracker(database.path, create=False).get_parameters_keys()
    assert "f1" in keys
    conn.close()

    Store(database.path).close()
    conn = sqlite3.connect(database.path)
    try:
        assert read_state(conn) == expected
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    assert SQLiteTracker(database.path).get_parameters_keys() == keys


def wide_cli(*args: str):
    return cli(*args, env={"COLUMNS": "200"})


@pytest.fixture
def many_runs(tmp_path: Path) -> Path:
    path = tmp_path / "many.db"
    SQLiteTracker(path).insert_many([{"f1": i / 100, "n_estimators": i} for i in range(25)])
    return path


def test_compare_without_a_filter_shows_the_top_runs_and_counts_the_rest(many_runs: Path):
    done = wide_cli("compare", "--sort", "f1", "-d", str(many_runs))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "5 more runs match: -n/--limit shows more, --where picks some"
    shown = [line for line in lines if "0.24" in line or "0.05" in line or "0.04" in line]
    assert any("0.24" in line for line in shown) and any("0.05" in line for line in shown)
    assert not any(" 0.04 " in f" {line} " for line in lines)

    filtered = wide_cli(
        "compare", "--where", "json_extract(parameters, '$.f1') < 0.03", "-d", str(many_runs)
    )
    assert filtered.returncode == 0, filtered.stderr
    assert "more run" not in filtered.stdout
    assert "0.02" in filtered.stdout and "0.03" not in filtered.stdout

    exported = wide_cli("compare", "-f", "csv", "-d", str(many_runs))
    assert len(exported.stdout.strip().splitlines()) == 26  # the header and every run


def test_ls_sorted_shows_the_best_runs_with_unique_prefixes(many_runs: Path):
    done = wide_cli("ls", "--sort", "f1", "-n", "3", "-d", str(many_runs))
    assert done.returncode == 0, done.stderr
    tracker = SQLiteTracker(many_runs)
    best = tracker.runs(sort="f1", limit=3)
    every = tracker.uuid_prefixes()
    assert tracker.uuid_prefixes(run.uuid for run in best) == {
        run.uuid: every[run.uuid] for run in best
    }
    for run in best:
        assert every[run.uuid] in done.stdout
    assert "0.24" in done.stdout and "0.21" not in done.stdout


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the code under test runs, through any connection it opens."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    return seen


def scans(path: Path, sql: list[str]) -> list[str]:
    """The statements of ``sql`` that read a whole table of runs (the schema's and the keys'
    tables hold a row per table or key, not per run)."""
    found = []
    for statement in sql:
        if statement.lstrip().upper().startswith("SELECT"):
            steps = plan(path, statement)
            found += [statement for table in ("experiments", "blobs", "blob_uses", "metrics",
                                              "artifacts", "inputs")
                      if f"SCAN {table}" in steps]
    return found


@pytest.fixture
def tied_runs(tmp_path: Path) -> Path:
    """600 runs written in one transaction: f1 in 50 values shared by 11 or 12 runs each, one run
    in 13 without f1 (they come last in any order by f1)."""
    path = tmp_path / "tied.db"
    SQLiteTracker(path).insert_many(
        [{"n": i} if i % 13 == 0 else {"n": i, "f1": (i % 50) / 50} for i in range(600)]
    )
    return path


@pytest.mark.parametrize(("sort", "ascending"), [(None, False), ("f1", False), ("f1", True)])
def test_pages_read_after_a_run_are_the_list_in_order(tied_runs, statements, sort, ascending):
    from ploomber_like.query import RunQuery

    query = RunQuery(tied_runs)
    every = [run.uuid for run in query.runs(sort=sort, ascending=ascending)]
    pages, after = [], None
    while True:
        page = [run.uuid for run in query.runs(sort=sort, ascending=ascending, limit=70,
                                               after=after)]
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert [uuid for page in pages for uuid in page] == every
    assert len(set(every)) == 600 and len(pages) == 9

    # A deep page: read from its first run through an index, nothing before it skipped.
    statements.clear()
    deep = query.runs(sort=sort, ascending=ascending, limit=70, after=every[499])
    assert [run.uuid for run in deep] == every[500:570]
    assert scans(tied_runs, statements) == []
    assert not any("OFFSET" in sql and not sql.rstrip().endswith("OFFSET 0")
                   for sql in statements)


def test_a_run_page_reads_no_whole_table(tmp_path: Path, statements):
    from ploomber_like.query import RunQuery
    from ploomber_like.ui import pages

    sweep = build_sweep_database(tmp_path / "runs.db")
    SQLiteTracker(sweep.path).insert_many([{"f1": i / 300} for i in range(300)])
    uuid = sweep.ok[(25, 5)]
    for name in (uuid, uuid[:10]):  # a full uuid, and a prefix
        statements.clear()
        html = pages.run_html(RunQuery(sweep.path), name, live=True)
        assert uuid in html and "confusion_matrix" in html
        assert len(statements) < 40
        assert scans(sweep.path, statements) == []


def test_a_key_first_shown_in_a_large_database_waits_for_migrate(tmp_path: Path):
    """Indexing a key reads every run: the write that first shows it in a large table, and the
    next open, must not pay that; ``migrate`` builds it."""
    path = tmp_path / "large.db"
    tracker = SQLiteTracker(path)
    tracker.insert_many([{"f1": i / 7} for i in range(INDEX_ON_WRITE_ROWS + 1)])
    tracker.insert_many([{"f1": 0.5, "late": 0.25}])
    sort_late = "SELECT uuid FROM experiments ORDER BY json_extract(parameters, '$.late') LIMIT 3"
    assert index_name("$.f1") in read_state(sqlite3.connect(path))[2]
    assert index_name("$.late") not in read_state(sqlite3.connect(path))[2]
    Store(path).close()
    assert index_name("$.late") not in read_state(sqlite3.connect(path))[2]
    # Unindexed, the key still sorts, by a scan.
    assert tracker.runs(sort="late", limit=1)[0].values["late"] == 0.25

    done = cli("migrate", "-d", str(path))
    assert done.returncode == 0, done.stderr
    assert "indexed 1 key(s): $.late" in done.stdout
    assert index_name("$.late") in plan(path, sort_late)
    again = cli("migrate", "-d", str(path))
    assert "indexed" not in again.stdout


def test_a_report_reads_its_runs_and_images_through_one_connection(tmp_path: Path, statements):
    from ploomber_like.ui.report import write_report

    sweep = build_sweep_database(tmp_path / "runs.db")
    opened = []
    connect = sqlite3.connect

    def counted(*args, **kwargs):
        opened.append(args[0] if args else kwargs.get("database"))
        return connect(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", counted)
        write_report(sweep.path, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    # Every run page of the report inlines its plots: opening the database for each read
    # (the runs, each run page, each image) costs more than reading them.
    assert html.count("data:image/png;base64,") >= 3
    assert len(opened) == 1, opened


def test_a_held_query_reads_through_its_one_connection(tmp_path: Path):
    from ploomber_like.errors import DatabaseError
    from ploomber_like.query import RunQuery

    path = tmp_path / "runs.db"
    SQLiteTracker(path).insert_many([{"f1": i / 10} for i in range(10)])
    query = RunQuery(path)
    with query.holding():
        best = query.runs(sort="f1", limit=1)[0]
        # The connection held outlives the file's name: no read inside opens it again.
        moved = path.rename(tmp_path / "moved.db")
        assert query.run(best.uuid[:8]).uuid == best.uuid
        assert query.count() == 10
        assert list(query.uuid_prefixes([best.uuid])) == [best.uuid]
    with pytest.raises(DatabaseError, match="not found"):
        query.count()
    moved.rename(path)
    assert query.count() == 10
