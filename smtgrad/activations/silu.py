"""silu (swish): u * sigmoid(u); derivative s + u s (1 - s) with s = sigmoid(u).

Exact on the log lattice: silu(k ln beta) = k ln beta * beta^k / (1 + beta^k), a
rational multiple of ln beta. Not injective (it has a minimum near u = -1.28),
so its derivative is not a function of its value.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from smtgrad.activations.base import AbstractionBuilder, Backward, Numbers, Scalar, Smooth

if TYPE_CHECKING:
    from pysmt.fnode import FNode


class Silu(Smooth):
    name = "silu"

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        return u * numbers.sigmoid(u)

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        s = numbers.sigmoid(u)
        return s + u * s * (1 - s)

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        from pysmt.shortcuts import LT, Plus, Real, Times

        # silu(u) = u * s with s = sigmoid(u) in (0, 1), increasing, s(-u) = 1 - s(u).
        s = builder.fresh(f"s_{tag}")
        builder.require(LT(Real(0), s), LT(s, Real(1)))
        builder.same_function("sigmoid", u, s, increasing=True, centre=Fraction(1, 2))
        value = Times(u, s)
        slope = Plus(s, Times(u, s, Plus(Real(1), Times(Real(-1), s))))
        return value, lambda delta: Times(slope, delta)
