"""Structural lemmas: unsat proofs read off the shape of a query, with no solver.

Every gradient is linear in the per-sample deltas. Write delta[l, m] for dloss_m/dz_l,
the derivative of sample m's loss with respect to the pre-activation of layer l
(kink conventions included). Backpropagation gives, up to one positive factor
(reduction and scale),

    dL/db_l = sum_m delta[l, m]            dL/dW_l = sum_m delta[l, m] h[l-1, m]^T
    delta[l-1, m] = (W_l^T delta[l, m]) * act'_{l-1}(z[l-1, m])   (elementwise units)

From these identities alone, whatever the parameters, inputs, targets, loss,
assumptions and genericity conditions:

* **linear-identity lemma** (every M): when layer l-1 is linear, act' = 1 and
  dL/db_{l-1} = W_l^T dL/db_l, so a zero b_l forces a zero b_{l-1}.
* **one-sample lemma** (M = 1): dL/db_l = delta[l, 1]; if it is zero, every
  gradient of layers 1..l is zero.
* **two-sample lemma** (M = 2): if dL/db_l = 0 then delta[l, 2] = -delta[l, 1].
  Either delta[l, 1] = 0, and every gradient of layers 1..l vanishes, or it is
  not, and a zero column j of dL/dW_l = delta[l, 1] (h[l-1, 1, j] - h[l-1, 2, j])
  forces h[l-1, 1, j] = h[l-1, 2, j]. When the activation of layer l-1 has a
  derivative determined by its value (ReLU with relu'(0) = 0, leaky ReLU with a
  positive slope, linear, sigmoid, tanh, hardtanh with the PyTorch convention),
  the two samples then have equal derivatives at unit j, and
  dL/db_{l-1}[j] = (W_l^T delta[l, 1])_j (act'_1 - act'_2) = 0.

A query whose nonzero block is forced to zero in every case is unsat. Extra
constraints (fixed values, assumptions, genericity, label kinds) only shrink
the set of candidates, so they never invalidate these proofs.

One more lemma reads fixed values and assumptions as premises:

* **fixed-piece lemma**: when fixed values or ``assume`` put unit j of hidden layer l
  on one linear piece of its activation at *every* sample
  (:mod:`smtgrad.encoding.phases` decides this exactly, or not at all), its derivative
  there is one constant s_j, so delta[l, m]_j = s_j (W_{l+1}^T delta[l+1, m])_j for
  every m, and summing over m:

      dL/db_l[j] = s_j (W_{l+1}^T dL/db_{l+1})_j.

  If s_j = 0 (a unit dead on the data: relu on its flat side) every delta of unit j is
  zero, so dL/db_l[j] and the row dL/dW_l[j, :] vanish; if every unit of layer l is
  dead, every delta of layer l is zero and so is every gradient of layers 1..l. If
  s_j != 0 (the active side: the network is linear in unit j on the data) a zero
  dL/db_{l+1} (on the rows k where W_{l+1}[k, j] is not fixed to 0) forces a zero
  dL/db_l[j]. A nonzero block forced to zero this way is unsat: at every M when the
  pieces are settled for a generic sample (``X[*]`` assumptions, fixed zero rows), at
  the M at hand otherwise. Complete for its family: whenever the settled pieces force
  the block's gradient to zero by these identities, the lemma finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import repeat

from smtgrad.activations import Piece
from smtgrad.spec import (
    Conventions,
    Layer,
    Network,
    Query,
    Spec,
    Target,
    entries,
)

Coordinate = tuple[str, tuple[int, ...]]


@dataclass(frozen=True)
class Proof:
    """An unsat proof by a structural lemma."""

    lemma: str
    argument: str
    all_samples: bool


def derivative_determined_by_value(layer: Layer, conventions: Conventions) -> bool:
    """Whether act'(z) is a function of act(z) under the spec's kink convention.

    Each activation answers for itself: true for injective ones (linear, leaky ReLU
    with a positive slope, sigmoid, tanh, softplus, elu) and for ReLU / hardtanh when
    the derivative at the kink is that of the flat piece (convention 0); false for
    abs, silu, gelu, softmax, and ReLU / hardtanh with convention 1.
    """
    return layer.activation.derivative_determined_by_value(
        layer, conventions.relu_grad_at_zero == 1)


class _Blocks:
    """Coordinates of the parameter blocks of a network."""

    def __init__(self, network: Network) -> None:
        self.shapes = shapes = network.parameter_shapes()
        self._coordinates = {block: frozenset(zip(repeat(block), entries(shape)))
                             for block, shape in shapes.items()}
        # _up_to[l]: every coordinate of layers 1..l.
        self._up_to: list[frozenset[Coordinate]] = [frozenset()]
        for layer in range(1, network.depth + 1):
            self._up_to.append(self._up_to[-1] | self._coordinates[f"W{layer}"]
                               | self._coordinates[f"b{layer}"])

    def coordinates(self, block: str) -> frozenset[Coordinate]:
        return self._coordinates[block]

    def of(self, target: Target) -> frozenset[Coordinate]:
        if target.index is not None:
            return frozenset({(target.block, target.index)})
        return self._coordinates[target.block]

    def column(self, layer: int, unit: int) -> frozenset[Coordinate]:
        rows = self.shapes[f"W{layer}"][0]
        return frozenset((f"W{layer}", (row, unit)) for row in range(rows))

    def layers_up_to(self, layer: int) -> frozenset[Coordinate]:
        return self._up_to[layer]


def _layer_of(target: Target) -> int:
    return int(target.block[1:])


def _linear_closure(spec: Spec, blocks: _Blocks, zero: frozenset[Coordinate]
                    ) -> frozenset[Coordinate]:
    """Add b_{l-1} whenever b_l is zero and layer l-1 is linear (top down)."""
    forced = set(zero)
    for layer in range(spec.network.depth, 1, -1):
        below = spec.network.layers[layer - 2]
        if (below.activation.identity
                and blocks.coordinates(f"b{layer}") <= forced):
            forced |= blocks.coordinates(f"b{layer - 1}")
    return frozenset(forced)


@dataclass(frozen=True)
class _QueryShape:
    """What the lemmas read off a network and query, whatever M is."""

    blocks: _Blocks
    required: frozenset[Coordinate]  # coordinates the query asks to be zero
    forced: frozenset[Coordinate]  # those, closed under the linear-identity lemma
    every_m: Proof | None  # a proof for every M (contradictory query, linear identity)


#: The last network and query analysed, with the result: --minimal asks about the same
#: ones at M = 1, 2, 3, ... (compared by identity; the cache keeps them alive).
_last_shape: tuple[Network, Query, _QueryShape] | None = None


def _query_shape(spec: Spec) -> _QueryShape:
    global _last_shape
    cached = _last_shape
    if cached is not None and cached[0] is spec.network and cached[1] is spec.query:
        return cached[2]
    blocks = _Blocks(spec.network)
    required = frozenset().union(*(blocks.of(target) for target in spec.query.zero))
    forced = _linear_closure(spec, blocks, required)
    shape = _QueryShape(blocks, required, forced, _every_m(spec, blocks, required, forced))
    _last_shape = (spec.network, spec.query, shape)
    return shape


def _every_m(spec: Spec, blocks: _Blocks, required: frozenset[Coordinate],
             forced: frozenset[Coordinate]) -> Proof | None:
    depth = spec.network.depth
    for target in spec.query.nonzero:
        if blocks.of(target) <= required:
            return Proof("contradictory query", (
                f"{target} must have a nonzero entry, but the query also asks every one of "
                f"its entries to be zero"), all_samples=True)
        if blocks.of(target) <= forced:
            above = ", ".join(f"dL/db{layer}" for layer in range(_layer_of(target) + 1,
                                                                 depth + 1)
                              if blocks.coordinates(f"b{layer}") <= required)
            return Proof("linear-identity lemma", (
                f"{target} must be nonzero, but {above} must vanish, and below a linear layer "
                f"dL/db_(l-1) = W_l^T dL/db_l, so dL/d{target} = 0 at every M"),
                all_samples=True)
    return None


def _piece_forced(spec: Spec, blocks: _Blocks, required: frozenset[Coordinate],
                  slopes: dict[tuple[int, int], Fraction]) -> frozenset[Coordinate]:
    """``required`` closed under the fixed-piece lemma (module docstring), top down;
    ``slopes`` maps (layer, unit) to its derivative at every sample."""
    forced = set(required)
    network = spec.network
    for layer in range(network.depth - 1, 0, -1):
        units = network.layers[layer - 1].units
        above = network.layers[layer].units
        dead = 0
        for unit in range(units):
            slope = slopes.get((layer, unit))
            if slope is None:
                continue
            if slope == 0:
                dead += 1
                forced.add((f"b{layer}", (unit,)))
                forced |= {(f"W{layer}", (unit, i))
                           for i in range(blocks.shapes[f"W{layer}"][1])}
            elif all((f"b{layer + 1}", (k,)) in forced or
                     spec.fixed_value(f"W{layer + 1}", (k, unit)) == 0 for k in range(above)):
                forced.add((f"b{layer}", (unit,)))
        if dead == units:
            forced |= blocks.layers_up_to(layer)
    return frozenset(forced)


def _slopes(spec: Spec, pieces: dict[tuple[int, int], int]) -> dict[tuple[int, int], Fraction]:
    kink_one = spec.conventions.relu_grad_at_zero == 1
    return {(layer, unit): spec.network.layers[layer - 1].activation.pieces(
                spec.network.layers[layer - 1], kink_one)[piece].slope_of_derivative
            for (layer, unit), piece in pieces.items()}


def _region(piece: Piece) -> str:
    if piece.lower is not None and piece.lower == piece.upper:
        return f"u = {piece.lower}"
    parts = []
    if piece.lower is not None:
        parts.append(f"{piece.lower} {'<' if piece.lower_strict else '<='} ")
    parts.append("u")
    if piece.upper is not None:
        parts.append(f" {'<' if piece.upper_strict else '<='} {piece.upper}")
    return "".join(parts) if len(parts) > 1 else "every u"


def piece_proof(spec: Spec, samples: int) -> Proof | None:
    """The fixed-piece lemma (module docstring) for ``spec`` at M = ``samples``, or None."""
    if not spec.query.nonzero or spec.network.depth < 2:
        return None
    if not spec.assume and not any(f"W{layer}" in spec.fixed or f"b{layer}" in spec.fixed
                                   for layer in range(1, spec.network.depth)):
        return None  # nothing settles a piece (linear layers: the linear-identity lemma)
    from smtgrad.encoding.phases import settled, settled_every_m

    kink_one = spec.conventions.relu_grad_at_zero == 1

    def table(layer: int) -> tuple[Piece, ...]:
        return spec.network.layers[layer - 1].activation.pieces(
            spec.network.layers[layer - 1], kink_one)

    generic = {key: table(key[0])[piece] for key, piece in settled_every_m(spec).items()}
    proof = _forced_proof(spec, {key: piece.slope_of_derivative
                                 for key, piece in generic.items()},
                          ", ".join(f"unit {unit} of layer {layer} has {_region(piece)}"
                                    for (layer, unit), piece in sorted(generic.items())),
                          "at every sample and every M (conditions on X[*], fixed values)",
                          every_m=True)
    if proof is not None:
        return proof
    derivatives: dict[tuple[int, int], list[Fraction]] = {}
    for (layer, _, unit), piece in settled(spec, samples).items():
        derivatives.setdefault((layer, unit), []).append(table(layer)[piece].slope_of_derivative)
    slopes = {key: found[0] for key, found in derivatives.items()
              if len(found) == samples and len(set(found)) == 1}
    return _forced_proof(spec, slopes, ", ".join(
        f"unit {unit} of layer {layer} has derivative {slope}"
        for (layer, unit), slope in sorted(slopes.items())),
        f"at each of the {samples} samples (fixed values and assumptions)", every_m=False)


def _forced_proof(spec: Spec, slopes: dict[tuple[int, int], Fraction], where: str,
                  scope: str, every_m: bool) -> Proof | None:
    if not slopes:
        return None
    shape = _query_shape(spec)
    forced = _piece_forced(spec, shape.blocks, shape.forced, slopes)
    for target in spec.query.nonzero:
        if shape.blocks.of(target) <= forced:
            return Proof("fixed-piece lemma", (
                f"{where}, {scope}: a unit whose derivative is one constant s at every "
                "sample has dL/db_l[j] = s * (W_(l+1)^T dL/db_(l+1))_j, and s = 0 makes "
                "dL/db_l[j] and dL/dW_l[j,:] vanish; with the query's zero gradients this "
                f"forces dL/d{target} = 0"), all_samples=every_m)
    return None


def structural_proof(spec: Spec, samples: int) -> Proof | None:
    """An unsat proof for ``spec`` at M = ``samples`` by one of the lemmas, or None.

    Only the network, query and conventions of ``spec`` are read (not its sample range).
    """
    if not spec.query.nonzero:
        return None
    shape = _query_shape(spec)
    if shape.every_m is not None:
        return shape.every_m
    blocks, forced = shape.blocks, shape.forced
    depth = spec.network.depth

    if samples == 1:
        for layer in range(depth, 0, -1):
            if not blocks.coordinates(f"b{layer}") <= forced:
                continue
            lower = blocks.layers_up_to(layer)
            for target in spec.query.nonzero:
                if blocks.of(target) <= lower:
                    return Proof("one-sample lemma", (
                        f"with one sample dL/db{layer} is the delta of layer {layer} itself; "
                        f"it must be zero, so every gradient of layers 1..{layer} vanishes, "
                        f"{target} included"), all_samples=False)

    if samples == 2:
        for layer in range(depth, 1, -1):
            if not blocks.coordinates(f"b{layer}") <= forced:
                continue
            below = spec.network.layers[layer - 2]
            if not derivative_determined_by_value(below, spec.conventions):
                continue
            units = [unit for unit in range(below.units)
                     if blocks.column(layer, unit) <= forced]
            if not units:
                continue
            extra = frozenset((f"b{layer - 1}", (unit,)) for unit in units)
            second_case = _linear_closure(spec, blocks, forced | extra)
            dead = blocks.layers_up_to(layer)
            for target in spec.query.nonzero:
                coordinates = blocks.of(target)
                if coordinates <= dead and coordinates <= second_case:
                    return Proof("two-sample lemma", (
                        f"with two samples a zero dL/db{layer} makes the deltas of layer "
                        f"{layer} opposite; if they are zero every gradient of layers "
                        f"1..{layer} vanishes, otherwise the zero columns of dL/dW{layer} "
                        f"make both samples' layer-{layer - 1} values equal, "
                        f"{below.activation.name}'s derivative is a function of its value, "
                        f"so both samples have "
                        f"the same derivative and dL/d{target} = 0"), all_samples=False)
    return piece_proof(spec, samples)
