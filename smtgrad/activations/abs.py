"""abs: |u|; abs'(0) is 0 (PyTorch) or 1 by convention."""

from __future__ import annotations

from fractions import Fraction

from smtgrad.activations.base import Activation, LayerParameters, Numbers, Piece, Scalar


class Abs(Activation):
    name = "abs"
    positively_homogeneous = True
    piecewise_linear = True

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        return u if u >= 0 else -u

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        if u == 0:
            return 1 if kink_one else 0
        return 1 if u > 0 else -1

    def kinks(self, layer: LayerParameters) -> tuple[int, ...]:
        return (0,)

    def pieces(self, layer: LayerParameters, kink_one: bool) -> tuple[Piece, ...]:
        zero, one = Fraction(0), Fraction(1)
        if kink_one:
            return (Piece(None, False, zero, True, -one, zero),
                    Piece(zero, False, None, False, one, zero))
        return (Piece(None, False, zero, True, -one, zero),
                Piece(zero, False, zero, False, zero, zero),
                Piece(zero, True, None, False, one, zero))
    # abs(u) = abs(-u) with opposite derivatives: not a function of the value.
