"""Exact rational numbers: parsing user text and printing results.

Every number smtgrad reads or writes is exact. Text such as ``"13/3"``,
``"-0.25"`` or ``"1e-3"`` becomes a :class:`fractions.Fraction`; results are
printed as ``"-2/3"`` so that sympy (or any reader) parses them back exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

from smtgrad.errors import InputError

#: Largest accepted bit length of a numerator or denominator (about 77 digits).
MAX_BITS = 256

_RATIONAL = re.compile(r"^[+-]?\d+\s*/\s*[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$")


#: An exact scalar: a Fraction, or an exact number type with the same operators.
Scalar = Any
Vector = tuple[Scalar, ...]


class InexactValue(ValueError):
    """A value that the number system in use cannot represent (e.g. sigmoid(1) in Q).

    An internal signal, not an input error: callers fall back to another system.
    """


def exact_scalar(value: object) -> Fraction | None:
    """An int (not a bool) or Fraction as a Fraction; anything else None."""
    if type(value) is Fraction:
        return value
    if type(value) is int:
        return Fraction(value)
    if isinstance(value, Fraction | int) and not isinstance(value, bool):
        return Fraction(value)
    return None


def flint_module() -> Any:
    """python-flint, imported on first use (about 50 ms that exact rational runs skip)."""
    import flint

    return flint


class NumberError(InputError, ValueError):
    """A value that is not an exact number smtgrad accepts."""

    label = "bad number"


def _bounded(value: Fraction, text: str) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise NumberError(f"number {text[:40]!s} is too large: at most {MAX_BITS}-bit integers")
    return value


def parse_exact(raw: object) -> Fraction:
    """Turn a YAML scalar (int, Fraction, or string) into an exact Fraction.

    Floats are refused: the YAML loader of :mod:`smtgrad.spec` never produces
    them, and a float that reached this point would already be rounded.
    """
    if isinstance(raw, bool):
        raise NumberError(f"expected a number, found a boolean ({raw})")
    if isinstance(raw, int):
        return _bounded(Fraction(raw), str(raw))
    if isinstance(raw, Fraction):
        return _bounded(raw, str(raw))
    if isinstance(raw, float):
        raise NumberError(f"expected an exact number, found the float {raw!r}")
    if isinstance(raw, str):
        text = raw.strip().replace("_", "")
        if len(text) > 200:
            raise NumberError("number text is longer than 200 characters")
        if _RATIONAL.match(text):
            num, den = (part.strip() for part in text.split("/"))
            if int(den) == 0:
                raise NumberError(f"division by zero in {raw!r}")
            return _bounded(Fraction(int(num), int(den)), text)
        if _DECIMAL.match(text):
            return _bounded(Fraction(text), text)
        raise NumberError(
            f"expected an exact number such as 3, -2/3, 0.25 or 1e-3, found {raw[:40]!r}"
        )
    raise NumberError(f"expected a number, found {type(raw).__name__}")


#: Fractions of the integers -64..64, shared (Fractions are immutable; making one costs
#: about a microsecond).
SMALL_FRACTIONS = {n: Fraction(n) for n in range(-64, 65)}


# Exact arithmetic on hot paths runs on Python ints where values are integral (exact, and
# far cheaper than Fractions); results go back to Fractions before anyone divides them.


def integral_as_int(value: Any) -> Any:
    """An integral Fraction as an int; anything else unchanged."""
    if type(value) is Fraction and value.denominator == 1:
        return value.numerator
    return value


def ints_where_integral(row: Iterable[Any]) -> tuple[Any, ...]:
    """A row with every integral Fraction as an int; anything else unchanged."""
    return tuple([v.numerator if type(v) is Fraction and v.denominator == 1 else v
                  for v in row])


class _FractionOf(dict[int | Fraction, Fraction]):
    """int -> Fraction, from :data:`SMALL_FRACTIONS` or made on demand; a Fraction -> itself."""

    def __missing__(self, value: Any) -> Any:
        return Fraction(value) if type(value) is int else value


_FRACTION_OF = _FractionOf(SMALL_FRACTIONS.items())


def rational_fractions(row: Iterable[int | Fraction]) -> tuple[Fraction, ...]:
    """:func:`as_fractions` for rows of ints and Fractions only (no other number types:
    values are looked up by hash), converted in C when the ints are small."""
    return tuple(map(_FRACTION_OF.__getitem__, row))


def as_fractions(row: Iterable[Any]) -> tuple[Any, ...]:
    """A row with every int as a Fraction; anything else (Fractions, other exact number
    types) unchanged."""
    return tuple([v if type(v) is not int else SMALL_FRACTIONS[v] if -64 <= v <= 64
                  else Fraction(v) for v in row])


def format_exact(value: Fraction | int) -> str:
    """Print an exact rational as ``"p/q"`` or ``"p"`` (sympy-parsable)."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def format_short(value: Fraction, digits: int = 6) -> str:
    """Human-friendly rendering: exact when short, else exact with a decimal hint."""
    exact = format_exact(value)
    if len(exact) <= 12:
        return exact
    return f"{exact} (≈{float(value):.{digits}g})"


class SmoothFunctions:
    """The rational number system's transcendental primitives: defined only where the
    result is rational (sigmoid(0) = 1/2, exp(0) = 1, ...); :class:`InexactValue` elsewhere.

    Richer exact systems (closed forms in logarithms, the exponential field) and the
    ball arithmetic of certificates subclass this (:class:`smtgrad.activations.Numbers`).
    """

    def exp(self, x: Scalar) -> Scalar:
        if x == 0:
            return Fraction(1)
        raise InexactValue(f"exp({x}) is not rational")

    def log(self, x: Scalar) -> Scalar:
        if x == 1:
            return Fraction(0)
        raise InexactValue(f"log({x}) is not rational")

    def sigmoid(self, x: Scalar) -> Scalar:
        if x == 0:
            return Fraction(1, 2)
        raise InexactValue(f"sigmoid({x}) is not rational")

    def tanh(self, x: Scalar) -> Scalar:
        if x == 0:
            return Fraction(0)
        raise InexactValue(f"tanh({x}) is not rational")

    def softmax(self, z: Sequence[Scalar]) -> Vector:
        if all(item == z[0] for item in z):
            return tuple(Fraction(1, len(z)) for _ in z)
        raise InexactValue("softmax of unequal logits is not rational")

    def normal_cdf(self, x: Scalar) -> Scalar:
        if x == 0:
            return Fraction(1, 2)
        raise InexactValue(f"the normal CDF at {x} is not rational")

    def normal_pdf(self, x: Scalar) -> Scalar:
        raise InexactValue(f"the normal density at {x} is not rational")

    def negative_log(self, p: Scalar) -> Scalar:
        """-log(p) for 0 < p <= 1 (cross-entropy terms)."""
        if p == 1:
            return Fraction(0)
        raise InexactValue(f"-log({p}) is not rational")
