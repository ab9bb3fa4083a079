"""Spec -> real-arithmetic constraints (pysmt formulas), for one number of samples M.

The encoding follows DESIGN section 2:

* parameters, inputs and **residuals** r = yhat - y are the unknowns, so that
  the gradient equations are bilinear; targets are y = yhat - r;
* every piecewise-linear unit gets phase variables selecting one linear piece,
  with value and derivative as functions of the phase;
* gradients are written by backpropagation with the positive loss factor
  dropped (it does not change which gradients are zero).

Smooth units (sigmoid, tanh, softmax) have no exact polynomial encoding. Two
sound substitutes are offered, selected by :class:`Mode`:

* ``LATTICE`` (sat only): every smooth pre-activation is k * ln(beta) with an
  integer |k| <= radius; the parameters of smooth layers are encoded by their
  coefficient of ln(beta). Values and derivatives are then rational table
  entries, and every gradient block is a power of ln(beta) times a rational
  expression. A witness of this encoding is exact; its unsat means nothing.
* ``ABSTRACT`` (unsat only): every smooth value is a fresh variable tied to its
  pre-activation only by facts true of the real function (range, monotonicity,
  symmetry, value at 0, tangent bounds, exact derivative identities). Unsat of
  this over-approximation is unsat of the real problem; its sat means nothing.

Formulas are built with pysmt's solver-agnostic shortcuts; no solver is
imported here (see :mod:`smtgrad.backends`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    FreshSymbol,
    Iff,
    Implies,
    Ite,
    Not,
    Or,
    Plus,
    Real,
    Symbol,
    Times,
)
from pysmt.typing import BOOL, REAL

from smtgrad import activations
from smtgrad.activations import Activation, Piece
from smtgrad.encoding.modes import EXACT, Mode, ModeKind, UnsupportedSpec, is_smooth
from smtgrad.encoding.phases import settled as settled_pieces
from smtgrad.numbers.expr import Algebra, Ref, evaluate_condition, references
from smtgrad.spec import (
    Layer,
    LossKind,
    Reduction,
    Spec,
    TargetKind,
    normalize_ref,
)


def region(piece: Piece, u: FNode) -> FNode:
    """The constraint that u lies in ``piece``'s region."""
    if piece.lower is not None and piece.lower == piece.upper:
        return Equals(u, Real(piece.lower))
    parts = []
    if piece.lower is not None:
        parts.append((LT if piece.lower_strict else LE)(Real(piece.lower), u))
    if piece.upper is not None:
        parts.append((LT if piece.upper_strict else LE)(u, Real(piece.upper)))
    return And(parts) if parts else Bool(True)


def pieces(layer: Layer, kink_derivative_one: bool) -> tuple[Piece, ...]:
    """A piecewise-linear activation as a partition of the real line into linear pieces
    (the activation's own table; which piece owns a kink decides the derivative there)."""
    if not layer.activation.piecewise_linear:
        raise UnsupportedSpec(
            f"activation {layer.activation.name} is not piecewise linear; the exact encoding "
            "handles " + ", ".join(name for name, a in activations.REGISTRY.items()
                                   if a.piecewise_linear))
    return layer.activation.pieces(layer, kink_derivative_one)


def lattice_pieces(layer: Layer, base: Fraction, radius: int) -> tuple[Piece, ...]:
    """A smooth unit at the lattice points k (standing for k*ln(base)), |k| <= radius."""
    table = []
    for k in range(-radius, radius + 1):
        point = layer.activation.lattice_point(k, base)
        if point is None:
            raise UnsupportedSpec(f"{layer.activation.name} has no rational values on the "
                                  "log lattice")
        value, derivative = point
        table.append(Piece(Fraction(k), False, Fraction(k), False, Fraction(0), value,
                           derivative))
    return tuple(table)


def kink_values(layer: Layer) -> tuple[Fraction, ...]:
    """Kink points of a piecewise activation (where 'generic' forbids samples to sit)."""
    return tuple(sorted(Fraction(point) for point in layer.activation.kinks(layer)))


@dataclass(frozen=True)
class Encoding:
    """The constraints for one M, and the terms needed to read a witness back."""

    spec: Spec
    samples: int
    mode: Mode
    assertions: tuple[FNode, ...]
    parameters: dict[str, Any]  # name -> nested lists of terms
    inputs: tuple[tuple[FNode, ...], ...]
    targets: tuple[tuple[FNode, ...], ...]  # one-hot rows for class targets
    predictions: tuple[tuple[FNode, ...], ...]
    residuals: tuple[tuple[FNode, ...], ...]
    gradients: dict[str, Any]
    scaled_layers: frozenset[int] = field(default_factory=frozenset)  # 1-based, x ln(base)
    loss_unencoded: bool = False  # a cross-entropy loss in `assume` was left to the verifier
    #: Logarithms ln p of fixed closed-form values that the encoding relaxed to a variable
    #: in a rigorous rational interval: its unsat is unsat, its sat proves nothing.
    relaxed: dict[int, tuple[Fraction, Fraction]] = field(default_factory=dict)

    def formula(self) -> FNode:
        return And(self.assertions)


def _sum(terms: Sequence[FNode]) -> FNode:
    terms = [t for t in terms if not (t.is_constant() and t.constant_value() == 0)]
    if not terms:
        return Real(0)
    return terms[0] if len(terms) == 1 else Plus(terms)


def _mul(a: FNode, b: FNode) -> FNode:
    for left, right in ((a, b), (b, a)):
        if left.is_constant():
            value = left.constant_value()
            if value == 0:
                return Real(0)
            if value == 1:
                return right
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


def check_supported(spec: Spec, mode: Mode = EXACT) -> None:
    """Raise UnsupportedSpec when ``mode`` cannot express the spec."""
    if mode.kind is ModeKind.EXACT:
        if is_smooth(spec) or spec.loss.kind is not LossKind.MSE:
            raise UnsupportedSpec("smooth activations and cross-entropy losses need the "
                                  "log-lattice or abstraction encodings")
        for layer in spec.network.layers:
            pieces(layer, False)
        return
    if mode.kind is ModeKind.LATTICE:
        for index, layer in enumerate(spec.network.layers, start=1):
            if not layer.activation.smooth:
                continue
            if not layer.activation.vector:
                lattice_pieces(layer, mode.base, 0)  # raises where the lattice has no values
            for assumption in spec.assume:
                if any(ref.name in (f"W{index}", f"b{index}")
                       for ref in references(assumption.condition)):
                    raise UnsupportedSpec(f"assume {assumption.text!r} constrains a parameter "
                                          "of a smooth layer, which the lattice encodes by "
                                          "its coefficient of ln(beta)")
            for name in (f"W{index}", f"b{index}"):
                for value in _fixed_entries(spec, name):
                    if _lattice_coefficient(value, mode.base) is None:
                        raise UnsupportedSpec(f"fixed {name} = {value} is not a multiple of "
                                              f"ln({mode.base})")


def _fixed_entries(spec: Spec, name: str) -> list[Any]:
    array = spec.fixed.get(name)
    if array is None:
        return []
    flat: list[Any] = []
    stack: list[Any] = [array]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif item is not None:
            flat.append(item)
    return flat


def _lattice_coefficient(value: Any, base: Fraction) -> Fraction | None:
    """c when value == c*ln(base) exactly (0 counts), else None."""
    if isinstance(value, Fraction | int):
        return Fraction(0) if value == 0 else None
    coefficient: Fraction | None = value.coefficient_of(base)
    return coefficient


class _Builder:
    def __init__(self, spec: Spec, samples: int, mode: Mode,
                 deadline: float | None = None) -> None:
        self.deadline = deadline
        self.spec = spec
        self.samples = samples
        self.mode = mode
        self.assertions: list[FNode] = []
        self.kink_one = spec.conventions.relu_grad_at_zero == 1
        self.smooth_units: dict[Activation, list[tuple[FNode, FNode]]] = {}
        #: Every sample's softmax logits and probabilities (the monotone-map fact).
        self.softmax_samples: list[tuple[list[FNode], list[FNode]]] = []
        self.function_families: dict[str, list[tuple[FNode, FNode]]] = {}
        self.relaxed: dict[int, tuple[Fraction, Fraction]] = {}
        #: Units whose piece fixed values or assumptions settle (encoding.phases).
        self.settled = settled_pieces(spec, samples)

    # -- unknowns ----------------------------------------------------------------------

    def value(self, name: str, index: tuple[int, ...], symbol: str, scaled: bool) -> FNode:
        array = self.spec.fixed.get(name)
        fixed: Any = array
        for position in index:
            fixed = fixed[position] if isinstance(fixed, tuple) else None
        if fixed is not None and not isinstance(fixed, tuple):
            if scaled:
                coefficient = _lattice_coefficient(fixed, self.mode.base)
                if coefficient is None:
                    raise UnsupportedSpec(f"fixed {symbol} is not a multiple of "
                                          f"ln({self.mode.base})")
                return Real(coefficient)
            if not isinstance(fixed, Fraction):
                return self.relaxed_value(fixed, symbol)
            return Real(fixed)
        return Symbol(symbol, REAL)

    def relaxed_value(self, value: Any, symbol: str) -> FNode:
        """A fixed closed form sum c * prod (ln p)^e, with each ln p a variable confined to
        a rigorous rational interval around it (an over-approximation: sound for unsat)."""
        terms = getattr(value, "terms", None)
        if terms is None:
            raise UnsupportedSpec(f"fixed {symbol} = {value} is not rational")
        addends = []
        for monomial, coefficient in terms.items():
            factors = [Real(coefficient)]
            for prime, power in monomial:
                factors += [self.log_variable(prime)] * power
            addends.append(factors[0] if len(factors) == 1 else Times(factors))
        return _sum(addends)

    def log_variable(self, prime: int) -> FNode:
        """The variable standing for ln p, with lo < ln p < hi from an arb ball."""
        variable = Symbol(f"ln_{prime}", REAL)
        if prime not in self.relaxed:
            import flint

            from smtgrad.reference.intervals import ball_bounds

            with flint.ctx.workprec(96):
                lo, hi = ball_bounds(flint.arb(prime).log())
            scale = 10**12  # short constants for the solver, rounded outwards
            lo = Fraction(math.floor(lo * scale), scale)
            hi = Fraction(math.ceil(hi * scale), scale)
            self.relaxed[prime] = (lo, hi)
            self.assertions.append(And(LT(Real(lo), variable), LT(variable, Real(hi))))
        return variable

    # -- activations -------------------------------------------------------------------

    def table_unit(self, table: Sequence[Piece], u: FNode, tag: str
                   ) -> tuple[FNode, Callable[[FNode], FNode]]:
        """Encode a unit given as pieces; return its value and its backward map."""
        if len(table) == 1:
            piece = table[0]
            value = _sum([_scaled(piece.slope, u), Real(piece.intercept)])
            return value, lambda delta: _scaled(piece.slope_of_derivative, delta)
        if len(table) == 2:
            phase = Symbol(f"phase_{tag}", BOOL)
            selectors = [Not(phase), phase]
        else:
            selectors = [Symbol(f"phase_{tag}_{k}", BOOL) for k in range(len(table))]
            self.assertions.append(ExactlyOne(selectors))
        value = Symbol(f"a_{tag}", REAL)
        for selector, piece in zip(selectors, table, strict=True):
            self.assertions.append(Implies(selector, And(
                region(piece, u),
                Equals(value, _sum([_scaled(piece.slope, u), Real(piece.intercept)])),
            )))

        def backward(delta: FNode) -> FNode:
            out = Symbol(f"d_{tag}", REAL)
            for selector, piece in zip(selectors, table, strict=True):
                self.assertions.append(Implies(selector, Equals(
                    out, _scaled(piece.slope_of_derivative, delta))))
            return out

        return value, backward

    def unit(self, layer: Layer, u: FNode, tag: str, settled: int | None = None
             ) -> tuple[FNode, Callable[[FNode], FNode]]:
        if not layer.activation.smooth:
            table = pieces(layer, self.kink_one)
            if settled is not None and len(table) > 1:
                # Fixed values or assumptions put u on this piece (encoding.phases): no
                # phase variable; its region is implied, and stated for the solver.
                self.assertions.append(region(table[settled], u))
                return self.table_unit(table[settled:settled + 1], u, tag)
            return self.table_unit(table, u, tag)
        if self.mode.kind is ModeKind.LATTICE:
            return self.table_unit(lattice_pieces(layer, self.mode.base, self.mode.radius), u,
                                   tag)
        if self.mode.kind is ModeKind.ABSTRACT:
            return layer.activation.abstract(self, u, tag)
        raise UnsupportedSpec(f"{layer.activation.name} needs the lattice or abstraction "
                              "encodings")

    # -- what activations' abstractions use (smtgrad.activations.base.AbstractionBuilder) ---

    def fresh(self, name: str) -> FNode:
        return Symbol(name, REAL)

    def require(self, *facts: FNode) -> None:
        self.assertions.extend(facts)

    def same_function(self, family: str, u: FNode, value: FNode, increasing: bool = False,
                      centre: Fraction | None = None, lipschitz: Fraction | None = None
                      ) -> None:
        """value = f(u) for one f shared by the family's units (see AbstractionBuilder);
        with ``lipschitz`` L, also f(v) - f(w) <= L (v - w) for v >= w (secant slopes of
        an increasing f are at most L = max f')."""
        if centre is not None:
            c = Real(centre)
            self.assertions += [Iff(GT(u, Real(0)), GT(value, c)),
                                Iff(Equals(u, Real(0)), Equals(value, c))]
        units = self.function_families.setdefault(family, [])
        # Strictly increasing f is injective: equal values iff equal inputs.
        same = Iff if increasing else Implies

        def secant(v: FNode, fv: FNode, w: FNode, fw: FNode) -> list[FNode]:
            if lipschitz is None:
                return []
            gap = Plus(v, Times(Real(-1), w))
            rise = Plus(fv, Times(Real(-1), fw))
            return [Implies(GE(gap, Real(0)), LE(rise, Times(Real(lipschitz), gap))),
                    Implies(LE(gap, Real(0)), GE(rise, Times(Real(lipschitz), gap)))]

        if lipschitz is not None and centre is not None:
            # Against the centre point f(0) = c: |f(u) - c| <= L |u|.
            self.assertions += secant(u, value, Real(0), Real(centre))
        for other_u, other_value in units:
            self.assertions += secant(u, value, other_u, other_value)
            if increasing:
                self.assertions += [Iff(LT(u, other_u), LT(value, other_value))]
            self.assertions += [same(Equals(u, other_u), Equals(value, other_value))]
            if centre is not None:
                # Symmetry: f(-u) = 2*centre - f(u).
                mirror = Plus(Real(2 * centre), Times(Real(-1), other_value))
                negated = Times(Real(-1), other_u)
                self.assertions += secant(u, value, negated, mirror)
                if increasing:
                    self.assertions += [Iff(LT(u, negated), LT(value, mirror))]
                self.assertions += [same(Equals(u, negated), Equals(value, mirror))]
        units.append((u, value))

    def softmax(self, zs: list[FNode], tag: str) -> list[FNode]:
        """Softmax probabilities of one sample's logits."""
        classes = len(zs)
        if self.mode.kind is ModeKind.LATTICE:
            radius, base = self.mode.radius, self.mode.base
            offsets = list(itertools.product(range(-radius, radius + 1), repeat=classes - 1))
            anchors = [Symbol(f"anchor_{tag}_{n}", BOOL) for n in range(2 * radius + 1)]
            self.assertions.append(ExactlyOne(anchors))
            for n, anchor in enumerate(anchors):
                self.assertions.append(Implies(anchor, Equals(zs[0], Real(n - radius))))
            probabilities = [Symbol(f"p_{tag}_{k}", REAL) for k in range(classes)]
            choices = [Symbol(f"offset_{tag}_{i}", BOOL) for i in range(len(offsets))]
            self.assertions.append(ExactlyOne(choices))
            for choice, offset in zip(choices, offsets, strict=True):
                weights = [Fraction(1)] + [base ** d for d in offset]
                total = sum(weights, start=Fraction(0))
                facts = [Equals(zs[k + 1], Plus(zs[0], Real(offset[k])))
                         for k in range(classes - 1)]
                facts += [Equals(probabilities[k], Real(weights[k] / total))
                          for k in range(classes)]
                self.assertions.append(Implies(choice, And(facts)))
            return probabilities
        if self.mode.kind is ModeKind.ABSTRACT:
            probabilities = [Symbol(f"p_{tag}_{k}", REAL) for k in range(classes)]
            self.assertions += [LT(Real(0), p) for p in probabilities]
            self.assertions.append(Equals(Plus(probabilities), Real(1)))
            for i in range(classes):
                for j in range(i + 1, classes):
                    self.assertions += [
                        Iff(LT(zs[i], zs[j]), LT(probabilities[i], probabilities[j])),
                        Iff(Equals(zs[i], zs[j]), Equals(probabilities[i], probabilities[j]))]
            previous = self.smooth_units.setdefault(activations.SOFTMAX, [])
            for i in range(classes):
                for j in range(classes):
                    if i == j:
                        continue
                    gap = Plus(zs[i], Times(Real(-1), zs[j]))
                    ratio_num, ratio_den = probabilities[i], probabilities[j]
                    for other_gap, other_ratio in (previous if self.mode.strong else []):
                        # p_i/p_j = exp(z_i - z_j) is increasing in the gap.
                        num, den = other_ratio
                        left, right = Times(ratio_num, den), Times(num, ratio_den)
                        self.assertions += [Iff(LT(gap, other_gap), LT(left, right)),
                                            Iff(Equals(gap, other_gap), Equals(left, right))]
            for i in range(classes):
                for j in range(classes):
                    if i != j:
                        previous.append((Plus(zs[i], Times(Real(-1), zs[j])),
                                         (probabilities[i], probabilities[j])))
            # softmax is the gradient of the convex log-sum-exp, so it is a monotone map:
            # (softmax(z) - softmax(w)) . (z - w) >= 0 for any two samples' logits.
            samples = self.softmax_samples
            for other_zs, other_ps in (samples if self.mode.strong else []):
                self.assertions.append(GE(Plus([
                    Times(Plus(p, Times(Real(-1), q)), Plus(z, Times(Real(-1), w)))
                    for p, q, z, w in zip(probabilities, other_ps, zs, other_zs, strict=True)]),
                    Real(0)))
            samples.append((zs, probabilities))
            return probabilities
        raise UnsupportedSpec("softmax needs the lattice or abstraction encodings")

    # -- the network -------------------------------------------------------------------

    def build(self) -> Encoding:
        spec, samples, mode = self.spec, self.samples, self.mode
        network = spec.network
        check_supported(spec, mode)
        shapes = network.parameter_shapes()
        scaled_layers = frozenset(
            index for index, layer in enumerate(network.layers, start=1)
            if mode.kind is ModeKind.LATTICE and layer.activation.smooth)
        params: dict[str, Any] = {}
        for name, shape in shapes.items():
            scaled = int(name[1:]) in scaled_layers
            if len(shape) == 2:
                params[name] = [[self.value(name, (j, i), f"{name}_{j}_{i}", scaled)
                                 for i in range(shape[1])] for j in range(shape[0])]
            else:
                params[name] = [self.value(name, (j,), f"{name}_{j}", scaled)
                                for j in range(shape[0])]
        inputs = [[self.value("X", (m, i), f"X_{m}_{i}", False) for i in range(network.inputs)]
                  for m in range(samples)]

        # Forward pass.
        layer_inputs: list[list[list[FNode]]] = []
        backs: list[list[list[Callable[[FNode], FNode]]]] = []
        pre: list[list[list[FNode]]] = []
        current = inputs
        for index, layer in enumerate(network.layers):
            weight, bias = params[f"W{index + 1}"], params[f"b{index + 1}"]
            layer_inputs.append(current)
            pre_layer, post_layer, back_layer = [], [], []
            for m in range(samples):
                if self.deadline is not None and time.perf_counter() > self.deadline:
                    raise EncodingTimeout("the deadline passed while encoding")
                us = []
                for j in range(layer.units):
                    term = _sum([_mul(w, x) for w, x in zip(weight[j], current[m], strict=True)]
                                + [bias[j]])
                    u = Symbol(f"u_{index + 1}_{m}_{j}", REAL)
                    self.assertions.append(Equals(u, term))
                    us.append(u)
                if layer.activation.vector:
                    values = self.softmax(us, f"{index + 1}_{m}")
                    backward: list[Callable[[FNode], FNode]] = [lambda d: d] * layer.units
                else:
                    pairs = [self.unit(layer, u, f"{index + 1}_{m}_{j}",
                                       self.settled.get((index + 1, m, j)))
                             for j, u in enumerate(us)]
                    values = [value for value, _ in pairs]
                    backward = [back for _, back in pairs]
                pre_layer.append(us)
                post_layer.append(values)
                back_layer.append(backward)
            pre.append(pre_layer)
            backs.append(back_layer)
            current = post_layer
        predictions = current

        residuals, targets = self.outputs(predictions)

        # Backpropagation (dL/dz up to a positive factor; for bce and cross-entropy the
        # output nonlinearity is fused with the loss: dL/dz = p - y).
        fused = spec.loss.kind in (LossKind.BCE, LossKind.CROSS_ENTROPY)
        deltas = [[residuals[m][k] if fused else backs[-1][m][k](residuals[m][k])
                   for k in range(network.outputs)] for m in range(samples)]
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
        self.symmetry(params, inputs)
        loss_unencoded = self.assumptions(params, inputs, targets, predictions, residuals)
        return Encoding(
            spec=spec,
            samples=samples,
            mode=mode,
            assertions=tuple(self.assertions),
            parameters=params,
            inputs=tuple(tuple(row) for row in inputs),
            targets=tuple(tuple(row) for row in targets),
            predictions=tuple(tuple(row) for row in predictions),
            residuals=tuple(tuple(row) for row in residuals),
            gradients=gradients,
            scaled_layers=scaled_layers,
            loss_unencoded=loss_unencoded,
            relaxed=dict(self.relaxed),
        )

    def outputs(self, predictions: list[list[FNode]]
                ) -> tuple[list[list[FNode]], list[list[FNode]]]:
        """Residuals r = yhat - y (unknowns where y is free) and target terms y = yhat - r."""
        spec = self.spec
        residuals: list[list[FNode]] = []
        targets: list[list[FNode]] = []
        for m in range(self.samples):
            if spec.targets is TargetKind.CLASS:
                fixed_label = spec.fixed_value("Y", (m,))
                if fixed_label is not None:
                    row_y = [Real(int(k == fixed_label)) for k in range(len(predictions[m]))]
                else:
                    labels = [Symbol(f"class_{m}_{k}", BOOL) for k in range(len(predictions[m]))]
                    self.assertions.append(ExactlyOne(labels))
                    row_y = [_ite_01(label) for label in labels]
                targets.append(row_y)
                residuals.append([_sum([p, Times(Real(-1), y)])
                                  for p, y in zip(predictions[m], row_y, strict=True)])
                continue
            row_r, row_y = [], []
            for k, prediction in enumerate(predictions[m]):
                fixed = spec.fixed_value("Y", (m, k))
                if fixed is not None:
                    y = Real(fixed)
                    r = _sum([prediction, Real(-fixed)])
                else:
                    r = Symbol(f"r_{m}_{k}", REAL)
                    y = _sum([prediction, Times(Real(-1), r)])
                    if spec.targets is TargetKind.BINARY:
                        self.assertions.append(Or(Equals(y, Real(0)), Equals(y, Real(1))))
                    elif spec.targets is TargetKind.UNIT_INTERVAL:
                        self.assertions.append(And(LE(Real(0), y), LE(y, Real(1))))
                row_r.append(r)
                row_y.append(y)
            residuals.append(row_r)
            targets.append(row_y)
        return residuals, targets

    def query(self, gradients: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
        def entry(name: str, index: tuple[int, ...]) -> FNode:
            item = gradients[name]
            for position in index:
                item = item[position]
            result: FNode = item
            return result

        for target in self.spec.query.zero:
            indices = target.indices(shapes)
            for index in indices:
                self.assertions.append(Equals(entry(target.block, index), Real(0)))
        for target in self.spec.query.nonzero:
            indices = target.indices(shapes)
            self.assertions.append(Or([Not(Equals(entry(target.block, index), Real(0)))
                                       for index in indices]))

    def symmetry(self, params: dict[str, Any], inputs: list[list[FNode]]) -> None:
        """Symmetry breaking that keeps every answer of the exact encoding the same, and
        keeps the abstraction sound for unsat.

        * Samples are exchangeable when nothing refers to a particular sample (no
          fixed X or Y, no assumptions): gradients are sums over samples, so any
          witness can be reordered to have sorted first input coordinates.
        * Hidden units of a layer are exchangeable when the query names whole
          blocks only and nothing fixes or constrains that layer's parameters:
          permuting units (rows of W_l and b_l, columns of W_{l+1}) permutes the
          gradients, so the biases can be taken sorted.
        * Classes of a softmax output with class labels are exchangeable when nothing
          fixes the labels or the output layer and the query names the output layer's
          blocks whole: permuting classes (rows of W_L and b_L, the labels) permutes
          dL/dW_L and dL/db_L and leaves every lower gradient (W_L^T r is unchanged)
          and the loss as they are. So the labels can be taken in order of first
          appearance (sample 0 has class 0; class k > 0 appears only after class
          k - 1), which is compatible with sorted inputs (relabelling classes moves
          no sample) and sorted biases (hidden units are another axis).

        Each is a symmetry of the real problem, so every witness has an image that
        satisfies the constraints; the abstraction is satisfied by every real witness
        (with the true values of its fresh variables), hence by that image: its unsat
        stays a proof without the abstraction itself being symmetric. Log lattices are
        not symmetric in the classes (offsets relative to class 0) and get none of this.
        """
        spec = self.spec
        if self.mode.kind is ModeKind.LATTICE or spec.assume:
            return
        self.class_order()
        if self.mode.kind is not ModeKind.EXACT:
            # Sorted inputs and biases are sound here too (same argument), but measured
            # slower: cvc5 on the sigmoid->sigmoid BCE abstraction at M=2 took 14 s with
            # them, 9 s without; softmax M=3 0.30 s with, 0.17 s without.
            return
        if "X" not in spec.fixed and "Y" not in spec.fixed:
            for m in range(len(inputs) - 1):
                self.assertions.append(LE(inputs[m][0], inputs[m + 1][0]))
        if any(target.index is not None for target in (*spec.query.zero, *spec.query.nonzero)):
            return
        for layer in range(1, spec.network.depth):
            names = (f"W{layer}", f"b{layer}", f"W{layer + 1}")
            if any(name in spec.fixed for name in names):
                continue
            bias = params[f"b{layer}"]
            for j in range(len(bias) - 1):
                self.assertions.append(LE(bias[j], bias[j + 1]))

    def class_order(self) -> None:
        """Class labels in order of first appearance, where classes are exchangeable
        (see :meth:`symmetry`)."""
        spec = self.spec
        depth = spec.network.depth
        top = (f"W{depth}", f"b{depth}")
        if (spec.targets is not TargetKind.CLASS or not spec.network.layers[-1].activation.vector
                or any(name in spec.fixed for name in ("Y", *top))
                or any(target.index is not None and target.block in top
                       for target in (*spec.query.zero, *spec.query.nonzero))):
            return
        classes = spec.network.outputs
        labels = [[Symbol(f"class_{m}_{k}", BOOL) for k in range(classes)]
                  for m in range(self.samples)]
        for m, row in enumerate(labels):
            for k in range(1, classes):
                self.assertions.append(Implies(row[k], Or([labels[n][k - 1]
                                                           for n in range(m)])
                                               if m else Bool(False)))

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
                    residuals: list[list[FNode]]) -> bool:
        """Encode `assume`; True when a cross-entropy loss had to be left unencoded."""
        spec = self.spec
        if not spec.assume:
            return False
        loss = spec.loss
        unencoded = False
        if loss.kind is LossKind.MSE:
            count = self.samples * spec.network.outputs
            factor = loss.scale / count if loss.reduction is Reduction.MEAN else loss.scale
            loss_term = _scaled(factor, _sum([_mul(r, r) for row in residuals for r in row]))
        else:
            # Cross-entropy is not polynomial. Its only sound fact kept here: it is positive.
            loss_term = FreshSymbol(REAL, template="loss_%d")
            self.assertions.append(GT(loss_term, Real(0)))
            unencoded = True
        class_labels = spec.targets is TargetKind.CLASS

        def resolve(ref: Ref) -> FNode:
            ref = normalize_ref(ref)
            if ref.name == "loss":
                return loss_term
            if ref.name == "Y" and class_labels:
                row = targets[ref.indices[0]]
                return _sum([_scaled(Fraction(k), y) for k, y in enumerate(row)])
            table: dict[str, Any] = {"X": inputs, "Y": targets, "yhat": predictions, **params}
            item = table[ref.name]
            for position in ref.indices:
                item = item[position]
            result: FNode = item
            return result

        algebra = _TermAlgebra()
        for assumption in spec.assumptions_at(self.samples):  # X[*,0]: one per sample
            self.assertions.append(evaluate_condition(assumption.condition, resolve, algebra))
        return unencoded


def _ite_01(flag: FNode) -> FNode:
    return Ite(flag, Real(1), Real(0))


class EncodingTimeout(RuntimeError):
    """The deadline passed while the constraints were being built."""


def encode(spec: Spec, samples: int, mode: Mode = EXACT,
           deadline: float | None = None) -> Encoding:
    """Build the constraints of ``spec`` at M = ``samples`` in the given mode.

    With ``deadline`` (a ``time.perf_counter()`` value), raise EncodingTimeout once
    it passes.
    """
    # In smtgrad's environment (private_environment) pysmt's type check is off; a caller
    # building in another environment gets pysmt's checks, and nothing is patched.
    return _Builder(spec, samples, mode, deadline).build()
