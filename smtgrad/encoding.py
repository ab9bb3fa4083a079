"""Spec -> real-arithmetic constraints (pysmt formulas), for one number of samples M.

The encoding follows DESIGN section 2:

* parameters, inputs and **residuals** r = yhat - y are the unknowns when the
  targets are free reals, so that the gradient equations are bilinear;
* every piecewise-linear unit gets phase variables selecting one linear piece,
  with value and derivative as functions of the phase;
* gradients are written by backpropagation with the positive loss factor
  dropped (it does not change which gradients are zero).

Formulas are built with pysmt's solver-agnostic shortcuts; no solver is
imported here (see :mod:`smtgrad.backends`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pysmt.fnode import FNode
from pysmt.shortcuts import (
    GE,
    GT,
    LE,
    LT,
    And,
    Bool,
    Equals,
    ExactlyOne,
    Implies,
    Not,
    Or,
    Plus,
    Real,
    Symbol,
    Times,
)
from pysmt.typing import BOOL, REAL

from smtgrad.expr import Algebra, Cond, Ref, evaluate_condition
from smtgrad.spec import (
    Activation,
    Layer,
    LossKind,
    Reduction,
    Spec,
    TargetKind,
    entries,
    normalize_ref,
)


class UnsupportedSpec(ValueError):
    """A spec the SMT encoding cannot express (e.g. smooth activations)."""


@dataclass(frozen=True)
class Piece:
    """One linear piece of an activation: region lo (<|<=) u (<|<=) hi, value, derivative."""

    lower: Fraction | None
    lower_strict: bool
    upper: Fraction | None
    upper_strict: bool
    slope: Fraction
    intercept: Fraction

    def region(self, u: FNode) -> FNode:
        parts = []
        if self.lower is not None:
            parts.append((LT if self.lower_strict else LE)(Real(self.lower), u))
        if self.upper is not None:
            parts.append((LT if self.upper_strict else LE)(u, Real(self.upper)))
        return And(parts) if parts else Bool(True)


def pieces(layer: Layer, kink_derivative_one: bool) -> tuple[Piece, ...]:
    """The activation as a partition of the real line into linear pieces.

    Which piece owns a kink point decides the derivative there: with
    ``relu_grad_at_zero: 0`` (PyTorch) the kink belongs to the flat side.
    """
    zero, one, c = Fraction(0), Fraction(1), kink_derivative_one
    act = layer.activation
    if act is Activation.LINEAR:
        return (Piece(None, False, None, False, one, zero),)
    if act in (Activation.RELU, Activation.LEAKY_RELU):
        low = zero if act is Activation.RELU else layer.slope
        return (
            Piece(None, False, zero, c, low, zero),
            Piece(zero, not c, None, False, one, zero),
        )
    if act is Activation.ABS:
        if c:
            return (Piece(None, False, zero, True, -one, zero),
                    Piece(zero, False, None, False, one, zero))
        return (
            Piece(None, False, zero, True, -one, zero),
            Piece(zero, False, zero, False, zero, zero),
            Piece(zero, True, None, False, one, zero),
        )
    if act is Activation.HARDTANH:
        return (
            Piece(None, False, -one, c, zero, -one),
            Piece(-one, not c, one, not c, one, zero),
            Piece(one, c, None, False, zero, one),
        )
    raise UnsupportedSpec(
        f"activation {act.value} is not piecewise linear; the SMT encoding handles linear, "
        "relu, leaky_relu, abs and hardtanh"
    )


def kink_values(layer: Layer) -> tuple[Fraction, ...]:
    """Kink points of a piecewise activation (where 'generic' forbids samples to sit)."""
    table = pieces(layer, False)
    points = {p.upper for p in table if p.upper is not None}
    return tuple(sorted(points))


@dataclass(frozen=True)
class Encoding:
    """The constraints for one M, and the terms needed to read a witness back."""

    spec: Spec
    samples: int
    assertions: tuple[FNode, ...]
    parameters: dict[str, Any]  # name -> nested lists of terms
    inputs: tuple[tuple[FNode, ...], ...]
    targets: tuple[tuple[FNode, ...], ...]
    predictions: tuple[tuple[FNode, ...], ...]
    residuals: tuple[tuple[FNode, ...], ...]
    gradients: dict[str, Any]
    free_residuals: bool

    def formula(self) -> FNode:
        return And(self.assertions)


def _sum(terms: Sequence[FNode]) -> FNode:
    terms = [t for t in terms if not (t.is_constant() and t.constant_value() == 0)]
    if not terms:
        return Real(0)
    return terms[0] if len(terms) == 1 else Plus(terms)


def _mul(a: FNode, b: FNode) -> FNode:
    if a.is_constant():
        value = a.constant_value()
        if value == 0:
            return Real(0)
        if value == 1:
            return b
    if b.is_constant():
        value = b.constant_value()
        if value == 0:
            return Real(0)
        if value == 1:
            return a
    return Times(a, b)


def _scaled(factor: Fraction, term: FNode) -> FNode:
    return _mul(Real(factor), term)


class _TermAlgebra(Algebra[FNode, FNode]):
    """Builds pysmt terms from ``assume`` expressions."""

    def const(self, value: Fraction) -> FNode:
        return Real(value)

    def add(self, a: FNode, b: FNode) -> FNode:
        return Plus(a, b)

    def sub(self, a: FNode, b: FNode) -> FNode:
        return Plus(a, Times(Real(-1), b))

    def mul(self, a: FNode, b: FNode) -> FNode:
        return Times(a, b)

    def div(self, a: FNode, b: FNode) -> FNode:
        return Times(a, Real(1 / Fraction(b.constant_value())))

    def neg(self, a: FNode) -> FNode:
        return Times(Real(-1), a)

    def compare(self, op: str, a: FNode, b: FNode) -> FNode:
        table: dict[str, Callable[[FNode, FNode], FNode]] = {
            "==": Equals, "<": LT, "<=": LE, ">": GT, ">=": GE,
            "!=": lambda x, y: Not(Equals(x, y)),
        }
        return table[op](a, b)

    def conj(self, items: Sequence[FNode]) -> FNode:
        return And(items)

    def disj(self, items: Sequence[FNode]) -> FNode:
        return Or(items)

    def negate(self, a: FNode) -> FNode:
        return Not(a)

    def boolean(self, value: bool) -> FNode:
        return Bool(value)


def check_supported(spec: Spec) -> None:
    """Raise UnsupportedSpec when the SMT encoding cannot express the spec."""
    if spec.loss.kind is not LossKind.MSE:
        raise UnsupportedSpec(f"loss {spec.loss.kind.value} needs the smooth encodings")
    for layer in spec.network.layers:
        pieces(layer, False)


class _Builder:
    def __init__(self, spec: Spec, samples: int) -> None:
        self.spec = spec
        self.samples = samples
        self.assertions: list[FNode] = []
        self.kink_one = spec.conventions.relu_grad_at_zero == 1

    def value(self, name: str, index: tuple[int, ...], symbol: str) -> FNode:
        fixed = self.spec.fixed_value(name, index)
        if fixed is not None:
            return Real(fixed)
        return Symbol(symbol, REAL)

    def activation(self, layer: Layer, u: FNode, tag: str) -> tuple[FNode, Callable[[FNode],
                                                                                     FNode]]:
        """Return the unit's value term and a function mapping an upstream delta to its own."""
        table = pieces(layer, self.kink_one)
        if len(table) == 1:
            piece = table[0]
            value = _sum([_scaled(piece.slope, u), Real(piece.intercept)])
            return value, lambda delta: _scaled(piece.slope, delta)
        if len(table) == 2:
            phase = Symbol(f"phase_{tag}", BOOL)
            selectors = [Not(phase), phase]
        else:
            selectors = [Symbol(f"phase_{tag}_{k}", BOOL) for k in range(len(table))]
            self.assertions.append(ExactlyOne(selectors))
        value = Symbol(f"a_{tag}", REAL)
        for selector, piece in zip(selectors, table, strict=True):
            self.assertions.append(Implies(selector, And(
                piece.region(u),
                Equals(value, _sum([_scaled(piece.slope, u), Real(piece.intercept)])),
            )))

        def backward(delta: FNode) -> FNode:
            out = Symbol(f"d_{tag}", REAL)
            for selector, piece in zip(selectors, table, strict=True):
                self.assertions.append(Implies(selector, Equals(out, _scaled(piece.slope,
                                                                             delta))))
            return out

        return value, backward

    def build(self) -> Encoding:
        spec, samples = self.spec, self.samples
        network = spec.network
        check_supported(spec)
        shapes = network.parameter_shapes()
        params: dict[str, Any] = {}
        for name, shape in shapes.items():
            if len(shape) == 2:
                params[name] = [[self.value(name, (j, i), f"{name}_{j}_{i}")
                                 for i in range(shape[1])] for j in range(shape[0])]
            else:
                params[name] = [self.value(name, (j,), f"{name}_{j}") for j in range(shape[0])]
        inputs = [[self.value("X", (m, i), f"X_{m}_{i}") for i in range(network.inputs)]
                  for m in range(samples)]

        # Forward pass.
        layer_inputs: list[list[list[FNode]]] = []  # [layer][sample][unit] inputs to layer
        pre: list[list[list[FNode]]] = []
        backs: list[list[list[Callable[[FNode], FNode]]]] = []
        current = inputs
        for index, layer in enumerate(network.layers):
            weight, bias = params[f"W{index + 1}"], params[f"b{index + 1}"]
            layer_inputs.append(current)
            pre_layer, post_layer, back_layer = [], [], []
            for m in range(samples):
                us, values, backward = [], [], []
                for j in range(layer.units):
                    term = _sum([_mul(w, x) for w, x in zip(weight[j], current[m], strict=True)]
                                + [bias[j]])
                    tag = f"{index + 1}_{m}_{j}"
                    u = Symbol(f"u_{tag}", REAL)
                    self.assertions.append(Equals(u, term))
                    value, back = self.activation(layer, u, tag)
                    us.append(u)
                    values.append(value)
                    backward.append(back)
                pre_layer.append(us)
                post_layer.append(values)
                back_layer.append(backward)
            pre.append(pre_layer)
            backs.append(back_layer)
            current = post_layer
        predictions = current

        # Targets and residuals r = yhat - y.
        outputs = network.outputs
        residuals: list[list[FNode]] = []
        targets: list[list[FNode]] = []
        free = spec.targets is TargetKind.REAL
        for m in range(samples):
            row_r, row_y = [], []
            for k in range(outputs):
                fixed = spec.fixed_value("Y", (m, k))
                if fixed is not None:
                    free = False
                    y = Real(fixed)
                    r = _sum([predictions[m][k], Real(-fixed)])
                else:
                    r = Symbol(f"r_{m}_{k}", REAL)
                    y = _sum([predictions[m][k], Times(Real(-1), r)])
                row_r.append(r)
                row_y.append(y)
                if spec.targets is TargetKind.BINARY:
                    self.assertions.append(Or(Equals(y, Real(0)), Equals(y, Real(1))))
                elif spec.targets is TargetKind.UNIT_INTERVAL:
                    self.assertions.append(And(LE(Real(0), y), LE(y, Real(1))))
            residuals.append(row_r)
            targets.append(row_y)

        # Backpropagation (dL/dz up to the positive factor 2*scale/N).
        deltas = [[backs[-1][m][k](residuals[m][k]) for k in range(outputs)]
                  for m in range(samples)]
        gradients: dict[str, Any] = {}
        for index in range(network.depth - 1, -1, -1):
            layer = network.layers[index]
            below = layer_inputs[index]
            width = len(below[0])
            gradients[f"W{index + 1}"] = [
                [_sum([_mul(deltas[m][j], below[m][i]) for m in range(samples)])
                 for i in range(width)] for j in range(layer.units)]
            gradients[f"b{index + 1}"] = [_sum([deltas[m][j] for m in range(samples)])
                                          for j in range(layer.units)]
            if index == 0:
                break
            weight = params[f"W{index + 1}"]
            deltas = [[backs[index - 1][m][i](
                _sum([_mul(weight[j][i], deltas[m][j]) for j in range(layer.units)]))
                for i in range(width)] for m in range(samples)]

        self.query(gradients, shapes)
        if spec.generic:
            self.generic(params, inputs, pre)
        self.assumptions(params, inputs, targets, predictions, residuals)
        return Encoding(
            spec=spec,
            samples=samples,
            assertions=tuple(self.assertions),
            parameters=params,
            inputs=tuple(tuple(row) for row in inputs),
            targets=tuple(tuple(row) for row in targets),
            predictions=tuple(tuple(row) for row in predictions),
            residuals=tuple(tuple(row) for row in residuals),
            gradients=gradients,
            free_residuals=free and not spec.assume,
        )

    def query(self, gradients: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
        def entry(name: str, index: tuple[int, ...]) -> FNode:
            item = gradients[name]
            for position in index:
                item = item[position]
            result: FNode = item
            return result

        for target in self.spec.query.zero:
            indices = [target.index] if target.index is not None else entries(shapes[
                target.block])
            for index in indices:
                self.assertions.append(Equals(entry(target.block, index), Real(0)))
        for target in self.spec.query.nonzero:
            indices = [target.index] if target.index is not None else entries(shapes[
                target.block])
            self.assertions.append(Or([Not(Equals(entry(target.block, index), Real(0)))
                                       for index in indices]))

    def generic(self, params: dict[str, Any], inputs: list[list[FNode]],
                pre: list[list[list[FNode]]]) -> None:
        network = self.spec.network
        for index in range(network.depth):
            for row in params[f"W{index + 1}"]:
                for weight in row:
                    self.assertions.append(Not(Equals(weight, Real(0))))
        for index, layer in enumerate(network.layers):
            for point in kink_values(layer):
                for sample in pre[index]:
                    for u in sample:
                        self.assertions.append(Not(Equals(u, Real(point))))
        for m in range(len(inputs)):
            for n in range(m):
                self.assertions.append(Or([Not(Equals(a, b))
                                           for a, b in zip(inputs[m], inputs[n], strict=True)]))

    def assumptions(self, params: dict[str, Any], inputs: list[list[FNode]],
                    targets: list[list[FNode]], predictions: list[list[FNode]],
                    residuals: list[list[FNode]]) -> None:
        spec = self.spec
        if not spec.assume:
            return
        loss = spec.loss
        count = self.samples * spec.network.outputs
        factor = loss.scale / count if loss.reduction is Reduction.MEAN else loss.scale
        loss_term = _scaled(factor, _sum([_mul(r, r) for row in residuals for r in row]))

        def resolve(ref: Ref) -> FNode:
            ref = normalize_ref(ref)
            if ref.name == "loss":
                return loss_term
            table: dict[str, Any] = {"X": inputs, "Y": targets, "yhat": predictions, **params}
            item = table[ref.name]
            for position in ref.indices:
                item = item[position]
            result: FNode = item
            return result

        algebra = _TermAlgebra()
        for assumption in spec.assume:
            condition: Cond = assumption.condition
            self.assertions.append(evaluate_condition(condition, resolve, algebra))


def encode(spec: Spec, samples: int) -> Encoding:
    """Build the constraints of ``spec`` at M = ``samples``."""
    return _Builder(spec, samples).build()
