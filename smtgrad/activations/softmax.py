"""softmax: exp(z_k) / sum_j exp(z_j) over the output layer (with cross-entropy).

Its SMT encodings (lattice and abstraction) act on the whole layer and live in
the encoder (``_Builder.softmax``); the cross-entropy delta is yhat - y.
"""

from __future__ import annotations

from collections.abc import Sequence

from smtgrad.activations.base import Activation, Numbers, Scalar


class Softmax(Activation):
    name = "softmax"
    smooth = True
    vector = True
    has_abstraction = True

    def vector_value(self, z: Sequence[Scalar], numbers: Numbers) -> tuple[Scalar, ...]:
        return tuple(numbers.softmax(z))
