"""Certified enclosures and rigorous ball arithmetic over the reference network.

When a witness exists only where sigmoid/tanh take transcendental values, no
exact closed form is available. Instead smtgrad proves that an exact solution
exists inside a tiny box (DESIGN section 2, "certified enclosures"):

* all but n free values are fixed to rationals; the n remaining unknowns are
  tied to the n zero-gradient equations F(v) = 0 (a square system);
* the Krawczyk operator K(B) = c - Y F(c) + (I - Y F'(B)) (B - c), evaluated in
  rigorous ball arithmetic (python-flint's ``arb``, :func:`krawczyk`), lies
  inside the interior of the box B: then F has exactly one zero in B
  (Krawczyk 1969, Moore 1977);
* every other requirement (nonzero gradients, phases of piecewise units,
  labels, assumptions) is checked for every point of B by the same ball
  evaluation (:func:`interval_evaluation`, :func:`box_evaluation`), so it
  holds at the zero.

F and its Jacobian come from the exact reference network
(:mod:`smtgrad.reference.network`) run over forward-mode dual numbers (:class:`Dual`),
never from the encoder. Finding the box is numerical (Newton on mpmath's
``mp`` floats, untrusted); only the ball test certifies.

Ball rules (python-flint ``arb``): every operation rounds outward, so a ball
always contains the exact real result. A comparison is decided only when it
is certain (:func:`interval_sign` gives -1/0/1, or None when the ball
straddles or touches the threshold); a ball equals 0 only when it is the exact
zero. A comparison that a ball cannot decide raises :class:`Ambiguous`, so the
reference pass never silently picks a branch. Computations run at the
precision of a ``flint.ctx.workprec`` block; arithmetic done later on the
returned balls runs at the caller's precision (still rigorous, possibly wider).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from smtgrad.reference.network import (
    Evaluation,
    InexactValue,
    Parameters,
    SmoothFunctions,
    Vector,
    entry_at,
    evaluate,
    with_entry,
)
from smtgrad.spec import LossKind, Spec

if TYPE_CHECKING:
    from flint import arb

    from smtgrad.reference.witness import Witness

#: Significant digits of the printed box bounds (the contract asks for at least 30).
DIGITS = 40

Coordinate = tuple[str, tuple[int, ...]]


class Ambiguous(InexactValue):
    """A comparison that an interval cannot decide (the box straddles the threshold)."""


@dataclass(frozen=True, eq=False)
class Enclosure:
    """A real number known to lie in [lo, hi] (rational bounds); printed as "[lo, hi]".

    Two enclosures are equal when they are the same box. Against an exact number
    (Fraction or int) a comparison is answered only when every point of the box
    gives the same answer, and raises :class:`Ambiguous` otherwise; an order
    between two boxes is decided the same way.
    """

    lo: Fraction
    hi: Fraction

    def __str__(self) -> str:
        return f"[{_decimal(self.lo)}, {_decimal(self.hi)}]"

    def _versus(self, other: object) -> int | None:
        """Sign of x - y, the same for every x in this box and y in ``other``, or None."""
        if isinstance(other, Enclosure):
            low, high = self.lo - other.hi, self.hi - other.lo
        elif isinstance(other, Fraction | int) and not isinstance(other, bool):
            low, high = self.lo - other, self.hi - other
        else:
            raise TypeError(f"cannot compare an enclosure with {type(other).__name__}")
        if low > 0:
            return 1
        if high < 0:
            return -1
        if low == high == 0:
            return 0
        return None

    def _decided(self, other: object) -> int:
        sign = self._versus(other)
        if sign is None:
            raise Ambiguous(f"cannot compare the enclosure {self} with {other}")
        return sign

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Enclosure):
            return (self.lo, self.hi) == (other.lo, other.hi)
        if isinstance(other, Fraction | int) and not isinstance(other, bool):
            return self._decided(other) == 0
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Enclosure, self.lo, self.hi))

    def __lt__(self, other: object) -> bool:
        return self._decided(other) < 0

    def __le__(self, other: object) -> bool:
        return self._decided(other) <= 0

    def __gt__(self, other: object) -> bool:
        return self._decided(other) > 0

    def __ge__(self, other: object) -> bool:
        return self._decided(other) >= 0


def _decimal(value: Fraction) -> str:
    """Exact decimal text of a rational whose denominator divides a power of ten."""
    denominator = value.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = abs(value.numerator) * (10 ** places // value.denominator)
    digits = str(scaled).rjust(places + 1, "0")
    text = digits if places == 0 else f"{digits[:-places]}.{digits[-places:]}".rstrip("0")
    text = text.rstrip(".")
    return f"-{text}" if value < 0 else text


def parse_enclosure(text: str) -> Enclosure | None:
    """Read "[lo, hi]" with exact decimal or rational bounds; None if not of that form."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    parts = stripped[1:-1].split(",")
    if len(parts) != 2:
        return None
    from smtgrad.numbers import parse_exact

    lo, hi = (parse_exact(part.strip()) for part in parts)
    if lo > hi:
        raise ValueError(f"empty enclosure {text!r}")
    return Enclosure(lo, hi)


# ----------------------------------------------------------------------------------------
# Rigorous balls (python-flint arb) and signs.


def _is_ball(value: object) -> bool:
    """True for a python-flint ``arb`` (no ball exists before flint is imported)."""
    flint = sys.modules.get("flint")
    return flint is not None and isinstance(value, flint.arb)


class ArbContext:
    """The scalar context of :class:`Dual` over python-flint ``arb`` balls.

    It offers what the dual-number code asks of a context (``mpf``, ``exp``,
    ``log``) plus exact entry points for rationals (:meth:`rational`) and boxes
    (:meth:`ball`). Every ball contains the exact value; the working precision
    is the one of the enclosing ``flint.ctx.workprec`` block.
    """

    def __init__(self) -> None:
        import flint  # lazily: exact runs never need it

        self._arb = flint.arb
        self._fmpq = flint.fmpq

    def rational(self, value: Fraction | int) -> arb:
        """A ball containing the exact rational ``value`` (exact when it is dyadic)."""
        value = Fraction(value)
        if value.denominator == 1:
            return self._arb(value.numerator)
        return self._arb(self._fmpq(value.numerator, value.denominator))

    def ball(self, lo: Fraction | int, hi: Fraction | int) -> arb:
        """A ball containing every real of [lo, hi] (rational endpoints, rounded outward)."""
        if lo > hi:
            raise ValueError(f"empty box [{lo}, {hi}]")
        return self.rational(lo).union(self.rational(hi))

    def mpf(self, value: Any) -> arb:
        """``value`` (a ball, an int or a Fraction) as a ball."""
        if isinstance(value, self._arb):
            return value
        if isinstance(value, Fraction | int) and not isinstance(value, bool):
            return self.rational(value)
        raise TypeError(f"cannot make a ball of {type(value).__name__}")

    def exp(self, value: Any) -> arb:
        return self.mpf(value).exp()

    def log(self, value: Any) -> arb:
        return self.mpf(value).log()

    def ncdf(self, value: Any) -> arb:
        """The standard normal CDF, (1 + erf(x / sqrt 2)) / 2."""
        x = self.mpf(value)
        return (1 + (x / self._arb(2).sqrt()).erf()) / 2

    def npdf(self, value: Any) -> arb:
        """The standard normal density, exp(-x^2 / 2) / sqrt(2 pi) (x*x, not x**2: arb
        squares a ball around 0 to nan)."""
        x = self.mpf(value)
        return (-(x * x) / 2).exp() / (2 * self._arb.pi()).sqrt()


def _exact_fraction(value: arb) -> Fraction:
    """The exact rational value of an exact, finite ball (a midpoint or a radius)."""
    mantissa, exponent = (int(part) for part in value.man_exp())
    if exponent >= 0:
        return Fraction(mantissa << exponent)
    return Fraction(mantissa, 1 << -exponent)


def ball_bounds(value: arb) -> tuple[Fraction, Fraction]:
    """Exact rationals lo <= x <= hi for every point x of a finite ball (mid -+ rad)."""
    if not value.is_finite():
        raise InexactValue(f"the ball {value} is not finite")
    middle, radius = _exact_fraction(value.mid()), _exact_fraction(value.rad())
    return middle - radius, middle + radius


def _sign(value: Any) -> int | None:
    """Sign of a ball, an exact number or an mpmath point: -1, 0, 1, or None (undecided).

    A ball is positive (negative) only when every point is, and 0 only when it is
    the exact zero; a ball that straddles or touches 0, or is not finite, gives None.
    """
    if _is_ball(value):
        if value > 0:
            return 1
        if value < 0:
            return -1
        if value.is_zero():
            return 0
        return None
    return int((value > 0) - (value < 0))


def _difference_sign(a: Any, b: Any) -> int | None:
    """Sign of a - b for two values of one context; balls are compared without rounding."""
    if _is_ball(a) and _is_ball(b):
        if a > b:
            return 1
        if a < b:
            return -1
        if a.is_exact() and b.is_exact() and a == b:
            return 0
        return None
    return _sign(a - b)


def interval_sign(value: object) -> int | None:
    """The certain sign of an entry of a ball evaluation: -1, 0, 1, or None if undecided.

    ``value`` is a :class:`Dual` (its arb value), an ``arb``, an exact Fraction or
    int, or an exact number with ``to_arb()`` (enclosed at 256 bits). None when a
    ball contains 0 without being the exact zero, or for a dual over untrusted
    floating point (mpmath ``mp``); TypeError for other types.
    """
    if isinstance(value, Fraction | int) and not isinstance(value, bool):
        return (value > 0) - (value < 0)
    inner: Any = value.value if isinstance(value, Dual) else value
    if not isinstance(inner, Dual) and not _is_ball(inner) and hasattr(inner, "to_arb"):
        import flint

        with flint.ctx.workprec(256):
            inner = inner.to_arb()
    if _is_ball(inner):
        return _sign(inner)
    if isinstance(inner, Fraction | int) and not isinstance(inner, bool):
        return (inner > 0) - (inner < 0)
    if isinstance(value, Dual):
        return None  # a floating-point dual proves nothing
    raise TypeError(f"no rigorous sign for {type(value).__name__}")


def _to_fraction(value: Any) -> Fraction:
    """An mpmath point (an exact binary float) as a Fraction."""
    import mpmath

    p, q = mpmath.libmp.to_rational(value._mpf_)
    return Fraction(int(p), int(q))


def interval_text(value: Any) -> str:
    """"[lo, hi]" of an arb ball or an mpmath point, outward-rounded to DIGITS digits.

    The printed lo is at most, and hi at least, every point of the ball; a ball that
    is not finite prints as "[-inf, inf]".
    """
    if _is_ball(value):
        if not value.is_finite():
            return "[-inf, inf]"
        if any(abs(int(part.man_exp()[1])) > _MAX_TEXT_EXPONENT
               for part in (value.mid(), value.rad()) if not part.is_zero()):
            # Beyond any witness value (a message about a diverged ball, say): arb's own
            # outward text, not exact decimals that would take forever to write.
            return f"[{value.lower()}, {value.upper()}]"
        lo, hi = ball_bounds(value)
    elif isinstance(value, Fraction | int):
        lo = hi = Fraction(value)
    else:
        import mpmath

        lo = hi = _to_fraction(mpmath.mpf(value))
    return str(Enclosure(_round(lo, down=True), _round(hi, down=False)))


#: Binary exponents beyond which :func:`interval_text` leaves a ball to arb's own text.
_MAX_TEXT_EXPONENT = 4000


def _round(value: Fraction, down: bool) -> Fraction:
    """A decimal with DIGITS significant digits below (or above) ``value``."""
    if value == 0:
        return value
    # The decimal exponent from bit lengths (str() of a huge numerator is refused by
    # Python's digit limit, and any exponent keeps the rounding direction right).
    exponent = int((abs(value.numerator).bit_length() - value.denominator.bit_length())
                   * 0.30103)
    scale = Fraction(10) ** (DIGITS - exponent)
    scaled = value * scale
    whole = scaled.numerator // scaled.denominator
    if not down and whole != scaled:
        whole += 1
    return Fraction(whole) / scale


def _rational(ctx: Any, value: Fraction | int) -> Any:
    """An exact rational in ``ctx``: a rigorous ball (ArbContext), or a rounded mp float."""
    if isinstance(ctx, ArbContext):
        return ctx.rational(value)
    value = Fraction(value)
    return ctx.mpf(value.numerator) / value.denominator


# ----------------------------------------------------------------------------------------
# Forward-mode dual numbers over mpmath points or arb balls.


class Dual:
    """A value with its derivatives with respect to the n unknowns.

    ``ctx`` is :class:`ArbContext` (balls: rigorous) or mpmath's ``mp`` (points:
    Newton only). Comparisons are decided by :func:`_difference_sign` and raise
    :class:`Ambiguous` when a ball cannot decide them.
    """

    __slots__ = ("ctx", "grad", "value")

    def __init__(self, ctx: Any, value: Any, grad: tuple[Any, ...]) -> None:
        self.ctx = ctx
        self.value = value
        self.grad = grad

    def _padded(self, size: int) -> Dual:
        """This constant as a dual over ``size`` unknowns (zero derivatives)."""
        zero = self.ctx.mpf(0)
        return Dual(self.ctx, self.value, tuple(zero for _ in range(size)))

    def _pair(self, other: object) -> tuple[Dual, Dual] | None:
        """``self`` and ``other`` as duals over the same unknowns, or None for other types.

        A constant computed without derivatives (empty gradient) that meets a
        variable gets zero derivatives; neither operand is modified.
        """
        if isinstance(other, Dual):
            if len(other.grad) == len(self.grad):
                return self, other
            if not other.grad:
                return self, other._padded(len(self.grad))
            if not self.grad:
                return self._padded(len(other.grad)), other
            raise ValueError("dual numbers over different unknowns")
        if isinstance(other, Fraction | int) and not isinstance(other, bool):
            constant = Dual(self.ctx, _rational(self.ctx, other), ())
            return self, constant._padded(len(self.grad))
        return None

    def __add__(self, other: object) -> Dual:
        pair = self._pair(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        return Dual(self.ctx, a.value + b.value,
                    tuple(x + y for x, y in zip(a.grad, b.grad, strict=True)))

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return Dual(self.ctx, -self.value, tuple(-a for a in self.grad))

    def __sub__(self, other: object) -> Dual:
        pair = self._pair(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        return a + (-b)

    def __rsub__(self, other: object) -> Dual:
        pair = self._pair(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        return b + (-a)

    def __mul__(self, other: object) -> Dual:
        pair = self._pair(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        return Dual(self.ctx, a.value * b.value,
                    tuple(x * b.value + a.value * y
                          for x, y in zip(a.grad, b.grad, strict=True)))

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Dual:
        pair = self._pair(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        if _sign(b.value) in (0, None):
            raise Ambiguous(f"division by {b}, which may be zero")
        quotient = a.value / b.value
        return Dual(self.ctx, quotient, tuple((x - quotient * y) / b.value
                                              for x, y in zip(a.grad, b.grad, strict=True)))

    def __rtruediv__(self, other: object) -> Dual:
        pair = self._pair(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        return b / a

    def _compare(self, other: object) -> int | None:
        pair = self._pair(other)
        if pair is None:
            raise TypeError(f"cannot compare with {type(other).__name__}")
        a, b = pair
        return _difference_sign(a.value, b.value)

    def __lt__(self, other: object) -> bool:
        return self._certain(other) < 0

    def __le__(self, other: object) -> bool:
        return self._certain(other) <= 0

    def __gt__(self, other: object) -> bool:
        return self._certain(other) > 0

    def __ge__(self, other: object) -> bool:
        return self._certain(other) >= 0

    def __eq__(self, other: object) -> bool:
        return self._certain(other) == 0

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def _certain(self, other: object) -> int:
        sign = self._compare(other)
        if sign is None:
            raise Ambiguous(f"cannot decide a comparison of {self} with {other} over the box")
        return sign

    def __str__(self) -> str:
        return interval_text(self.value)


class DualFunctions(SmoothFunctions):
    """sigmoid, tanh, softmax and -log over dual numbers (mp points or arb balls)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def sigmoid(self, x: Any) -> Any:
        if not isinstance(x, Dual):
            x = _constant(self.ctx, x, 0)
        s = 1 / (1 + self.ctx.exp(-x.value))
        slope = s * (1 - s)
        return Dual(self.ctx, s, tuple(slope * g for g in x.grad))

    def tanh(self, x: Any) -> Any:
        if not isinstance(x, Dual):
            x = _constant(self.ctx, x, 0)
        t = 1 - 2 / (self.ctx.exp(2 * x.value) + 1)
        slope = 1 - t * t
        return Dual(self.ctx, t, tuple(slope * g for g in x.grad))

    def softmax(self, z: Sequence[Any]) -> Vector:
        duals = [item if isinstance(item, Dual) else None for item in z]
        size = next((len(d.grad) for d in duals if d is not None), 0)
        lifted = [d if d is not None else _constant(self.ctx, item, size)
                  for d, item in zip(duals, z, strict=True)]
        exps = []
        for item in lifted:
            e = self.ctx.exp(item.value)
            exps.append(Dual(self.ctx, e, tuple(e * g for g in item.grad)))
        total = exps[0]
        for item in exps[1:]:
            total = total + item
        return tuple(item / total for item in exps)

    def negative_log(self, p: Any) -> Any:
        if not isinstance(p, Dual):
            p = _constant(self.ctx, p, 0)
        if _sign(p.value) != 1:
            raise Ambiguous(f"log of {p}, which may not be positive")
        return Dual(self.ctx, -self.ctx.log(p.value), tuple(-g / p.value for g in p.grad))

    # The primitives new activations are written in (softplus, elu, silu, gelu).

    def _dual(self, x: Any) -> Dual:
        return x if isinstance(x, Dual) else _constant(self.ctx, x, 0)

    def exp(self, x: Any) -> Any:
        x = self._dual(x)
        e = self.ctx.exp(x.value)
        return Dual(self.ctx, e, tuple(e * g for g in x.grad))

    def log(self, x: Any) -> Any:
        x = self._dual(x)
        if _sign(x.value) != 1:
            raise Ambiguous(f"log of {x}, which may not be positive")
        return Dual(self.ctx, self.ctx.log(x.value), tuple(g / x.value for g in x.grad))

    def normal_cdf(self, x: Any) -> Any:
        x = self._dual(x)
        density = self.ctx.npdf(x.value)
        return Dual(self.ctx, self.ctx.ncdf(x.value), tuple(density * g for g in x.grad))

    def normal_pdf(self, x: Any) -> Any:
        x = self._dual(x)
        density = self.ctx.npdf(x.value)
        return Dual(self.ctx, density, tuple(-x.value * density * g for g in x.grad))


def _constant(ctx: Any, value: Any, size: int) -> Dual:
    """A constant (exact number or context value) as a dual over ``size`` unknowns."""
    zero = ctx.mpf(0)
    scalar = _rational(ctx, value) if isinstance(value, Fraction | int) else ctx.mpf(value)
    return Dual(ctx, scalar, tuple(zero for _ in range(size)))


# ----------------------------------------------------------------------------------------
# Evaluating the network with some entries unknown.


@dataclass(frozen=True)
class Point:
    """A full assignment with rational values; the unknowns are overwritten per evaluation."""

    parameters: Parameters
    inputs: tuple[Vector, ...]
    targets: tuple[Any, ...]

    def block(self, name: str) -> Any:
        if name == "X":
            return self.inputs
        if name == "Y":
            return self.targets
        return self.parameters.block(name)

    def with_values(self, values: dict[Coordinate, Any]) -> Point:
        weights = list(self.parameters.weights)
        biases = list(self.parameters.biases)
        inputs, targets = self.inputs, self.targets
        for (name, index), value in values.items():
            if name == "X":
                inputs = with_entry(inputs, index, value)
            elif name == "Y":
                targets = with_entry(targets, index, value)
            elif name.startswith("W"):
                layer = int(name[1:]) - 1
                weights[layer] = with_entry(weights[layer], index, value)
            else:
                layer = int(name[1:]) - 1
                biases[layer] = with_entry(biases[layer], index, value)
        return Point(Parameters(tuple(weights), tuple(biases)), inputs, targets)


def zero_coordinates(spec: Spec) -> list[Coordinate]:
    """The equations: every gradient entry the query requires to be zero."""
    shapes = spec.network.parameter_shapes()
    result: list[Coordinate] = []
    for target in spec.query.zero:
        indices = target.indices(shapes)
        for index in indices:
            if (target.block, index) not in result:
                result.append((target.block, index))
    return result


def equations(spec: Spec) -> list[Coordinate]:
    """The independent zero-gradient equations the Krawczyk test solves.

    With softmax + cross-entropy, sum_k (p_k - y_k) = 0 for every sample, so the
    output layer's gradient rows sum to zero identically: when all K rows of a
    column are queried zero, the last one is implied and is left out.
    """
    coordinates = zero_coordinates(spec)
    if spec.loss.kind is not LossKind.CROSS_ENTROPY:
        return coordinates
    depth = spec.network.depth
    classes = spec.network.outputs
    implied = []
    for name in (f"W{depth}", f"b{depth}"):
        columns = {index[1:] for block, index in coordinates if block == name}
        for column in columns:
            rows = [(name, (k, *column)) for k in range(classes)]
            if all(row in coordinates for row in rows):
                implied.append(rows[-1])
    return [c for c in coordinates if c not in implied]


def _variables(ctx: Any, unknowns: Sequence[Coordinate], values: Sequence[Any]
               ) -> dict[Coordinate, Dual]:
    """The unknowns as duals with unit derivatives (over mp points or arb balls)."""
    size = len(unknowns)
    zero, one = ctx.mpf(0), ctx.mpf(1)
    return {coordinate: Dual(ctx, value, tuple(one if k == position else zero
                                               for k in range(size)))
            for position, (coordinate, value) in enumerate(zip(unknowns, values, strict=True))}


def _system(spec: Spec, point: Point, unknowns: Sequence[Coordinate], ctx: Any,
            values: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, ...]], Any]:
    """F (the zero-query gradient entries) and its Jacobian at the given unknown values."""
    size = len(unknowns)
    if not isinstance(ctx, ArbContext):
        point = _point_in(ctx, spec, point)
    assigned = point.with_values(dict(_variables(ctx, unknowns, values)))
    evaluation = evaluate(spec.network, spec.loss, spec.conventions, assigned.parameters,
                          assigned.inputs, assigned.targets, DualFunctions(ctx))
    f_values, jacobian = [], []
    for name, index in equations(spec):
        entry = entry_at(evaluation.gradients[name], index)
        if not isinstance(entry, Dual):
            entry = _constant(ctx, entry, size)
        f_values.append(entry.value)
        jacobian.append(entry.grad)
    return f_values, jacobian, evaluation


# ----------------------------------------------------------------------------------------
# The Krawczyk test and ball evaluations (python-flint arb: rigorous).


def _point_in(ctx: Any, spec: Spec, point: Point) -> Point:
    """``point`` for mpmath's point context (Newton: numerics, never trusted): closed
    forms with ``to_arb()`` become constant duals at their midpoint."""
    import flint

    def lift(array: Any) -> Any:
        if isinstance(array, tuple | list):
            return tuple(lift(item) for item in array)
        if isinstance(array, Fraction | int | Dual) or not hasattr(array, "to_arb"):
            return array
        with flint.ctx.workprec(256):
            middle = _exact_fraction(array.to_arb().mid())
        return Dual(ctx, ctx.mpf(middle.numerator) / middle.denominator, ())

    targets = (point.targets if spec.loss.kind is LossKind.CROSS_ENTROPY
               else lift(point.targets))
    return Point(Parameters(lift(point.parameters.weights), lift(point.parameters.biases)),
                 lift(point.inputs), targets)


def krawczyk(spec: Spec, point: Point, unknowns: Sequence[Coordinate],
             box: Sequence[Enclosure], precision: int = 256) -> tuple[bool, str]:
    """True when the Krawczyk operator maps the box into its interior (a unique zero inside).

    K = c - Y F(c) + (I - Y F'(B)) (B - c) is enclosed in arb balls at ``precision``
    bits, c the exact centre of the box B; Y is the inverse of the midpoint of F'(c)
    (any matrix is sound). The box holds exactly one zero of F when K lies strictly
    inside B, which is checked against B's exact rational bounds.
    """
    import flint

    if not unknowns:
        return False, "no unknowns: nothing to certify"
    ctx = ArbContext()
    n = len(unknowns)
    try:
        copies = _copied_equations(spec, point, unknowns)
        with flint.ctx.workprec(precision):
            point = _ball_point(ctx, spec, point)
            # An equation whose ball over the whole box is the exact zero holds at every
            # point of the box (arb's exact zero has radius 0: a product with an exact 0,
            # say a dead ReLU unit's feature), and the equation of a copied unit's output
            # weight is its original's; the square system is the others.
            f_box, jac_box, _ = _system(spec, point, unknowns, ctx,
                                        [ctx.ball(b.lo, b.hi) for b in box])
            kept = [i for i, value in enumerate(f_box)
                    if i not in copies and not _exact_zero(value, jac_box[i])]
            if len(kept) != n:
                return False, (f"{n} unknowns for {len(kept)} independent zero-gradient "
                               "equations not identically zero on the box; the enclosure "
                               "needs a square system")
            jac_box = [jac_box[i] for i in kept]
            centre = [(b.lo + b.hi) / 2 for b in box]
            centre_balls = [ctx.rational(c) for c in centre]
            f_centre, jac_centre, _ = _system(spec, point, unknowns, ctx, centre_balls)
            f_centre = [f_centre[i] for i in kept]
            jac_centre = [jac_centre[i] for i in kept]
            middle = flint.arb_mat([[ctx.mpf(v).mid() for v in row] for row in jac_centre])
            try:
                y = middle.inv().mid()
            except ZeroDivisionError:
                return False, "the Jacobian at the centre of the box is singular"
            identity = flint.arb_mat([[1 if i == j else 0 for j in range(n)]
                                      for i in range(n)])
            jacobian = flint.arb_mat([[ctx.mpf(v) for v in row] for row in jac_box])
            offsets = flint.arb_mat([[ctx.ball(b.lo - c, b.hi - c)]
                                     for b, c in zip(box, centre, strict=True)])
            k = (flint.arb_mat([[c] for c in centre_balls])
                 - y * flint.arb_mat([[ctx.mpf(v)] for v in f_centre])
                 + (identity - y * jacobian) * offsets)
            for i in range(n):
                entry = k[i, 0]
                if not entry.is_finite():
                    return False, f"Krawczyk operator is unbounded in coordinate {i}"
                lo, hi = ball_bounds(entry)
                if not (box[i].lo < lo and hi < box[i].hi):
                    return False, f"Krawczyk operator leaves the box in coordinate {i}"
        return True, "Krawczyk operator maps the box into its interior"
    except (ZeroDivisionError, InexactValue) as error:
        return False, f"ball evaluation failed: {error}"


def _copied_equations(spec: Spec, point: Point, unknowns: Sequence[Coordinate]) -> set[int]:
    """Positions in :func:`equations` of output weights W_L[k, j] whose hidden unit j of
    layer L-1 is an exact copy of an earlier unit i (the same incoming weights and bias,
    compared exactly; none of them an unknown or a box) while W_L[k, i] is an equation: the two
    units compute the same value on every sample, so dL/dW_L[k, j] = sum_m delta_mk a_mj
    is the same function as dL/dW_L[k, i] whatever the unknowns of the output layer."""
    depth = spec.network.depth
    if depth < 2:
        return set()
    weights = point.parameters.weights[depth - 2]
    biases = point.parameters.biases[depth - 2]

    varying = {index[0] for name, index in unknowns
               if name in (f"W{depth - 1}", f"b{depth - 1}")}
    if any(name in ("X", *(f"{p}{layer}" for p in "Wb" for layer in range(1, depth - 1)))
           for name, _ in unknowns):
        return set()  # the hidden features themselves vary over the box

    def exact(values: Sequence[Any]) -> bool:
        return not any(isinstance(v, Enclosure | Dual) or _is_ball(v) for v in values)

    system = equations(spec)
    position = {coordinate: n for n, coordinate in enumerate(system)}
    copies: set[int] = set()
    name = f"W{depth}"
    for j in range(len(biases)):
        row = (*weights[j], biases[j])
        if j in varying or not exact(row):
            continue
        original = next((i for i in range(j) if i not in varying
                         and exact((*weights[i], biases[i]))
                         and (*weights[i], biases[i]) == row), None)
        if original is None:
            continue
        for k in range(spec.network.outputs):
            copy, source = position.get((name, (k, j))), position.get((name, (k, original)))
            if copy is not None and source is not None:
                copies.add(copy)
    return copies


def _exact_zero(value: Any, derivatives: Sequence[Any]) -> bool:
    """A ball (and its derivatives) that is exactly 0: zero for every point of the box."""
    return all(_is_ball(v) and v.is_zero() and v.is_exact() for v in (value, *derivatives))


def box_evaluation(spec: Spec, point: Point, unknowns: Sequence[Coordinate],
                   box: Sequence[Enclosure], precision: int = 256) -> tuple[Point, Any]:
    """The network evaluated over the whole box (dual arb balls), and the assigned values."""
    import flint

    ctx = ArbContext()
    with flint.ctx.workprec(precision):
        duals = _variables(ctx, unknowns, [ctx.ball(b.lo, b.hi) for b in box])
        assigned = _ball_point(ctx, spec, point).with_values(dict(duals))
        evaluation = evaluate(spec.network, spec.loss, spec.conventions, assigned.parameters,
                              assigned.inputs, assigned.targets, DualFunctions(ctx))
    return assigned, evaluation


def _enclose(ctx: ArbContext, value: Any) -> Any:
    """A witness value as a ball: exact numbers, boxes, or closed forms with ``to_arb()``."""
    if isinstance(value, Fraction | int) and not isinstance(value, bool):
        return ctx.rational(value)
    if isinstance(value, Enclosure):
        return ctx.ball(value.lo, value.hi)
    if _is_ball(value):
        return value
    to_arb = getattr(value, "to_arb", None)
    if callable(to_arb):
        ball = to_arb()
        if not _is_ball(ball):
            raise InexactValue(f"{type(value).__name__}.to_arb() returned "
                               f"{type(ball).__name__}, not an arb ball")
        return ball
    raise InexactValue(f"cannot enclose the {type(value).__name__} value {value} in a ball")


def _lifted(ctx: ArbContext, array: Any) -> Any:
    """Nested tuples of witness values as constant arb duals (no derivatives)."""
    if isinstance(array, tuple | list):
        return tuple(_lifted(ctx, item) for item in array)
    return Dual(ctx, _enclose(ctx, array), ())


def _ball_point(ctx: ArbContext, spec: Spec, point: Point) -> Point:
    """``point`` with every value that is not rational (boxes, closed forms with
    ``to_arb()``) as a constant arb dual; rationals stay exact, class targets as given."""

    def lift(array: Any) -> Any:
        if isinstance(array, tuple | list):
            return tuple(lift(item) for item in array)
        if isinstance(array, Fraction | int | Dual):
            return array
        return Dual(ctx, _enclose(ctx, array), ())

    targets = (point.targets if spec.loss.kind is LossKind.CROSS_ENTROPY
               else lift(point.targets))
    return Point(Parameters(lift(point.parameters.weights), lift(point.parameters.biases)),
                 lift(point.inputs), targets)


def interval_evaluation(spec: Spec, witness: Witness, precision: int = 256) -> Evaluation:
    """The network over arb balls: every witness value lifted to a constant ball dual.

    Parameters, inputs and targets may be Fractions, ints, :class:`Enclosure` boxes
    or exact numbers with a ``to_arb()`` method (called at ``precision`` bits); class
    targets (cross-entropy) stay exact indices. The loss, gradients, predictions and
    residuals of the result are :class:`Dual` balls (or exact numbers), each
    containing the exact value for every point of the boxes: read signs with
    :func:`interval_sign`. A branch a ball cannot decide (a relu phase, a kink test, a
    division or log near 0) raises :class:`Ambiguous`; a value that cannot be put in
    a ball raises InexactValue.
    """
    import flint

    ctx = ArbContext()
    with flint.ctx.workprec(precision):
        parameters = Parameters(
            weights=tuple(_lifted(ctx, matrix) for matrix in witness.parameters.weights),
            biases=tuple(_lifted(ctx, vector) for vector in witness.parameters.biases))
        inputs = _lifted(ctx, witness.inputs)
        targets: tuple[Any, ...]
        if spec.loss.kind is LossKind.CROSS_ENTROPY:
            for label in witness.targets:
                if not isinstance(label, Fraction | int) or isinstance(label, bool):
                    raise InexactValue(f"a class target must be an exact index, found "
                                       f"{label}")
            targets = tuple(witness.targets)
        else:
            targets = _lifted(ctx, witness.targets)
        return evaluate(spec.network, spec.loss, spec.conventions, parameters, inputs,
                        targets, DualFunctions(ctx))
