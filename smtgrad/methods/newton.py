"""Finding certified enclosures: Newton's method, then the Krawczyk test (search code).

Newton runs on mpmath's ``mp`` floats (numerics, never trusted) from the
abstraction's model and from random starting points; a square subsystem is
picked, the other free values rounded to small rationals, and the box around
the refined solution goes to :func:`smtgrad.reference.intervals.krawczyk`,
which alone certifies. May import the reference code, never the other way round.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.reference.intervals import (
    Coordinate,
    Dual,
    Enclosure,
    _round,
    _system,
    _to_fraction,
    equations,
    krawczyk,
)
from smtgrad.reference.intervals import (
    Point as Point,
)
from smtgrad.reference.network import InexactValue, Parameters, entry_at
from smtgrad.spec import Spec, TargetKind, entries

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
            iterations: int = 60, deadline: float | None = None) -> list[Any] | None:
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
        if deadline is not None and time.perf_counter() > deadline:
            return None
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

    from smtgrad.reference.network import kink_points

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


def search(spec: Spec, samples: int, starts: Sequence[Point], deadline: float | None,
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
                if deadline is not None and time.perf_counter() > deadline:
                    return None
                initial = []
                for coordinate in free:
                    value = Fraction(entry_at(start.block(coordinate[0]), coordinate[1]))
                    if attempt:
                        value += Fraction(rng.randint(-8, 8), 8) * attempt
                    initial.append(mp.mpf(value.numerator) / value.denominator)
                solution = _newton(spec, start, free, initial, deadline=deadline)
                if solution is None or not _margins_ok(spec, start, free, solution):
                    continue
                found = _certify_near(spec, start, free, solution, system, deadline)
                if found is not None and (accept is None or accept(found)):
                    return found
    finally:
        mp.dps = saved
    return None


def _certify_subset(spec: Spec, start: Point, free: Sequence[Coordinate], solution: list[Any],
                    subset: Sequence[int], denominator: int,
                    deadline: float | None = None) -> Found | None:
    """Round the values outside ``subset`` to small rationals, re-solve, then Krawczyk."""
    fixed_values = {}
    for k, coordinate in enumerate(free):
        if k not in subset:
            fixed_values[coordinate] = _to_fraction(solution[k]).limit_denominator(denominator)
    point = start.with_values(fixed_values)
    unknowns = [free[k] for k in subset]
    refined = _newton(spec, point, unknowns, [solution[k] for k in subset], deadline=deadline)
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
                  equations: Sequence[Coordinate], deadline: float | None) -> Found | None:
    import mpmath

    mp = mpmath.mp
    _, jacobian, _ = _system(spec, start, free, mp, solution)
    j = mpmath.matrix([[mp.mpf(x) for x in row] for row in jacobian])
    n = len(equations)
    # At most 400 subsets, drawn lazily: there can be C(33, 15) ~ 10^9 of them, which
    # building the whole list would never finish (a fuzzer finding: a deadline overrun).
    candidates = itertools.islice(itertools.combinations(range(len(free)), n), 400)
    scored = []
    for subset in candidates:
        if deadline is not None and time.perf_counter() > deadline:
            return None
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
            if deadline is not None and time.perf_counter() > deadline:
                return None
            found = _certify_subset(spec, start, free, solution, subset, denominator,
                                    deadline)
            if found is not None:
                return found
    return None
