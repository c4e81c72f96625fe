"""Pruning: the rules on their own, a grid whose diverging runs are stopped from the series they
print, and a search whose pruned trials Optuna is told about."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from conftest import cli, rows, write_script

from ploomber_like import ParameterError, track_grid, track_search
from ploomber_like.pruning import (
    MedianRule,
    PatienceRule,
    PruneOptions,
    RunPruner,
    prune_options,
    time_saved,
)
from ploomber_like.record import MetricPoint

# --- the rules, without kernels ------------------------------------------------------------


def test_median_rule_stops_a_run_worse_than_the_median_of_two_others_at_its_step():
    rule = MedianRule(min_steps=2)
    for step in range(4):
        assert rule.report("a", step, 1.0 - step * 0.1) is None
        assert rule.report("b", step, 1.0 - step * 0.2) is None
    # Before min_steps, nothing is stopped however bad.
    assert rule.report("c", 0, 50.0) is None
    assert rule.report("c", 1, 60.0) is None
    reason = rule.report("c", 2, 70.0)
    assert reason is not None and "median" in reason and "step 2" in reason


def test_median_rule_needs_two_other_runs_at_the_step():
    rule = MedianRule(min_steps=0)
    assert rule.report("a", 0, 1.0) is None
    assert rule.report("b", 0, 5.0) is None  # one other run only
    assert rule.report("c", 0, 9.0) is not None
    # A run ahead of the others is judged only against runs that reached its step.
    assert rule.report("a", 5, 100.0) is None


def test_median_rule_maximizing_and_not_finite_values():
    rule = MedianRule(min_steps=0, maximize=True)
    rule.report("a", 0, 0.8)
    rule.report("b", 0, 0.9)
    assert rule.report("c", 0, 0.95) is None  # better than the median: kept
    assert rule.report("d", 0, 0.5) is not None
    losses = MedianRule(min_steps=0)
    losses.report("a", 0, 0.1)
    losses.report("b", 0, 0.2)
    assert losses.report("c", 0, math.nan) is not None  # a loss gone to nan is the worst


def test_patience_rule_stops_a_run_without_improvement_for_k_steps():
    rule = PatienceRule(patience=2, min_steps=0)
    series = [3, 2, 2.5, 1.9, 2.0]
    assert [rule.report("a", step, v) for step, v in enumerate(series)] == [None] * 5
    assert "no improvement in 2 steps (best at step 3)" in rule.report("a", 5, 2.1)
    # Each run has its own best.
    assert rule.report("b", 0, 9.0) is None


def test_run_pruner_reads_the_watched_key_and_decides_once():
    options = prune_options("patience:1", "acc:max", min_steps=0)
    assert options == PruneOptions("patience", "acc", True, 0, 1)
    pruner = RunPruner(options, PatienceRule(1, 0, maximize=True))
    points = [MetricPoint("loss", 0, 9.0, 0), MetricPoint("acc", 0, 0.5, 0)]
    assert pruner.observe("r", points) is None
    decision = pruner.observe("r", [MetricPoint("acc", 1, 0.4, 0)])
    assert decision is not None and decision.step == 1 and decision.reason.startswith("acc ")
    assert pruner.observe("r", [MetricPoint("acc", 2, 0.3, 0)]) is None


@pytest.mark.parametrize(
    ("prune", "on", "min_steps", "message"),
    [
        ("mean", "loss", 3, "unknown prune rule"),
        ("patience:0", "loss", 3, "patience:K"),
        ("patience:x", "loss", 3, "patience:K"),
        ("median", "loss:up", 3, "KEY:min or KEY:max"),
        ("median", None, 3, "output scalar to watch"),
        ("median", "loss", -1, "min_steps"),
        (None, "loss", 3, "needs a rule"),
    ],
)
def test_bad_prune_options_are_one_line_errors(prune, on, min_steps, message):
    with pytest.raises(ParameterError, match=message):
        prune_options(prune, on, min_steps)


def test_cli_prune_errors_are_one_line_usage_errors(tmp_path: Path):
    write_script(tmp_path, TRAINING, "train.py")
    done = cli("train.py", "-g", "lr=0.1,5", "--prune", "mean", "--on", "val_loss",
                   "-d", "runs.db", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: unknown prune rule 'mean'")
    assert "Traceback" not in done.stderr and not (tmp_path / "runs.db").exists()
    single = cli("train.py", "--prune", "median", cwd=tmp_path)
    assert single.returncode == 2 and "apply to grids" in single.stderr


def test_time_saved_is_estimated_from_the_completed_runs():
    assert time_saved([1.0, 2.0], [4.0, 6.0]) == pytest.approx(7.0)
    assert time_saved([1.0], []) is None


# --- sweeps with real kernels ----------------------------------------------------------------

#: Converging for lr < 1, diverging above; one line in ``log`` per epoch executed.
TRAINING = """\
# parameters
lr = 0.1
epochs = 10
log = "epochs.log"

import time
warmup = lr * 2
warmup

val_loss = 1.0
for epoch in range(epochs):
    val_loss = val_loss * lr
    with open(log, "a") as f:
        f.write(f"{lr}\\n")
    print(f"epoch: {epoch} val_loss: {val_loss}", flush=True)
    time.sleep(0.2)  # a loaded machine stops a pruned run within an epoch or two

val_loss
"""


@pytest.mark.kernel
def test_a_grid_prunes_its_diverging_runs_from_the_printed_series(tmp_path: Path):
    write_script(tmp_path, TRAINING, "train.py")
    log = tmp_path / "epochs.log"
    # The converging points first, best last: each later one is better than the median, and
    # every diverging one starts once two runs have passed step 3.
    done = cli(
        "train.py", "-g", "lr=0.3,0.2,0.1,5,6,7", "-p", f"log={str(log)!r}", "-w", "2",
        "--prune", "median", "--on", "val_loss", "-d", "runs.db", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "3 ok, 3 pruned" in done.stderr and "pruning saved ~" in done.stderr

    found = rows(tmp_path / "runs.db", "SELECT * FROM experiments")
    by_lr = {json.loads(r["overrides"])["lr"]: r for r in found}
    assert {lr: r["status"] for lr, r in by_lr.items()} == {
        0.3: "ok", 0.2: "ok", 0.1: "ok", 5: "pruned", 6: "pruned", 7: "pruned",
    }
    for lr in (5, 6, 7):
        run = by_lr[lr]
        assert run["pruned_step"] == 3
        assert "worse than the median" in run["error_message"]
        # The values shown before it was stopped, and its series up to there.
        assert json.loads(run["parameters"])["warmup"] == lr * 2
        steps = [s for (s,) in sqlite3.connect(tmp_path / "runs.db").execute(
            "SELECT step FROM metrics WHERE uuid = ? AND key = 'val_loss'", (run["uuid"],)
        )]
        assert 3 in steps and max(steps) < 9
    # Without pruning every run would execute every epoch.
    executed = log.read_text().split()
    assert len(executed) <= 6 * 10 - 3 * 5
    assert executed.count("0.1") == 10

    listed = cli("ls", "-d", "runs.db", "--status", "pruned", cwd=tmp_path)
    assert listed.stdout.count("pruned") == 3
    shown = cli("show", by_lr[5]["uuid"][:8], "-d", "runs.db", cwd=tmp_path)
    assert "pruned" in shown.stdout
    # The report's page of a pruned run marks it and draws the curve it has.
    assert cli("report", "-o", "report.html", "-d", "runs.db", cwd=tmp_path).returncode == 0
    page = (tmp_path / "report.html").read_text()
    uuid = by_lr[5]["uuid"]
    run_page = page[page.index(f'id="run-{uuid}"') :]
    run_page = run_page[: run_page.index('class="page"', 20)] if 'class="page"' in run_page[20:] \
        else run_page
    assert "status-pruned" in run_page
    assert '"key": "val_loss", "step": [0, 1, 2, 3' in run_page

    # Resuming does not rerun the pruned points.
    again = cli(
        "train.py", "-g", "lr=0.3,0.2,0.1,5,6,7", "-p", f"log={str(log)!r}", "-w", "2",
        "--prune", "median", "--on", "val_loss", "-d", "runs.db", cwd=tmp_path,
    )
    assert again.returncode == 0 and "skipping 6 of 6 points" in again.stderr


@pytest.mark.kernel
def test_patience_in_python_stops_runs_that_stop_improving(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_script(tmp_path, """\
        # parameters
        plateau = 2

        for epoch in range(8):
            acc = min(epoch, plateau) / 10
            print(f"epoch={epoch} acc={acc}", flush=True)
        """, "train.py")
    summary = track_grid(
        "train.py", {"plateau": [2, 100]}, database="runs.db", workers=1, quiet=True,
        prune="patience:2", prune_on="acc:max", min_steps=0,
    )
    assert (summary.ok, summary.pruned, summary.failed) == (1, 1, 0)
    pruned = rows(tmp_path / "runs.db", "SELECT * FROM experiments WHERE status = 'pruned'")
    assert [r["pruned_step"] for r in pruned] == [4]


def test_pruning_needs_an_executor_that_reads_output_live(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    write_script(tmp_path, TRAINING, "train.py")
    with ThreadPoolExecutor(1) as pool, pytest.raises(ParameterError, match="local executor"):
        track_grid(tmp_path / "train.py", {"lr": [0.1]}, database=tmp_path / "runs.db",
                   executor=pool, prune="median", prune_on="val_loss", quiet=True)


@pytest.mark.kernel
def test_a_search_reports_pruned_trials_to_optuna(tmp_path: Path, monkeypatch):
    optuna = pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    write_script(tmp_path, TRAINING, "train.py")

    class InOrder(optuna.samplers.BaseSampler):
        """An Optuna sampler proposing the learning rates in a fixed order."""

        def __init__(self, rates: list[float]) -> None:
            self.rates = rates
            self.told: dict[float, str] = {}

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, name, distribution):
            return self.rates[trial.number]

        def after_trial(self, study, trial, state, values):
            self.told[trial.params["lr"]] = state.name

    sampler = InOrder([0.3, 0.2, 5, 0.1, 6])
    summary = track_search(
        "train.py", {"lr": [0.3, 0.2, 0.1, 5, 6]}, objective="val_loss", direction="minimize",
        trials=5, sampler=sampler, workers=1, database="runs.db", quiet=True, prune="median",
        fixed={"log": str(tmp_path / "epochs.log")},
    )
    assert sampler.told == {
        0.3: "COMPLETE", 0.2: "COMPLETE", 5: "PRUNED", 0.1: "COMPLETE", 6: "PRUNED",
    }
    assert (summary.trials, summary.pruned, summary.failed) == (5, 2, 0)
    assert summary.best is not None and summary.best.overrides["lr"] == 0.1
    found = rows(tmp_path / "runs.db", "SELECT * FROM experiments ORDER BY trial")
    assert [r["status"] for r in found] == ["ok", "ok", "pruned", "ok", "pruned"]
    assert "Optuna's MedianPruner" in found[2]["error_message"]
