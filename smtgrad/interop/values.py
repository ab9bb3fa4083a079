"""Exact values as float64: what every export and the replay feed to float code.

The conversions (no third-party package needed):

* a rational (``Fraction``, ``int``): the nearest float (``float(Fraction)`` rounds
  correctly);
* a closed form (``3*log(2)/2``, ``exp(1)/(exp(1) + 1)``): its ``__float__``, which
  evaluates an arb ball precise enough for a float;
* an enclosure ``[lo, hi]`` (a certified box; :class:`~smtgrad.reference.intervals.Enclosure`)
  and an arb ball (a ``Dual`` of the interval evaluation): the **midpoint** of the box,
  rounded to the nearest float. The exact solution lies in the box, which is about
  1e-30 wide, far below float64 resolution;
* text: read with the exact parsers first (:func:`smtgrad.numbers.lognum.parse_value`,
  :func:`smtgrad.reference.intervals.parse_enclosure`), so ``"log(2)"`` and
  ``"[0.25, 0.75]"`` convert as the values they denote.

May import :mod:`smtgrad.numbers` and :mod:`smtgrad.reference`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from smtgrad.numbers import NumberError, format_exact
from smtgrad.numbers.lognum import parse_value
from smtgrad.reference.intervals import Dual, Enclosure, ball_bounds, parse_enclosure


class NoFloat(ValueError):
    """A value with no float: not a closed form, and no ball for it."""


def _is_ball(value: object) -> bool:
    return type(value).__name__ == "arb" and hasattr(value, "mid")


def to_float(value: Any) -> float:
    """One exact value as the nearest float64 (an enclosure or a ball as its midpoint)."""
    if isinstance(value, bool):
        raise NoFloat(f"expected a number, found the boolean {value}")
    if isinstance(value, Fraction | int):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, Enclosure):
        return float((value.lo + value.hi) / 2)
    if isinstance(value, Dual):
        return to_float(value.value)
    if _is_ball(value):
        lo, hi = ball_bounds(value)
        return float((lo + hi) / 2)
    if isinstance(value, str):
        return to_float(parse_text(value))
    try:
        return float(value)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise NoFloat(f"no float for {type(value).__name__} {str(value)[:60]!r}: "
                      f"{error}") from None


def parse_text(text: str) -> Any:
    """An exact value from its contract text: a rational, a closed form in logarithms, or
    an enclosure ``"[lo, hi]"`` (NumberError when it is none of these)."""
    if text.strip().startswith("["):
        try:
            enclosure = parse_enclosure(text)
        except ValueError as error:
            raise NumberError(str(error)) from None
        if enclosure is None:
            raise NumberError(f"expected an enclosure \"[lo, hi]\", found {text[:60]!r}")
        return enclosure
    return parse_value(text)


def floats(array: Any) -> Any:
    """Nested tuples (or lists) of exact values -> nested lists of floats."""
    if isinstance(array, tuple | list):
        return [floats(item) for item in array]
    return to_float(array)


def exact_text(value: Any) -> str:
    """The contract's exact text of one value (as in the result JSON)."""
    if isinstance(value, Fraction | int) and not isinstance(value, bool):
        return format_exact(value)
    return str(value)


def texts(array: Any) -> Any:
    """Nested tuples of exact values -> nested lists of exact strings."""
    if isinstance(array, tuple | list):
        return [texts(item) for item in array]
    return exact_text(array)


def is_enclosure(value: Any) -> bool:
    """Whether a value is a certified box or a ball (converted through its midpoint)."""
    return isinstance(value, Enclosure | Dual) or _is_ball(value)
