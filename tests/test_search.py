"""Searches: trials recorded with their search, number and objective; failed trials; resume."""

from __future__ import annotations

import json

import pytest
from conftest import cli, hidden_module, rows, write_script

from ploomber_like import ObjectiveError, ParameterError, TrackerError, track_search

PEAK = """\
# parameters
x = 0
y = 1

score = -(x - 3) ** 2 + y
score
"""
#: Trials in the order the search numbered them.
BY_TRIAL = "SELECT * FROM experiments ORDER BY trial"


@pytest.mark.kernel
def test_a_random_search_records_trials_and_continues_where_it_stopped(tmp_path):
    path = write_script(tmp_path, PEAK, "job.py")
    db = tmp_path / "s.db"
    space = {"x": list(range(7))}
    first = track_search(path, space, objective="score", trials=3, database=db,
                         sampler="random", seed=3, workers=2, quiet=True)
    assert (first.ok, first.trials) == (3, 3)
    again = track_search(path, space, objective="score", trials=5, database=db,
                         sampler="random", seed=3, workers=2, quiet=True)
    assert (again.ok, again.trials, again.search) == (2, 5, first.search)
    found = rows(db, BY_TRIAL)
    assert [r["trial"] for r in found] == [0, 1, 2, 3, 4]
    assert {r["search"] for r in found} == {first.search}
    for row in found:
        x = json.loads(row["overrides"])["x"]
        assert row["objective"] == -((x - 3) ** 2) + 1
        assert row["trial_error"] is None
    best = max(found, key=lambda r: r["objective"])
    assert again.best is not None and again.best.uuid == best["uuid"]
    assert again.best.values["score"] == best["objective"]
    # Continued, not restarted: the resumed draws are those one uninterrupted search makes.
    whole = track_search(path, space, objective="score", trials=5, database=tmp_path / "w.db",
                         sampler="random", seed=3, workers=1, quiet=True)
    assert whole.ok == 5
    assert sorted(json.loads(r["overrides"])["x"] for r in rows(tmp_path / "w.db")) == sorted(
        json.loads(r["overrides"])["x"] for r in found
    )
    # Reaching `trials` runs nothing more.
    done = track_search(path, space, objective="score", trials=5, database=db,
                        sampler="random", seed=3, quiet=True)
    assert (done.ok, done.failed, done.trials) == (0, 0, 5)


@pytest.mark.kernel
def test_failed_runs_and_missing_or_non_number_objectives_are_failed_trials(tmp_path):
    path = write_script(tmp_path, """\
        import sys

        # parameters
        x = 0

        if x == 1:
            raise ValueError("no")
        if x == 3:
            sys.exit(0)  # ends ok, before showing the objective

        score = "high" if x == 2 else x * 10
        score
        """, "job.py")
    db = tmp_path / "f.db"
    # A first trial shows the objective: later runs ending ok without it are failed trials.
    track_search(path, {"x": [0]}, objective="score", trials=1, database=db, sampler="random",
                 search_name="mixed", quiet=True)
    summary = track_search(path, {"x": [0, 1, 2, 3]}, objective="score", trials=12,
                           database=db, sampler="random", seed=0, workers=2, quiet=True,
                           search_name="mixed")
    assert summary.trials == 12
    by_x = {}
    for row in rows(db, BY_TRIAL):
        by_x.setdefault(json.loads(row["overrides"])["x"], row)
    assert set(by_x) == {0, 1, 2, 3}
    assert (by_x[0]["status"], by_x[0]["objective"], by_x[0]["trial_error"]) == ("ok", 0, None)
    assert by_x[1]["status"] == "failed" and by_x[1]["objective"] is None
    assert by_x[1]["trial_error"] == "the run ended failed"
    assert by_x[2]["status"] == "ok" and by_x[2]["objective"] is None
    assert by_x[2]["trial_error"] == "'score' is 'high', not a number"
    assert by_x[3]["status"] == "ok" and by_x[3]["trial_error"] == "the run did not show 'score'"
    assert summary.best is not None and summary.best.values["score"] == 0


@pytest.mark.kernel
def test_a_misspelled_objective_stops_the_search_at_the_first_complete_run(tmp_path):
    path = write_script(tmp_path, """\
        # parameters
        n = 1

        square = n * n
        square
        cube = n ** 3
        cube
        """, "job.py")
    db = tmp_path / "m.db"
    with pytest.raises(ObjectiveError) as caught:
        track_search(path, {"n": [1, 2, 3, 4, 5]}, objective="sqare", trials=20, database=db,
                     sampler="random", workers=1, quiet=True)
    message = str(caught.value)
    assert "'sqare' is not a value the file shows" in message
    assert "showed square, cube" in message and "did you mean 'square'?" in message
    assert len(rows(db, BY_TRIAL)) == 1  # no second trial started

    done = cli("job.py", "-s", "n=int:1:5", "--maximize", "sqq", "-d", "c.db",
                   cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "error: the objective 'sqq' is not a value the file shows" in done.stderr
    assert "Traceback" not in done.stderr and "no complete trial" not in done.stderr
    assert len(rows(tmp_path / "c.db", BY_TRIAL)) <= 2  # the trials in flight when the first ended


@pytest.mark.kernel
def test_tpe_with_a_seed_and_one_worker_proposes_the_same_points(tmp_path):
    pytest.importorskip("optuna")
    from optuna.distributions import FloatDistribution, IntDistribution

    path = write_script(tmp_path, PEAK, "job.py")
    space = {"x": IntDistribution(0, 6), "y": FloatDistribution(0.1, 10, log=True)}
    sequences = []
    for name in ("a.db", "b.db"):
        summary = track_search(path, space, objective="score", direction="minimize", trials=4,
                               database=tmp_path / name, seed=7, workers=1, quiet=True)
        assert summary.ok == 4
        sequences.append([json.loads(r["overrides"]) for r in rows(tmp_path / name, BY_TRIAL)])
    assert sequences[0] == sequences[1]
    assert all(0.1 <= p["y"] <= 10 and isinstance(p["x"], int) for p in sequences[0])


@pytest.mark.parametrize(
    "call, message",
    [
        ({"space": {}}, "the search space is empty"),
        ({"space": {"x": []}}, "the list of choices is empty"),
        ({"space": {"x": 5}}, "int is not a search dimension"),
        ({"objective": ""}, "a search needs an objective"),
        ({"direction": "up"}, "direction must be 'maximize' or 'minimize'"),
        ({"trials": 0}, "trials must be at least 1"),
        ({"sampler": "grid"}, "unknown sampler 'grid'"),
        ({"fixed": {"x": 1}}, "both searched and fixed: x"),
    ],
)
def test_bad_searches_fail_before_anything_runs(tmp_path, call, message):
    options = {"space": {"x": [1, 2]}, "objective": "score", "sampler": "random", **call}
    db = tmp_path / "bad.db"
    path = write_script(tmp_path, PEAK, "job.py")
    with pytest.raises(ParameterError, match=message):
        track_search(path, options.pop("space"), database=db, quiet=True, **options)
    assert not db.exists()


@pytest.mark.kernel
def test_cli_search_runs_continues_and_reports_the_best(tmp_path):
    write_script(tmp_path, PEAK, "job.py")
    args = ["job.py", "-s", "x=int:0:6", "-s", "y=1,2", "-p", "unused=0", "--trials", "3",
            "--maximize", "score", "--sampler", "random", "--seed", "1", "-w", "2", "-d", "c.db"]
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 trials; best score = " in done.stderr
    found = rows(tmp_path / "c.db", BY_TRIAL)
    assert len(found) == 3 and all(json.loads(r["overrides"])["unused"] == 0 for r in found)
    again = cli(*[a if a != "3" else "4" for a in args], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [r["trial"] for r in rows(tmp_path / "c.db", BY_TRIAL)] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-s", "x=normal:0:1", "--maximize", "score"], "unknown distribution kind 'normal'"),
        (["-s", "x=int:5:1", "--maximize", "score"], "low 5 is above high 1"),
        (["-s", "x=float:0:1:log", "--minimize", "score"], "a log range must start above 0"),
        (["-s", "x=int:0:6"], "a search needs one objective"),
        (["-s", "x=int:0:6", "--maximize", "a", "--minimize", "b"], "one objective"),
        (["--maximize", "score"], "need the parameters to search"),
        (["-s", "x=int:0:6", "--maximize", "score", "-g", "y=1,2"], "do not apply to a search"),
    ],
)
def test_cli_bad_searches_are_one_line_errors(tmp_path, args, message):
    write_script(tmp_path, PEAK, "job.py")
    done = cli("job.py", *args, "-d", "x.db", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.kernel
def test_without_optuna_tpe_says_how_to_get_it_and_random_still_works(tmp_path):
    write_script(tmp_path, PEAK, "job.py")
    base = ["job.py", "-s", "x=int:0:6", "--maximize", "score", "--trials", "2", "-d", "o.db"]
    without_optuna = hidden_module(tmp_path, "optuna")
    done = cli(*base, cwd=tmp_path, env=without_optuna)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: this search needs Optuna: pip install 'ploomber-like[search]' "
        "(or use sampler='random', which does not)"
    )
    assert not (tmp_path / "o.db").exists()
    done = cli(*base, "--sampler", "random", "-q", cwd=tmp_path, env=without_optuna)
    assert done.returncode == 0, done.stderr
    assert len(rows(tmp_path / "o.db", BY_TRIAL)) == 2


def test_an_unknown_executor_is_a_one_line_error(tmp_path):
    path = write_script(tmp_path, PEAK, "job.py")
    with pytest.raises(TrackerError, match="executor must be"):
        track_search(path, {"x": [1]}, objective="score", sampler="random",
                     database=tmp_path / "e.db", executor=object(), quiet=True)
    assert not (tmp_path / "e.db").exists()


@pytest.mark.kernel
def test_name_labels_the_trials_and_search_name_names_the_search(tmp_path):
    """One word, one meaning: ``name`` (``--name``) is the runs' label, as for grids and single
    runs; ``search_name`` (``--search-name``) the search's identity. Before, the CLI dropped
    ``--name`` for a search and ``name=`` named the search."""
    path = write_script(tmp_path, PEAK, "job.py")
    db = tmp_path / "n.db"
    summary = track_search(path, {"x": [1, 2]}, objective="score", trials=2, database=db,
                           sampler="random", seed=0, workers=1, quiet=True, name="first try",
                           search_name="peak")
    assert summary.search == "peak"
    assert [(r["name"], r["search"]) for r in rows(db, BY_TRIAL)] == [("first try", "peak")] * 2

    done = cli("job.py", "-s", "x=int:0:6", "--maximize", "score", "--trials", "2",
               "--sampler", "random", "-w", "1", "-q", "--name", "from the shell",
               "-d", "c.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = rows(tmp_path / "c.db", BY_TRIAL)
    assert [r["name"] for r in found] == ["from the shell"] * 2
    assert found[0]["search"].startswith("job-score-")
