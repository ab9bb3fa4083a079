"""Activations: one module per activation, one object each (see :mod:`.base`).

``get(name)`` returns the shared instance; ``NAMES`` lists every activation a
spec may name. To add one: write a module with an :class:`Activation` subclass
and add it to ``_ALL`` below (and its tests).
"""

from __future__ import annotations

from smtgrad.activations.abs import Abs
from smtgrad.activations.base import Activation, InexactValue, Numbers, Piece
from smtgrad.activations.elu import Elu
from smtgrad.activations.gelu import Gelu
from smtgrad.activations.hardtanh import Hardtanh
from smtgrad.activations.leaky_relu import LeakyRelu
from smtgrad.activations.linear import Linear
from smtgrad.activations.relu import Relu
from smtgrad.activations.sigmoid import Sigmoid
from smtgrad.activations.silu import Silu
from smtgrad.activations.softmax import Softmax
from smtgrad.activations.softplus import Softplus
from smtgrad.activations.tanh import Tanh

LINEAR, RELU, LEAKY_RELU, ABS, HARDTANH = Linear(), Relu(), LeakyRelu(), Abs(), Hardtanh()
SIGMOID, TANH, SOFTMAX = Sigmoid(), Tanh(), Softmax()
SOFTPLUS, ELU, SILU, GELU = Softplus(), Elu(), Silu(), Gelu()

_ALL: tuple[Activation, ...] = (LINEAR, RELU, LEAKY_RELU, ABS, HARDTANH, SIGMOID, TANH,
                                SOFTMAX, SOFTPLUS, ELU, SILU, GELU)
REGISTRY: dict[str, Activation] = {activation.name: activation for activation in _ALL}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> Activation:
    """The activation called ``name`` (KeyError if there is none)."""
    return REGISTRY[name]


__all__ = ["ABS", "ELU", "GELU", "HARDTANH", "LEAKY_RELU", "LINEAR", "NAMES", "REGISTRY",
           "RELU", "SIGMOID", "SILU", "SOFTMAX", "SOFTPLUS", "TANH", "Activation",
           "InexactValue", "Numbers", "Piece", "get"]
