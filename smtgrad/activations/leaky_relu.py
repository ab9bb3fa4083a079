"""leaky_relu: u for u > 0, slope * u otherwise (slope from the layer, default 1/100)."""

from __future__ import annotations

from fractions import Fraction

from smtgrad.activations.base import Activation, LayerParameters, Numbers, Piece, Scalar


class LeakyRelu(Activation):
    name = "leaky_relu"
    positively_homogeneous = True
    piecewise_linear = True
    takes_slope = True

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        return u if u > 0 else layer.slope * u

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        if u == 0:
            return 1 if kink_one else layer.slope
        return 1 if u > 0 else layer.slope

    def kinks(self, layer: LayerParameters) -> tuple[int, ...]:
        return (0,)

    def pieces(self, layer: LayerParameters, kink_one: bool) -> tuple[Piece, ...]:
        zero, one = Fraction(0), Fraction(1)
        return (Piece(None, False, zero, kink_one, layer.slope, zero),
                Piece(zero, not kink_one, None, False, one, zero))

    def derivative_determined_by_value(self, layer: LayerParameters, kink_one: bool) -> bool:
        # Injective for a positive slope; a zero slope is relu.
        return layer.slope > 0 or (layer.slope == 0 and not kink_one)
