"""hardtanh: u clipped to [-1, 1]; hardtanh'(+-1) is 0 (PyTorch) or 1 by convention."""

from __future__ import annotations

from fractions import Fraction

from smtgrad.activations.base import Activation, LayerParameters, Numbers, Piece, Scalar


class Hardtanh(Activation):
    name = "hardtanh"
    piecewise_linear = True

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        if u > 1:
            return u * 0 + 1
        if u < -1:
            return u * 0 - 1
        return u

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        if u == 1 or u == -1:
            return 1 if kink_one else 0
        return 1 if -1 < u < 1 else 0

    def kinks(self, layer: LayerParameters) -> tuple[int, ...]:
        return (-1, 1)

    def pieces(self, layer: LayerParameters, kink_one: bool) -> tuple[Piece, ...]:
        zero, one = Fraction(0), Fraction(1)
        return (Piece(None, False, -one, kink_one, zero, -one),
                Piece(-one, not kink_one, one, not kink_one, one, zero),
                Piece(one, kink_one, None, False, zero, one))

    def derivative_determined_by_value(self, layer: LayerParameters, kink_one: bool) -> bool:
        # With convention 0: hardtanh' = [-1 < hardtanh < 1].
        return not kink_one
