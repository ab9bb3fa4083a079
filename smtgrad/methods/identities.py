"""The balance identity below linear layers: an unsat proof for every M, for deep nets.

For a linear layer l-1 (h_(l-1) = W_(l-1) h_(l-2) + b_(l-1)), backpropagation gives
delta_(l-1) = W_l^T delta_l per sample, so summing over the samples

    W_l^T dL/dW_l = sum_m W_l^T delta_l,m h_(l-1),m^T
                  = sum_m delta_(l-1),m (W_(l-1) h_(l-2),m + b_(l-1))^T
                  = dL/dW_(l-1) W_(l-1)^T + dL/db_(l-1) b_(l-1)^T,

for any loss, any targets, any activations elsewhere and any M. Hence:

* dL/db_(l-1) = W_l^T dL/db_l (the bias rows of the same identity): a zero dL/db_l
  forces a zero dL/db_(l-1) below a linear layer;
* dL/dW_l = 0 and dL/db_(l-1) = 0 force dL/dW_(l-1) W_(l-1)^T = 0. When layer l-1 has a
  single input, W_(l-1) is a column w and the n x n matrix dL/dW_(l-1) w^T vanishes
  only if dL/dW_(l-1) = 0 or w = 0; ``generic`` (every weight nonzero) or a fixed
  nonzero w excludes w = 0, so dL/dW_(l-1) = 0.

Closing these two rules over the query's zero blocks, a block the query wants nonzero
that is forced zero is a contradiction at every M. (With several inputs W_(l-1) may be
rank deficient, and nothing is concluded.) Blocks only: single-entry targets are not
used. May import the spec only.
"""

from __future__ import annotations

from fractions import Fraction

from smtgrad.spec import Spec


def _nonzero_column(spec: Spec, layer: int) -> bool:
    """Whether W_layer is surely not the zero column: generic, or fixed with a nonzero
    rational entry."""
    if spec.generic:
        return True
    fixed = spec.fixed.get(f"W{layer}")
    if fixed is None:
        return False
    stack = list(fixed) if isinstance(fixed, tuple | list) else [fixed]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif type(item) in (int, Fraction) and item != 0:
            return True
    return False


def balance_proof(spec: Spec) -> tuple[str, str] | None:
    """(lemma, argument) when the balance identity refutes the query, else None."""
    network = spec.network
    depth = network.depth
    zero = {target.block for target in spec.query.zero if target.index is None}
    queried = set(zero)
    why: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for layer in range(depth, 1, -1):
            below = network.layers[layer - 2]
            if not below.activation.identity:
                continue
            bias, lower_bias = f"b{layer}", f"b{layer - 1}"
            if bias in zero and lower_bias not in zero:
                zero.add(lower_bias)
                why[lower_bias] = (f"dL/d{lower_bias} = W{layer}^T dL/d{bias} = 0 "
                                   f"(layer {layer - 1} is linear)")
                changed = True
            weight, lower_weight = f"W{layer}", f"W{layer - 1}"
            fan_in = network.inputs if layer == 2 else network.layers[layer - 3].units
            if (weight in zero and lower_bias in zero and lower_weight not in zero
                    and fan_in == 1 and _nonzero_column(spec, layer - 1)):
                zero.add(lower_weight)
                why[lower_weight] = (
                    f"W{layer}^T dL/d{weight} = dL/d{lower_weight} {lower_weight}^T + "
                    f"dL/d{lower_bias} {lower_bias}^T (layer {layer - 1} is linear) with "
                    f"dL/d{weight} = dL/d{lower_bias} = 0 leaves dL/d{lower_weight} "
                    f"{lower_weight}^T = 0, and {lower_weight} is a nonzero column (one "
                    f"input, {'generic' if spec.generic else 'fixed'}), so "
                    f"dL/d{lower_weight} = 0")
                changed = True
    for target in spec.query.nonzero:
        if target.block in zero and target.block not in queried and target.block in why:
            steps = [why[block] for block in sorted(why, key=lambda b: (-int(b[1:]), b))]
            return ("balance identity", (
                f"{target} must be nonzero, but the zero blocks force it to vanish at "
                f"every M: " + "; ".join(steps)))
    return None
