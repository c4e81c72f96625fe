"""Figures the way Jupyter and ``python`` show them, and no value that differs on every run.

Real kernels on files written for the purpose: a percent-format script (Jupyter's rule: every
figure open when a cell ends is recorded, then closed), the same drawing as a plain script
(``python``'s: a figure built over blank-line blocks is one figure), a notebook with a cell
that does not parse, ``sys.exit(0)`` and a failing import.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import nbformat
import pytest
from conftest import cli, run, stored_values, write_script
from nbformat.v4 import new_code_cell, new_notebook
from tracking_databases import SOURCE

from ploomber_like import SQLiteTracker, track_execution
from ploomber_like.record import Record, new_created
from ploomber_like.store import Store

pytestmark = pytest.mark.kernel

# Each cell one case of the list (issue 18).
PERCENT = """
# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import RocCurveDisplay

# %% A grid of subplots filled in a loop, no title: `figure`.
fig, axs = plt.subplots(2, 2)
for i, ax in enumerate(axs.flat):
    ax.plot(np.arange(5) * i)

# %% One figure per colormap, drawn in a loop: named after their axes' titles.
for cmap in ["viridis", "plasma"]:
    fig, ax = plt.subplots()
    ax.imshow(np.eye(3), cmap=cmap)
    ax.set_title(cmap)
plt.show()

# %% A display built by an assignment, with a suptitle.
X, y = make_classification(random_state=0)
model = LogisticRegression().fit(X, y)
display = RocCurveDisplay.from_estimator(model, X, y)
display.figure_.suptitle("roc of the model");

# %% An unassigned ax.hist (its value nests the bars), then artists that are no results.
fig, ax = plt.subplots()
ax.hist(np.arange(10))
ax.set_title("counts")
ax.legend(["bars"])

# %% An assigned hist2d without a title: `figure_2`.
counts = plt.hist2d(np.arange(10), np.arange(10))

# %% Default reprs: alone or in a list they are not results; inside more, the address goes.
thing = object()
thing
[thing, thing]
{"thing": thing}

# %% Jupyter closed the first figure when its cell ended: the title makes a second one.
plt.plot([1, 2, 3])

# %%
plt.title("three points")
"""

#: The same last two cells as a plain script: `python` draws one figure.
PLAIN = """
import matplotlib.pyplot as plt

plt.plot([1, 2, 3])

plt.title("three points")

fig, axs = plt.subplots(1, 2)

for ax in axs:
    ax.plot([3, 2, 1])

plt.show()

plt.plot([0, 1])
"""


def blob(database, reference):
    conn = sqlite3.connect(database)
    try:
        (data,) = conn.execute(
            "SELECT data FROM blobs WHERE sha256 = ?", (reference["$blob"],)
        ).fetchone()
    finally:
        conn.close()
    return bytes(data)


def image_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


@pytest.fixture(scope="module")
def percent(tmp_path_factory):
    return run(tmp_path_factory.mktemp("percent"), PERCENT, name="gallery.py")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return run(tmp_path_factory.mktemp("plain"), PLAIN, name="plain.py")


def is_png(value) -> bool:
    return isinstance(value, dict) and value.get("mimetype") == "image/png"


def test_percent_script_runs(percent):
    assert percent.record.status == "ok", percent.record.error


def test_figures_drawn_in_loops_are_recorded(percent):
    assert is_png(percent.stored["figure"])  # the grid
    assert is_png(percent.stored["viridis"])  # one figure per colormap, shown by plt.show()
    assert is_png(percent.stored["plasma"])


def test_a_figure_built_by_an_assignment_is_named_by_its_suptitle(percent):
    assert is_png(percent.stored["roc of the model"])


def test_unassigned_ax_hist_records_its_figure_not_its_value(percent):
    assert is_png(percent.stored["hist"])
    assert "counts" not in percent.stored  # the figure has a name already: `hist`


def test_an_assigned_figure_without_a_title_is_figure_2(percent):
    assert is_png(percent.stored["figure_2"])


def test_figure_keys_follow_drawing_order(percent):
    figures = [key for key, value in percent.stored.items() if is_png(value)]
    expected = [
        "figure", "viridis", "plasma", "roc of the model", "hist", "figure_2", "plot",
        "three points",  # opened by `plt.title`, which names no figure: its title does
    ]
    assert figures == expected


def test_artists_and_default_reprs_are_not_recorded(percent):
    for key in ("set_title", "legend", "suptitle", "thing", "[thing, thing]"):
        assert key not in percent.stored
    assert percent.stored['{"thing": thing}'] == "{'thing': <object>}"
    conn = sqlite3.connect(percent.database)
    (text,) = conn.execute("SELECT parameters FROM experiments").fetchone()
    assert " at 0x" not in text


def test_percent_cells_close_their_figures_as_jupyter_does(percent):
    # `plt.title` in the next cell draws on a new, empty figure, as in Jupyter.
    assert is_png(percent.stored["plot"]) and is_png(percent.stored["three points"])


def test_plain_script_keeps_a_figure_whole_across_blank_lines(plain):
    assert plain.record.status == "ok", plain.record.error
    figures = {key: value for key, value in plain.stored.items() if is_png(value)}
    # The titled line, under its first key; the pair of subplots filled in the next block;
    # after plt.show() (which ends the figures shown, as a window does), a new figure.
    assert list(figures) == ["plot", "figure", "plot_2"]
    assert "title" not in plain.stored
    # Each figure is stored once, as the script left it: no earlier rendering is kept.
    conn = sqlite3.connect(plain.database)
    (count,) = conn.execute("SELECT count(*) FROM blobs WHERE mimetype = 'image/png'").fetchone()
    assert count == 3


def test_plain_script_figure_is_the_one_python_leaves(plain, tmp_path):
    # Drawn in one block, the same figure renders to the same PNG.
    script = 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title("three points")\n'
    whole = run(tmp_path, script)
    assert blob(plain.database, plain.stored["plot"]) == blob(whole.database, whole.stored["plot"])


def test_identical_runs_do_not_differ(tmp_path):
    script = """
    import matplotlib.pyplot as plt

    ax = plt.gca()
    ax.plot([1, 2])
    ax.legend(["a"])

    class Model:
        pass

    Model()
    [Model()]
    score = 0.5
    score
    """
    for _ in range(2):
        run(tmp_path, script)
    database = str(tmp_path / "runs.db")
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "compare", "--only-changed", "-d", database],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Model" not in done.stdout and "legend" not in done.stdout
    assert "score" not in done.stdout  # the same in both runs


def test_compare_ignores_address_only_differences_in_stored_values(tmp_path):
    # Runs recorded before addresses were dropped still hold them.
    database = tmp_path / "old.db"
    with Store(database) as store:
        for i, address in enumerate(("0x7f00aa", "0x7f00bb")):
            store.finish(
                Record(
                    uuid=f"{i:02d}000000-run", created=new_created(), path="fit.py",
                    source=SOURCE, parameters={}, overrides={}, status="ok",
                    values={"legend": f"<matplotlib.legend.Legend at {address}>", "f1": 0.5 + i},
                )
            )
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "compare", "--only-changed", "-d", str(database)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "f1" in done.stdout and "legend" not in done.stdout


def test_notebook_fails_at_the_cell_jupyter_fails_at(tmp_path):
    # papermill's broken1.ipynb: the Python 2 print is never reached.
    notebook = new_notebook(
        cells=[
            new_code_cell('print("We\'re good.")\nx = 1\nx'),
            new_code_cell("assert False"),
            new_code_cell('print "We\'re not good."'),
        ]
    )
    path = tmp_path / "broken1.ipynb"
    nbformat.write(notebook, path)
    record = track_execution(path, database=tmp_path / "runs.db", quiet=True, keep_warm=False)
    assert record.status == "failed"
    assert record.error.type == "AssertionError"
    assert record.error.location == f"{path}:cell 2, line 1"
    assert record.values == {"x": 1}
    assert "We're good." in record.stdout


def test_notebook_cell_that_does_not_parse_fails_when_reached(tmp_path):
    notebook = new_notebook(cells=[new_code_cell("x = 1\nx"), new_code_cell('print "py2"')])
    path = tmp_path / "py2.ipynb"
    nbformat.write(notebook, path)
    record = track_execution(path, database=tmp_path / "runs.db", quiet=True, keep_warm=False)
    assert record.status == "failed"
    assert record.error.type == "SyntaxError"
    assert record.error.group == 1
    assert record.values == {"x": 1}


def test_sys_exit_0_prints_no_warning(tmp_path):
    path = write_script(tmp_path, "import sys\n\nx = 1\nx\n\nsys.exit(0)\n\ny = 2\ny\n")
    done = subprocess.run(
        [sys.executable, "-m", "tracker", str(path), "-d", str(tmp_path / "runs.db")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "To exit" not in done.stdout + done.stderr
    conn = sqlite3.connect(tmp_path / "runs.db")
    (stderr,) = conn.execute("SELECT stderr FROM experiments").fetchone()
    assert "To exit" not in (stderr or "")


def test_failing_import_shows_only_the_users_frames(track):
    tracked = track("import os\n\nimport no_such_module_for_this_test\n")
    error = tracked.record.error
    assert error.type == "ModuleNotFoundError"
    assert error.location.endswith("script.py:3")
    assert "capture/kernel.py" not in error.traceback
    assert "record_then_import" not in error.traceback


# Found on real files (issue 18's corpus): what the gallery scripts above did not show.
CORPUS_CASES = """
# %%
import re

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression

# %% Reprs that carry an address but are no default repr: NumPy's generators, in an estimator.
rng = np.random.default_rng(0)
rng
np.random.RandomState(0)
LogisticRegression(random_state=np.random.RandomState(0))
str(re.compile)

# %% A figure decorated before anything draws on it keeps its title as key, not `set_title`.
fig, ax = plt.subplots()
for height in (1, 2):
    bars = ax.bar([height], [height])
ax.set_title("penguins")
ax.legend(["bars"])

# %% The same with a suptitle set through pyplot.
fig, axs = plt.subplots(2)
plt.suptitle("stacked")
axs[0].set_xlabel("x")
"""


@pytest.fixture(scope="module")
def corpus_cases(tmp_path_factory):
    return run(tmp_path_factory.mktemp("corpus"), CORPUS_CASES, name="cases.py")


def test_no_value_carries_an_address(corpus_cases):
    assert corpus_cases.record.status == "ok", corpus_cases.record.error
    conn = sqlite3.connect(corpus_cases.database)
    (text,) = conn.execute("SELECT parameters FROM experiments").fetchone()
    html = [bytes(data).decode() for (data,) in conn.execute(
        "SELECT data FROM blobs WHERE mimetype = 'text/html'"
    )]
    assert not re.search(r" at 0x[0-9a-fA-F]+", text + "".join(html))
    assert corpus_cases.stored["rng"] == "Generator(PCG64)"
    assert corpus_cases.stored["RandomState"] == "RandomState(MT19937)"
    assert corpus_cases.stored["str"] == "<function compile>"  # a string the file built


def test_decorating_calls_leave_a_figure_its_title(corpus_cases):
    figures = [key for key, value in corpus_cases.stored.items() if is_png(value)]
    assert figures == ["penguins", "stacked"]
    for key in ("set_title", "legend", "suptitle", "set_xlabel"):
        assert key not in corpus_cases.stored


def test_a_script_sees_the_command_line_and_docstring_python_gives_it(tmp_path):
    # `python script.py` leaves sys.argv == [script]; a kernel's own arguments (`-f
    # kernel.json`) made argparse fail. Gallery scripts start with `print(__doc__)`, which
    # printed IPython's text for its interactive namespace when the docstring was a block of
    # its own.
    path = write_script(
        tmp_path,
        '"""Plot a sine.\n\nMore words."""\n\nimport argparse\nimport sys\n\nprint(__doc__)\n'
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--n', type=int, default=3)\nargs = parser.parse_args()\n\n"
        "n = args.n\nn\nargv = sys.argv\nargv\n",
    )
    done = cli(str(path), "-d", str(tmp_path / "runs.db"), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (values,) = stored_values(tmp_path / "runs.db")
    assert values["n"] == 3
    assert values["argv"] == [str(path)]
    (recorded,) = SQLiteTracker(tmp_path / "runs.db").runs()
    assert recorded.stdout.startswith("Plot a sine.\n\nMore words.\n")


@pytest.mark.parametrize(
    ("statement", "status"),
    [("exit()", "ok"), ("quit()", "ok"), ("exit(1)", "failed"), ("sys.exit(False)", "ok"),
     ("__import__('os')._exit(0)", "ok")],
)
def test_a_script_ends_where_python_ends_it(track, statement, status):
    tracked = track(f"import sys\n\nx = 1\nx\n\n{statement}\n\ny = 2\ny\n")
    assert tracked.record.status == status
    assert tracked.record.values == {"x": 1}  # nothing after it ran
