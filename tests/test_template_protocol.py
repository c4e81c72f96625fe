"""The warm template's message protocol, without kernels: encoding, decoding, partial reads."""

from __future__ import annotations

import pytest

from ploomber_like.kernels import protocol
from ploomber_like.kernels.protocol import (
    Exited,
    Fork,
    Forked,
    Import,
    LineBuffer,
    Preloaded,
    ProtocolError,
    Setup,
    decode,
    encode,
)

MESSAGES = [
    Setup(preload=["numpy", "sklearn.metrics"], check=["sklearn.svm"], cwd="/tmp/a dir/ü"),
    Setup(preload=[], check=[], cwd="/"),
    Fork(connection_file="/run/kernel-1.json", log_file="/run/kernel-1.log", script_path=""),
    Fork(connection_file="/run/k-2.json", log_file="/run/k-2.log", script_path="/ü/fit.py"),
    Import(modules=["wave", "sklearn.ensemble._forest"]),
    Preloaded(modules=["numpy"]),
    Forked(pid=4242),
    Exited(pid=4242, status=-9),
    Exited(pid=1, status=0),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_as_one_line(message):
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == message
    assert decode(line.decode()) == message


def test_the_wire_format_names_the_message_type():
    assert encode(Forked(pid=7)) == b'{"type": "forked", "pid": 7}\n'


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b'{"type": "fork", "connection_file": "a"',  # cut off mid-line
        b"[1, 2]",
        b'{"pid": 3}',
        b'{"type": "launch", "pid": 3}',
        b'{"type": "forked"}',
        b'{"type": "forked", "pid": 3, "extra": 1}',
        b'{"type": "forked", "pid": "3"}',
        b'{"type": "forked", "pid": true}',
        b'{"type": "exited", "pid": 3, "status": 1.5}',
        b'{"type": "setup", "preload": "numpy", "cwd": "/"}',
        b'{"type": "setup", "preload": [1], "cwd": "/"}',
        b"\xff\xfe",
    ],
)
def test_malformed_lines_raise_protocol_errors(line):
    with pytest.raises(ProtocolError):
        decode(line)


def test_protocol_errors_are_value_errors_with_the_line_in_the_message():
    with pytest.raises(ValueError, match="launch"):
        decode(b'{"type": "launch"}')


def test_reads_that_end_mid_line_give_complete_lines_only():
    stream = b"".join(encode(m) for m in MESSAGES)
    for size in (1, 2, 7, 64, len(stream)):
        buffer = LineBuffer()
        decoded = []
        for start in range(0, len(stream), size):
            decoded += [decode(line) for line in buffer.feed(stream[start:start + size])]
        assert decoded == MESSAGES
        assert buffer.pending == b""


def test_a_partial_line_stays_pending_until_its_newline():
    buffer = LineBuffer()
    line = encode(Forked(pid=12))
    assert buffer.feed(line[:5]) == []
    assert buffer.pending == line[:5]
    assert buffer.feed(line[5:] + line[:3]) == [line[:-1]]
    assert buffer.pending == line[:3]


def test_the_documented_conversation_lists_every_message():
    for cls in (Setup, Fork, Preloaded, Forked, Exited):
        assert f"{cls.__name__}(" in protocol.__doc__
