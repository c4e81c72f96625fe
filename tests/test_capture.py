"""Each row of the capture contract (DESIGN.md), checked on one real run of a general script."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import run

from ploomber_like.capture.kernel import expression_key
from ploomber_like.capture.outputs import StreamText, cap_text
from ploomber_like.capture.protocol import cut_marker, split_stream

# One group per contract row, so each row is checked in the situation it describes.
SCRIPT = '''
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.metrics import ConfusionMatrixDisplay

# parameters
n = 3
label = "default"

accuracy = 0.5
accuracy

a = 1
b = "two"
a
b


def confusion_matrix(y, p):
    fig, ax = plt.subplots()
    ax.imshow(metrics.confusion_matrix(y, p))
    return ax


confusion_matrix([0, 1, 1], [0, 1, 0])

metrics.f1_score([0, 1, 1], [0, 1, 0])

print("printed, not a value")
def returns_none():
    return None
returns_none()

hidden = 41
hidden;

_ = hidden + 1
assigned = hidden + 2


def roc():
    return 0.9


roc()
roc()

ConfusionMatrixDisplay.from_predictions([0, 1, 1], [0, 1, 0])

ConfusionMatrixDisplay.from_predictions([0, 1, 1], [1, 1, 0])

np_float = np.float64(0.25)
np_int = np.int64(7)
np_array = np.arange(3)
pd_scalar = pd.Series([1.5, 2.5]).sum()
pd_time = pd.Timestamp("2024-01-02")
frame = pd.DataFrame({"col": [1, 2]})
np_float
np_int
np_array
pd_scalar
pd_time
frame
matplotlib.get_backend()
'''


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    return run(tmp_path_factory.mktemp("capture"), SCRIPT, {"n": 5})


@pytest.mark.kernel
def test_run_is_ok(tracked):
    assert tracked.record.status == "ok", tracked.record.error
    assert tracked.row["status"] == "ok"


@pytest.mark.kernel
def test_bare_name_is_recorded_with_its_value(tracked):
    assert tracked.stored["accuracy"] == 0.5


@pytest.mark.kernel
def test_every_bare_name_of_a_group_is_recorded(tracked):
    assert tracked.stored["a"] == 1
    assert tracked.stored["b"] == "two"


@pytest.mark.kernel
def test_unassigned_call_drawing_a_figure_is_a_png_blob(tracked):
    ref = tracked.stored["confusion_matrix"]
    assert ref["mimetype"] == "image/png"  # the figure, not the `<Axes ...>` text
    conn = sqlite3.connect(tracked.database)
    data, mimetype = conn.execute(
        "SELECT data, mimetype FROM blobs WHERE sha256 = ?", (ref["$blob"],)
    ).fetchone()
    assert mimetype == "image/png"
    assert bytes(data).startswith(b"\x89PNG")


@pytest.mark.kernel
def test_metric_call_is_recorded_under_the_function_name(tracked):
    assert tracked.stored["f1_score"] == pytest.approx(2 / 3)


@pytest.mark.kernel
def test_print_and_none_results_are_not_values_but_stdout_is_kept(tracked):
    assert "print" not in tracked.stored
    assert "returns_none" not in tracked.stored
    assert "printed, not a value" in tracked.row["stdout"]


@pytest.mark.kernel
def test_trailing_semicolon_hides_the_value(tracked):
    assert "hidden" not in tracked.stored


@pytest.mark.kernel
def test_assignments_are_not_recorded(tracked):
    assert "_" not in tracked.stored
    assert "assigned" not in tracked.stored


@pytest.mark.kernel
def test_parameters_cell_values_are_recorded_with_defaults(tracked):
    assert tracked.record.parameters == {"n": 5, "label": "default"}
    assert tracked.row["parameter_keys"] == ["n", "label"]
    assert tracked.row["overrides"] == {"n": 5}


@pytest.mark.kernel
def test_same_key_twice_keeps_both(tracked):
    assert tracked.stored["roc"] == 0.9
    assert tracked.stored["roc_2"] == 0.9


@pytest.mark.kernel
def test_display_objects_are_captured_as_their_figures(tracked):
    # ConfusionMatrixDisplay is not an Artist: the figure it opened is attributed to it.
    first, second = tracked.stored["from_predictions"], tracked.stored["from_predictions_2"]
    assert first["mimetype"] == second["mimetype"] == "image/png"
    assert first["$blob"] != second["$blob"]


@pytest.mark.kernel
def test_numpy_and_pandas_values_keep_their_types(tracked):
    assert tracked.stored["np_float"] == 0.25
    assert tracked.stored["np_int"] == 7
    assert tracked.stored["np_array"] == [0, 1, 2]
    assert tracked.stored["pd_scalar"] == 4.0
    assert tracked.stored["pd_time"] == "2024-01-02T00:00:00"
    conn = sqlite3.connect(tracked.database)
    types = conn.execute(
        "SELECT typeof(json_extract(parameters, '$.np_float')), "
        "typeof(json_extract(parameters, '$.np_int')), "
        "typeof(json_extract(parameters, '$.pd_scalar')), "
        "json_type(parameters, '$.np_array') FROM experiments"
    ).fetchone()
    assert types == ("real", "integer", "real", "array")


@pytest.mark.kernel
def test_dataframe_is_an_html_blob(tracked):
    ref = tracked.stored["frame"]
    assert ref["mimetype"] == "text/html"
    conn = sqlite3.connect(tracked.database)
    (html,) = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (ref["$blob"],)).fetchone()
    assert "<table" in bytes(html).decode()


@pytest.mark.kernel
def test_rich_outputs_are_stored_out_of_line(tracked):
    assert len(tracked.row["parameters"]) < 2000  # references, not base64 images


@pytest.mark.kernel
def test_figures_use_the_inline_backend(tracked):
    # A fresh kernel names it as ipykernel sets it; one forked from the process's warm template
    # (ready in time or not, depending on the machine's load) by its registered short name.
    inline = ("module://matplotlib_inline.backend_inline", "inline")
    assert tracked.stored["get_backend"] in inline


@pytest.mark.kernel
def test_json_numbers_sort_numerically(tmp_path):
    script = """
    import numpy as np

    # parameters
    n_estimators = 1
    score = 0.0

    f1 = np.float64(score)
    f1
    """
    # Stored as text, "2.5" would sort before "10.0".
    for n_estimators, score in [(10, 2.5), (20, 10.0), (30, 0.75)]:
        run(tmp_path, script, {"n_estimators": n_estimators, "score": score})
    conn = sqlite3.connect(tmp_path / "runs.db")
    # The seed's query, unchanged.
    rows = conn.execute(
        "SELECT uuid, json_extract(parameters, '$.f1') AS f1, "
        "json_extract(parameters, '$.n_estimators') AS n_estimators "
        "FROM experiments ORDER BY f1 DESC LIMIT 3"
    ).fetchall()
    assert [(f1, n) for _, f1, n in rows] == [(10.0, 20), (2.5, 10), (0.75, 30)]


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("accuracy", "accuracy"),
        ("plot.confusion_matrix(y, p)", "confusion_matrix"),
        ("model.score_", "score_"),
        ("results['f1']", "f1"),
        ("a + b", "a + b"),
        ("42", None),
    ],
)
def test_expression_key(source, key):
    import ast

    assert expression_key(ast.parse(source).body[0].value, source) == key


def test_cap_text_keeps_head_and_tail_with_a_marker():
    text = "a" * 60 + "b" * 60
    capped = cap_text(text, limit=20)
    assert capped.startswith("a" * 10) and capped.endswith("b" * 10)
    assert "100 characters cut" in capped
    assert cap_text("short", limit=20) == "short"


def test_stream_text_counts_what_the_kernel_cut():
    pieces = split_stream("a" * 10 + cut_marker(100) + "b" * 12)
    assert pieces == ["a" * 10, 100, "b" * 12]
    kept = StreamText(limit=20)
    for piece in pieces:
        if isinstance(piece, int):
            kept.cut(piece)
        else:
            kept.write(piece)
    assert kept.text() == "a" * 10 + cut_marker(102) + "b" * 10


@pytest.mark.kernel
def test_more_values_keep_their_json_types(track):
    tracked = track(
        "import datetime\n\nimport numpy as np\n\n"
        "flag = np.bool_(True)\nflag\n"
        "scalar_array = np.array(2.5)\nscalar_array\n"
        "pair = (1, 'a')\npair\n"
        "when = datetime.date(2024, 5, 17)\nwhen\n"
        "missing = float('nan')\nmissing\n"
        "nested = {'scores': [np.float32(0.5), np.int8(3)], 'ok': None}\nnested\n"
        "big = list(range(20_000))\nbig\n",
        quiet=True,
    )
    stored = tracked.stored
    assert stored["flag"] is True
    assert stored["scalar_array"] == 2.5
    assert stored["pair"] == [1, "a"]
    assert stored["when"] == "2024-05-17"
    assert stored["missing"] is None  # SQLite's JSON has no NaN
    assert stored["nested"] == {"scores": [0.5, 3], "ok": None}
    # Past 10,000 items a list is kept as IPython shows it: text, shortened.
    assert isinstance(stored["big"], str) and stored["big"].endswith("...]")
