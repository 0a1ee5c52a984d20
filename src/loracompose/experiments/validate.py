"""Checks of parsed YAML values shared by the spec and the task sets; every error names its field.

A leaf module (it imports nothing from the experiments package), so `spec.py` and
`tasksets.py` both use it without importing each other.

    fail(path, message)       the one error type: "spec field '<path>': <message>"
    mapping, str_list, integer  the shape of a value (a mapping with known keys, a list of names, an int in range)
    number                    a number in a range, in a mapping
    check_types               values against a dataclass's annotated field types
"""

from __future__ import annotations

import math
import types
import typing

from loracompose.errors import LoraComposeError

MAX_INT = 2**31 - 1  # whole numbers above this are refused (a 400-digit `samples` would only fail later)
MAX_TEXT = 1000  # characters of a string field


def shown(value, limit: int = 60) -> str:
    """A value as a message may show it: its repr, at most `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail(path: str, message: str) -> LoraComposeError:
    path, message = path[:200], message if len(message) <= 500 else message[:499] + "…"
    return LoraComposeError(f"spec field '{path}': {message}")


def mapping(value, path: str, allowed: set[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(path, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(shown(k, 60).strip("'") for k in set(value) - allowed)  # keys may be any YAML scalar
    if unknown:
        raise fail(f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown field; accepted: {', '.join(sorted(allowed))}")
    return value


def str_list(value, path: str, *, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v and len(v) <= MAX_TEXT for v in value):
        raise fail(path, f"must be a list of names (non-empty strings of at most {MAX_TEXT} characters)")
    if len(value) > 1000:
        raise fail(path, f"has {len(value)} entries; at most 1000 are accepted")
    if not value and not allow_empty:
        raise fail(path, "must name at least one entry")
    return list(value)


def integer(value, path: str, minimum: int, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise fail(path, f"must be a whole number from {minimum} to {maximum}, got {shown(value)}")
    return value


def fits(value, expected) -> bool:
    """Whether a YAML value has a dataclass field's annotated type (int, float, str, bool, None, list[str], unions)."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return any(fits(value, option) for option in typing.get_args(expected))
    if typing.get_origin(expected) is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and len(value) <= 1000 and all(fits(v, item) for v in value)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            abs(value) <= 1e30
    if expected is str:
        return isinstance(value, str) and len(value) <= MAX_TEXT
    return True  # a type this check does not know: the dataclass checks it


def describe(expected) -> str:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(describe(option) for option in typing.get_args(expected))
    if typing.get_origin(expected) is list:
        return f"a list of {describe(typing.get_args(expected)[0]).removeprefix('a ')}s"
    return {bool: "true/false", int: "a whole number", float: "a finite number", str: "a string",
            type(None): "null"}.get(expected, getattr(expected, "__name__", str(expected)))


def check_types(values: dict, cls, path: str) -> None:
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not fits(value, hints[name]):
            raise fail(f"{path}.{name}", f"must be {describe(hints[name])}, got {shown(value)}")


def number(values: dict, path: str, name: str, low: float, high: float | None = None, whole: bool = False):
    value = values[name]
    high = MAX_INT if high is None and whole else high
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        value >= low and (high is None or value <= high) and (not whole or isinstance(value, int))
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise fail(f"{path}.{name}", f"must be {kind} >= {low}{f' and <= {high}' if high is not None else ''}, "
                                      f"got {shown(value)}")
