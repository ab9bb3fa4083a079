"""The rank criterion: a fast, sat-only path for free-residual queries.

With parameters and inputs fixed, every gradient is linear in the residuals
r = yhat - y: dL/dtheta = sum over (m, k) of r[m,k] * phi[m,k], where phi[m,k] is
the gradient produced by a unit residual on sample m, output k. "Zero blocks
vanish, each nonzero block does not" then has a solution iff some vector of
the null space of the zero rows is not annihilated by each nonzero block,
which exact linear algebra decides. This module draws small rational
parameters and inputs (respecting fixed values and genericity), decides the
residuals exactly, and hands a candidate witness back for verification.

It never proves unsat: a failed search only means "try the solver".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm
from typing import Any

from smtgrad.network import (
    RATIONAL,
    Parameters,
    activation_derivative,
    activation_value,
    affine,
    kink_points,
)
from smtgrad.numbers import as_fractions, integral_as_int, ints_where_integral
from smtgrad.spec import LossKind, Network, Spec, TargetKind, entries
from smtgrad.witness import Witness


def applicable(spec: Spec) -> bool:
    """The rank criterion applies to MSE with free real targets and piecewise-linear units."""
    return (
        spec.loss.kind is LossKind.MSE
        and spec.targets is TargetKind.REAL
        and "Y" not in spec.fixed
        and all(layer.activation.is_piecewise_linear for layer in spec.network.layers)
    )


Coordinate = tuple[str, tuple[int, ...]]
Number = int | Fraction

#: Draws with integer parameters before half-integers are allowed too.
INTEGER_DRAWS = 10

#: Input redraws per parameter draw until the first layer straddles its kinks.
STRADDLE_TRIES = 8


@dataclass(frozen=True)
class _Coordinates:
    zero: tuple[tuple[str, tuple[int, ...]], ...]
    nonzero: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...]  # one group per block


def _coordinates(spec: Spec) -> _Coordinates:
    shapes = spec.network.parameter_shapes()
    zero: list[tuple[str, tuple[int, ...]]] = []
    for target in spec.query.zero:
        indices = [target.index] if target.index is not None else entries(shapes[target.block])
        zero.extend((target.block, index) for index in indices)
    groups = []
    for target in spec.query.nonzero:
        indices = [target.index] if target.index is not None else entries(shapes[target.block])
        groups.append(tuple((target.block, index) for index in indices))
    return _Coordinates(tuple(zero), tuple(groups))


class _Sampler:
    """Draws small rational parameters and inputs, honouring fixed values.

    Values are ints where integral (exact, and much faster than Fractions);
    :func:`_exact_parameters` turns them into Fractions for the witness.
    """

    def __init__(self, spec: Spec, samples: int, seed: int) -> None:
        self.spec = spec
        self.samples = samples
        self.random = random.Random(seed)
        self._bits = self.random.getrandbits
        self.shapes = spec.network.parameter_shapes()

    def randint(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]: ``random.randint``'s rejection sampling over
        getrandbits, written out (the same draws, without four Python-level calls)."""
        width = high - low + 1
        bits = width.bit_length()
        drawn = self._bits(bits)
        while drawn >= width:
            drawn = self._bits(bits)
        return low + drawn

    def choice(self, options: tuple[int, ...]) -> int:
        """``random.choice`` written out like :meth:`randint` (the same draws)."""
        return options[self.randint(0, len(options) - 1)]

    def number(self, magnitude: int, nonzero: bool, halves: bool) -> Number:
        """A small integer, or with ``halves`` sometimes a half-integer."""
        while True:
            numerator = self.randint(-magnitude, magnitude)
            denominator = self.choice((1, 1, 1, 2)) if halves else 1
            value: Number = numerator if denominator == 1 else integral_as_int(
                Fraction(numerator, denominator))
            if value != 0 or not nonzero:
                return value

    def parameters(self, magnitude: int, halves: bool) -> Parameters:
        weights, biases = [], []
        for name, shape in self.shapes.items():
            nonzero = name.startswith("W")
            if len(shape) == 2:
                block: Any = tuple(
                    tuple(self._value(name, (j, i), magnitude, nonzero, halves)
                          for i in range(shape[1]))
                    for j in range(shape[0]))
                weights.append(block)
            else:
                biases.append(tuple(self._value(name, (j,), magnitude, False, halves)
                                    for j in range(shape[0])))
        return Parameters(tuple(weights), tuple(biases))

    def _value(self, name: str, index: tuple[int, ...], magnitude: int,
               nonzero: bool, halves: bool) -> Number:
        fixed = self.spec.fixed_value(name, index) if name in self.spec.fixed else None
        if fixed is None:
            return self.number(magnitude, nonzero, halves)
        value: Number = integral_as_int(fixed)
        return value

    def inputs(self, magnitude: int, avoid: Callable[[tuple[Number, ...]], bool]
               ) -> tuple[tuple[Number, ...], ...]:
        """Distinct input rows; a row on a kink (``avoid``) is redrawn, not the whole batch."""
        spec = self.spec
        width = spec.network.inputs
        rows: list[tuple[Number, ...]] = []
        seen: set[tuple[Number, ...]] = set()
        spread = max(magnitude, self.samples)
        free = "X" not in spec.fixed
        for m in range(self.samples):
            row: tuple[Number, ...] = ()
            for tries in range(60):
                denominator = 1 if tries < 5 else self.choice((3, 5, 7))
                if free and denominator == 1:  # the common case, inlined
                    row = tuple([self.randint(-spread, spread) for _ in range(width)])
                else:
                    row = tuple([self._input((m, i), spread, denominator)
                                 for i in range(width)])
                if row not in seen and not avoid(row):
                    break
            seen.add(row)
            rows.append(row)
        return tuple(rows)

    def _input(self, index: tuple[int, ...], spread: int, denominator: int) -> Number:
        fixed = self.spec.fixed_value("X", index) if "X" in self.spec.fixed else None
        if fixed is not None:
            exact: Number = integral_as_int(Fraction(fixed))
            return exact
        numerator = self.randint(-spread * denominator, spread * denominator)
        value: Number = numerator if denominator == 1 else integral_as_int(Fraction(numerator,
                                                                           denominator))
        return value


def solve_linear(rows: list[list[Fraction]], rhs: list[Fraction], columns: int
                  ) -> tuple[list[Fraction], list[list[Fraction]]] | None:
    """Solve rows @ x = rhs exactly: a particular solution and a null-space basis, or None.

    Exact Gauss-Jordan elimination over Q, written out (rather than sympy's
    DomainMatrix) because importing sympy costs 0.7 s of start-up and these
    systems have at most a few dozen rows.
    """
    matrix = [[*row, value] for row, value in zip(rows, rhs, strict=True)]
    pivots: list[int] = []
    rank = 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(matrix)) if matrix[r][column] != 0), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        lead = matrix[rank][column]
        matrix[rank] = [value / lead for value in matrix[rank]]
        for r in range(len(matrix)):
            if r != rank and matrix[r][column] != 0:
                factor = matrix[r][column]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[rank],
                                                            strict=True)]
        pivots.append(column)
        rank += 1
    if any(row[columns] != 0 for row in matrix[rank:]):
        return None
    particular = [Fraction(0)] * columns
    for r, column in enumerate(pivots):
        particular[column] = matrix[r][columns]
    basis = []
    for free in (c for c in range(columns) if c not in pivots):
        vector = [Fraction(0)] * columns
        vector[free] = Fraction(1)
        for r, column in enumerate(pivots):
            vector[column] = -matrix[r][free]
        basis.append(vector)
    return particular, basis


def _nullspace(rows: list[list[Any]], columns: int) -> list[list[Any]]:
    """A basis of {v : rows . v = 0} over Q (integral vectors when every entry is an int)."""
    if all(type(value) is int for row in rows for value in row):
        return _integer_nullspace(rows, columns)
    solved = solve_linear([[Fraction(value) for value in row] for row in rows],
                          [Fraction(0)] * len(rows), columns)
    assert solved is not None  # a homogeneous system always has the zero solution
    return solved[1]


def _integer_nullspace(rows: list[list[int]], columns: int) -> list[list[int]]:
    """Fraction-free Gauss-Jordan elimination: the same null space as :func:`solve_linear`,
    computed with Python ints (several times faster than Fractions on small systems)."""
    matrix = [list(row) for row in rows]
    pivots: list[int] = []
    rank = 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(matrix)) if matrix[r][column] != 0), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        lead_row = matrix[rank]
        lead = lead_row[column]
        for r in range(len(matrix)):
            factor = matrix[r][column]
            if r != rank and factor != 0:
                row = [lead * a - factor * b for a, b in zip(matrix[r], lead_row, strict=True)]
                common = gcd(*row)
                matrix[r] = [value // common for value in row] if common > 1 else row
        pivots.append(column)
        rank += 1
    basis = []
    scale = lcm(*(matrix[r][column] for r, column in enumerate(pivots))) if pivots else 1
    for free in (c for c in range(columns) if c not in pivots):
        vector = [0] * columns
        vector[free] = scale
        for r, column in enumerate(pivots):
            vector[column] = -matrix[r][free] * scale // matrix[r][column]
        common = gcd(*vector)
        basis.append([value // common for value in vector])
    return basis


def _integral(vector: list[Any]) -> list[Any]:
    """The vector scaled by the common denominator of its entries (ints stay ints)."""
    scale = lcm(*(v.denominator for v in vector)) if vector else 1
    return [v * scale for v in vector] if scale != 1 else vector


def _exact_parameters(params: Parameters) -> Parameters:
    """Parameters with every value a Fraction (as witnesses hold them)."""
    return Parameters(
        weights=tuple([tuple([as_fractions(row) for row in block]) for block in params.weights]),
        biases=tuple([as_fractions(block) for block in params.biases]),
    )


@dataclass(frozen=True)
class _Pass:
    """One sample's forward pass: pre-activations and activations of every layer."""

    inputs: tuple[Any, ...]
    pre: tuple[tuple[Any, ...], ...]
    post: tuple[tuple[Any, ...], ...]

    def on_kink(self, network: Network) -> bool:
        return any(value == point
                   for layer, values in zip(network.layers, self.pre, strict=True)
                   for point in kink_points(layer) for value in values)


def _forward(network: Network, params: Parameters, row: tuple[Any, ...]) -> _Pass:
    pre, post = [], []
    current = ints_where_integral(row)
    inputs = current
    for layer, weight, bias in zip(network.layers, params.weights, params.biases,
                                   strict=True):
        u = affine(weight, bias, current)
        current = tuple([activation_value(layer, value, RATIONAL) for value in u])
        pre.append(u)
        post.append(current)
    return _Pass(inputs, tuple(pre), tuple(post))


def _by_layer(wanted: frozenset[Coordinate]) -> dict[int, list[tuple[Coordinate, bool]]]:
    """Wanted coordinates grouped by layer, each flagged True for a bias entry."""
    grouped: dict[int, list[tuple[Coordinate, bool]]] = {}
    for name, position in sorted(wanted):
        grouped.setdefault(int(name[1:]), []).append(((name, position), name[0] == "b"))
    return grouped


def _features(spec: Spec, params: Parameters, forward: _Pass, output: int,
              wanted: dict[int, list[tuple[Coordinate, bool]]]) -> dict[Coordinate, Any]:
    """The wanted gradient entries of sample ``forward`` for a unit residual on ``output``.

    This is backpropagation of delta = e_output * act'(z_L) (the MSE gradient with
    loss factor 1, positive factors dropped), entry by entry.
    """
    network, conventions = spec.network, spec.conventions
    layers = network.layers
    depth = network.depth
    last = layers[-1]
    delta: list[Any] = [
        integral_as_int(activation_derivative(last, forward.pre[-1][k], forward.post[-1][k],
                                     conventions)) if k == output else 0
        for k in range(network.outputs)]
    result: dict[Coordinate, Any] = {}
    for index in range(depth, 0, -1):
        below = forward.inputs if index == 1 else forward.post[index - 2]
        for coordinate, is_bias in wanted.get(index, ()):
            position = coordinate[1]
            result[coordinate] = (delta[position[0]] if is_bias
                                  else delta[position[0]] * below[position[1]])
        if index == 1:
            break
        weight = params.weights[index - 1]
        layer = layers[index - 2]
        below_delta = []
        for i in range(layer.units):
            total = 0
            for j, d in enumerate(delta):
                total = total + weight[j][i] * d
            below_delta.append(total * integral_as_int(activation_derivative(
                layer, forward.pre[index - 2][i], forward.post[index - 2][i], conventions)))
        delta = below_delta
    return result


def _straddles(spec: Spec, params: Parameters, inputs: Sequence[tuple[Number, ...]]) -> bool:
    """Whether some first-layer unit straddles its kinks, as witnesses usually need.

    A unit whose samples all share one derivative contributes a constant column
    to the lower-layer gradients, which zero output-layer gradients then
    annihilate; so does one lone sample on the steepest piece. Draws where some
    unit sees two derivatives, with two or more samples on its steepest piece,
    succeed more often (measured: about 1.5x fewer draws on one-hidden-layer
    nets). A heuristic for choosing draws only: it never decides a verdict.
    """
    layer = spec.network.layers[0]
    if not kink_points(layer):
        return True
    for weights, bias in zip(params.weights[0], params.biases[0], strict=True):
        groups: dict[Any, int] = {}
        for row in inputs:
            u = bias
            for w, x in zip(weights, row, strict=True):
                u = u + w * x
            slope = activation_derivative(layer, u, activation_value(layer, u, RATIONAL),
                                          spec.conventions)
            groups[slope] = groups.get(slope, 0) + 1
        steepest = max(groups, key=abs)
        if len(groups) >= 2 and groups[steepest] >= 2:
            return True
    return False


def search(spec: Spec, samples: int, deadline: float, attempts: int = 200, seed: int = 0,
           accept: Callable[[Witness], bool] | None = None) -> Witness | None:
    """Look for a witness at M = ``samples`` by the rank criterion; None if none was found.

    ``accept`` is the caller's verifier; the first candidate it accepts is returned.
    Each draw costs one forward pass per sample and one backward pass per
    (sample, output): the gradient is a sum of per-sample terms, so the column of
    sample m, output k is the gradient of the one-sample batch {x_m} with residual
    e_k (up to the positive loss factor). Integral values are computed as ints.
    """
    if not applicable(spec):
        return None
    network = spec.network
    outputs = network.outputs
    coords = _coordinates(spec)
    wanted = _by_layer(frozenset(coords.zero).union(*coords.nonzero))
    sampler = _Sampler(spec, samples, seed)
    columns: list[tuple[int, int]] = [(m, k) for m in range(samples) for k in range(outputs)]
    for attempt in range(attempts):
        if time.perf_counter() > deadline:
            return None
        magnitude = 2 + attempt // 20
        # Integers first (pure int arithmetic, several times faster), then half-integers.
        plain = sampler.parameters(magnitude, halves=attempt >= INTEGER_DRAWS)
        passes: dict[tuple[Number, ...], _Pass] = {}

        def forward(row: tuple[Number, ...], plain: Parameters = plain,
                    passes: dict[tuple[Number, ...], _Pass] = passes) -> _Pass:
            if row not in passes:
                passes[row] = _forward(network, plain, row)
            return passes[row]

        avoid = (lambda row: forward(row).on_kink(network)) if spec.generic else (
            lambda row: False)
        inputs = sampler.inputs(magnitude, avoid)
        for _ in range(STRADDLE_TRIES):
            if _straddles(spec, plain, inputs):
                break
            inputs = sampler.inputs(magnitude, avoid)
        runs = [forward(row) for row in inputs]
        features = [_features(spec, plain, runs[m], k, wanted) for m, k in columns]
        zero_rows = [[features[c][coordinate] for c in range(len(columns))]
                     for coordinate in coords.zero]
        basis = _nullspace(zero_rows, len(columns))
        if not basis:
            continue
        # With a one-dimensional null space every residual is a multiple of one vector.
        for trial in range(1 if len(basis) == 1 else 6):
            weights = [1 if trial == 0 and len(basis) == 1 else
                       sampler.randint(-3, 3) for _ in basis]
            residual = _integral([sum(w * vector[c] for w, vector in zip(weights, basis,
                                                                         strict=True))
                                  for c in range(len(columns))])
            if not all(
                any(sum(features[c][coordinate] * residual[c] for c in range(len(columns)))
                    != 0 for coordinate in group)
                for group in coords.nonzero
            ):
                continue
            targets = tuple([
                as_fractions([runs[m].post[-1][k] - residual[m * outputs + k]
                              for k in range(outputs)])
                for m in range(samples)])
            witness = Witness(parameters=_exact_parameters(plain),
                              inputs=tuple([as_fractions(row) for row in inputs]),
                              targets=targets)
            if accept is None or accept(witness):
                return witness
    return None
