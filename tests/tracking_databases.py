"""Tracking databases for the query tests, written by the real Store from real Records."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ploomber_like.record import Blob, Record, RunError, new_created
from ploomber_like.store import Store

SOURCE = "n_estimators = 10\nmax_depth = None\n"

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10"/></svg>'
TABLE_HTML = b"<table><tr><td>feature importances</td></tr></table>"


@dataclass
class SweepDatabase:
    """A database like a ``track_grid`` sweep makes, and what the tests check it against."""

    path: Path
    #: uuids of the ok runs, by (n_estimators, max_depth)
    ok: dict[tuple[int, int | None], str]
    failed: str
    #: f1 of each ok run, by uuid
    f1: dict[str, float]


def user_version(path: Path) -> int:
    """The database's schema version, read without our code."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def png(label: str) -> bytes:
    """A real PNG made by matplotlib (distinct per label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1), dpi=30)
    ax.set_title(label)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def build_sweep_database(path: Path) -> SweepDatabase:
    """Six ok runs over n_estimators x max_depth (values, two PNG plots, an SVG and an HTML
    output each), and one failed run."""
    ok, f1 = {}, {}
    with Store(path) as store:
        for i, (n, depth) in enumerate((n, d) for n in (10, 25, 50) for d in (5, None)):
            cm = Blob("image/png", png(f"cm {i}"))
            pr = Blob("image/png", png(f"pr {i}"))
            svg = Blob("image/svg+xml", SVG)
            table = Blob("text/html", TABLE_HTML)
            score = round(0.5 + n / 100 + (0.05 if depth is None else 0.0), 4)
            record = Record(
                uuid=f"{i:02d}aa{i:04d}-run",
                created=new_created(),
                path="examples/fit.py",
                source=SOURCE,
                parameters={"n_estimators": n, "max_depth": depth, "model": {"criterion": "gini"}},
                overrides={"n_estimators": n, "max_depth": depth},
                status="ok",
                values={
                    "accuracy": score + 0.01,
                    "f1": score,
                    "f1-score": score,
                    "classes": [0, 1],
                    "confusion_matrix": cm.reference(),
                    "precision_recall": pr.reference(),
                    "tree": svg.reference(),
                    "importances": table.reference(),
                },
                blobs={b.sha256: b for b in (cm, pr, svg, table)},
                duration=1.0 + i,
            )
            store.finish(record)
            ok[(n, depth)] = record.uuid
            f1[record.uuid] = score
        failed = Record(
            uuid="ff000000-failed",
            created=new_created(),
            path="examples/fit.py",
            source=SOURCE,
            parameters={"n_estimators": 100, "max_depth": 5, "model": {"criterion": "gini"}},
            overrides={"n_estimators": 100},
            status="failed",
            values={"accuracy": 0.25},
            error=RunError(
                type="ValueError",
                message="bad input",
                traceback="Traceback (most recent call last):\nValueError: bad input",
                group=2,
                group_source="model.fit(X, y)",
            ),
            duration=0.5,
        )
        store.finish(failed)
    return SweepDatabase(path, ok, failed.uuid, f1)


def build_anchor_database(path: Path) -> None:
    """A database as sklearn-evaluation's SQLiteTracker makes it: four columns, plain JSON,
    images inline as ``<img>`` HTML."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE experiments (uuid TEXT NOT NULL UNIQUE, "
        "created TIMESTAMP default current_timestamp, parameters TEXT, comment TEXT)"
    )
    image = '<img src="data:image/png;base64,iVBORw0KGgo="/>'
    rows = [
        ("a1b2c3d4", {"accuracy": 0.8, "n_estimators": 10, "plot": image}),
        ("e5f6a7b8", {"accuracy": 0.9, "n_estimators": 50, "plot": image}),
    ]
    conn.executemany(
        "INSERT INTO experiments (uuid, parameters) VALUES (?, ?)",
        [(uuid, json.dumps(parameters)) for uuid, parameters in rows],
    )
    conn.execute("INSERT INTO experiments (uuid) VALUES ('00000000')")
    conn.commit()
    conn.close()


@dataclass
class ReadmeDatabase:
    """A database like the README's sweep of examples/fit.py, with what hides runs from a
    chart: ``None`` parameters and values, keys some runs lack, failed runs."""

    path: Path
    #: uuids of every run, ok ones first
    uuids: list[str]
    failed: list[str]
    #: Parameters equal in every run, with their value.
    constant: dict[str, object]


def build_readme_database(path: Path) -> ReadmeDatabase:
    """Eight ok runs over n_estimators x max_depth (None among them) x criterion: ``oob`` only
    where n_estimators is 50, ``roc_auc`` None in two runs; then a failed and a crashed run
    with a value or none. Six parameters are the same in every run."""
    constant = {"random_state": 0, "n_samples": 10_000, "n_features": 20, "n_informative": 8,
                "test_size": 0.25, "dataset": "synthetic-classification"}
    uuids, failed = [], []
    grid = [(n, d, c) for n in (10, 50) for d in (5, None) for c in ("gini", "entropy")]
    with Store(path) as store:
        for i, (n, depth, criterion) in enumerate(grid):
            score = round(0.7 + i / 50, 4)
            values = {"accuracy": score + 0.01, "precision": score + 0.02,
                      "recall": score - 0.03, "f1": score, "roc_auc": None if i % 4 == 1 else score}
            if n == 50:
                values["oob"] = score - 0.01
            parameters = {"n_estimators": n, "max_depth": depth, "criterion": criterion,
                          **constant}
            record = Record(
                uuid=f"{i:02d}bb{i:04d}-readme", created=new_created(), path="fit.py",
                source=SOURCE, parameters=parameters, overrides={"n_estimators": n},
                status="ok", values=values, duration=1.0 + i,
            )
            store.finish(record)
            uuids.append(record.uuid)
        for i, (status, values) in enumerate((("failed", {"accuracy": 0.1}), ("crashed", {}))):
            record = Record(
                uuid=f"ee{i:06d}-{status}", created=new_created(), path="fit.py", source=SOURCE,
                parameters={"n_estimators": 100, "max_depth": 3, "criterion": "gini",
                            **constant},
                overrides={"n_estimators": 100}, status=status, values=values,
                error=RunError(type="ValueError", message="bad input", traceback="", group=2),
                duration=0.5,
            )
            store.finish(record)
            uuids.append(record.uuid)
            failed.append(record.uuid)
    return ReadmeDatabase(path, uuids, failed, constant)
