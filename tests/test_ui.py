"""The web UI and the report, driven in a real headless Chromium against a real server on
127.0.0.1; plus the server's guarantees (read-only, local, offline) over plain HTTP.

Browser tests skip, with the reason, where Playwright or Chromium is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli as cli_process
from conftest import free_port
from tracking_databases import (
    ReadmeDatabase,
    SweepDatabase,
    build_readme_database,
    build_sweep_database,
    png,
)

from ploomber_like import SQLiteTracker
from ploomber_like.cli import cli
from ploomber_like.record import Blob, Input, Record, RunError, new_created
from ploomber_like.store import Store

pytest.importorskip("starlette", reason="the UI needs the [ui] extra (starlette)")
pytest.importorskip("uvicorn", reason="the UI needs the [ui] extra (uvicorn)")

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<script>window.pwned = 1</script>"
HOSTILE_HTML = b"<b>bold</b><script>parent.pwned = 2</script>"


def chromium_path() -> str | None:
    candidates = ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return None


def add_hostile_run(path: Path) -> Record:
    """A run whose captured text, output, stdout and error all hold markup."""
    plot = Blob("image/png", png("hostile"))
    page = Blob("text/html", HOSTILE_HTML)
    record = Record(
        uuid="5c5c5c5c-hostile", created=new_created(), path="evil.py", source=f"x = '{HOSTILE}'\n",
        parameters={"n_estimators": 75, "max_depth": 3, "model": {"criterion": "gini"}},
        overrides={"n_estimators": 75}, status="failed",
        values={"note": HOSTILE, "f1": 0.7, "accuracy": 0.71, "confusion_matrix": plot.reference(),
                "frame": page.reference()},
        blobs={plot.sha256: plot, page.sha256: page},
        stdout=f"printed {HOSTILE}\n",
        error=RunError("ValueError", f"bad <img src=x onerror=\"window.pwned=3\"> {HOSTILE}",
                       traceback=f"Traceback\nValueError: {HOSTILE}"),
        name="<b>named</b>",
    )
    with Store(path) as store:
        store.finish(record)
    return record


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> SweepDatabase:
    sweep = build_sweep_database(tmp_path_factory.mktemp("ui") / "experiments.db")
    add_hostile_run(sweep.path)
    SQLiteTracker(sweep.path).tag(sweep.ok[(50, None)], "best")
    return sweep


@contextlib.contextmanager
def serving(path: Path) -> Iterator[str]:
    """The UI of ``path`` served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    from ploomber_like.ui.app import HOST, create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(path), host=HOST, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the UI server did not start"
        time.sleep(0.05)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(database: SweepDatabase) -> Iterator[str]:
    with serving(database.path) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip("browser tests need Chromium: apt-get install -y chromium")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors  # no script error on any page


def table_uuids(page) -> list[str]:
    """The table's rows, once it has drawn all of them (the rows in sight come first)."""
    page.wait_for_function("() => !document.getElementById('runs-table').dataset.filling")
    return page.eval_on_selector_all(
        "#runs-table tbody tr", "rows => rows.map(r => r.dataset.uuid)"
    )


def open_runs(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#runs-table tbody tr")


# --- the live UI in a browser ------------------------------------------------------------------


@pytest.mark.browser
def test_table_lists_every_run_with_status_colours(page, server, database):
    open_runs(page, server + "/")
    uuids = table_uuids(page)
    assert sorted(uuids) == sorted([*database.ok.values(), database.failed, "5c5c5c5c-hostile"])
    assert page.locator("#run-count").inner_text() == "8 runs"
    failed = page.locator(f'tr[data-uuid="{database.failed}"] .status')
    assert failed.inner_text() == "failed" and "status-failed" in failed.get_attribute("class")
    ok_colour = page.locator(f'tr[data-uuid="{database.ok[(10, 5)]}"] .status').evaluate(
        "node => getComputedStyle(node).color"
    )
    assert ok_colour != failed.evaluate("node => getComputedStyle(node).color")
    assert page.locator(f'tr[data-uuid="{database.ok[(50, None)]}"] .tag').inner_text() == "best"


@pytest.mark.browser
def test_sorting_by_a_column_header(page, server, database):
    open_runs(page, server + "/")
    best = max(database.f1, key=database.f1.__getitem__)
    worst = min(database.f1, key=database.f1.__getitem__)
    page.click('#runs-table thead th[data-key="f1"]')
    assert table_uuids(page)[0] == best
    page.click('#runs-table thead th[data-key="f1"]')
    uuids = table_uuids(page)
    assert uuids[0] == worst and uuids[-1] == database.failed  # no f1: last either way


@pytest.mark.browser
def test_filtering_with_a_sql_condition_and_choosing_columns(page, server, database):
    open_runs(page, server + "/")
    page.fill("#where", "json_extract(parameters, '$.f1') >= 1.0")
    page.click("#filter-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 2")
    assert sorted(table_uuids(page)) == sorted(u for u, f in database.f1.items() if f >= 1.0)
    page.fill("#where", "no_such_column > 1")
    page.click("#filter-form button[type=submit]")
    page.wait_for_function("document.getElementById('filter-error').textContent !== ''")
    assert "no such column: no_such_column" in page.locator("#filter-error").inner_text()
    # Polls ("anything written since?") come every 2 s and are answered before the condition
    # is read: the error stands through them (the first one answered used to clear it).
    for _ in range(2):
        with page.expect_response(lambda r: "/api/runs" in r.url and "since=" in r.url):
            pass
    assert "no such column: no_such_column" in page.locator("#filter-error").inner_text()

    assert page.locator('#runs-table thead th[data-key="accuracy"]').count() == 1
    page.click("#columns-menu summary")
    page.uncheck('#columns-panel input[data-key="accuracy"]')
    assert page.locator('#runs-table thead th[data-key="accuracy"]').count() == 0


@pytest.mark.browser
def test_parallel_coordinates_render_and_brushing_filters_the_table(page, server, database):
    open_runs(page, server + "/")
    page.wait_for_selector("#parcoords .parcoords")
    labels = page.eval_on_selector_all(
        "#parcoords .parcoords .axis-title", "nodes => nodes.map(n => n.textContent)"
    )
    assert {"n_estimators", "max_depth", "f1", "accuracy"} <= set(labels)
    # Drag along the top of the f1 axis, as a user brushes it.
    axis = page.locator("#parcoords .parcoords .axis-brush .background").nth(labels.index("f1"))
    box = axis.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 3)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.25, steps=10)
    page.mouse.up()
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length < 8")
    shown = table_uuids(page)
    assert shown and database.failed not in shown
    assert all(database.f1.get(u, 0) >= 0.8 for u in shown)


@pytest.mark.browser
def test_scatter_plots_a_parameter_against_a_value(page, server):
    open_runs(page, server + "/")
    page.select_option("#scatter-x", "n_estimators")
    page.select_option("#scatter-y", "accuracy")
    page.wait_for_selector("#scatter .scatterlayer .point")
    assert page.locator("#scatter .scatterlayer .point").count() == 8
    assert page.locator("#scatter .xtitle").text_content() == "n_estimators"


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> ReadmeDatabase:
    return build_readme_database(tmp_path_factory.mktemp("readme") / "experiments.db")


@pytest.fixture(scope="module")
def readme_server(readme: ReadmeDatabase) -> Iterator[str]:
    with serving(readme.path) as url:
        yield url


#: Per parcoords line, whether plotly can draw it: a finite position on every axis (a NaN
#: anywhere and the line is not drawn), and whether it is in the grey below the colour scale.
DRAWN_LINES = """host => {
  const trace = host._fullData[0];
  const lines = trace.dimensions[0].values.map((_, i) => i);
  const drawn = lines.filter(i => trace.dimensions.every(d => Number.isFinite(d.values[i]))
                                  && Number.isFinite(trace.line.color[i]));
  return {axes: trace.dimensions.map(d => d.label), drawn: drawn.length,
          grey: drawn.filter(i => trace.line.color[i] === trace.line.cmin).length,
          none: trace.dimensions.map(d => (d.ticktext || [])[0])};
}"""


@pytest.mark.browser
def test_every_run_is_drawn_with_none_missing_and_failed_values(page, readme_server, readme):
    open_runs(page, readme_server + "/")
    page.wait_for_selector("#parcoords .parcoords")
    lines = page.locator("#parcoords").evaluate(DRAWN_LINES)
    assert {"max_depth", "criterion", "roc_auc", "oob", "f1"} <= set(lines["axes"])
    assert lines["drawn"] == len(readme.uuids) == 10
    assert lines["grey"] == len(readme.failed)  # failed and crashed: muted, under the others
    by_axis = dict(zip(lines["axes"], lines["none"], strict=True))
    assert by_axis["max_depth"] == by_axis["oob"] == by_axis["roc_auc"] == "None"  # lowest tick
    page.select_option("#scatter-x", "max_depth")
    page.select_option("#scatter-y", "oob")
    page.wait_for_function(
        "document.querySelectorAll('#scatter .scatterlayer .point').length === 10"
    )
    ticks = page.eval_on_selector_all("#scatter .xtick text", "n => n.map(t => t.textContent)")
    assert ticks[0] == "None"


@pytest.mark.browser
def test_the_table_shows_what_differs_first_without_scrolling_at_1400px(
    page, readme_server, readme
):
    open_runs(page, readme_server + "/")
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("node => node.scrollWidth <= node.clientWidth")
    right = wrap.bounding_box()["x"] + wrap.bounding_box()["width"]
    for key in ("f1", "recall", "n_estimators", "max_depth"):
        header = page.locator(f'#runs-table thead th[data-key="{key}"]').bounding_box()
        assert header["x"] + header["width"] <= right, key
    for key in readme.constant:
        assert page.locator(f'#runs-table thead th[data-key="{key}"]').count() == 0
    line = page.locator("#constant-columns").inner_text()
    assert "same in every run" in line and "n_samples = 10000" in line
    assert "dataset = synthetic-classification" in line
    page.click('#runs-table thead th[data-key="f1"]')
    assert table_uuids(page)[0] == readme.uuids[7]  # highest f1 first
    assert page.locator('#runs-table thead th[data-key="f1"]').is_visible()


@pytest.mark.browser
def test_scatter_draws_replicate_group_means_with_error_bars(page, tmp_path):
    import statistics
    import uuid as uuids

    path = tmp_path / "replicates.db"
    scores = {1: [1.0, 1.2, 1.4], 2: [2.0, 2.5, 3.0]}
    with Store(path) as store:
        for alpha, values in scores.items():
            for i, score in enumerate(values):
                store.finish(Record(
                    uuid=uuids.uuid4().hex, created=new_created(), path="fit.py", source="",
                    parameters={"alpha": alpha, "seed": i}, overrides={"alpha": alpha},
                    status="ok", values={"score": score}, replicate=i,
                    replicate_group=f"group-{alpha}",
                ))
    with serving(path) as url:
        open_runs(page, url)
        page.wait_for_selector("#scatter .main-svg")  # the charts come after the table
        page.select_option("#scatter-x", "alpha")
        page.select_option("#scatter-y", "score")
        page.check("#group-means")
        page.wait_for_function(
            "document.getElementById('scatter').data.some(t => t.name === 'group mean ± std')"
        )
        trace = page.evaluate(
            "document.getElementById('scatter').data.find(t => t.name === 'group mean ± std')"
        )
    assert trace["x"] == [1, 2] or trace["x"] == [2, 1]
    means = {x: y for x, y in zip(trace["x"], trace["y"], strict=True)}
    assert means == pytest.approx({a: statistics.fmean(v) for a, v in scores.items()})
    errors = dict(zip(trace["x"], trace["error_y"]["array"], strict=True))
    assert errors == pytest.approx({a: statistics.stdev(v) for a, v in scores.items()})
    assert trace["error_x"]["array"] == [0, 0]


#: The parcoords' lines: per axis label, each line's position.
PARCOORDS_LINES = """host => Object.fromEntries(
  host.data[0].dimensions.map(d => [d.label, Array.from(d.values)])
)"""


@pytest.mark.browser
def test_parallel_coordinates_draw_one_line_per_replicate_group_at_its_means(page, tmp_path):
    import statistics

    path = tmp_path / "replicates.db"
    scores = {1: [1.0, 1.2, 1.4], 2: [2.0, 2.5, 3.0]}
    with Store(path) as store:
        for alpha, values in scores.items():
            for i, score in enumerate(values):
                store.finish(Record(
                    uuid=f"{alpha}{i}" * 4 + "-replicate", created=new_created(), path="fit.py",
                    source="", parameters={"alpha": alpha, "seed": 10 * alpha + i},
                    overrides={"alpha": alpha}, status="ok", values={"score": score},
                    replicate=i, replicate_group=f"group-{alpha}",
                ))
    lines_are = "n => document.getElementById('parcoords').data[0].dimensions[0].values.length == n"
    with serving(path) as url:
        open_runs(page, url)
        page.wait_for_selector("#parcoords .parcoords")
        assert len(page.locator("#parcoords").evaluate(PARCOORDS_LINES)["score"]) == 6
        page.check("#group-means")
        page.wait_for_function(lines_are, arg=2)
        means = page.locator("#parcoords").evaluate(PARCOORDS_LINES)
        by_alpha = {alpha: i for i, alpha in enumerate(means["alpha"])}
        assert sorted(by_alpha) == [1, 2]
        for alpha, values in scores.items():
            assert means["score"][by_alpha[alpha]] == pytest.approx(statistics.fmean(values))
            assert means["seed"][by_alpha[alpha]] == pytest.approx(10 * alpha + 1)

        # Pointing at a line names its group's mean ± std (n) on every axis. Plotly finds the
        # line under the pointer by reading WebGL pixels, which we could not make hit a chosen
        # line in headless Chromium: the test sends the event plotly's parcoords sends.
        tip = page.locator("#parcoords-tip")
        page.locator("#parcoords").evaluate(
            "(host, n) => host.emit('plotly_hover', {curveNumber: n, clientX: 99, clientY: 9})",
            by_alpha[2],
        )
        assert tip.inner_text().splitlines() == [
            "3 runs", "alpha: 2 ± 0 (n=3)", "seed: 21 ± 1 (n=3)", "score: 2.5 ± 0.5 (n=3)",
        ]
        page.locator("#parcoords").evaluate("host => host.emit('plotly_unhover', {})")
        tip.wait_for(state="hidden")

        # Brushing the means keeps whole groups: every replicate of the best group, also its
        # run whose own score (2.0) lies below the range.
        labels = page.eval_on_selector_all(
            "#parcoords .parcoords .axis-title", "nodes => nodes.map(n => n.textContent)"
        )
        axis = page.locator("#parcoords .parcoords .axis-brush .background").nth(
            labels.index("score")
        )
        box = axis.bounding_box()
        x = box["x"] + box["width"] / 2
        # Upwards past the top, so the range ends at the highest mean.
        page.mouse.move(x, box["y"] + box["height"] * 0.25)
        page.mouse.down()
        page.mouse.move(x, box["y"] - 20, steps=10)
        page.mouse.up()
        page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 3")
        assert sorted(table_uuids(page)) == [f"2{i}" * 4 + "-replicate" for i in range(3)]

        page.uncheck("#group-means")
        page.wait_for_function(lines_are, arg=6)
        again = page.locator("#parcoords").evaluate(PARCOORDS_LINES)
        assert sorted(again["score"]) == sorted([*scores[1], *scores[2]])


@pytest.mark.browser
def test_run_page_shows_plots_values_and_environment(page, server, database):
    open_runs(page, server + "/")
    uuid = database.ok[(25, None)]
    page.click(f'tr[data-uuid="{uuid}"] a.uuid')
    page.wait_for_url(f"**/run/{uuid}")
    image = page.locator('figure img[alt="confusion_matrix"]')
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert image.get_attribute("src").startswith("/blob/")
    assert "n_estimators" in page.locator("table.kv").first.inner_text()
    assert page.locator("text=0.800").count() >= 1  # f1 of this run, at 3 decimals


@pytest.mark.browser
def test_run_page_draws_metric_series_and_lists_files(page, tmp_path):
    import sqlite3

    path = tmp_path / "metrics.db"
    record = add_hostile_run(path)
    # The tables a run's printed series and files go to; the UI shows whatever they hold.
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO metrics VALUES (?, 'loss', ?, ?, 0)",
                     [(record.uuid, step, 1 / (step + 1)) for step in range(5)])
    conn.execute("INSERT INTO artifacts VALUES (?, 'model.pkl', 10, 'abc', 0)", (record.uuid,))
    conn.commit()
    conn.close()
    with serving(path) as url:
        page.goto(f"{url}/run/{record.uuid}")
        chart = page.locator("figure:has(figcaption:text-is('loss')) .metric-chart")
        chart.locator(".main-svg").first.wait_for()
        assert chart.evaluate("node => node.data[0].y.length") == 5
        assert "model.pkl" in page.locator("section:has(h2:text-is('Files'))").inner_text()


@pytest.mark.browser
def test_run_page_lists_what_the_run_read(page, tmp_path):
    path = tmp_path / "inputs.db"
    record = Record(
        uuid="1a1a1a1a-inputs", created=new_created(), path="fit.py", source="x = 1\n",
        parameters={}, overrides={}, status="ok",
        inputs=[
            Input("file", "data/train.csv", 12_345, "ab" * 32),
            Input("module", "utils.py", 31, "cd" * 32),
            Input("file", "<b>gone</b>.csv", None, None),
        ],
    )
    with Store(path) as store:
        store.finish(record)
    with serving(path) as url:
        page.goto(f"{url}/run/{record.uuid}")
        section = page.locator("section:has(h2:text-is('Inputs'))")
        rows = section.locator("tr").all_inner_texts()
    assert [row.split("\t") for row in rows] == [
        ["path", "kind", "bytes", "sha256"],
        ["<b>gone</b>.csv", "file", "-", "gone"],  # markup in a path shows as text
        ["data/train.csv", "file", "12,345", "ab" * 6],
        ["utils.py", "module", "31", "cd" * 6],
    ]


@pytest.mark.browser
def test_markup_in_the_data_shows_as_text(page, server):
    open_runs(page, server + "/")
    row = page.locator('tr[data-uuid="5c5c5c5c-hostile"]')
    assert HOSTILE in row.inner_text() and "<b>named</b>" in row.inner_text()
    page.goto(server + "/run/5c5c5c5c")
    body = page.locator("body").inner_text()
    assert HOSTILE in body and 'onerror="window.pwned=3"' in body and f"printed {HOSTILE}" in body
    frame = page.locator('iframe[title="frame"]')
    assert frame.get_attribute("sandbox") == ""  # user HTML: no scripts, no same origin
    assert page.evaluate("window.pwned") is None
    assert page.frame_locator('iframe[title="frame"]').locator("b").inner_text() == "bold"


@pytest.mark.browser
def test_compare_page_shows_plots_side_by_side_and_only_differing_parameters(
    page, server, database
):
    open_runs(page, server + "/")
    a, b = database.ok[(10, 5)], database.ok[(10, None)]
    page.check(f'tr[data-uuid="{a}"] input[type=checkbox]')
    page.check(f'tr[data-uuid="{b}"] input[type=checkbox]')
    page.click("#compare-button")
    page.wait_for_url("**/compare?**")
    rows = page.locator("section:has(h2:text('Parameters that differ')) tr").all_inner_texts()
    differing = rows[1:]  # under the row of run ids
    assert len(differing) == 1 and differing[0].startswith("max_depth")
    images = page.locator("section:has(h2:text-is('confusion_matrix')) img")
    assert images.count() == 2
    assert all(images.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(2))


@pytest.mark.browser
def test_the_table_fills_in_while_a_sweep_writes(page, tmp_path):
    path = tmp_path / "live.db"
    add_hostile_run(path)
    with serving(path) as url:
        open_runs(page, url + "/")
        assert len(table_uuids(page)) == 1
        with Store(path) as store:
            store.finish(Record(uuid="12121212-new", created=new_created(), path="fit.py",
                                source="", parameters={"n": 1}, overrides={}, status="ok",
                                values={"f1": 0.5}))
        page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 2")
        assert "12121212" in page.locator("#runs-table").inner_text()


@pytest.mark.browser
def test_columns_equal_in_every_run_fold_away_as_runs_arrive(page, tmp_path):
    path = tmp_path / "live.db"

    def add(uuid: str, n: int) -> None:
        with Store(path) as store:
            store.finish(Record(uuid=uuid, created=new_created(), path="fit.py", source="",
                                parameters={"n": n, "seed": 0}, overrides={}, status="ok",
                                values={"f1": n / 10}))

    add("31313131-first", 1)
    with serving(path) as url:
        open_runs(page, url + "/")
        assert page.locator('#runs-table thead th[data-key="seed"]').count() == 1  # one run
        add("32323232-second", 2)
        page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 2")
        assert page.locator('#runs-table thead th[data-key="seed"]').count() == 0
        assert "seed = 0" in page.locator("#constant-columns").inner_text()
        page.click("#columns-menu summary")
        page.check('#columns-panel input[data-key="seed"]')  # the user's choice wins
        assert page.locator('#runs-table thead th[data-key="seed"]').count() == 1


# --- the report in a browser -------------------------------------------------------------------


@pytest.mark.browser
def test_report_is_one_file_that_works_offline(page, database, tmp_path):
    output = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, ["report", "-d", str(database.path), "-o", str(output),
              "--compare", database.ok[(10, 5)], "--compare", database.ok[(50, 5)]],
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {output}\n"
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_runs(page, output.as_uri())
    assert len(table_uuids(page)) == 8
    page.wait_for_selector("#parcoords .parcoords")
    assert all(url.startswith(("file:", "data:")) for url in requests), requests

    uuid = database.ok[(25, 5)]
    page.click(f'tr[data-uuid="{uuid}"] a.uuid')
    section = page.locator(f'[id="run-{uuid}"]')
    assert section.is_visible() and not page.locator("#runs-page").is_visible()
    image = section.locator('figure img[alt="confusion_matrix"]')
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")

    page.goto(output.as_uri() + "#run-5c5c5c5c-hostile")
    assert HOSTILE in page.locator('[id="run-5c5c5c5c-hostile"]').inner_text()
    assert page.evaluate("window.pwned") is None
    page.goto(output.as_uri() + "#compare")
    assert page.locator("#compare img").count() >= 2


def test_a_report_keeps_its_compiled_templates_where_it_can_and_is_the_same_without(
    database, tmp_path
):
    # Compiling the templates was ~90 ms of every report and server start.
    cache = tmp_path / "cache"
    cannot = tmp_path / "not-a-folder"
    cannot.write_text("")
    written = []
    for number, home in enumerate([cache, cache, cannot]):
        output = tmp_path / f"report-{number}.html"
        done = cli_process("report", "-d", str(database.path), "-o", str(output),
                           env={"XDG_CACHE_HOME": str(home)})
        assert done.returncode == 0, done.stderr
        written.append(output.read_bytes())
        if number == 0:
            assert list((cache / "ploomber_like" / "templates").iterdir())
    assert written[0] == written[1] == written[2]


@pytest.mark.browser
def test_a_run_jumped_to_in_the_report_shows_its_title_below_the_header(page, database, tmp_path):
    output = SQLiteTracker(database.path).report(tmp_path / "report.html")
    uuid = database.ok[(25, 5)]
    page.set_viewport_size({"width": 1400, "height": 300})  # a run page taller than the window
    page.goto(output.as_uri())
    page.wait_for_selector("#runs-table tbody tr")
    page.click(f'tr[data-uuid="{uuid}"] a.uuid')
    title = page.locator(f'[id="run-{uuid}"] h1')
    title.wait_for()
    # The scroll is smooth: wait until it has stopped before measuring.
    positions = [None, -1]
    deadline = time.monotonic() + 30
    while positions[-1] != positions[-2] and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        positions.append(page.evaluate("window.scrollY"))
    header = page.locator("header.top").bounding_box()
    assert title.bounding_box()["y"] >= header["y"] + header["height"]


@pytest.mark.browser
def test_compare_page_labels_each_value_column_with_its_run(page, server, database):
    a, b = database.ok[(10, 5)], database.ok[(50, None)]
    page.goto(f"{server}/compare?uuid={a}&uuid={b}")
    for title in ("Values", "Parameters that differ"):
        heads = page.locator(f"section:has(h2:text('{title}')) tr").first.inner_text().split()
        assert heads == [a[:8], b[:8]], title


# --- the server over plain HTTP ----------------------------------------------------------------


def test_a_bad_filter_shows_sqlites_message_and_the_condition_only(server):
    import httpx

    answer = httpx.get(f"{server}/api/runs", params={"where": "no_such_column > 1"})
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "no such column: no_such_column (in the condition: no_such_column > 1)"
    )


def test_ui_on_a_busy_port_says_so_and_exits_2(database):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tracker", "ui", "-d", str(database.path), "--port", str(port)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 2
    assert done.stdout == ""  # nothing claims to be serving
    assert done.stderr.startswith(f"error: port {port} on 127.0.0.1 is taken")
    assert done.stderr.endswith("choose another with --port\n") and done.stderr.count("\n") == 1


def test_server_is_read_only_local_and_offline(server, database):
    import httpx

    before = database.path.read_bytes()
    with httpx.Client(base_url=server) as client:
        assert client.post("/api/runs").status_code == 405
        answer = client.get("/api/runs", params={"where": "1); DELETE FROM experiments; --"})
        assert answer.status_code == 400 and "error" in answer.json()
        assert len(client.get("/api/runs").json()["runs"]) == 8
        assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400
        page = client.get("/").text
        assert "http://" not in page.replace(server, "") and "https://" not in page
        assert client.get("/static/plotly.min.js").status_code == 200
        assert client.get("/static/../store.py").status_code == 404
        blob = client.get(f"/run/{database.ok[(10, 5)]}")
        assert blob.status_code == 200 and "script-src 'self'" in blob.headers[
            "content-security-policy"
        ]
        sha = SQLiteTracker(database.path).get("5c5c5c5c")["frame"].sha256
        stored_html = client.get(f"/blob/{sha}")
        assert stored_html.headers["content-security-policy"] == "sandbox"
        assert client.get("/run/zzzz").status_code == 404
        assert client.get("/compare", params={"uuid": database.failed}).status_code == 400
    assert database.path.read_bytes() == before


def test_ui_command_serves_until_stopped(database):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "ui", "-d", str(database.path), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line == f"serving {database.path} on http://127.0.0.1:{port} (Ctrl-C stops)\n"
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.ConnectError):
                assert httpx.get(f"http://127.0.0.1:{port}/api/runs").status_code == 200
                break
            time.sleep(0.05)
        else:
            pytest.fail("tracker ui did not answer in 120 s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ui_command_errors_in_one_line(tmp_path, monkeypatch, capsys):
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "ui", "-d", str(tmp_path / "missing.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: database not found: {tmp_path / 'missing.db'}\n"

    import importlib.util

    real = importlib.util.find_spec
    # Only the extra's absence is simulated: uninstalling it here would break other tests.
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    from ploomber_like.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["ui", "-d", str(tmp_path / "missing.db")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: this command needs uvicorn: pip install 'ploomber-like[ui]'\n"
    )
    assert not (tmp_path / "missing.db").exists()


# --- at scale: one page from the server, charts from a sample -----------------------------------


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More runs than the charts draw: 2,500 logged in one transaction."""
    path = tmp_path_factory.mktemp("large") / "large.db"
    SQLiteTracker(path).insert_many(
        [{"n_estimators": i % 50, "f1": (i * 7919 % 2500) / 2500} for i in range(2500)]
    )
    return path


def test_api_runs_serves_one_page_sorted_and_brushed_by_the_server(large: Path):
    import httpx

    from ploomber_like.ui.views import CHART_SAMPLE, PAGE_SIZE

    with serving(large) as url, httpx.Client(base_url=url, timeout=120) as client:
        first = client.get("/api/runs", params={"sort": "f1"}).json()
        assert first["total"] == 2500 and not first["complete"]
        assert len(first["runs"]) == PAGE_SIZE
        f1 = [run["cells"]["f1"]["v"] for run in first["runs"]]
        assert f1 == sorted(f1, reverse=True) and f1[0] == 2499 / 2500
        second = client.get("/api/runs", params={"sort": "f1", "offset": PAGE_SIZE}).json()
        assert second["runs"][0]["cells"]["f1"]["v"] == (2499 - PAGE_SIZE) / 2500
        assert not {r["uuid"] for r in first["runs"]} & {r["uuid"] for r in second["runs"]}
        ascending = client.get("/api/runs", params={"sort": "f1", "asc": "1"}).json()
        assert ascending["runs"][0]["cells"]["f1"]["v"] == 0

        # The charts draw a bounded sample, and say so.
        assert len(first["sample"]) <= CHART_SAMPLE < 2500 and first["sampled"]
        assert set(first["sample"][0]["cells"]) >= {"f1", "n_estimators"}

        brushed = client.get(
            "/api/runs", params={"sort": "f1", "brush": '{"f1": [[0.1, 0.2]]}'}
        ).json()
        assert brushed["total"] == 251
        assert all(0.1 <= run["cells"]["f1"]["v"] <= 0.2 for run in brushed["runs"])
        filtered = client.get(
            "/api/runs", params={"where": "json_extract(parameters, '$.n_estimators') = 7"}
        ).json()
        assert filtered["complete"] and filtered["total"] == len(filtered["runs"]) == 50

        # Sorting, paging and brushing a paged table keeps the charts: no sample to redraw.
        table_only = client.get("/api/runs", params={"sort": "f1", "charts": "0"}).json()
        assert "sample" not in table_only and table_only["runs"] == first["runs"]

        # Pages after the first are read after the last run of the page before: the same rows
        # as an offset would give, and a deep page the same way.
        assert first["next"] == first["runs"][-1]["uuid"]
        after = client.get("/api/runs", params={
            "sort": "f1", "after": first["next"], "offset": PAGE_SIZE, "charts": "0",
        }).json()
        assert after["runs"] == second["runs"] and after["offset"] == PAGE_SIZE
        every = [run.uuid for run in SQLiteTracker(large).runs(sort="f1")]
        deep = client.get("/api/runs", params={"sort": "f1", "after": every[2399]}).json()
        assert [run["uuid"] for run in deep["runs"]] == every[2400:]
        assert deep["next"] is None and not deep["complete"]
        gone = client.get("/api/runs", params={"after": "no-such-run"})
        assert gone.status_code == 400 and "no-such-run" in gone.json()["error"]

        bad = client.get("/api/runs", params={"brush": '{"nope": [[0, 1]]}'})
        assert bad.status_code == 400 and "nope" in bad.json()["error"]
        # A poll about an unchanged database is answered without reading it.
        again = client.get("/api/runs", params={"since": first["version"]}).json()
        assert again == {"unchanged": True, "version": first["version"]}


@pytest.mark.browser
def test_a_large_database_pages_its_table_and_samples_its_charts(page, large: Path):
    with serving(large) as url:
        open_runs(page, url + "/")
        assert page.locator("#run-count").inner_text() == "2500 runs"
        assert len(table_uuids(page)) == 100
        page.wait_for_selector("#parcoords .parcoords")
        assert "sample of" in page.locator("#chart-note").inner_text()
        first = table_uuids(page)
        page.click("#pager-next")
        page.wait_for_function(
            f"() => document.querySelector('#runs-table tbody tr').dataset.uuid !== '{first[0]}'"
        )
        assert not set(table_uuids(page)) & set(first)
        assert page.locator("#pager-text").inner_text() == "101\u2013200 of 2500"
        page.click('#runs-table thead th[data-key="f1"]')
        best = SQLiteTracker(large).runs(sort="f1", limit=1)[0].uuid
        page.wait_for_function(
            f"() => document.querySelector('#runs-table tbody tr').dataset.uuid === '{best}'"
        )
        assert page.locator("#pager-text").inner_text() == "1\u2013100 of 2500"

        # Brushing the top of the f1 axis asks the server for the runs inside, all of them.
        page.evaluate("window.scrollTo(0, 0)")  # the pager scrolled the charts away
        _, brushed = brush_top_of_axis(page, "f1", "2500 runs")
        assert 100 < brushed < 2500
        # Still sorted by f1: the first row is the best inside the range, near the top.
        assert table_uuids(page)[0] in {run.uuid for run in SQLiteTracker(large).runs(
            sort="f1", limit=100
        )}


def brush_top_of_axis(page, key: str, count_before: str) -> tuple[int, int]:
    """Drag a brush over the top quarter of the parallel coordinates' ``key`` axis; the axis's
    index and the number of runs the table then counts (once it no longer says
    ``count_before``)."""
    labels = page.eval_on_selector_all(
        "#parcoords .parcoords .axis-title", "nodes => nodes.map(n => n.textContent)"
    )
    index = labels.index(key)
    box = page.locator("#parcoords .parcoords .axis-brush .background").nth(index).bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 3)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.25, steps=10)
    page.mouse.up()
    page.wait_for_function(
        f"document.getElementById('run-count').textContent !== {count_before!r}"
    )
    return index, int(page.locator("#run-count").inner_text().split()[0])


#: Counts the draws of the parcoords' line layers (plotly's, bound to their canvases) and notes
#: how many there had been when the table's rows first changed.
COUNT_LINE_DRAWS = """host => {
  window.lineDraws = 0;
  window.drawsAtTable = null;
  host.querySelectorAll("canvas").forEach(canvas => {
    const layer = canvas.__data__ && canvas.__data__.lineLayer;
    if (!layer) return;
    const render = layer.render;
    layer.render = function () { window.lineDraws += 1; return render.apply(this, arguments); };
  });
  new MutationObserver(() => {
    if (window.drawsAtTable === null) window.drawsAtTable = window.lineDraws;
  }).observe(document.querySelector("#runs-table tbody"), { childList: true });
  return host.querySelectorAll("canvas").length;
}"""


@pytest.mark.browser
def test_a_brush_shows_the_servers_rows_before_the_chart_draws_its_lines_again(page, large: Path):
    import re

    with serving(large) as url:
        open_runs(page, url + "/")
        # Drawn after the scatter: the charts are settled.
        page.wait_for_selector("#scatter .scatterlayer .point")
        page.wait_for_selector("#parcoords .parcoords")
        # The chart draws the sample its note says it draws.
        note = page.locator("#chart-note").inner_text()
        drawn = int(re.search(r"sample of (\d+) of the runs", note).group(1))
        parcoords = page.locator("#parcoords")
        assert parcoords.evaluate("host => host.data[0].dimensions[0].values.length") == drawn
        assert 100 < drawn < 2500
        assert parcoords.evaluate(COUNT_LINE_DRAWS) >= 2

        axis, brushed = brush_top_of_axis(page, "f1", "2500 runs")
        # The server's answer: every run inside the range, not only the drawn ones.
        assert 100 < brushed < 2500
        low, high = parcoords.evaluate(
            f"host => host.data[0].dimensions[{axis}].constraintrange"
        )
        every = SQLiteTracker(large).runs(where=f"json_extract(parameters, '$.f1') BETWEEN {low} "
                                                f"AND {high}")
        assert brushed == len(every)
        # No line was drawn while brushing nor before the rows showed; then the lines are drawn
        # again, with the brush.
        assert page.evaluate("window.drawsAtTable") == 0
        page.wait_for_function("window.lineDraws > 0")


def test_the_runs_page_serves_its_first_rows_in_its_html(large: Path):
    import httpx

    from ploomber_like.ui.views import PAGE_SIZE

    newest = [run.uuid for run in SQLiteTracker(large).runs(limit=PAGE_SIZE + 1)]
    with serving(large) as url, httpx.Client(base_url=url, timeout=120) as client:
        html = client.get("/").text
        assert '<span class="muted" id="run-count">2500 runs</span>' in html
        for uuid in newest[:PAGE_SIZE]:
            assert f'<tr data-uuid="{uuid}">' in html
        assert newest[PAGE_SIZE] not in html
        # plotly.js is asked for only when a chart is drawn, after the table.
        assert "plotly.min.js" not in html
        filtered = client.get("/", params={"where": "json_extract(parameters, '$.f1') >= 0.998"})
        assert filtered.text.count("<tr data-uuid=") == 5
        bad = client.get("/", params={"where": "no_such_column = 1"})
        assert bad.status_code == 200 and "<tr data-uuid=" not in bad.text


@pytest.mark.browser
def test_a_paged_table_goes_back_and_forth_and_keeps_its_sort(page, large: Path):
    every = [run.uuid for run in SQLiteTracker(large).runs(sort="f1")]
    with serving(large) as url:
        open_runs(page, url + "/")
        page.click('#runs-table thead th[data-key="f1"]')
        first_row = "() => document.querySelector('#runs-table tbody tr').dataset.uuid"
        page.wait_for_function(f"{first_row} === '{every[0]}'")
        for start in (100, 200):
            page.click("#pager-next")
            page.wait_for_function(f"{first_row} === '{every[start]}'")
        assert table_uuids(page) == every[200:300]
        assert page.locator("#pager-text").inner_text() == "201\u2013300 of 2500"
        page.click("#pager-previous")
        page.wait_for_function(f"{first_row} === '{every[100]}'")
        assert page.locator("#pager-text").inner_text() == "101\u2013200 of 2500"


def test_a_report_of_many_runs_holds_the_most_recent_and_says_how_many_it_left_out(
    tmp_path: Path,
):
    from ploomber_like.ui.pages import REPORT_RUN_PAGES, REPORT_TABLE_RUNS

    path = tmp_path / "many.db"
    total = REPORT_TABLE_RUNS + 50
    tracker = SQLiteTracker(path)
    tracker.insert_many([{"f1": i / total} for i in range(total)])
    newest = [run.uuid for run in tracker.runs(limit=REPORT_TABLE_RUNS + 1)]
    html = tracker.report(tmp_path / "report.html").read_text(encoding="utf-8")
    assert (
        f"This report holds the {REPORT_TABLE_RUNS} most recent of {total} runs (50 left out), "
        f"and the pages of the {REPORT_RUN_PAGES} most recent."
    ) in html
    pages = [uuid for uuid in newest if f'id="run-{uuid}"' in html]
    assert pages == newest[:REPORT_RUN_PAGES]
    assert all(uuid in html for uuid in newest[:REPORT_TABLE_RUNS])
    assert newest[REPORT_TABLE_RUNS] not in html
