"""Certified enclosures: existence proofs for witnesses at transcendental points.

When a witness exists only where sigmoid/tanh take transcendental values, no
exact closed form is available. Instead smtgrad proves that an exact solution
exists inside a tiny box (DESIGN section 2, "certified enclosures"):

* all but n free values are fixed to rationals; the n remaining unknowns are
  tied to the n zero-gradient equations F(v) = 0 (a square system);
* the Krawczyk operator K(B) = c - Y F(c) + (I - Y F'(B)) (B - c), evaluated in
  rigorous interval arithmetic (mpmath's ``iv``), lies inside the interior of
  the box B: then F has exactly one zero in B (Krawczyk 1969, Moore 1977);
* every other requirement (nonzero gradients, phases of piecewise units,
  labels, assumptions) is checked for every point of B by the same interval
  evaluation, so it holds at the zero.

F and its Jacobian come from the exact reference network
(:mod:`smtgrad.network`) run over forward-mode dual numbers, never from the
encoder. Finding the box is numerical (Newton in high precision); only the
interval test certifies.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.network import (
    InexactValue,
    Parameters,
    SmoothFunctions,
    Vector,
    entry_at,
    evaluate,
    with_entry,
)
from smtgrad.spec import LossKind, Spec, TargetKind, entries

#: Significant digits of the printed box bounds (the contract asks for at least 30).
DIGITS = 40

Coordinate = tuple[str, tuple[int, ...]]


class Ambiguous(InexactValue):
    """A comparison that an interval cannot decide (the box straddles the threshold)."""


@dataclass(frozen=True)
class Enclosure:
    """A real number known to lie in [lo, hi] (rational bounds); printed as "[lo, hi]"."""

    lo: Fraction
    hi: Fraction

    def __str__(self) -> str:
        return f"[{_decimal(self.lo)}, {_decimal(self.hi)}]"


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
# Forward-mode dual numbers over mpmath points or intervals.


class Dual:
    """A value with its derivatives with respect to the n unknowns."""

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
            value = Fraction(other)
            constant = Dual(self.ctx, self.ctx.mpf(value.numerator) / value.denominator, ())
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
        if _sign(b.value - 0) == 0:
            raise Ambiguous("division by an interval that may contain zero")
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
        return _sign(a.value - b.value)

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


def _sign(value: Any) -> int | None:
    """Sign of a point or interval: -1, 0, 1, or None when an interval straddles zero."""
    if hasattr(value, "a"):
        if value.a > 0:
            return 1
        if value.b < 0:
            return -1
        if value.a == 0 and value.b == 0:
            return 0
        return None
    return int((value > 0) - (value < 0))


def _to_fraction(value: Any) -> Fraction:
    import mpmath

    p, q = mpmath.libmp.to_rational(value._mpf_)
    return Fraction(int(p), int(q))


def interval_text(value: Any) -> str:
    """"[lo, hi]" of an mpmath interval or point, outward-rounded to DIGITS digits."""
    import mpmath

    if hasattr(value, "_mpi_"):
        low, high = value._mpi_
        lo = Fraction(*map(int, mpmath.libmp.to_rational(low)))
        hi = Fraction(*map(int, mpmath.libmp.to_rational(high)))
    else:
        lo = hi = _to_fraction(mpmath.mpf(value))
    return str(Enclosure(_round(lo, down=True), _round(hi, down=False)))


def _round(value: Fraction, down: bool) -> Fraction:
    """A decimal with DIGITS significant digits below (or above) ``value``."""
    if value == 0:
        return value
    exponent = len(str(abs(value.numerator))) - len(str(value.denominator))
    scale = Fraction(10) ** (DIGITS - exponent)
    scaled = value * scale
    whole = scaled.numerator // scaled.denominator
    if not down and whole != scaled:
        whole += 1
    return Fraction(whole) / scale


class DualFunctions(SmoothFunctions):
    """sigmoid, tanh, softmax and -log over dual numbers (points or intervals)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def _lift(self, x: Any) -> Dual:
        if isinstance(x, Dual):
            return x
        raise InexactValue(f"unexpected value {x!r}")

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
            raise Ambiguous("log of a value that may not be positive")
        return Dual(self.ctx, -self.ctx.log(p.value), tuple(-g / p.value for g in p.grad))


def _constant(ctx: Any, value: Any, size: int) -> Dual:
    value = Fraction(value)
    zero = ctx.mpf(0)
    return Dual(ctx, ctx.mpf(value.numerator) / value.denominator, tuple(zero for _ in
                                                                         range(size)))


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


def _system(spec: Spec, point: Point, unknowns: Sequence[Coordinate], ctx: Any,
            values: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, ...]], Any]:
    """F (the zero-query gradient entries) and its Jacobian at the given unknown values."""
    size = len(unknowns)
    zero = ctx.mpf(0)
    duals = {}
    for position, (coordinate, value) in enumerate(zip(unknowns, values, strict=True)):
        grad = tuple(ctx.mpf(1) if k == position else zero for k in range(size))
        duals[coordinate] = Dual(ctx, value, grad)
    assigned = point.with_values(duals)
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
# The Krawczyk test.


def krawczyk(spec: Spec, point: Point, unknowns: Sequence[Coordinate],
             box: Sequence[Enclosure], precision: int = 256) -> tuple[bool, str]:
    """True when the Krawczyk operator maps the box into its interior (a unique zero inside)."""
    import mpmath

    count = len(equations(spec))
    if count != len(unknowns):
        return False, (f"{len(unknowns)} unknowns for {count} independent zero-gradient "
                       "equations; the enclosure needs a square system")
    iv, mp = mpmath.iv, mpmath.mp
    saved = iv.prec, mp.prec
    iv.prec = mp.prec = precision
    try:
        n = len(unknowns)
        box_iv = [iv.mpf([_iv_bound(b.lo), _iv_bound(b.hi)]) for b in box]
        centre = [(b.lo + b.hi) / 2 for b in box]
        centre_iv = [iv.mpf(c.numerator) / c.denominator for c in centre]
        f_centre, _, _ = _system(spec, point, unknowns, iv, centre_iv)
        _, jac_box, _ = _system(spec, point, unknowns, iv, box_iv)
        # Approximate inverse of the Jacobian at the centre (any matrix is sound).
        _, jac_centre, _ = _system(spec, point, unknowns, mp,
                                   [mp.mpf(c.numerator) / c.denominator for c in centre])
        y = mpmath.matrix([[mp.mpf(v) for v in row] for row in jac_centre]) ** -1
        y_iv = [[iv.mpf(y[i, j]) for j in range(n)] for i in range(n)]
        for i in range(n):
            k_i = centre_iv[i] - sum((y_iv[i][j] * f_centre[j] for j in range(n)),
                                     start=iv.mpf(0))
            for j in range(n):
                m_ij = (iv.mpf(1) if i == j else iv.mpf(0)) - sum(
                    (y_iv[i][q] * jac_box[q][j] for q in range(n)), start=iv.mpf(0))
                k_i = k_i + m_ij * (box_iv[j] - centre_iv[j])
            if not (k_i.a > box_iv[i].a and k_i.b < box_iv[i].b):
                return False, f"Krawczyk operator leaves the box in coordinate {i}"
        return True, "Krawczyk operator maps the box into its interior"
    except (ZeroDivisionError, InexactValue) as error:
        return False, f"interval evaluation failed: {error}"
    finally:
        iv.prec, mp.prec = saved


def _iv_bound(value: Fraction) -> Any:
    import mpmath

    return mpmath.iv.mpf(value.numerator) / value.denominator


def box_evaluation(spec: Spec, point: Point, unknowns: Sequence[Coordinate],
                   box: Sequence[Enclosure], precision: int = 256) -> tuple[Point, Any]:
    """The network evaluated over the whole box (dual intervals), and the assigned values."""
    import mpmath

    iv = mpmath.iv
    saved = iv.prec
    iv.prec = precision
    try:
        size = len(unknowns)
        zero = iv.mpf(0)
        duals = {}
        for position, (coordinate, bounds) in enumerate(zip(unknowns, box, strict=True)):
            grad = tuple(iv.mpf(1) if k == position else zero for k in range(size))
            duals[coordinate] = Dual(iv, iv.mpf([_iv_bound(bounds.lo), _iv_bound(bounds.hi)]),
                                     grad)
        assigned = point.with_values(duals)
        evaluation = evaluate(spec.network, spec.loss, spec.conventions, assigned.parameters,
                              assigned.inputs, assigned.targets, DualFunctions(iv))
        return assigned, evaluation
    finally:
        iv.prec = saved


# ----------------------------------------------------------------------------------------
# Finding a box (numerics; nothing here is trusted).


def _free_coordinates(spec: Spec, samples: int) -> list[Coordinate]:
    coordinates: list[Coordinate] = []
    for name, shape in spec.network.parameter_shapes().items():
        coordinates += [(name, index) for index in entries(shape)
                        if spec.fixed_value(name, index) is None]
    coordinates += [("X", (m, i)) for m in range(samples) for i in range(spec.network.inputs)
                    if spec.fixed_value("X", (m, i)) is None]
    if spec.targets in (TargetKind.REAL, TargetKind.UNIT_INTERVAL):
        coordinates += [("Y", (m, k)) for m in range(samples)
                        for k in range(spec.network.outputs)
                        if spec.fixed_value("Y", (m, k)) is None]
    return coordinates


def _newton(spec: Spec, point: Point, unknowns: Sequence[Coordinate], start: list[Any],
            iterations: int = 60) -> list[Any] | None:
    """Damped minimum-norm Newton steps on F(v) = 0 in mpmath's point arithmetic."""
    import mpmath

    mp = mpmath.mp

    def residual(values: list[Any]) -> tuple[Any, list[Any], list[tuple[Any, ...]]] | None:
        try:
            f_values, jacobian, _ = _system(spec, point, unknowns, mp, values)
        except (InexactValue, ZeroDivisionError, OverflowError):
            return None
        return max((abs(x) for x in f_values), default=mp.mpf(0)), f_values, jacobian

    v = list(start)
    current = residual(v)
    for _ in range(iterations):
        if current is None:
            return None
        norm, f_values, jacobian = current
        if norm < mp.mpf(10) ** (-(mp.dps - 15)):
            return v
        j = mpmath.matrix([[mp.mpf(x) for x in row] for row in jacobian])
        f = mpmath.matrix([mp.mpf(x) for x in f_values])
        try:
            normal = j * j.T
            for k in range(normal.rows):  # a tiny Levenberg-Marquardt shift keeps it solvable
                normal[k, k] += mp.mpf(10) ** (-(mp.dps // 2)) * (1 + normal[k, k])
            step = j.T * (normal ** -1 * f)
        except (ZeroDivisionError, TypeError, ValueError):
            return None
        factor = mp.mpf(1)
        for _ in range(12):
            trial = [v[k] - factor * step[k] for k in range(len(v))]
            candidate = residual(trial)
            if candidate is not None and candidate[0] < norm:
                v, current = trial, candidate
                break
            factor /= 2
        else:
            return None
        if any(abs(x) > 1e4 for x in v):
            return None
    return None


def _margins_ok(spec: Spec, point: Point, unknowns: Sequence[Coordinate],
                values: Sequence[Any]) -> bool:
    """Numerically: no kink nearby, nonzero blocks clearly nonzero, labels and targets sane."""
    import mpmath

    from smtgrad.network import kink_points

    mp = mpmath.mp
    try:
        _, _, evaluation = _system(spec, point, unknowns, mp, values)
    except (InexactValue, ZeroDivisionError):
        return False
    for layer_index, layer in enumerate(spec.network.layers):
        for sample in evaluation.pre_activations[layer_index]:
            for u in sample:
                value = u.value if isinstance(u, Dual) else (mp.mpf(Fraction(u).numerator)
                                                             / Fraction(u).denominator)
                if any(abs(value - float(k)) < 1e-6 for k in kink_points(layer)):
                    return False
    shapes = spec.network.parameter_shapes()
    for target in spec.query.nonzero:
        indices = target.indices(shapes)
        magnitudes = []
        for index in indices:
            entry = entry_at(evaluation.gradients[target.block], index)
            magnitudes.append(abs(entry.value) if isinstance(entry, Dual) else
                              abs(float(Fraction(entry))))
        if max(magnitudes) < 1e-8:
            return False
    for (name, _), value in zip(unknowns, values, strict=True):
        if name == "Y" and spec.targets is TargetKind.UNIT_INTERVAL and not 1e-9 < value < 1 - 1e-9:
            return False
    return True


def random_points(spec: Spec, samples: int, count: int, seed: int = 0) -> list[Point]:
    """Deterministic random starting points: small rationals, random labels, fixed values kept."""
    rng = random.Random(seed)
    network = spec.network
    points = []

    def pick(name: str, index: tuple[int, ...], draw: Callable[[], Fraction]) -> Any:
        known = spec.fixed_value(name, index)
        return known if known is not None else draw()

    def small() -> Fraction:
        return Fraction(rng.randint(-16, 16), 8)

    for _ in range(count):
        weights, biases = [], []
        for index, (name, shape) in enumerate(network.parameter_shapes().items()):
            del index
            if len(shape) == 2:
                weights.append(tuple(tuple(pick(name, (j, i), small) for i in range(shape[1]))
                                     for j in range(shape[0])))
            else:
                biases.append(tuple(pick(name, (j,), small) for j in range(shape[0])))
        inputs = tuple(tuple(pick("X", (m, i), small) for i in range(network.inputs))
                       for m in range(samples))
        targets: tuple[Any, ...]
        if spec.targets is TargetKind.CLASS:
            targets = tuple(pick("Y", (m,), lambda: Fraction(rng.randrange(network.outputs)))
                            for m in range(samples))
        else:
            def label() -> Fraction:
                if spec.targets is TargetKind.BINARY:
                    return Fraction(rng.randint(0, 1))
                if spec.targets is TargetKind.UNIT_INTERVAL:
                    return Fraction(rng.randint(1, 15), 16)
                return small()

            targets = tuple(tuple(pick("Y", (m, k), label) for k in range(network.outputs))
                            for m in range(samples))
        points.append(Point(Parameters(tuple(weights), tuple(biases)), inputs, targets))
    return points


@dataclass(frozen=True)
class Found:
    """A certified enclosure: the rational point, the unknowns and their box."""

    point: Point
    unknowns: tuple[Coordinate, ...]
    box: tuple[Enclosure, ...]


def search(spec: Spec, samples: int, starts: Sequence[Point], deadline: float,
           seed: int = 0, accept: Callable[[Found], bool] | None = None) -> Found | None:
    """Newton from each start, then a square subsystem, then the Krawczyk test."""
    import mpmath

    system = equations(spec)
    if not system:
        return None
    free = _free_coordinates(spec, samples)
    if len(free) < len(system):
        return None
    rng = random.Random(seed)
    mp = mpmath.mp
    saved = mp.dps
    mp.dps = 60
    try:
        for number, start in enumerate(starts):
            for attempt in range(6 if number == 0 else 2):
                if time.perf_counter() > deadline:
                    return None
                initial = []
                for coordinate in free:
                    value = Fraction(entry_at(start.block(coordinate[0]), coordinate[1]))
                    if attempt:
                        value += Fraction(rng.randint(-8, 8), 8) * attempt
                    initial.append(mp.mpf(value.numerator) / value.denominator)
                solution = _newton(spec, start, free, initial)
                if solution is None or not _margins_ok(spec, start, free, solution):
                    continue
                found = _certify_near(spec, start, free, solution, system, deadline)
                if found is not None and (accept is None or accept(found)):
                    return found
    finally:
        mp.dps = saved
    return None


def _certify_subset(spec: Spec, start: Point, free: Sequence[Coordinate], solution: list[Any],
                    subset: Sequence[int], denominator: int) -> Found | None:
    """Round the values outside ``subset`` to small rationals, re-solve, then Krawczyk."""
    fixed_values = {}
    for k, coordinate in enumerate(free):
        if k not in subset:
            fixed_values[coordinate] = _to_fraction(solution[k]).limit_denominator(denominator)
    point = start.with_values(fixed_values)
    unknowns = [free[k] for k in subset]
    refined = _newton(spec, point, unknowns, [solution[k] for k in subset])
    if refined is None or not _margins_ok(spec, point, unknowns, refined):
        return None
    for width in (Fraction(1, 10**30), Fraction(1, 10**24), Fraction(1, 10**18)):
        box = []
        for value in refined:
            centre = _round(_to_fraction(value), down=True)
            radius = width * max(Fraction(1), abs(centre))
            box.append(Enclosure(_round(centre - radius, True), _round(centre + radius, False)))
        ok, _ = krawczyk(spec, point, unknowns, box)
        if ok:
            return Found(point, tuple(unknowns), tuple(box))
    return None


def _certify_near(spec: Spec, start: Point, free: Sequence[Coordinate], solution: list[Any],
                  equations: Sequence[Coordinate], deadline: float) -> Found | None:
    import mpmath

    mp = mpmath.mp
    _, jacobian, _ = _system(spec, start, free, mp, solution)
    j = mpmath.matrix([[mp.mpf(x) for x in row] for row in jacobian])
    n = len(equations)
    candidates = list(itertools.combinations(range(len(free)), n))
    if len(candidates) > 400:
        candidates = candidates[:400]
    scored = []
    for subset in candidates:
        sub = mpmath.matrix([[j[r, c] for c in subset] for r in range(n)])
        try:
            scored.append((abs(mpmath.det(sub)), subset))
        except (ZeroDivisionError, TypeError, ValueError):  # singular: mpmath fails oddly
            continue
    scored.sort(key=lambda item: -item[0])
    for determinant, subset in scored[:8]:
        if determinant < 1e-12:
            break
        for denominator in (4, 16, 100, 1000, 10**6):
            if time.perf_counter() > deadline:
                return None
            found = _certify_subset(spec, start, free, solution, subset, denominator)
            if found is not None:
                return found
    return None
