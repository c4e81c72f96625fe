"""The examples in README.md and docs/ run as written.

Each document is run like a notebook, top to bottom, in a fresh ``tmp_path`` holding a copy of
``examples/``: its fenced ``python`` blocks are executed in one namespace, and its shell blocks
(``bash``, ``sh``, ``console``) run their ``python -m tracker`` /
``python -m ploomber_like.tracking`` commands, checking the exit status. Other commands in a
shell block (``pip install``, ``python -m compileall``, ``python -m pytest``, ``jupytext``) are
setup, not examples, and are left out. Output blocks (``text``, ``sql``, ``json``,
unlabelled) are not checked.

An HTML comment right before a block changes how it is run (several may be stacked)::

    <!-- docs-test: skip (why) -->            not run; keep these few
    <!-- docs-test: write train.py -->        the block is that file: written, not executed
    <!-- docs-test: replace 09e7 with SQL --> a placeholder in the block becomes the single
                                              value SQL selects from experiments.db
    <!-- docs-test: setup SHELL COMMAND -->   run before the block (a file the prose assumes)

In a ``console`` block, commands start with ``$ ``; a command whose printed output starts with
``error:`` is expected to exit 2 (usage errors, as the docs say), every other one 0.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Each document runs sweeps, and some a notebook's kernel.
pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
TRACKER_COMMAND = re.compile(r"^python -m (tracker|ploomber_like\.tracking)\b")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
COMMAND_TIMEOUT = 300


@dataclass
class Block:
    """One fenced code block of a document, with the markers written right before it."""

    language: str
    text: str
    line: int
    markers: list[str] = field(default_factory=list)
    output: str = ""  # for a console block: the lines after each command, by command

    @property
    def skip_reason(self) -> str | None:
        for marker in self.markers:
            if marker.startswith("skip"):
                return marker[len("skip") :].strip(" ()") or "no reason given"
        return None

    @property
    def written_file(self) -> str | None:
        for marker in self.markers:
            if marker.startswith("write "):
                return marker[len("write ") :].strip()
        return None


@dataclass
class Command:
    """A shell command of a block, and the exit status the document implies for it."""

    text: str
    expected_status: int = 0


def read_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file, in document order."""
    blocks: list[Block] = []
    pending: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.match(line)
        fence = FENCE.match(line)
        if marker:
            pending.append(marker.group(1))
        elif fence:
            start = index
            index += 1
            body = []
            while not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            blocks.append(Block(fence.group(1), "\n".join(body) + "\n", start + 1, pending))
            pending = []
        elif line.strip():
            pending = []  # a marker applies only to the block right after it
        index += 1
    return blocks


def shell_commands(block: Block) -> list[Command]:
    """The tracker commands of a shell block, joined across continuation lines."""
    if block.language == "console":
        return _console_commands(block.text)
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        for part in line.split(" && "):
            if TRACKER_COMMAND.match(part.strip()):
                commands.append(Command(part.strip()))
    return commands


def _console_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith("$ "):
            index += 1
            continue
        command = lines[index][2:]
        while not _complete(command) and index + 1 < len(lines):  # a quoted newline
            index += 1
            command += "\n" + lines[index]
        output = []
        while index + 1 < len(lines) and not lines[index + 1].startswith("$ "):
            index += 1
            output.append(lines[index])
        printed = "\n".join(output).strip()
        if TRACKER_COMMAND.match(command):
            commands.append(Command(command, 2 if printed.startswith("error:") else 0))
        index += 1
    return commands


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:
        return False
    return True


@dataclass
class DocumentRun:
    """What running a document did: its namespace, folder, and the blocks run or skipped."""

    path: Path
    folder: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    ran: list[Block] = field(default_factory=list)
    skipped: list[Block] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def rows(self, sql: str, database: str = "experiments.db") -> list[tuple]:
        conn = sqlite3.connect(self.folder / database)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def run_document(path: Path, folder: Path) -> DocumentRun:
    """Run every block of ``path`` in ``folder`` (the working directory), in order."""
    shutil.copytree(ROOT / "examples", folder / "examples")
    run = DocumentRun(path, folder, {"__name__": "__docs__"})
    name = path.relative_to(ROOT)
    for block in read_blocks(path):
        where = f"{name}:{block.line}"
        if block.language not in ("python", *SHELL_LANGUAGES) and not block.written_file:
            continue
        if block.skip_reason is not None:
            run.skipped.append(block)
            continue
        for marker in block.markers:
            if marker.startswith("setup "):
                _run_shell(marker[len("setup ") :], 0, folder, where)
        text = _replace_placeholders(block, run)
        if block.written_file:
            (folder / block.written_file).write_text(text, encoding="utf-8")
        elif block.language == "python":
            # padded so that tracebacks give the line numbers of the document
            code = compile("\n" * block.line + text, str(path), "exec")
            exec(code, run.namespace)
        else:
            commands = shell_commands(Block(block.language, text, block.line))
            if not commands:
                continue
            for command in commands:
                _run_shell(command.text, command.expected_status, folder, where)
                run.commands.append(command.text)
        run.ran.append(block)
    return run


def _replace_placeholders(block: Block, run: DocumentRun) -> str:
    text = block.text
    for marker in block.markers:
        found = re.fullmatch(r"replace (\S+) with (.+)", marker)
        if found:
            placeholder, sql = found.groups()
            (value,) = run.rows(sql)
            text = re.sub(rf"\b{re.escape(placeholder)}\b", str(value[0]), text)
    return text


def _run_shell(command: str, expected_status: int, folder: Path, where: str) -> None:
    # `python` is this interpreter, whatever is first on PATH.
    command = re.sub(r"^python ", shlex.quote(sys.executable) + " ", command)
    done = subprocess.run(
        command, shell=True, cwd=folder, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    assert done.returncode == expected_status, (
        f"{where}: `{command}` exited {done.returncode}, expected {expected_status}\n"
        f"{done.stdout}\n{done.stderr}"
    )


# -- the documents, each with a few facts its examples establish ---------------------------------


def check_readme(run: DocumentRun) -> None:
    statuses = run.rows("SELECT status, count(*) FROM experiments GROUP BY status")
    # the 4-point sweep, one run from Python, the CLI's one run and grid-file point; the Python
    # sweep and the CLI's grid repeat points already recorded ok, so they are skipped
    assert statuses == [("ok", 7)]
    summary = run.namespace["summary"]
    assert (summary.ok, summary.failed, summary.skipped) == (0, 0, 4)
    assert run.namespace["record"].status == "ok"
    assert sorted(path.name for path in (run.folder / "plots").iterdir()) == [
        "confusion_matrix.png",
        "precision_recall.png",
    ]
    (overrides,) = run.rows("SELECT overrides FROM experiments WHERE overrides LIKE '%entropy%'")
    assert json.loads(overrides[0]) == {"n_estimators": 10, "criterion": "entropy"}


def check_tracking(run: DocumentRun) -> None:
    rows = run.rows(
        "SELECT status, overrides, comment FROM experiments WHERE source_path != 'rank.py' "
        "ORDER BY created"
    )
    assert [(status, json.loads(overrides), comment) for status, overrides, comment in rows] == [
        ("ok", {"n": 200}, None),
        ("ok", {"n": 200}, None),
        ("ok", {"n": 50, "noise": 0.5, "label": "a,b", "model": "sklearn.svm.SVC"}, None),
        ("ok", {"n": 50, "noise": 0.5}, "baseline"),
        ("ok", {"epochs": 4}, None),
        ("ok", {}, None),
    ]
    # What the training loop left: its series, its file and notebook exported by `show`.
    (uuid,) = run.rows("SELECT uuid FROM experiments WHERE overrides LIKE '%epochs%'")[0]
    assert run.rows(
        f"SELECT key, count(*), max(step) FROM metrics WHERE uuid = '{uuid}' GROUP BY key"
    ) == [("loss", 4, 3), ("val_loss", 4, 3)]
    assert (run.folder / "exported" / "model.txt").read_text().startswith("lr=0.1 loss=0.65")
    assert (run.folder / "exported" / f"{uuid}.ipynb").is_file()
    # The same, read back on the run itself.
    left = run.namespace["run"]
    assert left.stderr == "training done\n" and left.metrics[0].key == "loss"
    assert [a.path for a in left.artifacts] == ["model.txt"]
    assert json.loads(run.namespace["notebook"])["nbformat"] == 4
    assert [p.name for p in run.namespace["written"]] == ["model.txt", f"{uuid}.ipynb"]
    # What a run read: the first run and the sweep after scores.csv changed list its new hash.
    assert run.namespace["inputs"].path.tolist() == ["scores.csv", "prep.py"]
    assert run.rows(
        "SELECT count(*), count(DISTINCT i.sha256) FROM inputs AS i JOIN experiments AS e "
        "USING (uuid) WHERE i.path = 'scores.csv' AND e.source_path = 'rank.py'"
    ) == [(4, 2)]  # the first run, power=2, then both points again with the new data
    record = run.namespace["record"]
    assert set(record.values) == {"slope", "intercept", "residuals"}  # `mse;` is hidden
    assert record.parameters == {"n": 50, "noise": 0.5}
    assert run.namespace["png"].startswith(b"\x89PNG")
    assert run.namespace["source"] == (run.folder / "train.py").read_bytes()


def check_querying(run: DocumentRun) -> None:
    namespace = run.namespace
    # the 6-point sweep, a run logged by hand, one made with the anchor's new()
    assert run.rows("SELECT status, count(*) FROM experiments GROUP BY status") == [("ok", 8)]
    assert namespace["summary"].index.tolist() == [10, 25, 50]
    assert namespace["tracker"].get(namespace["uuid"])["loss"] == [0.9, 0.7, 0.6]
    assert namespace["tracker"].get(namespace["best"].uuid)["reviewed_by"] == "ana"
    assert len(namespace["results"]) == 2 and len(list(namespace["tabs"])) == 2
    best = namespace["best"]
    assert namespace["run"]["f1"] == max(namespace["runs"]["f1"])
    (comment,) = run.rows(f"SELECT comment FROM experiments WHERE uuid = '{best.uuid}'")
    assert comment == ("candidate for production",)  # set from Python, then from the CLI
    hand_logged = namespace["tracker"].get(namespace["exp"].uuid)
    assert hand_logged["accuracy"] == 0.91
    assert (run.folder / "plots" / "confusion_matrix.png").exists()
    assert namespace["run"].source == (run.folder / "examples" / "fit.py").read_text()
    page = (run.folder / "top3.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 3  # the page of the top 3
    assert run.commands[-2:] == [  # both exit 2
        'python -m tracker query "DELETE FROM experiments"', "python -m tracker ls -d typo.db",
    ]
    assert not (run.folder / "typo.db").exists()


def check_migrating(run: DocumentRun) -> None:
    namespace = run.namespace
    assert run.rows("SELECT status, count(*) FROM experiments GROUP BY status") == [("ok", 2)]
    assert len(namespace["tracker"]) == 2
    memory = namespace["memory"]
    assert len(memory) == 2 and namespace["retrieved"].comment_text == "best so far"
    assert memory.get(namespace["exp"].uuid)["confusion_matrix"].data.startswith(b"\x89PNG")
    assert memory.get("my-run") == {"d": [4, 5]}
    # ":memory:" left nothing on disk
    assert {p.name for p in run.folder.iterdir()} <= {
        "examples", "experiments.db", "experiments.db-wal", "experiments.db-shm",
    }


def check_sweeps(run: DocumentRun) -> None:
    summary = run.namespace["summary"]
    assert (summary.ok, summary.failed, summary.skipped) == (4, 0, 0)
    rows = run.rows("SELECT status, overrides FROM experiments ORDER BY created")
    # 4 points from Python, none again from the shell (resumed), 2 from the grid file
    assert [status for status, _ in rows] == ["ok"] * 6
    assert json.loads(rows[-1][1]) == {
        "random_state": 1, "n_estimators": 10, "criterion": "entropy", "max_depth": 5,
    }
    # Pruning: the diverging half of the grid stopped at step 3, by the median and by patience.
    for database, pruned in (("train.db", [5, 6, 7]), ("patience.db", [5, 6])):
        rows = run.rows("SELECT status, overrides, pruned_step FROM experiments", database)
        assert sorted(json.loads(o)["lr"] for s, o, step in rows if s == "pruned") == pruned
        assert {step for s, _, step in rows if s == "pruned"} == {3}
    assert (run.namespace["pruning"].pruned, run.namespace["pruning"].ok) == (2, 2)
    assert {s for s, in run.rows("SELECT status FROM experiments", "search.db")} <= {
        "ok", "pruned",
    }
    # Replicates: 3 per point with seeds 0, 1, 2, aggregated in 2 groups.
    seeds = run.rows(
        "SELECT json_extract(parameters, '$.random_state'), replicate FROM experiments", "seeds.db"
    )
    assert sorted(seeds) == [(0, 0), (0, 0), (1, 1), (1, 1), (2, 2), (2, 2)]
    assert list(run.namespace["groups"]["n"]) == [3, 3]


def check_comparing(run: DocumentRun) -> None:
    # the 4-point sweep, then `rm` of the two degree-3 runs
    rows = run.rows("SELECT name, json_extract(parameters, '$.degree'), tags FROM experiments")
    assert sorted(rows) == [("first-sweep", 1, None), ("first-sweep", 1, None)]
    namespace = run.namespace
    assert len(namespace["comparison"]) == 4 and namespace["frame"].shape[0] == 4
    assert "n" not in namespace["comparison"].keys  # --only-changed: every run has n=100
    assert namespace["csv_text"].startswith("uuid,name,status,noise,degree,mse,residuals")
    header = (run.folder / "runs.csv").read_text().splitlines()[0]
    assert header == "uuid,noise,degree,mse"
    assert namespace["best"].parameters["noise"] == 0.05


def check_ui(run: DocumentRun) -> None:
    assert run.rows("SELECT count(*), min(name) FROM experiments") == [(6, "noise-sweep")]
    for name, runs in (("report.html", 6), ("low-noise.html", 4)):
        page = (run.folder / name).read_text()
        assert page.count('class="page" id="run-') == runs and "Plotly" in page
        assert '<script src="http' not in page  # everything inline
    assert run.namespace["path"].name == "report.html"


def check_sharing(run: DocumentRun) -> None:
    from mlflow import MlflowClient

    # the 2-point sweep, its rerun from the shell, the best run's rerun from Python
    assert run.rows("SELECT status, count(*) FROM experiments GROUP BY status") == [("ok", 4)]
    reproduced = run.rows("SELECT reproduces FROM experiments WHERE reproduces IS NOT NULL")
    assert len(reproduced) == 2 and set(reproduced) <= set(run.rows("SELECT uuid FROM experiments"))
    assert run.namespace["result"].reproduced
    # the shell's first export took the 4 runs; the second and Python's found nothing new
    assert len(run.namespace["exported"].exported) == 0
    assert len(run.namespace["exported"].already_exported) == 4
    client = MlflowClient(f"sqlite:///{run.folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fit").experiment_id])
    assert len({r.data.tags["ploomber_like.uuid"] for r in runs}) == len(runs) == 4
    (plot,) = run.rows("SELECT json_extract(parameters, '$.curve.\"$blob\"') FROM experiments",
                       "old.db")
    assert run.rows("SELECT mimetype FROM blobs WHERE sha256 = ?".replace("?", f"'{plot[0]}'"),
                    "old.db") == [("image/png",)]


def check_search(run: DocumentRun) -> None:
    rows = run.rows("SELECT search, trial, status, objective FROM experiments ORDER BY trial")
    # 3 trials from Python, 1 more from the shell (the same search, continued), 1 more again
    assert [trial for _, trial, _, _ in rows] == [0, 1, 2, 3, 4]
    assert len({search for search, _, _, _ in rows}) == 1
    assert all(status == "ok" and 0 < objective <= 1 for _, _, status, objective in rows)
    again = run.namespace["again"]
    assert (again.ok, again.trials) == (1, 5)
    assert again.best.trial.objective == max(objective for *_, objective in rows)


DOCUMENTS: dict[str, Callable[[DocumentRun], None]] = {
    "README.md": check_readme,
    "docs/tracking.md": check_tracking,
    "docs/querying.md": check_querying,
    "docs/sweeps.md": check_sweeps,
    "docs/comparing.md": check_comparing,
    "docs/ui.md": check_ui,
    "docs/search.md": check_search,
    "docs/migrating.md": check_migrating,
    "docs/sharing.md": check_sharing,
}
# docs/cluster.md is left out: its examples need a Dask scheduler and workers; tests/test_cluster.py
# runs the same calls against a LocalCluster.


@pytest.fixture(autouse=True)
def _headless(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("document", list(DOCUMENTS))
def test_document_examples_run(document: str, tmp_path: Path):
    path = ROOT / document
    run = run_document(path, tmp_path)
    runnable = [
        block
        for block in read_blocks(path)
        if block.language == "python"
        or block.written_file
        or (block.language in SHELL_LANGUAGES and shell_commands(block))
    ]
    assert run.ran and len(run.ran) + len(run.skipped) == len(runnable)
    assert len(run.skipped) <= 1, [block.skip_reason for block in run.skipped]
    DOCUMENTS[document](run)
