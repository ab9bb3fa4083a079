"""tanh: (exp(2u) - 1) / (exp(2u) + 1); rational where exp(2u) is, e.g. u = (k/2)*ln(beta)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from smtgrad.activations.base import AbstractionBuilder, Backward, Numbers, Scalar, Smooth

if TYPE_CHECKING:
    from pysmt.fnode import FNode


class Tanh(Smooth):
    name = "tanh"
    injective = True

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        return numbers.tanh(u)

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        return 1 - a * a

    def lattice_point(self, k: int, base: Fraction) -> tuple[Fraction, Fraction] | None:
        t = base ** (2 * k)
        value = (t - 1) / (t + 1)
        return value, 1 - value * value

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        from pysmt.shortcuts import GE, LE, LT, Implies, Plus, Real, Times

        p = builder.fresh(f"a_{tag}")
        zero, one = Real(0), Real(1)
        builder.require(LT(Real(-1), p), LT(p, one))
        # Tangent at 0 (tanh(u) <= u for u >= 0, and the mirror image).
        builder.require(Implies(GE(u, zero), LE(p, u)), Implies(LE(u, zero), GE(p, u)))
        builder.same_function(self.name, u, p, increasing=True, centre=Fraction(0),
                              lipschitz=Fraction(1))
        derivative = Plus(one, Times(Real(-1), Times(p, p)))
        return p, lambda delta: Times(derivative, delta)
