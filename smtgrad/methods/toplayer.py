"""A sat-only search that solves the output layer exactly: for fixed, binary or bounded targets.

With MSE and a linear output layer, fix everything below the output layer, the
inputs and the targets. The hidden features a_m of the last hidden layer are
then constants, and each output-layer gradient entry is linear in the output
layer's parameters (W_L, b_L):

    dL/dW_L[k, j] = c * sum_m (W_L[k] . a_m + b_L[k] - y[m, k]) * a_m[j]
    dL/db_L[k]    = c * sum_m (W_L[k] . a_m + b_L[k] - y[m, k])

So "these output-layer entries are zero" is a linear system in (W_L, b_L): the
normal equations of a least-squares fit of the output layer on the features.
Exact linear algebra solves it; the candidate then goes to the verifier, which
decides every other requirement (nonzero lower blocks, assumptions, labels).

This is the method for targets the rank criterion cannot choose freely (fixed
Y, binary labels, unit-interval targets), and a second source of witnesses for
free real targets. Draws are **biased towards degenerate points** unless the
spec asks for ``generic``: zero weights, repeated inputs and samples on kinks
are witnesses too, and random specs have had only such witnesses.

It never proves unsat: a failed search only means "try something else".
May import the reference network and the spec model, never a solver.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from smtgrad.methods.base import Draws, Effort
from smtgrad.methods.rank import solve_linear
from smtgrad.reference.network import (
    RATIONAL,
    Parameters,
    activation_value,
    affine,
    kink_points,
)
from smtgrad.reference.witness import Witness
from smtgrad.spec import LossKind, Spec, TargetKind, entries

#: Small values the biased draws pick from (zero among them unless the spec is generic).
POOL = (*(Fraction(v) for v in (0, 1, -1, 2, -2, 3, -3)), Fraction(1, 2), Fraction(-1, 2))


#: Draws without zeros, repeats or deliberate kinks before the biased draws begin.
GENERIC_DRAWS = 30


def applicable(spec: Spec) -> bool:
    """MSE, a linear output layer, piecewise-linear hidden layers, and some output-layer
    gradient entry queried zero."""
    network = spec.network
    if spec.loss.kind is not LossKind.MSE or not network.layers[-1].activation.identity:
        return False
    if not all(layer.activation.piecewise_linear for layer in network.layers):
        return False
    if any(not isinstance(value, Fraction | int) for value in _fixed_values(spec)):
        return False  # closed-form fixed values: the exact system here is over Q
    last = network.depth
    return any(target.block in (f"W{last}", f"b{last}") for target in spec.query.zero)


def _fixed_values(spec: Spec) -> list[Any]:
    values: list[Any] = []
    stack: list[Any] = list(spec.fixed.values())
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif item is not None:
            values.append(item)
    return values


class _BiasedSampler:
    """Small rationals with zeros, repeats and kinks, honouring fixed values."""

    def __init__(self, spec: Spec, samples: int, seed: int) -> None:
        self.spec = spec
        self.samples = samples
        self.rng = random.Random(seed)

    def value(self, name: str, index: tuple[int, ...], magnitude: int, nonzero: bool
              ) -> Fraction:
        known = self.spec.fixed_value(name, index)
        if known is not None:
            return Fraction(known)
        while True:
            if self.rng.random() < 0.6:
                value = self.rng.choice(POOL)
            else:
                value = Fraction(self.rng.randint(-magnitude, magnitude),
                                 self.rng.choice((1, 1, 2, 3)))
            if value != 0 or not nonzero:
                return value

    def parameters(self, magnitude: int, degenerate: bool) -> Parameters:
        weights, biases = [], []
        generic = not degenerate
        for name, shape in self.spec.network.parameter_shapes().items():
            values = [self.value(name, index, magnitude, generic and name[0] == "W")
                      for index in entries(shape)]
            if len(shape) == 2:
                weights.append(tuple(tuple(values[j * shape[1]:(j + 1) * shape[1]])
                                     for j in range(shape[0])))
            else:
                biases.append(tuple(values))
        return Parameters(tuple(weights), tuple(biases))

    def inputs(self, params: Parameters, magnitude: int, degenerate: bool
               ) -> tuple[tuple[Fraction, ...], ...]:
        spec = self.spec
        width = spec.network.inputs
        first = spec.network.layers[0]
        points = kink_points(first)
        rows: list[tuple[Fraction, ...]] = []
        for m in range(self.samples):
            free = [i for i in range(width) if spec.fixed_value("X", (m, i)) is None]
            row = [self.value("X", (m, i), magnitude, False) for i in range(width)]
            roll = self.rng.random()
            if degenerate and rows and free and roll < 0.25:
                source = self.rng.choice(rows)  # a repeated input (where X is free)
                row = [source[i] if i in free else row[i] for i in range(width)]
            elif degenerate and points and free and roll < 0.45:
                # Put this sample on a kink of a random first-layer unit.
                unit = self.rng.randrange(first.units)
                column = self.rng.choice(free)
                weight = params.weights[0][unit][column]
                if weight != 0:
                    rest = params.biases[0][unit] + sum(
                        (params.weights[0][unit][i] * row[i] for i in range(width)
                         if i != column), start=Fraction(0))
                    row[column] = (Fraction(self.rng.choice(points)) - rest) / weight
            rows.append(tuple(row))
        return tuple(rows)

    def targets(self) -> list[list[Fraction]]:
        spec = self.spec
        outputs = spec.network.outputs
        result = []
        for m in range(self.samples):
            row = []
            for k in range(outputs):
                known = spec.fixed_value("Y", (m, k))
                if known is not None:
                    row.append(Fraction(known))
                elif spec.targets is TargetKind.BINARY:
                    row.append(Fraction(self.rng.randint(0, 1)))
                elif spec.targets is TargetKind.UNIT_INTERVAL:
                    row.append(self.rng.choice((Fraction(0), Fraction(1), Fraction(1, 2),
                                                Fraction(1, 4), Fraction(3, 4))))
                else:
                    row.append(self.value("Y", (m, k), 3, False))
            result.append(row)
        return result


def _features(spec: Spec, params: Parameters, row: tuple[Fraction, ...]) -> tuple[Any, ...]:
    """The inputs of the output layer for one sample (exact forward pass)."""
    current: tuple[Any, ...] = row
    for layer, weight, bias in zip(spec.network.layers[:-1], params.weights[:-1],
                                   params.biases[:-1], strict=True):
        u = affine(weight, bias, current)
        current = tuple(activation_value(layer, value, RATIONAL) for value in u)
    return tuple(Fraction(value) for value in current)


def search(spec: Spec, samples: int, deadline: float | None, attempts: int = 400,
           seed: int = 0, accept: Callable[[Witness], bool] | None = None, first: int = 0,
           effort: Effort | None = None) -> Witness | None:
    """Draw the rest, solve the output layer; the first candidate ``accept`` takes."""
    if not applicable(spec):
        return None
    network = spec.network
    last = network.depth
    weight_name, bias_name = f"W{last}", f"b{last}"
    outputs, width = network.outputs, (network.layers[-2].units if last > 1 else network.inputs)
    # Unknowns: the free entries of the output layer, in a fixed order.
    unknowns: list[tuple[str, tuple[int, ...]]] = [
        (weight_name, (k, j)) for k in range(outputs) for j in range(width)]
    unknowns += [(bias_name, (k,)) for k in range(outputs)]
    free = [c for c in unknowns if spec.fixed_value(*c) is None]
    position = {c: n for n, c in enumerate(free)}
    shapes = network.parameter_shapes()
    equations = []
    for target in spec.query.zero:
        if target.block in (weight_name, bias_name):
            for index in target.indices(shapes):
                if (target.block, index) not in equations:
                    equations.append((target.block, index))
    sampler = _BiasedSampler(spec, samples, seed + first)
    with Draws("output-layer solve", attempts, effort, deadline, first) as draws:
        for attempt in draws:
            magnitude = 2 + attempt // 40
            # Generic-looking draws first (preferred when both kinds of witness exist), then
            # draws biased towards zero weights, repeated inputs and kinks.
            degenerate = not spec.generic and attempt >= GENERIC_DRAWS
            params = sampler.parameters(magnitude, degenerate)
            inputs = sampler.inputs(params, magnitude, degenerate)
            targets = sampler.targets()
            features = [_features(spec, params, row) for row in inputs]
            rows: list[list[Fraction]] = []
            rhs: list[Fraction] = []
            for block, index in equations:
                k = index[0]
                row = [Fraction(0)] * len(free)
                constant = Fraction(0)
                for m in range(samples):
                    a = features[m]
                    factor = Fraction(1) if block == bias_name else a[index[1]]
                    if factor == 0:
                        continue
                    # residual r[m, k] = sum_j W[k, j] a[j] + b[k] - y[m, k]
                    terms: list[tuple[tuple[str, tuple[int, ...]], Any]] = [
                        ((weight_name, (k, j)), a[j]) for j in range(width)]
                    terms.append(((bias_name, (k,)), Fraction(1)))
                    for coordinate, coefficient in terms:
                        if coordinate in position:
                            row[position[coordinate]] += factor * coefficient
                        else:
                            constant += factor * coefficient * Fraction(spec.fixed_value(
                                *coordinate))
                    constant -= factor * targets[m][k]
                rows.append(row)
                rhs.append(-constant)
            solved = solve_linear(rows, rhs, len(free))
            if solved is None:
                continue
            particular, basis = solved
            for trial in range(3 if basis else 1):
                values = list(particular)
                if trial:
                    for vector in basis:
                        weight = sampler.rng.randint(-2, 2)
                        values = [v + weight * b for v, b in zip(values, vector, strict=True)]
                output_weights = [list(r) for r in params.weights[-1]]
                output_bias = list(params.biases[-1])
                for (block, index), value in zip(free, values, strict=True):
                    if block == weight_name:
                        output_weights[index[0]][index[1]] = value
                    else:
                        output_bias[index[0]] = value
                if spec.generic and any(v == 0 for r in output_weights for v in r):
                    continue
                full = Parameters((*params.weights[:-1], tuple(tuple(r) for r in output_weights)),
                                  (*params.biases[:-1], tuple(output_bias)))
                witness = Witness(full, inputs, tuple(tuple(row) for row in targets))
                if accept is None or accept(witness):
                    return witness
    return None
