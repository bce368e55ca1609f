"""The field checks every route's request goes through: one sentence per problem, raised as RequestError."""

from __future__ import annotations

import math
from typing import Any


class RequestError(ValueError):
    """A request field is missing, of the wrong type or out of range; the message is one sentence."""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def text_field(body: dict[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise RequestError(f"Field '{name}' must be a string.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # JSON allows lone surrogates ("\ud800"); UTF-8 and the tokenizer do not
        raise RequestError(f"Field '{name}' has a lone surrogate at offset {error.start}.") from None
    return value


def int_field(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if not is_int(value) or not low <= value <= high:
        raise RequestError(f"Field '{name}' must be an integer from {low} to {high}.")
    return value


def number_field(body: dict[str, Any], name: str, default: float | None, low: float, high: float,
            low_open: bool = False) -> float | None:
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if not is_number(value) or value > high or value < low or (low_open and value == low):
        span = f"above {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
        raise RequestError(f"Field '{name}' must be a number {span}.")
    return float(value)


def flag_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(f"Field '{name}' must be true or false.")
    return value


def choice_field(body: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None) -> Any:
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if value not in choices:
        raise RequestError(f"Field '{name}' must be one of {', '.join(choices)}.")
    return value
