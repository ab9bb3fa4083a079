"""Partial concretisation for smooth networks: fix the lower layers, solve the top layer.

With every layer below the output and the inputs fixed to small lattice-compatible
values, the hidden activations are rational constants, the output logits are
linear in the unknown top-layer coefficients, and the lattice encoding becomes
almost linear: Z3 answers each draw in a fraction of a second. Many cheap draws
find witnesses that the fully symbolic lattice encoding reaches only slowly.
Sat-only: a failed draw proves nothing.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from smtgrad.numbers.lognum import LogNumber
from smtgrad.spec import Spec


def draws(spec: Spec, samples: int, base: Fraction, seed: int = 0) -> Iterator[Spec]:
    """Specs equal to ``spec`` with the lower layers and X fixed to random small values."""
    rng = random.Random(seed)
    network = spec.network
    shapes = network.parameter_shapes()
    attempt = 0
    while True:
        attempt += 1
        magnitude = 1 + attempt // 10
        fixed: dict[str, Any] = dict(spec.fixed)
        for index, layer in enumerate(network.layers[:-1], start=1):
            scaled = layer.activation.smooth
            for name in (f"W{index}", f"b{index}"):
                fixed[name] = _draw(spec, name, shapes[name], rng, magnitude, scaled, base)
        if "X" not in spec.fixed or any(v is None for row in spec.fixed["X"] for v in row):
            pool = list(range(-2 * max(magnitude, samples), 2 * max(magnitude, samples) + 1))
            rows = []
            for m in range(samples):
                row = []
                for i in range(network.inputs):
                    known = spec.fixed_value("X", (m, i))
                    row.append(known if known is not None else Fraction(rng.choice(pool)))
                rows.append(tuple(row))
            fixed["X"] = tuple(rows)
        yield dataclasses.replace(spec, fixed=fixed)


def _draw(spec: Spec, name: str, shape: tuple[int, ...], rng: random.Random, magnitude: int,
          scaled: bool, base: Fraction) -> Any:
    def value(index: tuple[int, ...]) -> Any:
        known = spec.fixed_value(name, index)
        if known is not None:
            return known
        number = Fraction(rng.randint(-magnitude, magnitude))
        if name.startswith("W") and number == 0:
            number = Fraction(rng.choice((-1, 1)))
        return LogNumber((0, number), base) if scaled and number != 0 else number

    if len(shape) == 1:
        return tuple(value((j,)) for j in range(shape[0]))
    return tuple(tuple(value((j, i)) for i in range(shape[1])) for j in range(shape[0]))
