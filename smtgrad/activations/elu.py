"""elu (alpha = 1): u for u > 0, exp(u) - 1 otherwise; derivative 1, resp. exp(u).

With alpha = 1 the derivative is continuous (1 on both sides of 0): no kink.
Exact on the log lattice: elu(k ln beta) = beta^k - 1 for k <= 0 and k ln beta
for k > 0. Injective, and for u <= 0 its derivative is elu(u) + 1: a function of
the value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smtgrad.activations.base import AbstractionBuilder, Backward, Numbers, Scalar, Smooth

if TYPE_CHECKING:
    from pysmt.fnode import FNode


class Elu(Smooth):
    name = "elu"
    injective = True  # strictly increasing

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        return u if u > 0 else numbers.exp(u) - 1

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        return 1 if u > 0 else a + 1

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        from pysmt.shortcuts import GT, LE, LT, And, Equals, Implies, Ite, Plus, Real, Times

        # Exact for u > 0 (the identity); for u <= 0 a value in (-1, 0] with
        # elu(u) >= u (convexity: the tangent at 0), increasing, elu(0) = 0; the derivative
        # is elu(u) + 1 there.
        p = builder.fresh(f"a_{tag}")
        zero = Real(0)
        builder.require(Implies(GT(u, zero), Equals(p, u)),
                        Implies(LE(u, zero), And(LT(Real(-1), p), LE(p, zero), LE(u, p))),
                        Implies(Equals(u, zero), Equals(p, zero)))
        builder.same_function(self.name, u, p, increasing=True)
        slope = Ite(GT(u, zero), Real(1), Plus(p, Real(1)))
        return p, lambda delta: Times(slope, delta)
