"""sigmoid: 1 / (1 + exp(-u)); rational at u = k*ln(beta): beta^k / (1 + beta^k)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from smtgrad.activations.base import AbstractionBuilder, Backward, Numbers, Scalar, Smooth

if TYPE_CHECKING:
    from pysmt.fnode import FNode


class Sigmoid(Smooth):
    name = "sigmoid"
    injective = True

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        return numbers.sigmoid(u)

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        return a * (1 - a)

    def lattice_point(self, k: int, base: Fraction) -> tuple[Fraction, Fraction] | None:
        t = base ** k
        value = t / (1 + t)
        return value, value * (1 - value)

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        from pysmt.shortcuts import GE, LE, LT, Implies, Plus, Real, Times

        p = builder.fresh(f"a_{tag}")
        zero, half, one = Real(0), Real(Fraction(1, 2)), Real(1)
        builder.require(LT(zero, p), LT(p, one))
        # Tangent at 0: concave on u >= 0, convex on u <= 0.
        tangent = Plus(half, Times(Real(Fraction(1, 4)), u))
        builder.require(Implies(GE(u, zero), LE(p, tangent)),
                        Implies(LE(u, zero), GE(p, tangent)))
        builder.same_function(self.name, u, p, increasing=True, centre=Fraction(1, 2),
                              lipschitz=Fraction(1, 4))
        derivative = Times(p, Plus(one, Times(Real(-1), p)))
        return p, lambda delta: Times(derivative, delta)
