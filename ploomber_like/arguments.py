"""Parsing parameters written on the command line: ``a=1,b=[1,2],model=sklearn.svm.SVC``."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from ploomber_like.errors import ParameterError
from ploomber_like.samplers.space import Choice, Dimension, FloatRange, IntRange, check_dimension

# A word or dotted/path-like name left unquoted on the command line: kept as a string.
_BARE_WORD = re.compile(r"[A-Za-z_][\w.\-/]*")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
# A range of a search: ``int:10:200``, ``float:1e-4:1e-1:log`` (an unquoted word, then a colon).
_RANGE = re.compile(r"([A-Za-z_]\w*):(.*)", re.DOTALL)
_RANGE_SYNTAX = "int:LOW:HIGH[:log|:STEP], float:LOW:HIGH[:log|:STEP] or V1,V2,..."


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


def parse_search_option(text: str) -> tuple[str, Dimension]:
    """``"lr=float:1e-4:1e-1:log"`` -> ``("lr", FloatRange(0.0001, 0.1, log=True))``.

    One ``-s`` option of a search: an integer or float range, or a list of choices as for
    ``-g`` (``max_depth=5,10,None``). Raises :class:`ParameterError` for an unknown kind, bad
    bounds, or an empty range.
    """
    name, spec = _split_pair(text)
    found = _RANGE.fullmatch(spec.strip())
    if found is None:
        values = [parse_value(value, name) for value in split_top_level(spec)]
        if not values:
            raise ParameterError(f"search option {text!r} lists no values")
        return name, check_dimension(name, Choice(tuple(values)))
    kind, rest = found.groups()
    if kind not in ("int", "float"):
        raise ParameterError(
            f"parameter {name!r}: unknown distribution kind {kind!r} (use {_RANGE_SYNTAX})"
        )
    parts = rest.split(":")
    if len(parts) not in (2, 3):
        raise ParameterError(f"parameter {name!r}: {spec.strip()!r} is not {_RANGE_SYNTAX}")
    number = int if kind == "int" else float
    try:
        low, high = number(parts[0]), number(parts[1])
        log = len(parts) == 3 and parts[2] == "log"
        step = number(parts[2]) if len(parts) == 3 and not log else None
    except ValueError:
        raise ParameterError(
            f"parameter {name!r}: {spec.strip()!r} has a bound or step that is not "
            f"{'an integer' if kind == 'int' else 'a number'}"
        ) from None
    if kind == "int":
        return name, check_dimension(name, IntRange(low, high, log, step or 1))
    return name, check_dimension(name, FloatRange(low, high, log, step))


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
