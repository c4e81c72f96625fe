"""The command line running one file: ``python -m tracker FILE -p ...``, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import cli, write_script

from ploomber_like import ParameterError
from ploomber_like.arguments import parse_assignments

SCRIPT = """
# parameters
model = "sklearn.linear_model.LogisticRegression"
layers = [8]
name = "x"
rate = 0.1

score = rate * len(layers)
score
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1,b=2", {"a": 1, "b": 2}),
        ("model=sklearn.ensemble.SVC", {"model": "sklearn.ensemble.SVC"}),
        ("layers=[64,32], depth=None", {"layers": [64, 32], "depth": None}),
        ('name="a,b",c=(1, 2)', {"name": "a,b", "c": (1, 2)}),
        ("  a = 1 ,  b= 'x y' ", {"a": 1, "b": "x y"}),
        ("lr=1e-3,flag=True,neg=-2", {"lr": 0.001, "flag": True, "neg": -2}),
        ("path=data/train.csv", {"path": "data/train.csv"}),
        ("d={'k': [1, 2]}", {"d": {"k": [1, 2]}}),
    ],
)
def test_parse_assignments(text, expected):
    assert parse_assignments(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "expected name=value"),
        ("a=", "has no value"),
        ("1a=2", "not a Python identifier"),
        ("a=[1,2", "unbalanced"),
        ("a=two words", "not a Python literal"),
        ("a=1,a=2", "'a' is given twice"),
    ],
)
def test_parse_assignments_errors(text, message):
    with pytest.raises(ParameterError, match=message):
        parse_assignments(text)


@pytest.mark.kernel
def test_run_prints_uuid_status_and_values(tmp_path):
    script = write_script(tmp_path, SCRIPT)
    database = tmp_path / "cli.db"
    result = cli(
        str(script),
        "-p", "model=sklearn.ensemble.RandomForestClassifier, layers=[64,32]",
        "-p", ' name="a,b" , extra=1 ',
        "--database", str(database), "--timeout", "60",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "extra" in result.stderr and "warning" in result.stderr  # -q not given
    conn = sqlite3.connect(database)
    uuid, parameters, status = conn.execute(
        "SELECT uuid, parameters, status FROM experiments"
    ).fetchone()
    assert status == "ok"
    assert json.loads(parameters) == {
        "model": "sklearn.ensemble.RandomForestClassifier",
        "layers": [64, 32],
        "name": "a,b",
        "rate": 0.1,
        "extra": 1,
        "score": 0.2,
    }
    first_line = result.stdout.splitlines()[0]
    assert uuid in first_line and "ok" in first_line
    score_line = next(line.split() for line in result.stdout.splitlines() if "score" in line)
    assert score_line[0] == "score" and float(score_line[1]) == pytest.approx(0.2)


@pytest.mark.kernel
def test_failed_run_prints_the_error_and_exits_1(tmp_path):
    script = write_script(tmp_path, SCRIPT + "\nraise RuntimeError('bad model')\n")
    result = cli(
        str(script), "-p", "extra=1", "-d", str(tmp_path / "cli.db"), "-q",
        module="ploomber_like.tracking",
    )
    assert result.returncode == 1, result.stderr
    assert "failed" in result.stdout
    # Groups are counted from 1, and the failing line of the file is named.
    assert "RuntimeError in group 3 (" in result.stdout and "bad model" in result.stdout
    assert "warning" not in result.stderr  # -q


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "file not found"),
        (["script.py", "-p", "a=two words"], "not a Python literal"),
        (["script.py", "-p", "class=1"], "not a Python identifier"),
        (["script.txt"], "unsupported file type"),
        (["script.py", "-p", "rate=1,rate=2"], "'rate' is given twice"),
        (["script.py", "-p", "rate=1", "-p", "name='a',rate=2"], "'rate' is given twice"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, args, message):
    write_script(tmp_path, SCRIPT)
    write_script(tmp_path, "x = 1\n", "script.txt")
    result = cli(*args, "-d", "cli.db", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cli.db").exists()
