"""Replicates: each point run N times with derived seeds, grouped and aggregated; resume counts
them; a search with replicates optimises their mean."""

from __future__ import annotations

import json
import sqlite3
import statistics
from pathlib import Path

import pytest
from conftest import cli, rows, write_script

from ploomber_like import ParameterError, SQLiteTracker, track_grid, track_search
from ploomber_like.replicates import Replicates, group_key, replicate_seed

SEEDED = """\
# parameters
alpha = 1
seed = 7

import random

random.seed(seed)
score = alpha + random.random()
score
"""


def test_seeds_of_replicates_are_derived_from_the_points():
    replicates = Replicates(3)
    assert replicates.seed_name(["alpha", "random_state"]) == "random_state"
    assert replicates.seed_name(["alpha"]) is None
    assert Replicates(2, seed_param="rng").seed_name(["seed"]) == "rng"
    copies = replicates.expand({"alpha": 1}, "seed", {"seed": 10})
    assert copies == [{"alpha": 1}, {"alpha": 1, "seed": 11}, {"alpha": 1, "seed": 12}]
    assert replicate_seed(None, 2) == 2
    with pytest.raises(ParameterError, match="int"):
        replicate_seed(0.5, 1)
    with pytest.raises(ParameterError, match="repeat"):
        Replicates(0)
    # The seed is not part of a group; the other parameters and the file are.
    assert group_key("fit.py", {"a": 1, "seed": 1}, "seed") == group_key("fit.py", {"a": 1}, None)
    assert group_key("fit.py", {"a": 1}, None) != group_key("fit.py", {"a": 2}, None)
    assert group_key("fit.py", {"a": 1}, None) != group_key("other.py", {"a": 1}, None)


@pytest.mark.kernel
def test_repeat_runs_each_point_with_distinct_seeds_and_compare_groups_them(tmp_path: Path):
    write_script(tmp_path, SEEDED, "fit.py")
    done = cli("fit.py", "-g", "alpha=1,2", "--repeat", "3", "-w", "2", "-d", "r.db",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = rows(tmp_path / "r.db", "SELECT * FROM experiments ORDER BY created")
    assert len(found) == 6
    by_alpha: dict[int, list[sqlite3.Row]] = {}
    for row in found:
        by_alpha.setdefault(json.loads(row["parameters"])["alpha"], []).append(row)
    for runs in by_alpha.values():
        assert sorted(r["replicate"] for r in runs) == [0, 1, 2]
        assert sorted(json.loads(r["parameters"])["seed"] for r in runs) == [7, 8, 9]
        assert len({r["replicate_group"] for r in runs}) == 1
    assert by_alpha[1][0]["replicate_group"] != by_alpha[2][0]["replicate_group"]

    frame = SQLiteTracker(tmp_path / "r.db").groups()
    assert sorted(frame["n"]) == [3, 3] and "seed" not in frame.columns
    scores = [json.loads(r["parameters"])["score"] for r in by_alpha[2]]
    row = frame[frame["alpha"] == 2].iloc[0]
    assert row["score_mean"] == pytest.approx(statistics.fmean(scores))
    assert row["score_std"] == pytest.approx(statistics.stdev(scores))

    compared = cli("compare", "--group", "-d", "r.db", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.count(" ± ") == 2 and "score" in compared.stdout
    listed = cli("ls", "--group", "-d", "r.db", cwd=tmp_path)
    assert listed.stdout.count(" ± ") == 2
    csv = cli("compare", "--group", "-d", "r.db", "-f", "csv", cwd=tmp_path)
    assert csv.stdout.splitlines()[0].startswith("group,alpha,n,score_mean,score_std")

    # Resume counts replicates: all 6 are recorded; a fourth replicate runs alone.
    again = cli("fit.py", "-g", "alpha=1,2", "--repeat", "3", "-d", "r.db", cwd=tmp_path)
    assert "skipping 6 of 6 runs" in again.stderr
    more = cli("fit.py", "-g", "alpha=1,2", "--repeat", "4", "-d", "r.db", cwd=tmp_path)
    assert "skipping 6 of 8 runs" in more.stderr
    assert sorted(r["replicate"] for r in rows(tmp_path / "r.db")).count(3) == 2


@pytest.mark.kernel
def test_without_a_seed_parameter_replicates_differ_by_the_scripts_own_randomness(
    tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write_script(tmp_path, """\
        # parameters
        alpha = 1

        import random
        score = alpha + random.random()
        score
        """, "fit.py")
    summary = track_grid("fit.py", {"alpha": [1]}, database="r.db", repeat=2, workers=1,
                         quiet=True)
    assert summary.ok == 2
    found = rows(tmp_path / "r.db", "SELECT * FROM experiments ORDER BY created")
    assert [json.loads(r["overrides"]) for r in found] == [{"alpha": 1}, {"alpha": 1}]
    assert found[0]["fingerprint"] != found[1]["fingerprint"]
    scores = {json.loads(r["parameters"])["score"] for r in found}
    assert len(scores) == 2


@pytest.mark.kernel
def test_a_search_with_repeat_optimises_the_mean_of_its_replicates(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_script(tmp_path, SEEDED, "fit.py")
    summary = track_search(
        "fit.py", {"alpha": [1, 2]}, objective="score", trials=2, repeat=2, sampler="random",
        seed=0, workers=2, database="r.db", quiet=True,
    )
    found = rows(tmp_path / "r.db", "SELECT * FROM experiments ORDER BY created")
    assert len(found) == 4 and summary.trials == 2
    trials: dict[int, list[float]] = {}
    for row in found:
        trials.setdefault(row["trial"], []).append(row["objective"])
    assert sorted(len(v) for v in trials.values()) == [2, 2]
    best = max(statistics.fmean(v) for v in trials.values())
    assert summary.best is not None and summary.best.trial.objective == pytest.approx(best)
