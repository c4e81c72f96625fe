"""The query side through its public API, on real SQLite files written by the real Store."""

from __future__ import annotations

import base64
import html
import sqlite3

import matplotlib
import pytest
from tracking_databases import (
    SVG,
    TABLE_HTML,
    SweepDatabase,
    build_anchor_database,
    build_sweep_database,
)

from ploomber_like import SQLiteTracker, track_execution
from ploomber_like.errors import DatabaseError, ParameterError, QueryError, UnknownRunError
from ploomber_like.results import Results, RichOutput

matplotlib.use("Agg")

TOP3 = """
SELECT uuid, json_extract(parameters, '$.f1') AS f1,
       json_extract(parameters, '$.confusion_matrix') AS confusion_matrix
FROM experiments ORDER BY f1 DESC LIMIT 3
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepDatabase:
    return build_sweep_database(tmp_path_factory.mktemp("sweep") / "experiments.db")


@pytest.fixture(scope="module")
def tracker(sweep: SweepDatabase) -> SQLiteTracker:
    return SQLiteTracker(sweep.path)


def top3(sweep: SweepDatabase) -> list[str]:
    return sorted(sweep.f1, key=sweep.f1.__getitem__, reverse=True)[:3]


# --- query ---------------------------------------------------------------------------------


def test_query_as_frame_sorts_numerically_and_indexes_by_uuid(tracker, sweep):
    frame = tracker.query(TOP3)
    assert list(frame.index) == top3(sweep)
    assert frame.index.name == "uuid"
    assert frame["f1"].dtype == float
    assert frame["f1"].tolist() == [sweep.f1[u] for u in top3(sweep)]


def test_query_without_uuid_keeps_a_range_index(tracker):
    frame = tracker.query("SELECT count(*) AS n, max(json_extract(parameters, '$.f1')) AS best "
                          "FROM experiments WHERE status = 'ok'")
    assert frame.to_dict("records") == [{"n": 6, "best": 1.05}]


def test_results_show_placeholders_unless_plots_are_rendered(tracker):
    results = tracker.query(TOP3, as_frame=False)
    assert isinstance(results, Results)
    html = results._repr_html_()
    assert html.count("[Plot]") == 3
    assert "<img" not in html
    assert "1.050" in html and "1.0500" not in html  # fixed precision: 3 decimals

    rendered = tracker.query(TOP3, as_frame=False, render_plots=True)._repr_html_()
    assert rendered.count('<img src="data:image/png;base64,iVBOR') == 3
    assert "[Plot]" not in rendered


def test_results_render_svg_as_an_image_and_html_outputs_in_a_sandbox(tracker):
    results = tracker.query(
        "SELECT uuid, json_extract(parameters, '$.tree') AS tree, "
        "json_extract(parameters, '$.importances') AS importances "
        "FROM experiments WHERE status = 'ok' LIMIT 1",
        as_frame=False,
        render_plots=True,
    )
    page = results._repr_html_()
    # an SVG can carry scripts: shown through <img>, where none runs, never inline
    assert f'<img src="data:image/svg+xml;base64,{base64.b64encode(SVG).decode()}">' in page
    assert "<svg" not in page
    # a captured DataFrame table: shown in a sandboxed frame, escaped into its srcdoc
    assert "<iframe sandbox srcdoc=" in page
    assert html.escape(TABLE_HTML.decode(), quote=True) in page
    assert TABLE_HTML.decode() not in page


def test_results_repr_is_a_text_table(tracker, sweep):
    text = repr(tracker.query(TOP3, as_frame=False))
    assert top3(sweep)[0][:8] in text and top3(sweep)[0] not in text  # uuids shortened
    assert "1.050" in text and "[Plot]" in text
    assert "$blob" not in text


def test_results_getitem_keeps_one_column(tracker):
    results = tracker.query(TOP3, as_frame=False)
    f1 = results["f1"]
    assert isinstance(f1, Results)
    assert f1.columns == ["f1"]
    assert [row[0] for row in f1.rows] == [row[1] for row in results.rows]
    with pytest.raises(KeyError, match="nope"):
        results["nope"]


def test_results_get_makes_one_tab_per_row(tracker, sweep):
    tabs = tracker.query(TOP3, as_frame=False).get("confusion_matrix")
    assert list(tabs) == top3(sweep)
    assert all(isinstance(v, RichOutput) for v in tabs.values())
    html = tabs._repr_html_()
    assert html.count('type="radio"') == 3
    assert html.count(" checked") == 1
    assert html.count("<img src=") == 3
    assert "<script" not in html


def test_results_get_labels_by_another_column_and_keeps_duplicates_apart(tracker):
    results = tracker.query(
        "SELECT uuid, json_extract(parameters, '$.n_estimators') AS n, "
        "json_extract(parameters, '$.precision_recall') AS pr "
        "FROM experiments WHERE status = 'ok' ORDER BY n",
        as_frame=False,
    )
    tabs = results.get("pr", index_by="n")
    assert list(tabs) == ["10", "10 (2)", "25", "25 (2)", "50", "50 (2)"]
    with pytest.raises(KeyError):
        results.get("pr", index_by="missing")


def test_query_refuses_writes(tracker):
    with pytest.raises(QueryError, match="DELETE is refused: queries are read-only"):
        tracker.query("DELETE FROM experiments")
    assert len(tracker) == 7


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("VACUUM INTO '{dir}/copy.db'", "VACUUM"),
        ("ATTACH DATABASE '{dir}/new.db' AS a", "ATTACH"),
        ("ATTACH DATABASE 'file:{dir}/new.db?mode=rwc' AS a", "ATTACH"),
        ("CREATE TEMP TABLE t (x)", "CREATE"),
        ("PRAGMA user_version = 7", "PRAGMA user_version"),
        ("UPDATE experiments SET comment = 'x'", "UPDATE"),
    ],
)
def test_query_changes_nothing_on_disk(sweep, tmp_path, sql, refused):
    before = sweep.path.read_bytes()
    tracker = SQLiteTracker(sweep.path)
    with pytest.raises(QueryError, match=f"^{refused} is refused: queries are read-only"):
        tracker.query(sql.format(dir=tmp_path))
    assert list(tmp_path.iterdir()) == []
    assert sweep.path.read_bytes() == before
    # reading pragmas and table-valued functions still work
    assert len(tracker.query("PRAGMA table_info(experiments)")) > 4
    assert len(tracker.query("SELECT key FROM experiments, json_each(parameters)")) > 7


def test_query_error_carries_sqlite_message_and_sql(tracker):
    with pytest.raises(QueryError) as caught:
        tracker.query("SELEC uuid FROM experiments")
    assert 'near "SELEC"' in caught.value.sqlite_message
    assert caught.value.sql == "SELEC uuid FROM experiments"
    assert "\n" not in str(caught.value)


def test_query_rejects_several_statements(tracker):
    with pytest.raises(QueryError, match="one statement"):
        tracker.query("SELECT 1; SELECT 2")


def test_missing_database_is_created_as_sqlite_does(tmp_path):
    tracker = SQLiteTracker(tmp_path / "new.db")
    assert (tmp_path / "new.db").exists()
    assert len(tracker) == 0
    assert "(No experiments saved yet)" in repr(tracker)
    assert "(No experiments saved yet)" in tracker._repr_html_()


def test_missing_database_without_create_is_an_error_and_is_not_created(tmp_path):
    with pytest.raises(DatabaseError, match="database not found"):
        SQLiteTracker(tmp_path / "typo.db", create=False)
    assert not (tmp_path / "typo.db").exists()


def test_sqlite_file_without_experiments_table_is_an_error(tmp_path):
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DatabaseError, match="no experiments table"):
        SQLiteTracker(tmp_path / "other.db").runs()


def test_experiments_table_of_another_schema_is_refused_before_any_change(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE experiments (id INTEGER, name TEXT)")
    conn.execute("INSERT INTO experiments VALUES (1, 'mine')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    script = tmp_path / "s.py"
    script.write_text("x = 1\nx\n")
    tracker = SQLiteTracker(path)
    for attempt in (
        lambda: track_execution(script, database=path, quiet=True),
        lambda: tracker.insert("run", {"a": 1}),
        tracker.runs,
        lambda: repr(tracker),
    ):
        with pytest.raises(DatabaseError, match="has no column uuid, created, parameters"):
            attempt()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db", "s.py"]


def test_rows_written_by_other_tools_with_numbers_still_list(tmp_path):
    path = tmp_path / "anchor.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE experiments (uuid TEXT NOT NULL UNIQUE, created TIMESTAMP, "
        "parameters TEXT, comment TEXT)"
    )
    conn.execute("INSERT INTO experiments VALUES ('abc', 1700000000, '{\"a\": 1}', 5)")
    conn.commit()
    conn.close()
    tracker = SQLiteTracker(path)
    (run,) = tracker.runs()
    assert run.created == "1700000000" and run["a"] == 1
    assert "1700000000" in repr(tracker)


# --- keys and sample query -----------------------------------------------------------------


def test_parameters_keys_in_order_nested_dotted_plots_and_lists_as_one_key(tracker):
    assert tracker.get_parameters_keys() == [
        "n_estimators", "max_depth", "model.criterion", "accuracy", "f1", '"f1-score"',
        "classes", "confusion_matrix", "precision_recall", "tree", "importances",
    ]


def test_parameters_keys_keep_the_order_of_first_appearance(tmp_path):
    path = tmp_path / "order.db"
    build_sweep_database(path)
    SQLiteTracker(path).new_experiment().log_dict({"accuracy": 1.0, "extra": 2})
    keys = SQLiteTracker(path).get_parameters_keys()
    assert keys[:3] == ["n_estimators", "max_depth", "model.criterion"]
    assert keys[-1] == "extra"


def test_sample_query_selects_every_key(tracker):
    query = tracker.get_sample_query()
    assert "json_extract(parameters, '$.model.criterion') AS model_criterion" in query
    assert """json_extract(parameters, '$."f1-score"') AS "f1-score\"""" in query
    frame = tracker.query(query)
    assert len(frame) == 7
    assert "model_criterion" in frame.columns and "f1-score" in frame.columns
    assert frame.loc["00aa0000-run", "n_estimators"] == 10


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 38), reason="->> needs SQLite 3.38")
def test_sample_query_arrow_form(tracker):
    query = tracker.get_sample_query(compatibility_mode=False)
    assert "parameters ->> '$.f1' AS f1" in query
    assert "json_extract" not in query
    assert tracker.query(query)["f1"].max() == 1.05


def test_sample_query_quotes_sql_keywords(tmp_path):
    path = tmp_path / "k.db"
    experiment = SQLiteTracker(path).new_experiment()
    experiment.log_dict({"order": 1, "group": 2, "it's": 3})
    query = SQLiteTracker(path).get_sample_query()
    assert 'AS "order"' in query and 'AS "group"' in query
    frame = SQLiteTracker(path).query(query)
    assert frame.iloc[0].tolist() == [1, 2, 3]


# --- runs ----------------------------------------------------------------------------------


def test_get_returns_plain_values_and_displayable_plots(tracker, sweep):
    run = tracker.get(sweep.ok[(50, None)])
    assert run["f1"] == 1.05 and isinstance(run["f1"], float)
    assert run["n_estimators"] == 50 and run["max_depth"] is None
    assert run["classes"] == [0, 1]
    assert run.parameters == {"n_estimators": 50, "max_depth": None, "model": {"criterion": "gini"}}
    assert "f1" in run.values and "n_estimators" not in run.values
    plot = run["confusion_matrix"]
    assert isinstance(plot, RichOutput)
    assert plot.data.startswith(b"\x89PNG")
    assert plot._repr_html_().startswith('<img src="data:image/png;base64,')
    assert run.status == "ok" and run.error is None
    html = run._repr_html_()
    assert html.count("<img src=\"data:image/png;") == 2 and "1.050" in html


def test_get_accepts_a_unique_prefix(tracker, sweep):
    assert tracker.get("ff00").uuid == sweep.failed


def test_get_unknown_or_ambiguous_uuid(tracker):
    with pytest.raises(UnknownRunError, match="no run with uuid 'nope'"):
        tracker.get("nope")
    with pytest.raises(UnknownRunError, match="matches several runs"):
        tracker.get("0")


def test_failed_run_keeps_its_error_and_values(tracker, sweep):
    run = tracker.get(sweep.failed)
    assert run.status == "failed"
    assert run.error.type == "ValueError" and run.error.message == "bad input"
    assert run.error.group == 2 and run.error.group_source == "model.fit(X, y)"
    assert "Traceback" in run.error.traceback
    assert run["accuracy"] == 0.25
    assert "ValueError in group 3: bad input" in run._repr_html_()  # error_group 2, read from 1


def test_runs_filter_sort_and_limit(tracker, sweep):
    best = tracker.runs(sort="f1", limit=3)
    assert [r.uuid for r in best] == top3(sweep)
    worst = tracker.runs(sort="f1", ascending=True, status="ok", limit=1)
    assert worst[0].uuid == min(sweep.f1, key=sweep.f1.__getitem__)
    # a run without the key comes last in both directions
    assert tracker.runs(sort="f1")[-1].uuid == sweep.failed
    assert tracker.runs(sort="f1", ascending=True)[-1].uuid == sweep.failed
    assert [r.uuid for r in tracker.runs(sort="duration", limit=1)] == [sweep.ok[(50, None)]]
    assert [r.uuid for r in tracker.runs(status="failed")] == [sweep.failed]
    assert tracker.runs(sort="model.criterion", limit=1)[0]["model"] == {"criterion": "gini"}
    assert tracker.runs(sort='"f1-score"', limit=1)[0].uuid == top3(sweep)[0]


def test_runs_named_past_sqlites_parameter_limit(tmp_path):
    """Naming more runs than SQLite binds in one statement still selects and sorts them all."""
    probe = sqlite3.connect(":memory:")
    # Python 3.11 tells the limit; SQLite as Debian builds it binds 250,000.
    getlimit = getattr(probe, "getlimit", None)
    n = (getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 250_000) + 1
    path = tmp_path / "many.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE experiments (uuid TEXT NOT NULL UNIQUE, created TIMESTAMP, "
        "parameters TEXT, comment TEXT)"
    )
    uuids = [f"{i:032x}" for i in range(n)]
    conn.executemany(
        "INSERT INTO experiments VALUES (?, ?, ?, NULL)",
        ((uuid, f"{i:09d}", f'{{"i": {i % 1000}}}') for i, uuid in enumerate(uuids)),
    )
    conn.commit()
    conn.close()
    tracker = SQLiteTracker(path)
    # ties on i: the most recent first, as when every run fits in one statement
    for ascending, sign in ((True, 1), (False, -1)):
        best = tracker.runs(uuids, sort="i", ascending=ascending, limit=4)
        expected = sorted(range(n), key=lambda i, sign=sign: (sign * (i % 1000), -i))[:4]
        assert [run.uuid for run in best] == [uuids[i] for i in expected]
    given = tracker.runs(uuids[::-1], where="json_extract(parameters, '$.i') = 7")
    assert [run.uuid for run in given] == [uuids[i] for i in reversed(range(7, n, 1000))]


def test_runs_reject_unknown_status_and_sort_key(tracker):
    with pytest.raises(ParameterError, match="unknown status 'good'"):
        tracker.runs(status="good")
    with pytest.raises(ParameterError, match="unknown sort key 'f2'"):
        tracker.runs(sort="f2")


def test_recent_most_recent_first(tracker, sweep):
    frame = tracker.recent(2)
    assert list(frame.index) == [sweep.failed, sweep.ok[(50, None)]]
    assert list(frame.columns) == ["created", "status", "duration", "error_type",
                                   "error_message", "parameters", "comment"]
    assert frame.loc[sweep.failed, "error_type"] == "ValueError"
    assert '"accuracy": 0.25' in frame.loc[sweep.failed, "parameters"]


def test_recent_normalized_has_one_column_per_key(tracker, sweep):
    frame = tracker.recent(3, normalize=True)
    assert {"n_estimators", "model.criterion", "f1", "confusion_matrix"} <= set(frame.columns)
    assert frame.columns[-1] == "comment"
    assert isinstance(frame.loc[sweep.ok[(50, None)], "confusion_matrix"], RichOutput)


def test_to_frame_is_tidy_parameters_before_scalar_values(tracker, sweep):
    frame = tracker.to_frame()
    assert list(frame.columns) == [
        "created", "status", "duration", "n_estimators", "max_depth", "model.criterion",
        "accuracy", "f1", "f1-score", "error_type", "error_message", "comment",
    ]
    assert len(frame) == 7
    by_n = frame[frame.status == "ok"].groupby("n_estimators")["f1"].mean()
    assert by_n.round(3).to_dict() == {10: 0.625, 25: 0.775, 50: 1.025}


def test_export_writes_each_output_as_a_file(tracker, sweep, tmp_path):
    files = tracker.get(sweep.ok[(10, 5)]).export(tmp_path / "out")
    assert sorted(f.name for f in files) == [
        "confusion_matrix.png", "importances.html", "precision_recall.png", "tree.svg",
    ]
    assert (tmp_path / "out" / "tree.svg").read_bytes() == SVG
    assert (tmp_path / "out" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


def test_len_and_reprs_list_recent_runs(tracker, sweep):
    assert len(tracker) == 7
    text = repr(tracker)
    assert "7 runs" in text and sweep.failed[:8] in text
    assert "model.criterion=gini" in text  # nested parameters flattened
    html = tracker._repr_html_()
    assert "<table>" in html and "ValueError in group 3" in html


def test_comment_by_prefix(tmp_path):
    path = tmp_path / "c.db"
    build_sweep_database(path)
    tracker = SQLiteTracker(path)
    tracker.comment("ff00", "too big for memory")
    assert tracker.get("ff000000-failed").comment_text == "too big for memory"
    with pytest.raises(UnknownRunError):
        tracker.comment("nope", "x")


def test_comment_on_unknown_uuid_writes_nothing(tmp_path):
    tracker = SQLiteTracker(tmp_path / "c.db")
    before = (tmp_path / "c.db").read_bytes()
    with pytest.raises(UnknownRunError):
        tracker.comment("abc", "x")
    assert (tmp_path / "c.db").read_bytes() == before


# --- sklearn-evaluation's database ---------------------------------------------------------


def test_anchor_database_is_queryable(tmp_path):
    path = tmp_path / "anchor.db"
    build_anchor_database(path)
    tracker = SQLiteTracker(path)
    frame = tracker.query(
        "SELECT uuid, json_extract(parameters, '$.accuracy') AS accuracy "
        "FROM experiments ORDER BY accuracy DESC LIMIT 1"
    )
    assert frame.to_dict("index") == {"e5f6a7b8": {"accuracy": 0.9}}
    assert tracker.get_parameters_keys() == ["accuracy", "n_estimators", "plot"]
    assert len(tracker) == 3
    run = tracker.get("a1b2c3d4")
    assert run["accuracy"] == 0.8 and run.status is None and run.error is None
    assert run["plot"]._repr_html_().startswith("<img src=")
    assert tracker.to_frame().loc["e5f6a7b8", "n_estimators"] == 50
    assert tracker.recent(1).index[0] in {"a1b2c3d4", "e5f6a7b8", "00000000"}
    results = tracker.query(tracker.get_sample_query(), as_frame=False)
    assert results._repr_html_().count("[Plot]") == 2
    assert results.get("plot")._repr_html_().count("<img src=") == 2


# --- logging by hand -----------------------------------------------------------------------


def test_new_experiment_logs_values_figures_and_comment(tmp_path):
    import matplotlib.pyplot as plt
    import numpy as np

    path = tmp_path / "manual.db"
    tracker = SQLiteTracker(path)
    experiment = tracker.new_experiment()
    assert experiment.log("accuracy", np.float64(0.8)) == 0.8
    experiment.log_dict({"precision": 0.9, "n": np.int64(3), "weights": np.array([1, 2])})
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    experiment.log_figure("curve", fig)
    plt.close(fig)
    experiment.comment("by hand")

    run = tracker.get(experiment.uuid)
    assert run.status == "ok" and run.comment_text == "by hand"
    assert run["accuracy"] == 0.8 and run["n"] == 3 and run["weights"] == [1, 2]
    assert run["curve"].data.startswith(b"\x89PNG")
    # the figure lives in the blobs table; parameters holds only a small reference
    text = tracker.query(f"SELECT parameters FROM experiments WHERE uuid = '{run.uuid}'")
    assert len(text.iloc[0, 0]) < 300
    assert tracker.runs(status="ok")[0].uuid == experiment.uuid


def test_new_experiment_rejects_values_json_cannot_store(tmp_path):
    experiment = SQLiteTracker(tmp_path / "m.db").new_experiment()
    with pytest.raises(ParameterError, match="cannot log model"):
        experiment.log("model", object())
    experiment.log("ok", 1)
    assert SQLiteTracker(tmp_path / "m.db").get(experiment.uuid)["ok"] == 1
