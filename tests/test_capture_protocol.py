"""The capture's stream protocol, without kernels: markers, scalar-line blocks, value tags, the
code the driver runs in a kernel, and the kernel side's bound read back by the driver's side."""

from __future__ import annotations

import ast
import importlib
import io
import json
import subprocess
import sys

import pytest

from ploomber_like.capture.kernel import KernelCapture
from ploomber_like.capture.outputs import CapturedRun, StreamText, cap_text
from ploomber_like.capture.protocol import (
    HOOK_NAME,
    JSON_MIMETYPE,
    METADATA_KEY,
    SCALAR_LINES_END,
    CaptureTag,
    ScalarLines,
    cut_marker,
    keep_figures_code,
    read_tag,
    scalar_lines_block,
    scalar_lines_code,
    setup_code,
    split_stream,
)
from ploomber_like.capture.streams import BoundedStream
from ploomber_like.output_notebook import executed_notebook
from ploomber_like.scalars import DEFAULT_PATTERN


@pytest.mark.parametrize("count", [0, 1, 7, 200_000, 10**12])
def test_a_cut_marker_reads_back_as_its_count(count):
    assert split_stream("head" + cut_marker(count) + "tail") == ["head", count, "tail"]


@pytest.mark.parametrize(
    "lines",
    [
        ["loss: 1"],
        ["epoch=1 loss=0.5", "acc: 0.9", ""],
        ["ümlaut: 1", "tab\there: 2", "ploomber_like: 3", "[... 5 characters cut by x ...]: 4"],
    ],
)
def test_a_scalar_lines_block_reads_back_as_its_lines(lines):
    pieces = split_stream("a\n" + scalar_lines_block(lines) + "b\n")
    assert pieces == ["a\n", ScalarLines("".join(line + "\n" for line in lines)), "b\n"]
    assert pieces[1].text.splitlines() == lines


def test_blocks_markers_and_text_keep_their_order():
    text = (
        "head\n"
        + scalar_lines_block(["x: 1"])
        + scalar_lines_block(["x: 2"])
        + cut_marker(40)
        + "tail\n"
        + cut_marker(3)
    )
    assert split_stream(text) == [
        "head\n",
        ScalarLines("x: 1\n"),
        ScalarLines("x: 2\n"),
        40,
        "tail\n",
        3,
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain output\n",
        "ploomber_like said hello\n",
        "\n[... 12 characters cut by someone else ...]\n",
        "\n[... many characters cut by ploomber_like ...]\n",
        "half a block: \x02ploomber_like scalar lines\x1eloss: 1\n",
    ],
)
def test_printed_text_stays_text(text):
    assert split_stream(text) == [text]


def test_a_tag_round_trips_through_display_metadata():
    for tag in [CaptureTag("accuracy"), CaptureTag("roc", "figure"), CaptureTag("n", "parameter")]:
        output = {"output_type": "display_data", "data": {}, "metadata": tag.metadata()}
        assert read_tag(json.loads(json.dumps(output))) == tag
    assert CaptureTag("a").metadata() == {METADATA_KEY: {"key": "a", "kind": "value"}}


def test_outputs_without_our_tag_are_not_ours():
    assert read_tag({"output_type": "stream", "text": "x"}) is None
    assert read_tag({"output_type": "display_data", "metadata": {"other": {"key": "a"}}}) is None
    assert read_tag({"metadata": {METADATA_KEY: {"key": "a"}}}) == CaptureTag("a", None)


def test_the_driver_reads_tagged_outputs_by_kind():
    def shown(key, kind, value):
        data = {JSON_MIMETYPE: json.dumps(value), "text/plain": repr(value)}
        return {
            "output_type": "display_data",
            "data": data,
            "metadata": CaptureTag(key, kind).metadata(),
        }

    captured = CapturedRun()
    captured.add_outputs(
        [
            shown("n", "parameter", 3),
            shown("accuracy", "value", 0.5),
            {"output_type": "display_data", "data": {"text/plain": "untagged"}, "metadata": {}},
            shown("modules", "modules", ["numpy"]),
            shown("run_imports", "run_imports", {"wave": "/usr/lib/wave.py"}),
        ]
    )
    assert captured.parameters == {"n": 3}
    assert captured.values == {"accuracy": 0.5}
    assert captured.modules == ["numpy"]
    assert captured.run_imports == {"wave": "/usr/lib/wave.py"}


def test_the_saved_notebook_shows_a_tagged_value_under_its_key():
    value = {JSON_MIMETYPE: "0.5"}
    outputs = [
        {"output_type": "display_data", "data": value, "metadata": CaptureTag("acc").metadata()},
        {"output_type": "display_data", "data": {"text/plain": "7"}, "metadata": {}},
    ]
    blob = executed_notebook([("acc\n7", outputs, 1, [])], add_blob=lambda blob: {})
    (cell,) = json.loads(blob.data)["cells"]
    assert [o["data"] for o in cell["outputs"]] == [{"text/plain": "acc: 0.5"}, {"text/plain": "7"}]


def test_setup_code_installs_the_kernel_side():
    call = ast.parse(setup_code("/a dir/it's.py"), mode="eval").body
    assert isinstance(call, ast.Call) and call.func.attr == "install"
    assert ast.literal_eval(call.args[1]) == "/a dir/it's.py"
    imported = call.func.value
    while not isinstance(imported, ast.Call):
        imported = imported.value
    module = importlib.import_module(ast.literal_eval(imported.args[0]))
    assert module.__name__ == "ploomber_like.capture.kernel"
    assert callable(module.install)


@pytest.mark.parametrize(
    "code", [scalar_lines_code("loss: (.*)"), scalar_lines_code(None), keep_figures_code()]
)
def test_the_drivers_statements_call_methods_of_the_hook(code):
    call = ast.parse(code, mode="eval").body
    assert isinstance(call.func.value, ast.Name) and call.func.value.id == HOOK_NAME
    assert callable(getattr(KernelCapture, call.func.attr))


def bounded(
    text_per_cell: list[str], pattern: str | None = DEFAULT_PATTERN, limit: int = 100
) -> str:
    """What the kernel sends for these cells' output (each written in small pieces)."""
    sent = io.StringIO()
    stream = BoundedStream(sent, limit=limit)
    stream.read_scalars(pattern)
    for text in text_per_cell:
        for start in range(0, len(text), 7):
            stream.write(text[start : start + 7])
        stream.end_cell()
    return sent.getvalue()


def decoded(sent: str) -> tuple[StreamText, list[str]]:
    """The driver's side of :func:`bounded`: the stream text kept and the scalar lines."""
    kept, lines = StreamText(limit=10_000), []
    for piece in split_stream(sent):
        if isinstance(piece, ScalarLines):
            lines += piece.text.splitlines()
        elif isinstance(piece, int):
            kept.cut(piece)
        else:
            kept.write(piece)
    return kept, lines


def test_the_kernel_bounds_a_cell_as_cap_text_does():
    printed = "".join(f"step {i}\n" for i in range(50))
    assert bounded([printed], pattern=None) == cap_text(printed, 100)
    assert bounded(["short\n"], pattern=None) == "short\n"


def test_what_the_kernel_cuts_the_driver_counts():
    cells = ["".join(f"step {i}\n" for i in range(50)), "short\n", "y" * 333]
    kept, lines = decoded(bounded(cells, pattern=None))
    assert lines == []
    assert kept.total == sum(len(cell) for cell in cells)
    text = kept.text()
    assert text.startswith(cells[0][:50]) and text.endswith("y" * 50)


def test_the_kernel_sends_the_cut_lines_matching_the_pattern():
    printed = "".join(f"loss: {i}\n" + "y" * 30 + "\n" for i in range(20))
    kept, lines = decoded(bounded([printed]))
    shown = [line for line in kept.text().splitlines() if line.startswith("loss")]
    # Each matching line once: in the head or tail the driver keeps, or sent apart.
    assert shown == ["loss: 0", "loss: 1", "loss: 19"]
    assert lines == [f"loss: {i}" for i in range(2, 19)]


def test_a_printed_line_holding_the_block_end_is_not_sent_as_a_scalar_line():
    printed = "".join(f"loss: {i}{SCALAR_LINES_END}\n" + "y" * 30 + "\n" for i in range(20))
    _, lines = decoded(bounded([printed]))
    assert lines == []


def test_the_kernel_side_imports_nothing_of_the_driver_side():
    code = (
        "import sys, ploomber_like.capture.kernel\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.startswith(('ploomber_like', 'IPython', 'numpy'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(done.stdout))
    assert "ploomber_like.capture.outputs" not in loaded
    assert not {m for m in loaded if m.startswith(("IPython", "numpy"))}
