"""Exact reference forward and backward pass.

This module is the ground truth the verifier relies on: a plain, readable
implementation of the forward pass, the loss and backpropagation over exact
numbers (Fractions, or any exact number type with the same operators and a
:class:`SmoothFunctions` provider for sigmoid, tanh and softmax). It imports
no solver and nothing of the encoder, on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from smtgrad.numbers import (
    RATIONAL as RATIONAL,
)
from smtgrad.numbers import (
    SMALL_FRACTIONS,
    as_fractions,
    ints_where_integral,
)
from smtgrad.numbers import (
    InexactValue as InexactValue,  # re-exported: raised by every number system
)
from smtgrad.numbers import (
    SmoothFunctions as SmoothFunctions,  # re-exported: the number systems' base class
)
from smtgrad.spec import Conventions, Layer, Loss, LossKind, Network, Reduction

#: An exact scalar: a Fraction, or an exact number type with the same operators.
Scalar = Any
Vector = tuple[Scalar, ...]
Matrix = tuple[Vector, ...]




@dataclass(frozen=True)
class Parameters:
    """Weights W1..WL (units x previous) and biases b1..bL."""

    weights: tuple[Matrix, ...]
    biases: tuple[Vector, ...]

    def block(self, name: str) -> tuple[Any, ...]:
        layer = int(name[1:]) - 1
        return self.weights[layer] if name[0] == "W" else self.biases[layer]


@dataclass(frozen=True)
class Kink:
    """A sample whose pre-activation sits exactly on a kink of a piecewise activation."""

    layer: int
    sample: int
    unit: int
    point: Fraction


@dataclass(frozen=True)
class Evaluation:
    """Everything the exact pass computes for one batch.

    Every value reads as a Fraction (or the exact type in use). The pass computes
    integral values as ints; the per-sample arrays (pre-activations, activations,
    predictions, residuals) are converted when first read, since the verifier
    itself reads only the loss, the gradients and the kinks.
    """

    computed_pre_activations: tuple[tuple[Vector, ...], ...] = field(repr=False)
    computed_activations: tuple[tuple[Vector, ...], ...] = field(repr=False)
    computed_residuals: tuple[Vector, ...] = field(repr=False)
    loss: Scalar
    gradients: dict[str, tuple[Any, ...]]
    kinks: tuple[Kink, ...]

    @property
    def pre_activations(self) -> tuple[tuple[Vector, ...], ...]:
        """[layer][sample][unit]"""
        converted: tuple[tuple[Vector, ...], ...] = self._converted(
            "pre_activations", self.computed_pre_activations, 2)
        return converted

    @property
    def activations(self) -> tuple[tuple[Vector, ...], ...]:
        """[layer][sample][unit]"""
        converted: tuple[tuple[Vector, ...], ...] = self._converted(
            "activations", self.computed_activations, 2)
        return converted

    @property
    def predictions(self) -> tuple[Vector, ...]:
        """[sample][output]: the last layer's activations."""
        predictions: tuple[Vector, ...] = self.activations[-1]
        return predictions

    @property
    def residuals(self) -> tuple[Vector, ...]:
        """yhat - y (one-hot y for class targets), [sample][output]."""
        converted: tuple[Vector, ...] = self._converted("residuals", self.computed_residuals, 1)
        return converted

    def _converted(self, name: str, computed: Any, depth: int) -> Any:
        cache = self.__dict__.setdefault("_as_fractions", {})
        if name not in cache:
            cache[name] = (tuple([tuple([as_fractions(row) for row in rows]) for rows in computed])
                           if depth == 2 else tuple([as_fractions(row) for row in computed]))
        return cache[name]


def entry_at(array: Any, index: tuple[int, ...]) -> Any:
    """The entry of nested tuples at a multi-index."""
    for position in index:
        array = array[position]
    return array


def with_entry(array: Any, index: tuple[int, ...], value: Any) -> Any:
    """A copy of nested tuples with one entry replaced."""
    if not index:
        return value
    items = list(array)
    items[index[0]] = with_entry(items[index[0]], index[1:], value)
    return tuple(items)


# ----------------------------------------------------------------------------------------
# Activations: each knows its value and derivative (smtgrad.activations).


def activation_value(layer: Layer, u: Scalar, smooth: SmoothFunctions = RATIONAL) -> Scalar:
    """The activation of one unit."""
    return layer.activation.value(u, layer, smooth)


def activation_derivative(layer: Layer, u: Scalar, a: Scalar, conventions: Conventions,
                          smooth: SmoothFunctions = RATIONAL) -> Scalar:
    """The derivative used by backpropagation; at a kink, the spec's convention.

    Convention 0 is PyTorch's: relu'(0) = 0, leaky_relu'(0) = slope, abs'(0) = 0,
    hardtanh'(+-1) = 0. Convention 1 takes the slope of the linear piece instead.
    Constant slopes are plain ints (exact; an int times a Fraction is a Fraction).
    """
    return layer.activation.derivative(u, a, layer, conventions.relu_grad_at_zero == 1, smooth)


def kink_points(layer: Layer) -> tuple[int, ...]:
    """Where the activation is not differentiable (exact integers)."""
    return layer.activation.kinks(layer)


# ----------------------------------------------------------------------------------------
# Forward, loss, backward.


def affine(weight: Matrix, bias: Vector, x: Vector) -> Vector:
    """W x + b; a ValueError if the shapes disagree.

    The lengths are compared explicitly: ``zip(..., strict=True)`` parses its
    keyword at every call, which costs more than the arithmetic on small layers.
    """
    width = len(x)
    if len(weight) != len(bias):
        raise ValueError(f"{len(weight)} weight rows but {len(bias)} biases")
    result = []
    for row, b in zip(weight, bias):  # noqa: B905 (lengths compared above)
        if len(row) != width:
            raise ValueError(f"a weight row of {len(row)} entries for {width} inputs")
        total = b
        for w, xi in zip(row, x):  # noqa: B905 (lengths compared above)
            total = total + w * xi
        result.append(total)
    return tuple(result)


def loss_normaliser(loss: Loss, samples: int, outputs: int) -> Fraction:
    """The factor that turns a sum over elements into the reduced loss (scale included)."""
    if loss.reduction is Reduction.SUM:
        return loss.scale
    count = samples if loss.kind is LossKind.CROSS_ENTROPY else samples * outputs
    return loss.scale / count


def one_hot(label: Scalar, classes: int) -> Vector:
    """The one-hot vector of a class index."""
    return tuple(Fraction(1 if label == k else 0) for k in range(classes))


def _scaled(factor: Fraction, values: Sequence[Scalar]) -> tuple[Any, ...]:
    """factor * each value, with ints read as Fractions.

    A product with an int is built as Fraction(p * value, q), which skips
    ``Fraction.__mul__``'s dispatch (this runs for every gradient entry).
    """
    numerator, denominator = factor.numerator, factor.denominator
    result = []
    for value in values:
        if type(value) is int:
            result.append(Fraction(numerator * value, denominator) if value
                          else SMALL_FRACTIONS[0])
        else:
            result.append(factor * value)
    return tuple(result)


def evaluate(
    network: Network,
    loss: Loss,
    conventions: Conventions,
    params: Parameters,
    inputs: Sequence[Vector],
    targets: Sequence[Any],
    smooth: SmoothFunctions = RATIONAL,
) -> Evaluation:
    """Forward pass, loss and every parameter gradient, exactly.

    ``targets`` holds one row per sample: a vector of outputs, or a class index
    for cross-entropy. Integral values are computed as Python ints (exact, and
    far cheaper than Fractions); the result holds Fractions (or the exact type
    in use) throughout.
    """
    samples = len(inputs)
    depth = network.depth
    outputs = network.outputs
    weights = [tuple([ints_where_integral(row) for row in matrix]) for matrix in params.weights]
    biases = [ints_where_integral(vector) for vector in params.biases]
    inputs = [ints_where_integral(row) for row in inputs]
    if loss.kind is not LossKind.CROSS_ENTROPY:  # class targets stay as given
        targets = [ints_where_integral(row) for row in targets]
    pre: list[list[Vector]] = [[] for _ in range(depth)]
    post: list[list[Vector]] = [[] for _ in range(depth)]
    kinks: list[Kink] = []
    points = [kink_points(layer) for layer in network.layers]
    for m, x in enumerate(inputs):
        current: Vector = x
        for index, layer in enumerate(network.layers):
            u = affine(weights[index], biases[index], current)
            pre[index].append(u)
            activation = layer.activation
            if activation.identity:
                current = u
            elif activation.vector:
                current = activation.vector_value(u, smooth)
            else:
                current = tuple([activation.value(value, layer, smooth) for value in u])
            post[index].append(current)
            if points[index]:
                for unit, value in enumerate(u):
                    for point in points[index]:
                        if value == point:
                            kinks.append(Kink(index + 1, m, unit, Fraction(point)))

    predictions = tuple(post[-1])
    factor = loss_normaliser(loss, samples, outputs)
    output_layer = network.layers[-1]
    linear_output = output_layer.activation.identity
    target_rows: list[Vector] = []
    for target in targets:
        if loss.kind is LossKind.CROSS_ENTROPY:
            target_rows.append(one_hot(target, outputs))
        else:
            target_rows.append(tuple(target))
    residuals = tuple([
        tuple([p - t for p, t in zip(prediction, target, strict=True)])
        for prediction, target in zip(predictions, target_rows, strict=True)
    ])

    # Loss value and dL/dz at the output layer's pre-activation, without the loss's
    # normalising factor: every gradient is linear in these, so the factor is applied
    # once to each gradient at the end.
    total: Scalar = 0
    output_deltas: list[Vector] = []
    for m in range(samples):
        prediction, target, residual = predictions[m], target_rows[m], residuals[m]
        if loss.kind is LossKind.MSE:
            for r in residual:
                total = total + r * r
            delta = tuple([2 * r for r in residual]) if linear_output else tuple([
                2 * r * activation_derivative(output_layer, z, p, conventions, smooth)
                for r, z, p in zip(residual, pre[-1][m], prediction, strict=True)
            ])
        elif loss.kind is LossKind.BCE:
            for p, t in zip(prediction, target, strict=True):
                total = total + t * smooth.negative_log(p) + (1 - t) * smooth.negative_log(1 - p)
            delta = residual
        else:
            label = targets[m]
            total = total + smooth.negative_log(prediction[int(label)])
            delta = residual
        output_deltas.append(delta)
    loss_value = _scaled(factor, (total,))[0]

    # Backpropagation, layer by layer: dL/dW_l = factor * sum over m of delta_m a_m^T and
    # dL/db_l = factor * sum over m of delta_m, with a_m the layer's input for sample m.
    gradients: dict[str, tuple[Any, ...]] = {}
    deltas = output_deltas
    for index in range(depth - 1, -1, -1):
        layer_inputs = inputs if index == 0 else post[index - 1]
        units = network.layers[index].units
        width = network.inputs if index == 0 else network.layers[index - 1].units
        weight_sums: list[list[Scalar]] = [[0] * width for _ in range(units)]
        bias_sums: list[Scalar] = [0] * units
        for delta, a in zip(deltas, layer_inputs, strict=True):
            for j in range(units):
                d = delta[j]
                bias_sums[j] = bias_sums[j] + d
                row = weight_sums[j]
                for i in range(width):
                    row[i] = row[i] + d * a[i]
        gradients[f"W{index + 1}"] = tuple([_scaled(factor, row) for row in weight_sums])
        gradients[f"b{index + 1}"] = _scaled(factor, bias_sums)
        if index == 0:
            break
        weight = weights[index]
        below = network.layers[index - 1]
        linear_below = below.activation.identity
        below_deltas: list[Vector] = []
        for m, delta in enumerate(deltas):
            back = []
            for i in range(width):
                total = 0
                for j in range(units):
                    total = total + weight[j][i] * delta[j]
                back.append(total if linear_below else total * activation_derivative(
                    below, pre[index - 1][m][i], post[index - 1][m][i], conventions, smooth))
            below_deltas.append(tuple(back))
        deltas = below_deltas
    ordered = {name: gradients[name] for name in network.parameter_shapes()}
    return Evaluation(
        computed_pre_activations=tuple([tuple(rows) for rows in pre]),
        computed_activations=tuple([tuple(rows) for rows in post]),
        computed_residuals=residuals,
        loss=loss_value,
        gradients=ordered,
        kinks=tuple(kinks),
    )
