"""Comparing runs (compare, diff), names and tags, deleting runs, and how values are shown: the
Python API and the CLI, on real SQLite files written by the real Store."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tracking_databases import SOURCE, SweepDatabase, build_sweep_database, png

from ploomber_like import SQLiteTracker
from ploomber_like.cli import cli
from ploomber_like.errors import ParameterError, QueryError, UnknownRunError
from ploomber_like.record import Blob, Environment, Record, new_created
from ploomber_like.render import MISSING, cell_text, parameter_text, short_uuids, unique_prefixes
from ploomber_like.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep(tmp_path: Path) -> SweepDatabase:
    """A fresh sweep database per test: these tests tag and delete runs."""
    return build_sweep_database(tmp_path / "experiments.db")


def invoke(*args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def add_run(database: Path, uuid: str, parameters: dict, values: dict, **fields) -> Record:
    record = Record(
        uuid=uuid, created=new_created(), path=fields.pop("path", "train.py"),
        source=fields.pop("source", SOURCE), parameters=parameters, overrides=parameters,
        status="ok", values=values, **fields,
    )
    with Store(database) as store:
        store.finish(record)
    return record


# --- compare ---------------------------------------------------------------------------------


def test_compare_has_a_row_per_run_and_a_column_per_parameter_and_value(sweep):
    comparison = SQLiteTracker(sweep.path).compare(sort="f1")
    assert comparison.keys[:2] == ["uuid", "status"]
    assert {"n_estimators", "max_depth", "model.criterion", "f1", "confusion_matrix"} <= set(
        comparison.keys
    )
    best = max(sweep.f1, key=sweep.f1.__getitem__)
    assert comparison.runs[0].uuid == best and len(comparison) == 7
    frame = comparison.to_frame()
    assert frame.loc[best, "f1"] == sweep.f1[best]
    text = comparison.format("table", width=200)
    assert best[:8] in text and "[Plot]" in text and best not in text
    # 100 characters wide: the plots do not fit; the parameter equal in every run is named
    assert "+3 columns" in repr(comparison)
    assert "same in every run: model.criterion=gini" in repr(comparison)


def test_compare_only_changed_hides_constant_columns_and_columns_picks(sweep):
    tracker = SQLiteTracker(sweep.path)
    ok = list(sweep.ok.values())
    comparison = tracker.compare(ok, only_changed=True)
    assert "model.criterion" not in comparison.keys  # gini in every run
    assert "classes" not in comparison.keys  # [0, 1] in every run
    assert {"n_estimators", "max_depth", "f1", "confusion_matrix"} <= set(comparison.keys)
    assert "model.criterion" in tracker.compare(ok).keys
    picked = tracker.compare(ok[:2], columns=["f1", "n_estimators"])
    assert picked.keys == ["uuid", "f1", "n_estimators"]
    assert [run.uuid for run in picked.runs] == ok[:2]  # in the order given
    with pytest.raises(ParameterError, match="unknown column 'nope'"):
        tracker.compare(columns=["nope"])


def test_compare_filters_by_where_status_tag_and_script(sweep, tmp_path):
    tracker = SQLiteTracker(sweep.path)
    high = tracker.compare(where="json_extract(parameters, '$.f1') >= 1.0")
    assert {run.uuid for run in high.runs} == {u for u, f1 in sweep.f1.items() if f1 >= 1.0}
    assert [run.uuid for run in tracker.compare(status="failed").runs] == [sweep.failed]
    add_run(sweep.path, "77777777-other", {"lr": 0.1}, {"loss": 0.5}, path="other/train.py")
    assert [run.uuid for run in tracker.compare(script="train.py").runs] == ["77777777-other"]
    assert len(tracker.compare(script="examples/fit.py")) == 7
    tracker.tag(sweep.failed, "look")
    assert [run.uuid for run in tracker.compare(tag="look").runs] == [sweep.failed]
    with pytest.raises(QueryError, match="no such column: nope"):
        tracker.compare(where="nope > 1")


def test_compare_machine_formats_are_complete(sweep):
    tracker = SQLiteTracker(sweep.path)
    uuid = sweep.ok[(50, None)]
    add_run(sweep.path, "88888888-precise", {"noise": 0.123456789}, {"loss": 1 / 3})
    rows = json.loads(tracker.compare().format("json"))
    by_uuid = {row["uuid"]: row for row in rows}
    assert by_uuid[uuid]["f1"] == sweep.f1[uuid]  # full uuid, value unrounded
    assert by_uuid["88888888-precise"]["loss"] == 1 / 3
    assert by_uuid["88888888-precise"]["noise"] == 0.123456789
    assert by_uuid[uuid]["confusion_matrix"]["mimetype"] == "image/png"
    assert len(by_uuid[uuid]["confusion_matrix"]["$blob"]) == 64
    assert by_uuid[sweep.failed]["f1"] is None
    table = list(csv.DictReader(io.StringIO(tracker.compare().format("csv"))))
    precise = next(row for row in table if row["uuid"] == "88888888-precise")
    assert float(precise["loss"]) == 1 / 3 and precise["noise"] == "0.123456789"
    markdown = tracker.compare(columns=["noise", "loss"]).format("markdown")
    assert "| uuid | noise | loss |" in markdown
    assert "| 88888888 | 0.123456789 | 0.333 |" in markdown


def test_compare_table_fits_the_terminal_and_never_cuts_a_uuid(sweep):
    add_run(sweep.path, "abcdef0123456789-long", {"a_rather_long_parameter_name": 1},
            {"another_long_value_name": "x" * 60})
    output = CliRunner().invoke(cli, ["compare", "-d", str(sweep.path)], env={"COLUMNS": "60"})
    assert output.exit_code == 0, output.output
    lines = output.output.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert "abcdef01" in output.output and sweep.ok[(10, 5)][:8] in output.output
    assert lines[-1].startswith("+") and "columns" in lines[-1]
    header = lines[1].split()
    assert header[:2] == ["uuid", "status"]


def test_compare_html_renders_plots(sweep):
    html = SQLiteTracker(sweep.path).compare([sweep.ok[(10, 5)]])._repr_html_()
    assert '<img src="data:image/png;base64,' in html and "[Plot]" not in html


def test_compare_cli(sweep):
    uuid = sweep.ok[(25, 5)]
    output = invoke("compare", uuid[:6], sweep.ok[(25, None)], "-d", str(sweep.path),
                    "--only-changed", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [row["uuid"] for row in rows] == [uuid, sweep.ok[(25, None)]]
    assert "n_estimators" not in rows[0] and rows[0]["max_depth"] == "5"
    output = invoke("compare", "-d", str(sweep.path), "--status", "failed", "-f", "json")
    assert [row["uuid"] for row in json.loads(output)] == [sweep.failed]
    output = invoke("compare", "-d", str(sweep.path), "--sort", "f1", "--asc", "--columns",
                    "f1", "-f", "markdown", "-n", "2")
    assert output.splitlines()[2].startswith(f"| {sweep.ok[(10, 5)][:8]} |")


# --- diff ------------------------------------------------------------------------------------


def test_diff_shows_parameters_values_source_and_environment(sweep):
    tracker = SQLiteTracker(sweep.path)
    environment = Environment(python="3.11.7", platform="linux", host="a", user="u",
                              command="c", git_commit="aaa111", packages={"numpy": "2.0.0"})
    a = add_run(sweep.path, "aaaaaaaa-one", {"lr": 0.1, "depth": 3}, {"loss": 0.5},
                source="lr = 0.1\ndepth = 3\nloss\n", environment=environment)
    b = add_run(sweep.path, "bbbbbbbb-two", {"lr": 0.2, "depth": 3}, {"loss": 0.25},
                source="lr = 0.1\ndepth = 3\nprint(lr)\nloss\n",
                environment=Environment(**{**environment.__dict__, "git_commit": "bbb222",
                                           "packages": {"numpy": "2.1.0"}}))
    diff = tracker.diff("aaaa", "bbbb")
    assert [(c.key, c.a, c.b) for c in diff.parameters] == [("lr", 0.1, 0.2)]
    assert [(c.key, c.a, c.b) for c in diff.values] == [("loss", 0.5, 0.25)]
    assert ("git_commit", "aaa111", "bbb222") in [(c.key, c.a, c.b) for c in diff.environment]
    assert ("packages.numpy", "2.0.0", "2.1.0") in [(c.key, c.a, c.b) for c in diff.environment]
    assert "+print(lr)" in diff.source and "--- aaaaaaaa/train.py" in diff.source
    output = invoke("diff", a.uuid, b.uuid[:4], "-d", str(sweep.path))
    assert "lr" in output and "0.1" in output and "0.2" in output
    assert "+print(lr)" in output and "bbb222" in output and "2.1.0" in output
    same = tracker.diff(sweep.ok[(10, 5)], sweep.ok[(10, 5)])
    assert same.identical and "same parameters" in str(same)


# --- names, tags, deletion -------------------------------------------------------------------


def test_tags_add_remove_and_show(sweep):
    tracker = SQLiteTracker(sweep.path)
    uuid = sweep.ok[(50, None)]
    assert tracker.tag(uuid[:5], "best", "baseline") == ["best", "baseline"]
    assert tracker.tag(uuid, "best") == ["best", "baseline"]  # no duplicates
    assert tracker.get(uuid).tags == ["best", "baseline"]
    assert [run.uuid for run in tracker.runs(tag="best")] == [uuid]
    assert tracker.untag(uuid, "best") == ["baseline"]
    assert tracker.runs(tag="best") == []
    assert tracker.untag(uuid) == []
    with pytest.raises(ParameterError, match="invalid tag"):
        tracker.tag(uuid, " spaced")
    with pytest.raises(UnknownRunError):
        tracker.tag("zzzz", "x")

    output = invoke("tag", uuid[:8], "best", "-d", str(sweep.path))
    assert output == f"{uuid}: best\n"
    listed = invoke("ls", "-d", str(sweep.path), "--tag", "best")
    assert uuid[:8] in listed and "#best" in listed and sweep.failed[:8] not in listed
    assert invoke("untag", uuid, "best", "-d", str(sweep.path)) == f"{uuid}: (no tags)\n"
    assert invoke("ls", "-d", str(sweep.path), "--tag", "best") == "no runs\n"


def test_ls_filters_by_script_and_where(sweep):
    add_run(sweep.path, "77777777-other", {"lr": 0.1}, {"loss": 0.5}, path="other/train.py")
    output = invoke("ls", "-d", str(sweep.path), "--script", "train.py")
    assert "77777777" in output and sweep.failed[:8] not in output
    output = invoke("ls", "-d", str(sweep.path), "--where", "status = 'failed'")
    assert sweep.failed[:8] in output and "77777777" not in output


@pytest.mark.kernel
def test_name_is_stored_for_a_run_and_shown(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text("# parameters\nn = 1\n\nscore = n / 3\nscore\n")
    database = tmp_path / "runs.db"
    done = subprocess.run(
        [sys.executable, "-m", "tracker", str(script), "-p", "n=2", "-d", str(database),
         "--name", "first try", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (run,) = SQLiteTracker(database).runs()
    assert run.name == "first try" and run.parameters == {"n": 2}
    assert "first try" in invoke("ls", "-d", str(database))
    assert "first try" in invoke("show", run.uuid[:8], "-d", str(database))
    assert SQLiteTracker(database).compare().keys[:3] == ["uuid", "name", "status"]


def blob_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    finally:
        conn.close()


def test_remove_deletes_runs_and_only_the_blobs_nobody_else_uses(sweep):
    tracker = SQLiteTracker(sweep.path)
    shared = Blob("image/png", png("shared"))
    add_run(sweep.path, "aaaaaaaa-keeps", {}, {"plot": shared.reference()},
            blobs={shared.sha256: shared})
    add_run(sweep.path, "bbbbbbbb-drops", {}, {"plot": shared.reference()},
            blobs={shared.sha256: shared})
    before = blob_count(sweep.path)
    # Each sweep run has two PNGs of its own; the SVG, the HTML and the source are shared.
    removed = tracker.remove([sweep.ok[(10, 5)], "bbbbbbbb"])
    assert sorted(removed.runs) == sorted([sweep.ok[(10, 5)], "bbbbbbbb-drops"])
    assert removed.blobs == 2 and blob_count(sweep.path) == before - 2
    assert tracker.get("aaaaaaaa")["plot"].data == shared.data  # still referenced: kept
    assert len(tracker) == 7
    removed = tracker.remove(where="status = 'failed'")
    assert removed.runs == [sweep.failed] and removed.blobs == 0
    with pytest.raises(ParameterError, match="nothing to remove"):
        tracker.remove()
    with pytest.raises(UnknownRunError):
        tracker.remove(["zzzz"])
    assert len(tracker) == 6


def test_remove_deletes_the_runs_rows_in_other_tables_and_their_files(sweep):
    kept, dropped = sweep.ok[(10, 5)], sweep.failed
    file = Blob("application/octet-stream", b"model weights")
    shared = Blob("application/octet-stream", b"shared file")
    conn = sqlite3.connect(sweep.path)
    conn.executemany("INSERT INTO metrics VALUES (?, 'loss', 0, 1.0, 0)", [(kept,), (dropped,)])
    conn.executemany("INSERT INTO blobs VALUES (?, ?, ?)",
                     [(b.sha256, b.mimetype, b.data) for b in (file, shared)])
    conn.executemany(
        "INSERT INTO artifacts VALUES (?, ?, ?, ?, 1)",
        [(dropped, "model.pkl", 13, file.sha256), (dropped, "a.txt", 11, shared.sha256),
         (kept, "a.txt", 11, shared.sha256)],
    )
    conn.commit()
    conn.close()
    before = blob_count(sweep.path)
    removed = SQLiteTracker(sweep.path).remove([dropped])
    assert removed.blobs == 1 and blob_count(sweep.path) == before - 1  # model.pkl only
    conn = sqlite3.connect(sweep.path)
    try:
        assert conn.execute("SELECT uuid FROM metrics").fetchall() == [(kept,)]
        assert conn.execute("SELECT uuid, path FROM artifacts").fetchall() == [(kept, "a.txt")]
        assert conn.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (file.sha256,)).fetchall() == []
    finally:
        conn.close()


def test_rm_cli_asks_unless_yes(sweep):
    uuid = sweep.ok[(25, 5)]
    output = invoke("rm", uuid[:8], "-d", str(sweep.path), input="n\n", code=1)
    assert "Delete 1 run?" in output and "nothing removed" in output
    assert len(SQLiteTracker(sweep.path)) == 7
    output = invoke("rm", uuid[:8], "-d", str(sweep.path), input="y\n")
    assert f"removed 1 run ({uuid[:8]}) and 2 unused blobs" in output
    output = invoke("rm", "--where", "status = 'failed'", "--yes", "-d", str(sweep.path))
    assert output == f"removed 1 run ({sweep.failed[:8]}) and 0 unused blobs\n"
    assert invoke("rm", "--where", "status = 'failed'", "-y", "-d", str(sweep.path)) == (
        "no runs match: nothing removed\n"
    )
    assert len(SQLiteTracker(sweep.path)) == 5


def test_rm_without_runs_or_with_an_unknown_uuid_is_a_usage_error(sweep):
    for args, message in ((["rm"], "nothing to remove"), (["rm", "zzzz", "-y"], "no run with")):
        done = subprocess.run(
            [sys.executable, "-m", "tracker", *args, "-d", str(sweep.path)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 2 and done.stderr.startswith("error:") and message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert len(SQLiteTracker(sweep.path)) == 7


# --- display ---------------------------------------------------------------------------------


def test_parameters_show_as_given_and_values_at_a_precision(sweep):
    add_run(sweep.path, "99999999-noise", {"noise": 0.12345, "lr": 1e-4, "depth": None},
            {"loss": 0.123456, "nan": float("nan")})
    output = invoke("ls", "-d", str(sweep.path), "-n", "1")
    assert "noise=0.12345" in output and "lr=0.0001" in output and "depth=None" in output
    assert "loss=0.123" in output
    assert "loss=0.12346" in invoke("ls", "-d", str(sweep.path), "-n", "1", "--precision", "5")
    shown = invoke("show", "99999999", "-d", str(sweep.path))
    assert "0.12345" in shown and "0.123456" not in shown
    comparison = SQLiteTracker(sweep.path).compare(["9999"], precision=2)
    row = dict(zip(comparison.keys, comparison.rows_text()[0], strict=True))
    assert row["noise"] == "0.12345" and row["loss"] == "0.12" and row["depth"] == MISSING


def test_none_and_nan_are_spelled_the_same_everywhere():
    assert cell_text(None) == cell_text(float("nan")) == parameter_text(None) == MISSING
    assert parameter_text(float("nan")) == MISSING
    assert cell_text(1e-7) == "1e-07" and cell_text(2.5e20) == "2.5e+20"


def test_uuids_show_as_their_shortest_unique_prefix_and_are_accepted_back(sweep):
    assert short_uuids(["abcdef0123", None, "abcdef0199"]) == ["abcdef012", MISSING, "abcdef019"]
    assert unique_prefixes(["abcdef0123", "abcdef0199", "12345678xx"]) == {
        "abcdef0123": "abcdef012",
        "abcdef0199": "abcdef019",
        "12345678xx": "12345678",
    }
    add_run(sweep.path, "cafe0000111122223333", {"lr": 1}, {})
    add_run(sweep.path, "cafe0000111199998888", {"lr": 2}, {})
    tracker = SQLiteTracker(sweep.path)
    prefixes = tracker.uuid_prefixes()
    assert prefixes["cafe0000111122223333"] == "cafe000011112"
    assert prefixes[sweep.failed] == sweep.failed[:8]
    output = invoke("ls", "-d", str(sweep.path), "-n", "2")
    assert "cafe000011119" in output and "cafe000011112" in output
    assert tracker.get(prefixes["cafe0000111122223333"]).parameters == {"lr": 1}
    assert "cafe000011119" in repr(tracker.compare(["cafe000011119"]))


@pytest.mark.parametrize(
    ("typed", "suggestion"), [("lss", "ls"), ("shwo", "show"), ("compar", "compare")]
)
def test_a_mistyped_command_suggests_the_close_one(typed, suggestion, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracker", typed, "8dec"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert f"No such command '{typed}'" in done.stderr
    assert f"Did you mean '{suggestion}'" in done.stderr


def test_a_word_that_names_a_file_still_runs_it(tmp_path):
    (tmp_path / "train").write_text("x = 1\n")  # exists, no suffix: still a file to run
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "train"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and "unsupported file type" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "missing.py"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and "No such command" not in done.stderr


def readme_sweep(database: Path) -> None:
    """Runs shaped like the README's sweep of examples/fit.py: three parameters fixed, four
    values shown, the sort key last of them."""
    for i, (n, depth) in enumerate((n, d) for n in (10, 50) for d in (5, None)):
        score = 0.8 + i / 100
        add_run(
            database, f"{i}0c0ffee-readme",
            {"n_estimators": n, "max_depth": depth, "criterion": "gini", "random_state": 0,
             "n_samples": 10_000},
            {"accuracy": score, "precision": score, "recall": score - 0.1, "f1": score - 0.05},
        )


def test_compare_at_80_columns_keeps_the_sort_key_and_names_the_constant_columns(tmp_path):
    readme_sweep(tmp_path / "experiments.db")
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "compare", "--sort", "f1", "-d",
         str(tmp_path / "experiments.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = lines[1].split()
    assert header[:3] == ["uuid", "status", "f1"], done.stdout
    assert {"n_estimators", "max_depth", "recall"} <= set(header)
    assert "criterion" not in header and "n_samples" not in header
    assert "same in every run: criterion=gini, random_state=0, n_samples=10000" in done.stdout
    f1 = [line.split()[2] for line in lines[3:7]]
    assert f1 == sorted(f1, reverse=True) and f1[0] == "0.780"
    by_duration = SQLiteTracker(tmp_path / "experiments.db").compare(sort="duration")
    assert by_duration.table_columns()[0][2].key == "duration"
