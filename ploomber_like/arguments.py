"""Parsing parameters written on the command line: ``a=1,b=[1,2],model=sklearn.svm.SVC``."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from ploomber_like.errors import ParameterError

# A word or dotted/path-like name left unquoted on the command line: kept as a string.
_BARE_WORD = re.compile(r"[A-Za-z_][\w.\-/]*")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def parse_assignments(text: str) -> dict[str, Any]:
    """``"a=1, b=[1,2]"`` -> ``{"a": 1, "b": [1, 2]}``; raises :class:`ParameterError`, also
    for a name given twice (``a=1,a=2``: which one was meant?)."""
    return parse_parameter_options([text])


def parse_parameter_options(texts: Sequence[str]) -> dict[str, Any]:
    """Every ``-p`` option of a command line in one dict; a name may appear once in all."""
    assignments: dict[str, Any] = {}
    for text in texts:
        for piece in split_top_level(text):
            name, value = _split_pair(piece)
            if name in assignments:
                raise ParameterError(f"parameter {name!r} is given twice")
            assignments[name] = parse_value(value, name)
    return assignments


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``"n=10,50,None"`` -> ``("n", [10, 50, None])``: one ``-g`` option of a grid."""
    name, values = _split_pair(text)
    parsed = [parse_value(value, name) for value in split_top_level(values)]
    if not parsed:
        raise ParameterError(f"grid option {text!r} lists no values")
    return name, parsed


def parse_value(text: str, name: str = "value") -> Any:
    """A Python literal, or a bare word / dotted path kept as a string."""
    text = text.strip()
    if not text:
        raise ParameterError(f"parameter {name!r} has no value")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if _BARE_WORD.fullmatch(text):
            return text
    raise ParameterError(
        f"parameter {name!r}: {text!r} is not a Python literal (quote strings: {name}='...')"
    )


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on ``separator`` outside brackets and quotes; blank pieces are dropped."""
    pieces, current, closers, quote = [], [], [], None
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _OPENERS:
            closers.append(_OPENERS[char])
        elif closers and char == closers[-1]:
            closers.pop()
        elif char == separator and not closers:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or closers:
        raise ParameterError(f"unbalanced quotes or brackets in {text!r}")
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


def _split_pair(piece: str) -> tuple[str, str]:
    name, equals, value = piece.partition("=")
    name = name.strip()
    if not equals:
        raise ParameterError(f"expected name=value, got {piece.strip()!r}")
    if not name.isidentifier():
        raise ParameterError(f"parameter name {name!r} is not a Python identifier")
    return name, value
