"""What an activation is: one object that knows everything about itself.

An :class:`Activation` carries, side by side (as micrograd keeps an op's forward
and backward rule together):

* its exact **value** and **derivative** (with the spec's convention at kinks),
  written over a :class:`Numbers` system -- exact rationals, closed forms in
  logarithms of primes, the exponential field, or arb balls -- so that the same
  rule serves the verifier, the searches and the certificates;
* its **kinks** and, for piecewise-linear units, the **pieces** of the exact SMT
  encoding;
* whether its derivative is a **function of its value** (the structural lemmas);
* its **log-lattice** value and derivative at k*ln(beta), where they are rational
  (the lattice encoding);
* its **abstraction**: sound facts tying a fresh value to the pre-activation, for
  unsat proofs (built lazily with pysmt; nothing here runs a solver).

Adding an activation is adding one module to this package (and its tests). This
module may import :mod:`smtgrad.numbers`; pysmt only inside the SMT facets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from smtgrad.numbers import InexactValue as InexactValue  # re-exported for activations

if TYPE_CHECKING:
    from pysmt.fnode import FNode

#: An exact scalar (Fraction, int, closed form) or a ball-valued dual number.
Scalar = Any


class Numbers(Protocol):
    """The transcendental primitives a number system offers activations and losses.

    Each raises :class:`InexactValue` where the result is outside the system.
    """

    def exp(self, x: Scalar) -> Scalar: ...

    def log(self, x: Scalar) -> Scalar: ...

    def sigmoid(self, x: Scalar) -> Scalar: ...

    def tanh(self, x: Scalar) -> Scalar: ...

    def softmax(self, z: Sequence[Scalar]) -> tuple[Scalar, ...]: ...

    def normal_cdf(self, x: Scalar) -> Scalar: ...

    def normal_pdf(self, x: Scalar) -> Scalar: ...


class LayerParameters(Protocol):
    """What an activation may read from its layer (a spec ``Layer``): its slope."""

    @property
    def slope(self) -> Fraction: ...


@dataclass(frozen=True)
class Piece:
    """One piece of a piecewise-linear activation: lo (<|<=) u (<|<=) hi, value
    slope * u + intercept, and its derivative (the slope unless given)."""

    lower: Fraction | None
    lower_strict: bool
    upper: Fraction | None
    upper_strict: bool
    slope: Fraction
    intercept: Fraction
    derivative: Fraction | None = None

    @property
    def slope_of_derivative(self) -> Fraction:
        return self.slope if self.derivative is None else self.derivative


class AbstractionBuilder(Protocol):
    """What the SMT encoder offers an activation's abstraction (see encoding.py)."""

    def fresh(self, name: str) -> FNode: ...

    def require(self, *facts: FNode) -> None: ...

    def same_function(self, family: str, u: FNode, value: FNode, increasing: bool = False,
                      centre: Fraction | None = None, lipschitz: Fraction | None = None
                      ) -> None:
        """Declare ``value = f(u)`` for one function f shared by every unit of ``family``
        in the encoding: equal inputs give equal values; with ``increasing``, f is
        strictly increasing; with ``centre``, f(-u) = 2*centre - f(u) and f(0) = centre;
        with ``lipschitz`` L, |f(v) - f(w)| <= L |v - w| between any two of its units."""
        ...


#: A backward map: the delta at the unit's output -> the delta at its input.
Backward = Callable[["FNode"], "FNode"]


class Activation:
    """An elementwise activation (softmax overrides :meth:`vector_value`).

    Subclasses set the class attributes and override what applies.
    """

    name: ClassVar[str]
    #: Piecewise linear: exactly encoded by :meth:`pieces`.
    piecewise_linear: ClassVar[bool] = False
    #: Smooth and transcendental: lattices, abstraction and enclosures.
    smooth: ClassVar[bool] = False
    #: The identity (linear layers skip evaluating it).
    identity: ClassVar[bool] = False
    #: Acts on the whole layer at once (softmax); allowed on the output layer only.
    vector: ClassVar[bool] = False
    #: Reads the layer's ``slope`` (leaky_relu).
    takes_slope: ClassVar[bool] = False
    #: Tried by the monotone abstraction of the SMT encoding (see :meth:`abstract`).
    has_abstraction: ClassVar[bool] = False
    #: act(t u) = t act(u) for t > 0, act(0) = 0 and act(u) = u act'(u) off the kink
    #: (relu, leaky_relu, abs, linear): the fixed-data pattern method and the
    #: pattern-convexity certificate rest on it.
    positively_homogeneous: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<activation {self.name}>"

    # -- exact value and derivative ------------------------------------------------------

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        raise NotImplementedError

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        """d act / du at u (with a = act(u)); at a kink, the convention: the linear piece's
        slope when ``kink_one`` (relu_grad_at_zero: 1), PyTorch's choice otherwise."""
        raise NotImplementedError

    def vector_value(self, z: Sequence[Scalar], numbers: Numbers) -> tuple[Scalar, ...]:
        raise NotImplementedError

    # -- structure -----------------------------------------------------------------------

    def kinks(self, layer: LayerParameters) -> tuple[int, ...]:
        """Where the activation is not differentiable (exact integers)."""
        return ()

    def pieces(self, layer: LayerParameters, kink_one: bool) -> tuple[Piece, ...]:
        """The exact SMT encoding's partition of the real line (piecewise-linear only)."""
        raise NotImplementedError(f"{self.name} is not piecewise linear")

    def derivative_determined_by_value(self, layer: LayerParameters, kink_one: bool) -> bool:
        """Whether act'(u) is a function of act(u) (the two-sample lemma needs it)."""
        return False

    # -- log lattice and abstraction -----------------------------------------------------

    def lattice_point(self, k: int, base: Fraction) -> tuple[Fraction, Fraction] | None:
        """(value, derivative) at u = k*ln(base) when both are rational, else None (then
        the lattice encoding does not apply to this activation)."""
        return None

    def abstract(self, builder: AbstractionBuilder, u: FNode, tag: str
                 ) -> tuple[FNode, Backward]:
        """A fresh value for act(u), tied to u by facts true of act only, and the backward
        map of its derivative (an over-approximation: sound for unsat)."""
        raise NotImplementedError(f"{self.name} has no abstraction")


class Smooth(Activation):
    """A smooth elementwise activation: its value and slope read only u (and a = act(u)),
    never the layer or the kink convention. Subclasses give :meth:`formula` and
    :meth:`slope`, and say whether they are strictly increasing (``injective``)."""

    smooth = True
    has_abstraction = True
    #: Strictly increasing: its derivative is a function of its value (the lemmas).
    injective: ClassVar[bool] = False

    def formula(self, u: Scalar, numbers: Numbers) -> Scalar:
        raise NotImplementedError

    def slope(self, u: Scalar, a: Scalar, numbers: Numbers) -> Scalar:
        raise NotImplementedError

    def value(self, u: Scalar, layer: LayerParameters, numbers: Numbers) -> Scalar:
        return self.formula(u, numbers)

    def derivative(self, u: Scalar, a: Scalar, layer: LayerParameters, kink_one: bool,
                   numbers: Numbers) -> Scalar:
        return self.slope(u, a, numbers)

    def derivative_determined_by_value(self, layer: LayerParameters, kink_one: bool) -> bool:
        return self.injective
