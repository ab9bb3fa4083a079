"""Second-order classification of a stationary witness: local minimum, saddle, or neither.

Trusted code (a certificate check): it may import the spec, the numbers, the
reference network and the interval code; never search code or a solver.

A witness is *stationary* when every parameter gradient is exactly zero (or, for an
enclosure, when every parameter gradient is among the certified zero equations).
Its classification is one of :class:`Kind`, with the certificate that proves it:

``pattern-convexity`` (local minimum). One hidden layer of a positively homogeneous
    piecewise-linear activation (relu, leaky_relu, abs, linear), one linear output, MSE,
    no sample on a kink, and every hidden unit whose derivative vector over the samples
    is nonzero has a nonzero outgoing weight. Proof: off the kinks every unit keeps its
    phase in a neighbourhood U of the point, so there f(x_m) = c + sum_i u_im (P_i x_m +
    Q_i) with u_im = act'(z_im) fixed, P_i = v_i w_i, Q_i = v_i b_i (act(z) = z act'(z)).
    The loss is ell(Phi(theta)) with ell a convex quadratic of (P, Q, c) and Phi the
    product map over the units with u_i != 0 (the others do not reach the loss in U).
    Where v_i != 0, d(v w, v b) = (w dv + v dw, b dv + v db) is onto, so Phi is a
    submersion: grad_theta = DPhi^T grad ell = 0 forces grad ell = 0, so Phi(theta)
    minimises the convex ell globally, and ell(Phi(theta')) >= ell(Phi(theta)) on U.
    (Not strict: (v, w, b) -> (v/t, t w, t b) keeps the loss.)

``hessian`` (strict local minimum). The Hessian, enclosed in python-flint arb balls at
    the point (or over the whole enclosure box), passes a ball Cholesky factorisation
    with every pivot proved positive: positive definite, so the stationary point is a
    strict local minimum (second-order sufficient condition; the loss is smooth there).

``negative curvature`` (saddle). A rational direction d with d^T H d proved negative
    over balls: the loss is C^2 at the point (smooth units, or no sample on a kink) and
    the point is stationary, so L(theta + t d) < L(theta) for all small t != 0. The
    direction is reported exactly.

Anything else is ``undetermined``, with the reason (a sample on a kink, a singular
positive semidefinite Hessian, a ball too wide). A float Hessian never decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Any

from smtgrad.reference.intervals import (
    ArbContext,
    Dual,
    DualFunctions,
    Enclosure,
    Point,
    _enclose,
    interval_sign,
)
from smtgrad.reference.network import Evaluation, Parameters, entry_at, evaluate
from smtgrad.reference.witness import Witness
from smtgrad.spec import LossKind, Spec, entries

Coordinate = tuple[str, tuple[int, ...]]

#: The most parameters for which a Hessian is formed (its cost grows as n^3).
HESSIAN_LIMIT = 150


class Kind(Enum):
    """What a stationary point is (the JSON ``classification``)."""

    STRICT_MINIMUM = "strict local minimum"
    MINIMUM = "local minimum"
    SADDLE = "saddle"
    UNDETERMINED = "undetermined"

    @property
    def is_minimum(self) -> bool:
        return self in (Kind.STRICT_MINIMUM, Kind.MINIMUM)


@dataclass(frozen=True)
class Classification:
    """A classification, its certificate, and (saddles) an exact descent direction."""

    kind: Kind
    certificate: str
    reason: str
    #: For a saddle: the direction d (parameter name -> nested tuples of Fractions).
    direction: dict[str, Any] = field(default_factory=dict)


def parameter_coordinates(spec: Spec) -> list[Coordinate]:
    """Every parameter entry, in block order (W1, b1, W2, ...)."""
    return [(name, index) for name, shape in spec.network.parameter_shapes().items()
            for index in entries(shape)]


def is_stationary(spec: Spec, evaluation: Evaluation, certified: bool = False) -> bool:
    """Every parameter gradient is exactly zero (``certified``: the enclosure's equations
    cover every parameter, so they are zero at the certified point)."""
    if certified:
        shapes = spec.network.parameter_shapes()
        named = {(t.block, index) for t in spec.query.zero for index in t.indices(shapes)}
        return all(c in named for c in parameter_coordinates(spec))
    for name, index in parameter_coordinates(spec):
        value = entry_at(evaluation.gradients[name], index)
        if not (isinstance(value, Fraction | int) and value == 0):
            return False
    return True


def classify(spec: Spec, witness: Witness, evaluation: Evaluation,
             certified: bool = False) -> Classification | None:
    """The classification of a stationary witness; None when it is not stationary."""
    if not is_stationary(spec, evaluation, certified):
        return None
    if evaluation.kinks:
        kink = evaluation.kinks[0]
        return Classification(Kind.UNDETERMINED, "", (
            f"sample {kink.sample} sits on the kink {kink.point} of layer {kink.layer} unit "
            f"{kink.unit}: the loss is not twice differentiable there"))
    convex = _pattern_convexity(spec, witness, evaluation)
    if convex is not None:
        return convex
    count = len(parameter_coordinates(spec))
    if count > HESSIAN_LIMIT:
        return Classification(Kind.UNDETERMINED, "", (
            f"{count} parameters: the Hessian (n^2 dual-number entries in arb balls) is "
            f"only formed up to {HESSIAN_LIMIT}"))
    try:
        hessian = _hessian(spec, witness)
    except (ArithmeticError, TypeError, ValueError) as error:
        return Classification(Kind.UNDETERMINED, "", f"the Hessian cannot be enclosed: {error}")
    if _positive_definite(hessian):
        return Classification(Kind.STRICT_MINIMUM, "hessian", (
            "the Hessian (arb balls) is positive definite: every Cholesky pivot is proved "
            "positive"))
    direction = _negative_curvature(hessian)
    if direction is not None:
        coordinates = parameter_coordinates(spec)
        return Classification(Kind.SADDLE, "negative curvature", (
            "d^T H d < 0 (arb balls) for the exact direction d: the loss decreases along "
            "it to second order"), _shaped(spec, coordinates, direction))
    return Classification(Kind.UNDETERMINED, "", (
        "second order does not decide: the Hessian is not proved positive definite and no "
        "direction of negative curvature was found (a singular Hessian needs higher order)"))


# ----------------------------------------------------------------------------------------
# pattern-convexity


def _pattern_convexity(spec: Spec, witness: Witness,
                       evaluation: Evaluation) -> Classification | None:
    network = spec.network
    if (network.depth != 2 or network.outputs != 1 or spec.loss.kind is not LossKind.MSE
            or not network.layers[1].activation.identity
            or not network.layers[0].activation.positively_homogeneous):
        return None
    hidden = network.layers[0]
    outgoing = witness.parameters.weights[1][0]
    for unit in range(hidden.units):
        reaches_loss = False
        for m in range(len(witness.inputs)):
            z = evaluation.pre_activations[0][m][unit]
            slope = hidden.activation.derivative(z, z, hidden,
                                                 spec.conventions.relu_grad_at_zero == 1,
                                                 None)  # type: ignore[arg-type]
            if slope != 0:
                reaches_loss = True
                break
        if reaches_loss and outgoing[unit] == 0:
            return None
    return Classification(Kind.MINIMUM, "pattern-convexity", (
        "no sample on a kink and every unit that reaches the loss has a nonzero outgoing "
        "weight: the loss is a convex quadratic of the product coordinates, and the "
        "parameter map is a submersion onto them (a non-strict local minimum)"))


# ----------------------------------------------------------------------------------------
# The Hessian over arb balls


def _hessian(spec: Spec, witness: Witness, precision: int = 256) -> list[list[Any]]:
    """H[i][j] = d^2 L / d theta_i d theta_j as arb balls (over the box for enclosures)."""
    import flint

    coordinates = parameter_coordinates(spec)
    size = len(coordinates)
    ctx = ArbContext()
    with flint.ctx.workprec(precision):
        zero, one = ctx.mpf(0), ctx.mpf(1)
        values: dict[Coordinate, Any] = {}
        for position, (name, index) in enumerate(coordinates):
            ball = _enclose(ctx, entry_at(witness.block(name), index))
            values[(name, index)] = Dual(ctx, ball, tuple(one if k == position else zero
                                                          for k in range(size)))

        def lift(array: Any) -> Any:
            if isinstance(array, tuple | list):
                return tuple(lift(item) for item in array)
            if isinstance(array, Fraction | int) and not isinstance(array, bool):
                return array
            return Dual(ctx, _enclose(ctx, array), ())

        targets = (tuple(witness.targets) if spec.loss.kind is LossKind.CROSS_ENTROPY
                   else lift(witness.targets))
        point = Point(Parameters(lift(witness.parameters.weights),
                                 lift(witness.parameters.biases)),
                      lift(witness.inputs), targets).with_values(values)
        evaluation = evaluate(spec.network, spec.loss, spec.conventions, point.parameters,
                              point.inputs, point.targets, DualFunctions(ctx))
        rows = []
        for name, index in coordinates:
            entry = entry_at(evaluation.gradients[name], index)
            if isinstance(entry, Dual):
                grad = entry.grad or entry._padded(size).grad
                rows.append([ctx.mpf(g) for g in grad])
            else:
                rows.append([zero] * size)
        return rows


def _positive_definite(hessian: list[list[Any]]) -> bool:
    """A ball Cholesky (LDL^T) factorisation with every pivot proved positive."""
    import flint

    size = len(hessian)
    if size == 0:
        return False
    with flint.ctx.workprec(256):
        a = [row[:] for row in hessian]
        for k in range(size):
            pivot = a[k][k]
            if interval_sign(pivot) != 1:
                return False
            for i in range(k + 1, size):
                factor = a[i][k] / pivot
                for j in range(k + 1, size):
                    a[i][j] = a[i][j] - factor * a[k][j]
        return True


def _negative_curvature(hessian: list[list[Any]]) -> list[Fraction] | None:
    """A rational d with d^T H d proved negative, found from the midpoint matrix's
    eigenvector of the least eigenvalue (numerics propose, balls decide)."""
    import flint
    import mpmath

    size = len(hessian)
    if size == 0:
        return None
    context = mpmath.mp.clone()
    context.dps = 40
    middle = context.matrix(size, size)
    for i in range(size):
        for j in range(size):
            mid = hessian[i][j].mid()
            middle[i, j] = context.mpf(mid.str(50, radius=False))
    middle = (middle + middle.T) / 2
    eigenvalues, vectors = context.eigsy(middle)
    least = min(range(size), key=lambda k: eigenvalues[k])
    if eigenvalues[least] >= 0:
        return None
    for denominator in (10**3, 10**6, 10**12):
        direction = [Fraction(str(vectors[i, least])).limit_denominator(denominator)
                     for i in range(size)]
        if not any(direction):
            continue
        ctx = ArbContext()
        with flint.ctx.workprec(256):
            total = ctx.mpf(0)
            for i in range(size):
                for j in range(size):
                    if direction[i] and direction[j]:
                        total = total + ctx.rational(direction[i] * direction[j]) * hessian[i][j]
            if interval_sign(total) == -1:
                return direction
    return None


def _shaped(spec: Spec, coordinates: list[Coordinate], values: list[Fraction]
            ) -> dict[str, Any]:
    """Per-coordinate values as nested tuples shaped like the parameter blocks."""
    shapes = spec.network.parameter_shapes()
    by_coordinate = dict(zip(coordinates, values, strict=True))
    result: dict[str, Any] = {}
    for name, shape in shapes.items():
        if len(shape) == 2:
            result[name] = tuple(tuple(by_coordinate[(name, (i, j))] for j in range(shape[1]))
                                 for i in range(shape[0]))
        else:
            result[name] = tuple(by_coordinate[(name, (i,))] for i in range(shape[0]))
    return result


def describe(classification: Classification) -> str:
    """One line for text output."""
    text = classification.kind.value
    if classification.certificate:
        text += f" ({classification.certificate})"
    return text


__all__ = ["Classification", "Enclosure", "Kind", "classify", "describe", "is_stationary",
           "parameter_coordinates"]
