"""Take the screenshots of docs/ui.md with a real browser: ``python docs/screenshots.py``.

Runs a sweep of a copy of ``examples/fit.py`` in a temporary folder, from inside it (the pages
show paths as given: ``fit.py``, ``experiments.db``, nothing of this machine's folders), serves
the UI on 127.0.0.1, and saves each page as ``docs/images/ui-*.png`` through headless Chromium
(the system browser, ``/usr/bin/chromium``; needs the ``ui`` and ``examples`` extras and
playwright).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1440, "height": 960}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(ROOT / "examples" / "fit.py", Path(folder) / "fit.py")
        here = Path.cwd()
        os.chdir(folder)
        try:
            _sweep_and_shoot()
        finally:
            os.chdir(here)
    print(f"wrote {', '.join(sorted(p.name for p in IMAGES.glob('ui-*.png')))}")


def _sweep_and_shoot() -> None:
    """Sweep ``fit.py`` into ``experiments.db``, serve it and take the pictures, all in the
    working directory (the temporary folder)."""
    from ploomber_like import SQLiteTracker, track_grid

    database = Path("experiments.db")
    track_grid(
        "fit.py",
        {"n_estimators": [10, 25, 50], "max_depth": [3, 5, None],
         "criterion": ["gini", "entropy"]},
        database=database, quiet=True, name="forest-sweep",
    )
    tracker = SQLiteTracker(database)
    ranked = tracker.runs(sort="f1")
    tracker.tag(ranked[0].uuid, "best")
    tracker.tag(ranked[-1].uuid, "baseline")
    report = tracker.report("report.html").resolve()
    with _serving(database) as url:
        _screenshots(url, report, [run.uuid for run in ranked])


def _screenshots(url: str, report: Path, ranked: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        page.goto(url + "/")
        page.wait_for_selector("#parcoords .parcoords")
        page.click('#runs-table thead th[data-key="f1"]')
        page.evaluate("document.querySelector('.table-wrap').scrollLeft = 0")
        page.wait_for_timeout(500)
        page.screenshot(path=IMAGES / "ui-runs.png")

        page.goto(f"{url}/run/{ranked[0]}")
        page.wait_for_selector("figure img")
        page.wait_for_timeout(300)
        page.screenshot(path=IMAGES / "ui-run.png")

        middle = ranked[len(ranked) // 2]
        page.goto(f"{url}/compare?uuid={ranked[0]}&uuid={middle}&uuid={ranked[-1]}")
        page.wait_for_selector("figure img")
        page.wait_for_timeout(300)
        page.screenshot(path=IMAGES / "ui-compare.png")

        page.goto(report.as_uri())
        page.wait_for_selector("#parcoords .parcoords")
        page.fill("#where", "entropy")
        page.click("#filter-form button[type=submit]")
        page.wait_for_timeout(500)
        page.screenshot(path=IMAGES / "ui-report.png")
        browser.close()


class _serving:
    """The UI of a database served by uvicorn in a thread, for the length of a ``with``."""

    def __init__(self, database: Path) -> None:
        import socket

        import uvicorn

        from ploomber_like.ui.app import HOST, create_app

        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        self.url = f"http://{HOST}:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(database), host=HOST, port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join()


if __name__ == "__main__":
    main()
