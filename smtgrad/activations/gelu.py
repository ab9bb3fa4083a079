"""gelu (exact, erf form): u * Phi(u), Phi the standard normal CDF; derivative
Phi(u) + u * phi(u) with phi the normal density.

Enclosure-only: Phi and phi are transcendental at every nonzero rational, and no
lattice makes them rational; arb has erf, so balls and Krawczyk certificates work.
Not injective (a minimum near u = -0.75).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from smtgrad.activations.base import AbstractionBuilder, Backward, Numbers, Scalar, Smooth

if TYPE_CHECKING:
    from pysmt.fnode import FNode

#: An upper bound of the normal density's maximum 1/sqrt(2 pi) = 0.39894...
PDF_BOUND = Fraction(2, 5)


class Gelu(Smooth):
    name = "gelu"

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        return u * numbers.normal_cdf(u)

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        return numbers.normal_cdf(u) + u * numbers.normal_pdf(u)

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        from pysmt.shortcuts import LE, LT, Plus, Real, Times

        # Phi(u) in (0, 1), increasing, Phi(-u) = 1 - Phi(u); phi(u) in (0, 2/5], even.
        c = builder.fresh(f"c_{tag}")
        d = builder.fresh(f"d_{tag}")
        builder.require(LT(Real(0), c), LT(c, Real(1)), LT(Real(0), d),
                        LE(d, Real(PDF_BOUND)))
        builder.same_function("normal_cdf", u, c, increasing=True, centre=Fraction(1, 2))
        value = Times(u, c)
        slope = Plus(c, Times(u, d))
        return value, lambda delta: Times(slope, delta)
