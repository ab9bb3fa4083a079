"""linear: the identity."""

from __future__ import annotations

from fractions import Fraction

from smtgrad.activations.base import Activation, LayerParameters, Numbers, Piece, Scalar


class Linear(Activation):
    name = "linear"
    positively_homogeneous = True
    piecewise_linear = True
    identity = True

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        return u

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        return 1

    def pieces(self, layer: LayerParameters, kink_one: bool) -> tuple[Piece, ...]:
        return (Piece(None, False, None, False, Fraction(1), Fraction(0)),)

    def derivative_determined_by_value(self, layer: LayerParameters, kink_one: bool) -> bool:
        return True
