"""How fast "top 3 by f1" is over many runs with plots: blobs out of line vs inline base64.

Builds two databases holding the same runs (scalar values and three distinct ~30 KB PNG plots
each): ours, written with store.py's schema (plots in ``blobs``, a small reference in
``parameters``), and the anchor's (sklearn-evaluation's four-column table, plots inline as
``<img src="data:image/png;base64,...">`` in ``parameters``). Then times the same query through
``SQLiteTracker.query`` on both.

    python benchmarks/query_scale.py --runs 10000

Targets: ours under 50 ms, and at least 20x faster than inline.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import sqlite3
import struct
import tempfile
import time
import zlib
from pathlib import Path

from ploomber_like import SQLiteTracker, store
from ploomber_like.record import Blob, Record, new_created

QUERY = (
    "SELECT uuid, json_extract(parameters, '$.f1') AS f1 "
    "FROM experiments ORDER BY f1 DESC LIMIT 3"
)
PLOTS = ("confusion_matrix", "precision_recall", "roc")
TARGET_MS = 50.0
TARGET_RATIO = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in each database")
    parser.add_argument("--repeats", type=int, default=5, help="timings per database; best kept")
    parser.add_argument("--plot-kb", type=int, default=30, help="approximate size of each PNG")
    parser.add_argument("--dir", type=Path, help="keep the databases here (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        ours, anchor = folder / "ours.db", folder / "anchor.db"
        for path in (ours, anchor):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        started = time.perf_counter()
        bases = [_base_png(kind, args.plot_kb * 1024) for kind in PLOTS]
        runs = list(_runs(args.runs, bases))
        print(f"generated {args.runs} runs x {len(PLOTS)} plots "
              f"(~{len(bases[0]) // 1024} KB each) in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        _build_ours(ours, runs)
        print(f"built ours   in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        _build_anchor(anchor, runs)
        print(f"built anchor in {time.perf_counter() - started:.1f} s")
        del runs

        ours_s, ours_top = _best_time(ours, args.repeats)
        anchor_s, anchor_top = _best_time(anchor, args.repeats)
        if ours_top != anchor_top:
            raise SystemExit(f"the databases disagree: {ours_top} vs {anchor_top}")

        ratio = anchor_s / ours_s
        print()
        print(f"query: {QUERY}")
        print(f"best of {args.repeats}, through SQLiteTracker.query")
        print(f"  ours   (blobs out of line): {ours_s * 1000:9.1f} ms   "
              f"database {_size_mb(ours):8.1f} MB")
        print(f"  anchor (inline base64):     {anchor_s * 1000:9.1f} ms   "
              f"database {_size_mb(anchor):8.1f} MB")
        print(f"  ratio: {ratio:.0f}x faster")
        fast, far = ours_s * 1000 < TARGET_MS, ratio >= TARGET_RATIO
        print(f"targets: ours < {TARGET_MS:.0f} ms: {'yes' if fast else 'NO'}; "
              f">= {TARGET_RATIO:.0f}x faster: {'yes' if far else 'NO'}")


def _base_png(kind: str, size: int) -> bytes:
    """A real matplotlib PNG of about ``size`` bytes: a line plot over a noise image, whose
    side grows until the file is big enough (noise does not compress)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(len(kind))
    side = 20
    while True:
        fig, ax = plt.subplots(figsize=(3, 3), dpi=100)
        ax.imshow(rng.random((side, side)), cmap="Blues")
        ax.plot(np.linspace(0, side - 1, 50), rng.random(50) * side, color="red")
        ax.set_title(kind)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        data = buffer.getvalue()
        if len(data) >= size or side > 300:
            return data
        side = int(side * 1.25)


def _distinct_png(base: bytes, tag: str) -> bytes:
    """``base`` with a tEXt chunk naming ``tag`` before IEND: a valid PNG with distinct bytes,
    so every run's plot is a blob of its own, as with real runs."""
    payload = b"run\x00" + tag.encode()
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload))
    return base[:-12] + chunk + base[-12:]  # the last 12 bytes are the IEND chunk


def _runs(count: int, bases: list[bytes]):
    """Records shaped like a sweep of examples/fit.py."""
    rng = random.Random(0)
    for i in range(count):
        blobs = {name: Blob("image/png", _distinct_png(base, str(i))) for name, base in
                 zip(PLOTS, bases, strict=True)}
        yield Record(
            uuid=f"{i:08x}",
            created=new_created(),
            path="examples/fit.py",
            source="n_estimators = 10\nmax_depth = None\n",
            parameters={"n_estimators": rng.choice([10, 25, 50, 100]),
                        "max_depth": rng.choice([5, 10, None])},
            overrides={},
            status="ok",
            values={
                **{k: rng.random() for k in ("accuracy", "precision", "recall", "f1")},
                **{name: blob.reference() for name, blob in blobs.items()},
            },
            blobs={blob.sha256: blob for blob in blobs.values()},
            duration=rng.uniform(1, 5),
        )


def _build_ours(path: Path, runs: list[Record]) -> None:
    """Our layout, written as Store writes it (store.encode_run), but in one transaction: a sweep
    commits one run at a time, which is needlessly slow for a bulk load."""
    conn = store.connect(path)
    columns = list(store.encode_run(runs[0]))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT OR IGNORE INTO blobs (sha256, mimetype, data) VALUES (?, ?, ?)",
        ((sha, blob.mimetype, blob.data) for record in runs for sha, blob in record.blobs.items()),
    )
    conn.executemany(
        f"INSERT INTO experiments ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})",
        (list(store.encode_run(record).values()) for record in runs),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _build_anchor(path: Path, runs: list[Record]) -> None:
    """sklearn-evaluation's table, each plot inline as its ``log_figure`` stores it."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE experiments (uuid TEXT NOT NULL UNIQUE, "
        "created TIMESTAMP default current_timestamp, parameters TEXT, comment TEXT)"
    )

    def inline(record: Record) -> str:
        merged = dict(record.merged())
        for name in PLOTS:
            data = record.blobs[merged[name]["$blob"]].data
            merged[name] = f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}"/>'
        return json.dumps(merged)

    with conn:
        conn.executemany(
            "INSERT INTO experiments (uuid, created, parameters) VALUES (?, ?, ?)",
            ((record.uuid, record.created, inline(record)) for record in runs),
        )
    conn.close()


def _best_time(path: Path, repeats: int) -> tuple[float, list[tuple[str, float]]]:
    tracker = SQLiteTracker(path)
    tracker.query(QUERY)  # warm the page cache: we compare parsing, not the disk
    best, top = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        frame = tracker.query(QUERY)
        best = min(best, time.perf_counter() - started)
        top = list(frame["f1"].items())
    return best, top


def _size_mb(path: Path) -> float:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    ) / 1e6


if __name__ == "__main__":
    main()
