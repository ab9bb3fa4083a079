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
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from math import lcm
from typing import Any

from smtgrad.network import Parameters, entry_at, evaluate
from smtgrad.spec import Loss, LossKind, Reduction, Spec, TargetKind, entries
from smtgrad.witness import Witness


def applicable(spec: Spec) -> bool:
    """The rank criterion applies to MSE with free real targets and piecewise-linear units."""
    return (
        spec.loss.kind is LossKind.MSE
        and spec.targets is TargetKind.REAL
        and "Y" not in spec.fixed
        and all(layer.activation.is_piecewise_linear for layer in spec.network.layers)
    )


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
    """Draws small rational parameters and inputs, honouring fixed values."""

    def __init__(self, spec: Spec, samples: int, seed: int) -> None:
        self.spec = spec
        self.samples = samples
        self.random = random.Random(seed)

    def number(self, magnitude: int, nonzero: bool) -> Fraction:
        while True:
            value = Fraction(self.random.randint(-magnitude, magnitude),
                             self.random.choice((1, 1, 1, 2)))
            if value != 0 or not nonzero:
                return value

    def parameters(self, magnitude: int) -> Parameters:
        spec = self.spec
        weights, biases = [], []
        for name, shape in spec.network.parameter_shapes().items():
            nonzero = name.startswith("W")
            if len(shape) == 2:
                block: Any = tuple(
                    tuple(self._value(name, (j, i), magnitude, nonzero) for i in range(shape[1]))
                    for j in range(shape[0]))
                weights.append(block)
            else:
                biases.append(tuple(self._value(name, (j,), magnitude, False)
                                    for j in range(shape[0])))
        return Parameters(tuple(weights), tuple(biases))

    def _value(self, name: str, index: tuple[int, ...], magnitude: int,
               nonzero: bool) -> Fraction:
        fixed = self.spec.fixed_value(name, index)
        return fixed if fixed is not None else self.number(magnitude, nonzero)

    def inputs(self, magnitude: int, avoid: Callable[[tuple[Fraction, ...]], bool]
               ) -> tuple[tuple[Fraction, ...], ...]:
        """Distinct input rows; a row on a kink (``avoid``) is redrawn, not the whole batch."""
        spec = self.spec
        width = spec.network.inputs
        rows: list[tuple[Fraction, ...]] = []
        seen: set[tuple[Fraction, ...]] = set()
        spread = max(magnitude, self.samples)
        for m in range(self.samples):
            row: tuple[Fraction, ...] = ()
            for tries in range(60):
                denominator = 1 if tries < 5 else self.random.choice((3, 5, 7))
                row = tuple(self._input((m, i), spread, denominator) for i in range(width))
                if row not in seen and not avoid(row):
                    break
            seen.add(row)
            rows.append(row)
        return tuple(rows)

    def _input(self, index: tuple[int, ...], spread: int, denominator: int) -> Fraction:
        fixed = self.spec.fixed_value("X", index)
        if fixed is not None:
            return Fraction(fixed)
        return Fraction(self.random.randint(-spread * denominator, spread * denominator),
                        denominator)


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


def _nullspace(rows: list[list[Fraction]], columns: int) -> list[list[Fraction]]:
    """A basis of {v : rows . v = 0} over Q."""
    solved = solve_linear(rows, [Fraction(0)] * len(rows), columns)
    assert solved is not None  # a homogeneous system always has the zero solution
    return solved[1]


def _fraction_at(array: Any, index: tuple[int, ...]) -> Fraction:
    return Fraction(entry_at(array, index))


def _integral(vector: list[Fraction]) -> list[Fraction]:
    scale = lcm(*(v.denominator for v in vector)) if vector else 1
    return [v * scale for v in vector]


def search(spec: Spec, samples: int, deadline: float, attempts: int = 200, seed: int = 0,
           accept: Callable[[Witness], bool] | None = None) -> Witness | None:
    """Look for a witness at M = ``samples`` by the rank criterion; None if none was found.

    ``accept`` is the caller's verifier; the first candidate it accepts is returned.
    Each draw costs O(M) single-sample evaluations: the gradient is a sum of
    per-sample terms, so the column of sample m, output k is the gradient of the
    one-sample batch {x_m} with residual e_k (up to the positive loss factor).
    """
    if not applicable(spec):
        return None
    network = spec.network
    outputs = network.outputs
    coords = _coordinates(spec)
    sampler = _Sampler(spec, samples, seed)
    per_sample = Loss(kind=LossKind.MSE, reduction=Reduction.SUM, scale=Fraction(1, 2))
    zero_row = tuple(Fraction(0) for _ in range(outputs))
    for attempt in range(attempts):
        if time.perf_counter() > deadline:
            return None
        magnitude = 2 + attempt // 20
        params = sampler.parameters(magnitude)

        def on_kink(row: tuple[Fraction, ...], params: Parameters = params) -> bool:
            return bool(evaluate(network, per_sample, spec.conventions, params, (row,),
                                 (zero_row,)).kinks)

        inputs = sampler.inputs(magnitude, on_kink if spec.generic else lambda row: False)
        yhat = [evaluate(network, per_sample, spec.conventions, params, (row,),
                         (zero_row,)).predictions[0] for row in inputs]
        columns: list[tuple[int, int]] = [(m, k) for m in range(samples) for k in range(outputs)]
        features: list[dict[str, Any]] = []
        for m, k in columns:
            target = tuple(yhat[m][o] - (1 if o == k else 0) for o in range(outputs))
            features.append(evaluate(network, per_sample, spec.conventions, params,
                                     (inputs[m],), (target,)).gradients)
        zero_rows = [[_fraction_at(features[c][name], index) for c in range(len(columns))]
                     for name, index in coords.zero]
        basis = _nullspace(zero_rows, len(columns))
        if not basis:
            continue
        for trial in range(6):
            weights = [Fraction(1) if trial == 0 and len(basis) == 1 else
                       Fraction(sampler.random.randint(-3, 3)) for _ in basis]
            residual = _integral([sum((w * vector[c] for w, vector in zip(weights, basis,
                                                                          strict=True)),
                                      start=Fraction(0)) for c in range(len(columns))])
            if not all(
                any(sum((_fraction_at(features[c][name], index) * residual[c]
                         for c in range(len(columns))), start=Fraction(0)) != 0
                    for name, index in group)
                for group in coords.nonzero
            ):
                continue
            targets = tuple(
                tuple(yhat[m][k] - residual[m * outputs + k] for k in range(outputs))
                for m in range(samples))
            witness = Witness(parameters=params, inputs=inputs, targets=targets)
            if accept is None or accept(witness):
                return witness
    return None
