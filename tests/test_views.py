"""Views of stored runs are safe and bounded whatever a run stored: text is escaped in every
HTML view, long values are cut, reprs show once in Jupyter, and exports never follow links."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from conftest import write_script
from nbclient import NotebookClient

from ploomber_like import ExportError, SQLiteTracker, track_execution
from ploomber_like.cli import cli

INJECTION = "<img src=x onerror=alert(2)>"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding a real run that showed HTML-looking text, plus an image stored
    inline the way sklearn-evaluation stores figures."""
    folder = tmp_path_factory.mktemp("hostile")
    script = write_script(folder, f"img = {INJECTION!r}\nimg\n\nlong = 'x' * 50_000\nlong\n")
    track_execution(script, database=folder / "runs.db", quiet=True)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really").decode()
    SQLiteTracker(folder / "runs.db").insert(
        "inline", {"img": f'<img src="data:image/png;base64,{png}"></img>'}
    )
    return folder / "runs.db"


def tracked_run(tracker: SQLiteTracker):
    return next(run for run in tracker.runs() if run.source_path)


QUERY = "SELECT uuid, json_extract(parameters, '$.img') AS img FROM experiments ORDER BY uuid"


@pytest.mark.kernel
def test_html_looking_text_is_escaped_in_every_html_view(hostile):
    tracker = SQLiteTracker(hostile)
    results = tracker.query(QUERY, as_frame=False, render_plots=True)
    run = tracked_run(tracker)
    page = CliRunner().invoke(cli, ["query", QUERY, "-d", str(hostile), "-f", "html"]).output
    views = {
        "results": results._repr_html_(),
        "tabs": results.get("img")._repr_html_(),
        "run": tracker.get(run.uuid)._repr_html_(),
        "tracker": tracker._repr_html_(),
        "cli": page,
    }
    for name, view in views.items():
        assert INJECTION not in view, name
        assert "onerror=alert(2)&gt;" in view, name


@pytest.mark.kernel
def test_only_a_strict_inline_data_image_is_shown_as_an_image(hostile, tmp_path):
    tracker = SQLiteTracker(hostile)
    page = tracker.query(QUERY, as_frame=False, render_plots=True)._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == 1
    # the tag is rebuilt from the decoded bytes, never passed on as stored
    assert "</img>" not in page
    lookalike = '<img src="data:image/png;base64,AAAA" onload="alert(1)">'
    tracker = SQLiteTracker(tmp_path / "other.db")
    tracker.insert("lookalike", {"img": lookalike})
    page = tracker.query(QUERY, as_frame=False, render_plots=True)._repr_html_()
    assert 'onload="alert(1)"' not in page and "onload=&quot;alert(1)&quot;" in page


@pytest.mark.kernel
def test_long_values_are_cut_in_every_view(hostile):
    tracker = SQLiteTracker(hostile)
    run = tracked_run(tracker)
    assert len(run["long"].text) == 50_000  # the value itself is whole, out of line
    results = tracker.query(
        "SELECT uuid, json_extract(parameters, '$.long') AS long FROM experiments",
        as_frame=False,
    )
    ls = CliRunner().invoke(cli, ["ls", "-d", str(hostile)]).output
    show = CliRunner().invoke(cli, ["show", run.uuid, "-d", str(hostile)]).output
    for view in (repr(results), results._repr_html_(), repr(run), run._repr_html_(),
                 repr(tracker), tracker._repr_html_(), ls, show):
        assert len(view) < 20_000
        # shown, cut: in 80 columns ls cuts the pair to its column with an ellipsis
        assert "x" * 20 in view or ("x" * 10 + "…" in view and view is ls)


@pytest.mark.kernel
def test_text_views_show_uuids_shortened_html_in_full(hostile):
    tracker = SQLiteTracker(hostile)
    uuid = tracked_run(tracker).uuid
    # The tracker's own repr shows them whole, as sklearn-evaluation's does.
    assert uuid in repr(tracker)
    assert uuid[:8] in repr(tracker.query(QUERY, as_frame=False))
    assert uuid not in repr(tracker.query(QUERY, as_frame=False))
    assert uuid in tracker._repr_html_()


@pytest.mark.kernel
def test_reprs_display_once_in_jupyter(hostile, monkeypatch):
    """Inside a kernel, rich must not display the text table itself: one output per cell."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from ploomber_like import SQLiteTracker\n"
            f"tracker = SQLiteTracker({str(hostile)!r})\ntracker"
        ),
        nbformat.v4.new_code_cell(f"tracker.query({QUERY!r}, as_frame=False)"),
        nbformat.v4.new_code_cell("text = repr(tracker)"),
    ]
    # the kernel imports this tree's ploomber_like
    paths = [str(ROOT), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    for cell in notebook.cells[:2]:
        assert [o["output_type"] for o in cell.outputs] == ["execute_result"]
        assert {"text/html", "text/plain"} <= set(cell.outputs[0]["data"])
    assert notebook.cells[2].outputs == []


def test_export_never_writes_through_a_link_and_shortens_long_keys(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    tracker = SQLiteTracker(tmp_path / "runs.db")
    long_key = "k" * 300
    tracker.insert("run", {"fig": Figure(), long_key: Figure()})
    run = tracker.get("run")
    out = tmp_path / "out"
    written = run.export(out)
    assert [p.parent for p in written] == [out, out]
    assert all(len(p.name.encode()) <= 130 for p in written)
    assert run.export(out) == written  # the same names every time

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "fig.png").unlink()
    (out / "fig.png").symlink_to(victim)
    with pytest.raises(ExportError, match="symbolic link"):
        run.export(out)
    assert victim.read_text() == "keep me"
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "show", "run", "-d", "runs.db", "--export", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: not writing through")
    assert victim.read_text() == "keep me"


def execute_in_kernel(cells: list[str], monkeypatch, cwd: Path) -> list:
    """Run ``cells`` as a notebook in a real kernel (importing this tree); returns the cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    paths = [str(ROOT), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook.cells


@pytest.mark.kernel
def test_compare_and_diff_show_once_as_html_in_jupyter(hostile, monkeypatch, tmp_path):
    tracker = SQLiteTracker(hostile)
    a, b = (run.uuid for run in tracker.runs())
    cells = execute_in_kernel([
        "from ploomber_like import SQLiteTracker\n"
        f"tracker = SQLiteTracker({str(hostile)!r})",
        "tracker.compare()",
        f"tracker.diff({a!r}, {b!r})",
        f"text = repr(tracker.compare())\ndiff = repr(tracker.diff({a!r}, {b!r}))",
    ], monkeypatch, tmp_path)
    for cell in cells[1:3]:
        assert [o["output_type"] for o in cell.outputs] == ["execute_result"], cell.outputs
        assert {"text/html", "text/plain"} <= set(cell.outputs[0]["data"])
    assert "<table" in cells[2].outputs[0]["data"]["text/html"]
    assert cells[3].outputs == []


@pytest.mark.kernel
def test_a_sweep_in_jupyter_shows_progress_without_ipywidgets(monkeypatch, tmp_path):
    script = write_script(tmp_path, "# parameters\nn = 1\n\nscore = n * 2\nscore\n")
    cells = execute_in_kernel([
        "import warnings\nwarnings.simplefilter('always')\n"
        "from ploomber_like import track_grid\n"
        f"summary = track_grid({str(script)!r}, {{'n': [1, 2, 3]}}, "
        f"database={str(tmp_path / 'sweep.db')!r})",
        f"from ploomber_like import track_execution\n"
        f"record = track_execution({str(script)!r}, database={str(tmp_path / 'one.db')!r})",
    ], monkeypatch, tmp_path)
    for cell in cells:
        # rich shows a console's stderr in Jupyter as display_data: look at every output.
        text = "".join(o.get("text", "") + str(o.get("data", "")) for o in cell.outputs)
        assert "UserWarning" not in text and "ipywidgets" not in text, text
    shown = [o for o in cells[0].outputs if o["output_type"] == "display_data"]
    progress = [o for o in shown if "3/3" in o["data"].get("text/plain", "")]
    assert progress, cells[0].outputs  # the bar, updated in place to its end
