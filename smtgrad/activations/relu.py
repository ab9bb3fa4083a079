"""relu: max(u, 0); relu'(0) is 0 (PyTorch, JAX, TensorFlow) or 1 by convention."""

from __future__ import annotations

from fractions import Fraction

from smtgrad.activations.base import Activation, LayerParameters, Numbers, Piece, Scalar


class Relu(Activation):
    name = "relu"
    positively_homogeneous = True
    piecewise_linear = True

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        return u if u > 0 else u * 0

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        if u == 0:
            return 1 if kink_one else 0
        return 1 if u > 0 else 0

    def kinks(self, layer: LayerParameters) -> tuple[int, ...]:
        return (0,)

    def pieces(self, layer: LayerParameters, kink_one: bool) -> tuple[Piece, ...]:
        # Which piece owns the kink decides the derivative there.
        zero, one = Fraction(0), Fraction(1)
        return (Piece(None, False, zero, kink_one, zero, zero),
                Piece(zero, not kink_one, None, False, one, zero))

    def derivative_determined_by_value(self, layer: LayerParameters, kink_one: bool) -> bool:
        # With relu'(0) = 0, relu' = [relu > 0]; with relu'(0) = 1, relu(0) = relu(-1) but
        # the derivatives differ.
        return not kink_one
