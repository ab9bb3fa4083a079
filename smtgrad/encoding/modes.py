"""Encoding modes and the smooth-activation classification (light: no solver, no pysmt)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

from smtgrad.spec import Spec


class UnsupportedSpec(ValueError):
    """A spec the chosen encoding cannot express."""


class ModeKind(Enum):
    """Which encoding of the activations."""

    EXACT = "exact"
    LATTICE = "lattice"
    ABSTRACT = "abstract"


@dataclass(frozen=True)
class Mode:
    """Encoding mode; ``base`` and ``radius`` describe the lattice k*ln(base), |k| <= radius."""

    kind: ModeKind = ModeKind.EXACT
    base: Fraction = Fraction(2)
    radius: int = 3
    strong: bool = True  # abstraction: also relate softmax ratios across samples (costly)

    def describe(self) -> str:
        if self.kind is ModeKind.LATTICE:
            return f"log-lattice encoding (pre-activations k*ln({self.base}), |k| <= {self.radius})"
        if self.kind is ModeKind.ABSTRACT:
            return "monotone abstraction of the smooth activations" + (
                "" if self.strong else " (per-sample softmax facts)")
        return "residual/phase encoding"


EXACT = Mode()


def is_smooth(spec: Spec) -> bool:
    """Whether the network has a smooth (transcendental) layer: sigmoid, tanh, softmax,
    softplus, elu, silu, gelu."""
    return any(layer.activation.smooth for layer in spec.network.layers)
