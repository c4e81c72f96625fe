"""The reading commands of ``python -m tracker``: through click's runner, and as a process for
exit codes and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

# `cli` here is the click group this file invokes in-process.
from conftest import cli as tracker_process
from tracking_databases import SweepDatabase, build_anchor_database, build_sweep_database

from ploomber_like.cli import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepDatabase:
    return build_sweep_database(tmp_path_factory.mktemp("sweep") / "experiments.db")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_ls_fits_80_columns_and_shows_runs(sweep):
    output = invoke("ls", "-d", str(sweep.path))
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["uuid", "created", "status", "duration", "parameters", "values"]
    assert sum("ok" in line.split() for line in lines) == 6
    assert "failed" in output and "ValueError in" in output
    assert "f1=1.050" in output and "max_depth=None" in output
    assert "confusion_matrix" not in output  # plots are not scalar values


def assert_no_token_split(narrow: str, wide: str) -> None:
    """Every word of ``narrow`` is a whole word of ``wide`` or a prefix of one cut with "…":
    never the piece of a number or a name that a fold leaves on the next line."""
    whole = set(wide.split())
    for word in narrow.split():
        if set(word) == {"─"}:
            continue  # the rule under the header
        if word.endswith("…"):
            assert any(w.startswith(word[:-1]) for w in whole), word
        else:
            assert word in whole, f"{word!r} is a piece of a token:\n{narrow}"


def piped(*args: str, columns: int | None = 80, stdin: str = "") -> str:
    """The command's stdout through a pipe, with ``COLUMNS`` set (or unset)."""
    columns_variable = None if columns is None else str(columns)
    return tracker_process(*args, cwd=ROOT, env={"COLUMNS": columns_variable}, input=stdin).stdout


@pytest.mark.parametrize("columns", [80, None], ids=["COLUMNS=80", "pipe"])
def test_ls_and_the_rm_list_never_split_a_token(tmp_path, columns):
    path = tmp_path / "experiments.db"
    build_sweep_database(path)
    wide = piped("ls", "-d", str(path), columns=400)
    assert "n_estimators=100" in wide and "model.criterion=gini" in wide
    narrow = piped("ls", "-d", str(path), columns=columns)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "n_estimators=100" in narrow and "max_depth=None" in narrow
    assert_no_token_split(narrow, wide)
    listed = piped("rm", "ff000000", "00aa0000", "-d", str(path), columns=columns)
    assert "ff000000" in listed and "n_estimators=100" in listed
    table = listed.replace("Delete 2 runs? [y/N]:", "").replace("nothing removed", "")
    assert_no_token_split(table, wide)


def test_ls_sort_limit_status(sweep):
    best = max(sweep.f1, key=sweep.f1.__getitem__)
    worst = min(sweep.f1, key=sweep.f1.__getitem__)
    output = invoke("ls", "-d", str(sweep.path), "--sort", "f1", "--limit", "1")
    assert best[:8] in output and worst[:8] not in output
    output = invoke("ls", "-d", str(sweep.path), "--sort", "f1", "--asc", "-n", "1")
    assert worst[:8] in output and best[:8] not in output
    output = invoke("ls", "-d", str(sweep.path), "--status", "failed")
    assert sweep.failed[:8] in output and best[:8] not in output
    assert invoke("ls", "-d", str(sweep.path), "--status", "timeout") == "no runs\n"


def test_show_prints_values_error_and_exports_plots(sweep, tmp_path):
    output = invoke("show", sweep.failed[:4], "-d", str(sweep.path))
    assert sweep.failed in output
    assert "error: ValueError in group 3: bad input" in output  # counted from 1
    assert "model.fit(X, y)" in output and "Traceback (most recent call last):" in output
    assert "accuracy" in output and "0.250" in output

    uuid = sweep.ok[(25, None)]
    output = invoke("show", uuid, "-d", str(sweep.path), "--export", str(tmp_path / "plots"))
    assert "max_depth" in output and "None" in output
    assert "confusion_matrix.png" in output
    assert (tmp_path / "plots" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "plots" / "tree.svg").exists()
    assert (tmp_path / "plots" / "importances.html").exists()


def test_query_formats(sweep):
    sql = ("SELECT uuid, json_extract(parameters, '$.f1') AS f1 FROM experiments "
           "WHERE status = 'ok' ORDER BY f1 DESC LIMIT 2")
    table = invoke("query", sql, "-d", str(sweep.path))
    assert "1.050" in table and "uuid" in table

    rows = list(csv.reader(io.StringIO(invoke("query", sql, "-d", str(sweep.path), "-f", "csv"))))
    assert rows[0] == ["uuid", "f1"]
    assert [float(r[1]) for r in rows[1:]] == sorted(sweep.f1.values(), reverse=True)[:2]

    data = json.loads(invoke("query", sql, "-d", str(sweep.path), "--format", "json"))
    assert data[0] == {"uuid": max(sweep.f1, key=sweep.f1.__getitem__), "f1": 1.05}


def test_query_table_shows_plots_as_placeholders(sweep):
    output = invoke("query", "SELECT json_extract(parameters, '$.confusion_matrix') AS cm "
                    "FROM experiments WHERE status = 'ok' LIMIT 2", "-d", str(sweep.path))
    assert output.count("[Plot]") == 2 and "$blob" not in output


def test_query_as_a_standalone_html_page_renders_the_plots(sweep):
    page = invoke("query", "SELECT uuid, json_extract(parameters, '$.f1') AS f1, "
                  "json_extract(parameters, '$.confusion_matrix') AS cm "
                  "FROM experiments WHERE status = 'ok' ORDER BY f1 DESC LIMIT 2",
                  "-d", str(sweep.path), "-f", "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('<img src="data:image/png;base64,iVBOR') == 2
    assert "1.050" in page and "[Plot]" not in page


def test_keys_and_sample_query(sweep):
    keys = invoke("keys", "-d", str(sweep.path)).split()
    assert keys[:3] == ["n_estimators", "max_depth", "model.criterion"]
    query = invoke("sample-query", "-d", str(sweep.path))
    assert query.startswith("SELECT\n    uuid,\n")
    assert "json_extract(parameters, '$.f1') AS f1" in query
    # the printed query runs as is
    assert "model_criterion" in invoke("query", query, "-d", str(sweep.path), "-f", "csv")


def test_comment_then_show(tmp_path):
    path = tmp_path / "c.db"
    build_sweep_database(path)
    assert invoke("comment", "ff00", "out of memory", "-d", str(path)).startswith("ff000000")
    assert "out of memory" in invoke("show", "ff000000-failed", "-d", str(path))


def test_anchor_database_through_the_cli(tmp_path):
    path = tmp_path / "anchor.db"
    build_anchor_database(path)
    output = invoke("ls", "-d", str(path))
    assert "a1b2c3d4" in output and "accuracy=0.800" in output
    assert "accuracy" in invoke("keys", "-d", str(path))


def test_default_database_is_experiments_db_in_the_working_directory(sweep, tmp_path):
    (tmp_path / "experiments.db").write_bytes(sweep.path.read_bytes())
    result = tracker_process("keys", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "n_estimators" in result.stdout.split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "-d", "missing.db"], "error: database not found: missing.db"),
        (["show", "nope", "-d", "{db}"], "error: no run with uuid 'nope'"),
        (["query", "DELETE FROM experiments", "-d", "{db}"],
         "error: DELETE is refused: queries are read-only (in query: DELETE FROM experiments)"),
        (["query", "SELEC 1", "-d", "{db}"], 'error: near "SELEC": syntax error'),
        (["ls", "--sort", "f2", "-d", "{db}"], "error: unknown sort key 'f2'"),
        (["comment", "nope", "x", "-d", "{db}"], "error: no run with uuid 'nope'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(sweep, tmp_path, args, message):
    args = [a.replace("{db}", str(sweep.path)) for a in args]
    result = tracker_process(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.kernel
def test_the_ls_hint_after_a_sweep_is_one_piece_at_80_columns(tmp_path):
    folder = tmp_path / "a-folder-with-a-rather-long-name-for-the-experiments-of-this-week"
    folder.mkdir()
    (folder / "fit.py").write_text("# parameters\nn = 1\n\nscore = n * 2\nscore\n")
    database = folder / "experiments.db"
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "tracker", str(folder / "fit.py"), "-g", "n=1,2",
         "-d", str(database)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    hint = f"results in {database}: python -m tracker ls -d {database}"
    assert len(hint) > 80 and hint in done.stderr.splitlines(), done.stderr
