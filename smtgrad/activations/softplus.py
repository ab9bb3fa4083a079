"""softplus: log(1 + exp(u)), with derivative sigmoid(u).

Exact on the log lattice: softplus(k ln beta) = ln(1 + beta^k), a logarithm of a
rational (a closed form in logs of primes), and its derivative
beta^k / (1 + beta^k) is rational. Injective, so its derivative is a function of
its value (sigmoid = 1 - exp(-softplus)).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from smtgrad.activations.base import AbstractionBuilder, Backward, Numbers, Scalar, Smooth

if TYPE_CHECKING:
    from pysmt.fnode import FNode


class Softplus(Smooth):
    name = "softplus"
    injective = True  # strictly increasing

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        return numbers.log(1 + numbers.exp(u))

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        return numbers.sigmoid(u)

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        from pysmt.shortcuts import LT, Real, Times

        # Facts: softplus(u) > max(0, u) and increases with u; its derivative
        # s = sigmoid(u) lies in (0, 1), increases with u, and s(-u) = 1 - s(u).
        p = builder.fresh(f"a_{tag}")
        s = builder.fresh(f"d_{tag}")
        builder.require(LT(Real(0), p), LT(u, p), LT(Real(0), s), LT(s, Real(1)))
        builder.same_function(self.name, u, p, increasing=True)
        builder.same_function("sigmoid", u, s, increasing=True, centre=Fraction(1, 2))
        return p, lambda delta: Times(s, delta)
