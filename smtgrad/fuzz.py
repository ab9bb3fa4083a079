"""Differential fuzzing of smtgrad: random specs, every verdict checked another way.

For each randomly generated spec (small networks, every activation, random
queries, fixed values and assumptions) the fuzzer solves with a short timeout
and then tries to refute the answer:

* **sat** -- the witness is re-checked by the exact verifier
  (:func:`smtgrad.verify.verify`) and, when PyTorch is importable, replayed in
  float64 autograd (``torch.nn.functional``, whose derivative at a kink is the
  ``relu_grad_at_zero: 0`` convention; for convention 1 the activations are
  written with ``torch.where`` so that autograd takes the slope of the linear
  piece). Where a sample sits exactly on a kink, its float pre-activation is
  pinned to the kink so that rounding cannot pick the side. A gradient the
  verifier calls zero must be tiny in float64 too, relative to the magnitude of
  the terms summed into it; each nonzero block needs an entry that autograd
  also sees clearly away from zero, otherwise the case is *float-ambiguous*
  (counted, not a disagreement). The second solver is also run on the SMT
  encoding alone (no fast path): an unsat from it contradicts the witness.
* **unsat** -- confirmed by the second solver (cvc5 when the primary is z3, and
  the other way round) and by a randomized search over thousands of rational
  points: random parameters and inputs from small rationals, with the
  residuals solved exactly by linear algebra (or random targets where they are
  not free reals). The search must find no point that :func:`verify` accepts.

Every solve runs in a forked child that is killed if it overruns its timeout
by far (``timeout-overrun``): a solver that ignores its time limit is a finding,
not a reason to hang.

Specs come from :func:`random_spec`, a pure function of a
:class:`random.Random`, also exposed as Hypothesis strategies
(:func:`spec_texts`). ``python -m smtgrad.fuzz --count N`` runs a batch and
prints the counts; it exits 1 on any disagreement or error.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from smtgrad.engine import Result, SolveOptions, WitnessRejected, solve
from smtgrad.network import (
    Evaluation,
    Parameters,
    activation_derivative,
    evaluate,
    kink_points,
)
from smtgrad.rank import solve_linear
from smtgrad.spec import (
    Activation,
    Layer,
    Loss,
    LossKind,
    Reduction,
    Spec,
    SpecError,
    TargetKind,
    Verdict,
    entries,
    parse_spec,
)
from smtgrad.verify import verify
from smtgrad.witness import Witness, witness_to_json

# ----------------------------------------------------------------------------------------
# Random specs.

PIECEWISE_ACTIVATIONS = ("linear", "relu", "leaky_relu", "abs", "hardtanh")
SMOOTH_ACTIVATIONS = ("sigmoid", "tanh")
SLOPES = ("1/10", "1/2", "1/100", "2", "-1/2")
SCALES = ("1", "1/2", "2", "3/7")
SMALL_VALUES = ("0", "1", "-1", "2", "-2", "1/2", "-1/2", "3", "-3", "3/2", "1/3", "-2/3")


def _small(rng: random.Random) -> str:
    return rng.choice(SMALL_VALUES)


def _entry_names(shapes: dict[str, tuple[int, ...]], rng: random.Random) -> str:
    """A random parameter entry, as spec text (``W1[0,1]`` or ``b2[0]``)."""
    name = rng.choice(sorted(shapes))
    shape = shapes[name]
    index = [rng.randrange(size) for size in shape]
    return f"{name}[{','.join(map(str, index))}]"


def _data_ref(name: str, sample: int, width: int, rng: random.Random) -> str:
    if width == 1 and rng.random() < 0.5:
        return f"{name}[{sample}]"
    return f"{name}[{sample},{rng.randrange(width)}]"


def _atom(rng: random.Random, shapes: dict[str, tuple[int, ...]], inputs: int, outputs: int,
          min_samples: int, targets: str) -> str:
    """One comparison from a small grammar of assumptions."""
    kind = rng.choice(("param!=0", "param>0", "param<param", "loss>0", "loss<", "x<x", "yhat",
                       "y", "affine"))
    if kind == "param!=0":
        return f"{_entry_names(shapes, rng)} != 0"
    if kind == "param>0":
        return f"{_entry_names(shapes, rng)} {rng.choice(('>', '>=', '<', '<='))} {_small(rng)}"
    if kind == "param<param":
        return f"{_entry_names(shapes, rng)} < {_entry_names(shapes, rng)}"
    if kind == "loss>0":
        return "loss > 0"
    if kind == "loss<":
        return f"loss {rng.choice(('<', '<=', '>=', '=='))} {rng.choice(('1', '2', '1/2', '0'))}"
    if kind == "x<x":
        a, b = rng.randrange(min_samples), rng.randrange(min_samples)
        column = rng.randrange(inputs)
        return f"X[{a},{column}] {rng.choice(('<', '!=', '<='))} X[{b},{column}]"
    if kind == "yhat":
        ref = _data_ref("yhat", rng.randrange(min_samples), outputs, rng)
        return f"{ref} {rng.choice(('>', '<', '!=', '=='))} {_small(rng)}"
    if kind == "y" and targets != "class":
        ref = _data_ref("Y", rng.randrange(min_samples), outputs, rng)
        return f"{ref} {rng.choice(('>=', '<=', '!='))} {_small(rng)}"
    first, second = _entry_names(shapes, rng), _entry_names(shapes, rng)
    return (f"{rng.choice(('2', '1/2', '-1'))}*{first} + {second} "
            f"{rng.choice(('==', '>=', '<'))} {_small(rng)}")


def _assumption(rng: random.Random, shapes: dict[str, tuple[int, ...]], inputs: int,
                outputs: int, min_samples: int, targets: str) -> str:
    def atom() -> str:
        return _atom(rng, shapes, inputs, outputs, min_samples, targets)

    form = rng.random()
    if form < 0.7:
        return atom()
    if form < 0.8:
        return f"not ({atom()})"
    if form < 0.9:
        return f"{atom()} and {atom()}"
    return f"({atom()}) or ({atom()})"


def _fixed_block(rng: random.Random, shape: tuple[int, ...], value: Callable[[], Any],
                 partial: bool) -> Any:
    if len(shape) == 1:
        return [None if partial and rng.random() < 0.5 else value() for _ in range(shape[0])]
    return [_fixed_block(rng, shape[1:], value, partial) for _ in range(shape[0])]


def random_spec_data(rng: random.Random, smooth: bool = False) -> dict[str, Any]:
    """A random, valid spec as a plain mapping (the YAML document of :func:`random_spec`).

    Networks have 1-2 hidden layers of width 1-3, 1-2 inputs and M from 1 to 5.
    ``smooth`` adds sigmoid and tanh units and the bce / cross_entropy losses.
    """
    inputs = rng.randint(1, 2)
    hidden = rng.randint(1, 2)
    activations = PIECEWISE_ACTIVATIONS + (SMOOTH_ACTIVATIONS if smooth else ())
    layers: list[dict[str, Any]] = []
    for _ in range(hidden):
        layer: dict[str, Any] = {"units": rng.randint(1, 3),
                                 "activation": rng.choice(activations)}
        if layer["activation"] == "leaky_relu" and rng.random() < 0.7:
            layer["slope"] = rng.choice(SLOPES)
        layers.append(layer)

    loss_kind = "mse"
    if smooth and rng.random() < 0.4:
        loss_kind = rng.choice(("bce", "cross_entropy"))
    if loss_kind == "bce":
        outputs = 1
        layers.append({"units": 1, "activation": "sigmoid"})
        targets = rng.choice(("unit_interval", "binary"))
    elif loss_kind == "cross_entropy":
        outputs = rng.randint(2, 3)
        layers.append({"units": outputs, "activation": "softmax"})
        targets = "class"
    else:
        outputs = rng.randint(1, 2)
        output_activation = "linear"
        if rng.random() < 0.2:
            output_activation = rng.choice(activations)
        layers.append({"units": outputs, "activation": output_activation})
        targets = rng.choice(("real", "real", "real", "real", "unit_interval", "binary"))

    data: dict[str, Any] = {"name": "fuzz", "network": {"inputs": inputs, "layers": layers}}
    if rng.random() < 0.5:
        data["loss"] = loss_kind
    else:
        loss: dict[str, Any] = {"kind": loss_kind}
        if rng.random() < 0.7:
            loss["reduction"] = rng.choice(("mean", "sum"))
        if rng.random() < 0.6:
            loss["scale"] = rng.choice(SCALES)
        data["loss"] = loss
    if targets != "real" or rng.random() < 0.3:
        data["targets"] = targets

    shapes: dict[str, tuple[int, ...]] = {}
    previous = inputs
    for index, layer in enumerate(layers, start=1):
        shapes[f"W{index}"] = (int(layer["units"]), previous)
        shapes[f"b{index}"] = (int(layer["units"]),)
        previous = int(layer["units"])

    # Fixed values: some parameter blocks (whole or partial), sometimes all of X and/or Y.
    fixed: dict[str, Any] = {}
    fix_x = rng.random() < 0.2
    fix_y = rng.random() < 0.15
    if rng.random() < 0.35:
        for name in rng.sample(sorted(shapes), rng.randint(1, 2)):
            fixed[name] = _fixed_block(rng, shapes[name], lambda: _small(rng),
                                       rng.random() < 0.5)
    samples_count = rng.randint(1, 5)
    if fix_x or fix_y:
        data["samples"] = samples_count
    elif rng.random() < 0.2:
        low = rng.randint(1, 4)
        data["samples"] = {"min": low, "max": min(5, low + rng.randint(0, 2))}
        samples_count = low
    else:
        data["samples"] = samples_count
    if fix_x:
        fixed["X"] = _fixed_block(rng, (samples_count, inputs), lambda: _small(rng),
                                  rng.random() < 0.3)

    def target_value() -> Any:
        if targets == "binary":
            return rng.choice((0, 1))
        if targets == "unit_interval":
            return rng.choice(("0", "1", "1/2", "1/3", "3/4"))
        return _small(rng)

    if fix_y:
        if targets == "class":
            fixed["Y"] = [rng.randrange(outputs) for _ in range(samples_count)]
        else:
            fixed["Y"] = _fixed_block(rng, (samples_count, outputs), target_value,
                                      rng.random() < 0.3)
    if fixed:
        data["fixed"] = fixed

    # The query: each block zero, nonzero or absent; some single entries.
    zero: list[str] = []
    nonzero: list[str] = []
    for name in shapes:
        roll = rng.random()
        if roll < 0.3:
            zero.append(name)
        elif roll < 0.5:
            nonzero.append(name)
        elif roll < 0.6:
            position = [rng.randrange(size) for size in shapes[name]]
            entry = f"{name}[{','.join(map(str, position))}]"
            (zero if rng.random() < 0.5 else nonzero).append(entry)
    if not zero and not nonzero:
        nonzero.append(rng.choice(sorted(shapes)))
    query: dict[str, Any] = {}
    if zero:
        query["zero"] = zero
    if nonzero:
        query["nonzero"] = nonzero
    data["query"] = query

    if rng.random() < 0.4:
        data["assume"] = [_assumption(rng, shapes, inputs, outputs, samples_count, targets)
                          for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.25:
        data["generic"] = True
    elif rng.random() < 0.1:
        data["generic"] = False
    if rng.random() < 0.4:
        data["conventions"] = {"relu_grad_at_zero": rng.choice((0, 1))}
    return data


def random_spec(rng: random.Random, smooth: bool = False) -> str:
    """A random, valid spec as YAML text (a pure function of ``rng``)."""
    return yaml.safe_dump(random_spec_data(rng, smooth), sort_keys=False, width=120)


def case_random(seed: int, index: int) -> random.Random:
    """The generator of case ``index`` of the batch with ``seed`` (stable across runs)."""
    return random.Random(f"smtgrad-fuzz:{seed}:{index}")


def spec_texts(smooth: bool = False) -> Any:
    """Hypothesis strategy of random spec texts (shrinks through the underlying Random)."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(lambda rng: random_spec(rng, smooth))


def case_seeds() -> Any:
    """Hypothesis strategy of (seed, index) pairs, each naming a reproducible case."""
    from hypothesis import strategies as st

    return st.tuples(st.integers(min_value=0, max_value=2**32),
                     st.integers(min_value=0, max_value=10**6))


# ----------------------------------------------------------------------------------------
# Outcomes.


class Category(enum.Enum):
    """What the fuzzer concluded about one spec."""

    SAT_VERIFIED = "sat-verified"
    UNSAT_CONFIRMED = "unsat-confirmed"
    UNSAT_UNCONFIRMED = "unsat-unconfirmed"  # second solver unknown; random search clean
    UNKNOWN = "unknown"
    OVERRUN = "timeout-overrun"  # the solve ignored its timeout and was killed
    DISAGREEMENT = "disagreement"
    ERROR = "error"


class Replay(enum.Enum):
    """What the float64 autograd replay of a sat witness concluded."""

    AGREE = "torch-agree"
    AMBIGUOUS = "float-ambiguous"
    DISAGREE = "torch-disagree"
    SKIPPED = "torch-skipped"


@dataclass(frozen=True)
class FuzzConfig:
    """Budgets and switches of a fuzz run."""

    timeout: float = 5.0
    backend: str = "z3"
    smooth: bool = False
    points: int = 2000
    search_seconds: float = 6.0
    torch: bool = True
    cross_sat: bool = True

    @property
    def other_backend(self) -> str:
        return "cvc5" if self.backend == "z3" else "z3"


@dataclass
class CaseReport:
    """The fuzzer's findings on one spec."""

    index: int
    seed: int
    spec_text: str
    category: Category = Category.ERROR
    verdict: str = ""
    replay: Replay | None = None
    details: list[str] = field(default_factory=list)
    points_tried: int = 0
    overruns: int = 0  # second-opinion solves killed for ignoring their timeout
    seconds: float = 0.0

    def describe(self) -> str:
        lines = [f"case {self.index} (seed {self.seed}): {self.category.value}"
                 f" [verdict {self.verdict or '-'}"
                 f"{', ' + self.replay.value if self.replay else ''}]"]
        lines += [f"  {line}" for line in self.details]
        lines += ["  spec:"] + [f"    {line}" for line in self.spec_text.splitlines()]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Float64 autograd replay.


def _float(value: Any) -> float:
    from smtgrad.enclosure import Enclosure

    if isinstance(value, Enclosure):
        raise TypeError("an enclosure has no single value")
    return float(value)


def _floats(array: Any) -> Any:
    if isinstance(array, tuple | list):
        return [_floats(item) for item in array]
    return _float(array)


def _flat(array: Any) -> Iterator[Any]:
    if isinstance(array, tuple | list):
        for item in array:
            yield from _flat(item)
    else:
        yield array


def _at(array: Any, index: tuple[int, ...]) -> Any:
    for position in index:
        array = array[position]
    return array


def torch_available() -> bool:
    """Whether PyTorch imports."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _kink_one(torch: Any, layer: Layer, u: Any) -> Any:
    """An activation whose autograd derivative at a kink is the slope of the linear piece."""
    act = layer.activation
    if act is Activation.RELU:
        return torch.where(u >= 0, u, u * 0)
    if act is Activation.LEAKY_RELU:
        return torch.where(u >= 0, u, u * float(layer.slope))
    if act is Activation.ABS:
        return torch.where(u >= 0, u, -u)
    # hardtanh: the middle piece owns both kinks.
    return torch.where(u < -1, u * 0 - 1, torch.where(u > 1, u * 0 + 1, u))


def _magnitudes(spec: Spec, witness: Witness, evaluation: Evaluation
                ) -> tuple[list[list[list[float]]], dict[str, Any], float]:
    """Float64 error scales: per pre-activation, per gradient entry, and for the loss.

    The same backpropagation as the exact one, run on absolute values (the sum of
    the magnitudes of the terms that float64 adds up for each quantity). Rounding
    error in float64 is a small multiple of 2^-53 times these, so 1e-9 of them is
    a generous tolerance that still tells a real nonzero from rounding.
    """
    network = spec.network
    conventions = spec.conventions
    samples = witness.samples
    pre_scale: list[list[list[float]]] = []
    post_scale: list[list[list[float]]] = []
    current = [[abs(_float(v)) for v in row] for row in witness.inputs]
    for index, layer in enumerate(network.layers):
        weight = [[abs(_float(v)) for v in row] for row in witness.parameters.weights[index]]
        bias = [abs(_float(v)) for v in witness.parameters.biases[index]]
        u_scale = [[sum(w * x for w, x in zip(weight[j], current[m], strict=True)) + bias[j]
                    for j in range(layer.units)] for m in range(samples)]
        pre_scale.append(u_scale)
        post = evaluation.activations[index]
        current = [[abs(_float(post[m][j])) + u_scale[m][j] for j in range(layer.units)]
                   for m in range(samples)]
        post_scale.append(current)
    loss = spec.loss
    outputs = network.outputs
    if loss.reduction is Reduction.SUM:
        factor = float(loss.scale)
    elif loss.kind is LossKind.CROSS_ENTROPY:
        factor = float(loss.scale) / samples
    else:
        factor = float(loss.scale) / (samples * outputs)
    residual_scale = [[post_scale[-1][m][k] + abs(_float(evaluation.residuals[m][k]))
                       + abs(_float(evaluation.predictions[m][k] - evaluation.residuals[m][k]))
                       for k in range(outputs)] for m in range(samples)]
    last = network.layers[-1]

    def slope(layer_index: int, m: int, j: int) -> float:
        layer = network.layers[layer_index]
        if layer.activation is Activation.SOFTMAX:
            return 1.0
        u = evaluation.pre_activations[layer_index][m][j]
        a = evaluation.activations[layer_index][m][j]
        return abs(_float(activation_derivative(layer, u, a, conventions)))

    if loss.kind is LossKind.MSE:
        deltas = [[2 * factor * residual_scale[m][k] * slope(network.depth - 1, m, k)
                   for k in range(last.units)] for m in range(samples)]
    else:
        deltas = [[factor * residual_scale[m][k] for k in range(last.units)]
                  for m in range(samples)]
    loss_scale = factor * sum(r * r for row in residual_scale for r in row)
    gradients: dict[str, Any] = {}
    for index in range(network.depth - 1, -1, -1):
        below = current_inputs = (
            [[abs(_float(v)) for v in row] for row in witness.inputs] if index == 0
            else post_scale[index - 1])
        units = network.layers[index].units
        width = len(below[0])
        gradients[f"W{index + 1}"] = [[sum(deltas[m][j] * current_inputs[m][i]
                                           for m in range(samples)) for i in range(width)]
                                      for j in range(units)]
        gradients[f"b{index + 1}"] = [sum(deltas[m][j] for m in range(samples))
                                      for j in range(units)]
        if index == 0:
            break
        weight = [[abs(_float(v)) for v in row] for row in witness.parameters.weights[index]]
        deltas = [[sum(weight[j][i] * deltas[m][j] for j in range(units))
                   * max(1.0, slope(index - 1, m, i)) for i in range(width)]
                  for m in range(samples)]
    return pre_scale, gradients, loss_scale


def torch_replay(spec: Spec, witness: Witness, evaluation: Evaluation) -> tuple[Replay, str]:
    """Replay a verified witness in PyTorch float64 autograd and compare the zero pattern.

    Each gradient entry gets the tolerance ``1e-9 * S`` where ``S`` is the sum of
    the magnitudes of the terms float64 adds up for it (:func:`_magnitudes`). An
    exact zero must be below its tolerance in float64, every float gradient must
    be within its tolerance of the exact one, and each nonzero block needs an entry
    above ten times its tolerance (else the case is float-ambiguous).
    """
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return Replay.SKIPPED, "torch is not installed"
    network = spec.network
    kink_one = spec.conventions.relu_grad_at_zero == 1
    try:
        weights = [_floats(w) for w in witness.parameters.weights]
        biases = [_floats(b) for b in witness.parameters.biases]
        inputs = _floats(witness.inputs)
        targets = _floats(witness.targets)
        exact_gradients = {name: _floats(block) for name, block in evaluation.gradients.items()}
        exact_loss = _float(evaluation.loss)
        pre_scale, gradient_scale, loss_scale = _magnitudes(spec, witness, evaluation)
    except (TypeError, ValueError, OverflowError, ArithmeticError) as error:
        return Replay.SKIPPED, f"witness has no float value ({error})"
    every = [*_flat(weights), *_flat(biases), *_flat(inputs), *_flat(targets),
             *_flat(list(gradient_scale.values())), loss_scale]
    if not all(math.isfinite(v) for v in every):
        return Replay.SKIPPED, "witness values overflow float64"
    samples = len(inputs)

    def tolerance(scale: float) -> float:
        return 1e-9 * scale + 1e-300

    dtype = torch.float64
    params: dict[str, Any] = {}
    for index in range(network.depth):
        params[f"W{index + 1}"] = torch.tensor(weights[index], dtype=dtype, requires_grad=True)
        params[f"b{index + 1}"] = torch.tensor(biases[index], dtype=dtype, requires_grad=True)
    h = torch.tensor(inputs, dtype=dtype)
    for index, layer in enumerate(network.layers):
        u = h @ params[f"W{index + 1}"].T + params[f"b{index + 1}"]
        # Where the exact pre-activation sits on a kink, pin the float value to the kink
        # (the gradient still flows through u): float rounding must not pick the side.
        kinks = kink_points(layer)
        if kinks:
            exact_u = evaluation.pre_activations[index]
            pin = torch.zeros_like(u)
            mask = torch.zeros(u.shape, dtype=torch.bool)
            for m in range(samples):
                for j in range(layer.units):
                    value = exact_u[m][j]
                    for point in kinks:
                        if value == point:
                            mask[m, j] = True
                            pin[m, j] = float(point)
                        elif abs(_float(value) - float(point)) < tolerance(
                                pre_scale[index][m][j] + abs(float(point))):
                            return Replay.AMBIGUOUS, (f"layer {index + 1} sample {m} unit {j}: "
                                                      f"pre-activation within float error of "
                                                      f"the kink {point}")
            u = torch.where(mask, u + (pin - u).detach(), u)
        act = layer.activation
        if act is Activation.LINEAR:
            h = u
        elif kink_one and kinks:
            # relu_grad_at_zero: 1 -- the kink takes the slope of the linear piece. Built
            # from torch.where, whose gradient follows the branch taken.
            h = _kink_one(torch, layer, u)
        elif act is Activation.RELU:
            h = F.relu(u)
        elif act is Activation.LEAKY_RELU:
            h = F.leaky_relu(u, negative_slope=float(layer.slope))
        elif act is Activation.ABS:
            h = torch.abs(u)
        elif act is Activation.HARDTANH:
            h = F.hardtanh(u)
        elif act is Activation.SIGMOID:
            h = torch.sigmoid(u)
        elif act is Activation.TANH:
            h = torch.tanh(u)
        else:
            h = F.softmax(u, dim=1)
        logits = u
    loss_spec: Loss = spec.loss
    reduction = "mean" if loss_spec.reduction is Reduction.MEAN else "sum"
    if loss_spec.kind is LossKind.MSE:
        loss = F.mse_loss(h, torch.tensor(targets, dtype=dtype), reduction=reduction)
    elif loss_spec.kind is LossKind.BCE:
        if bool(((h <= 0) | (h >= 1)).any()):
            return Replay.AMBIGUOUS, "a sigmoid output rounds to 0 or 1 in float64"
        loss = F.binary_cross_entropy(h, torch.tensor(targets, dtype=dtype), reduction=reduction)
    else:
        labels = torch.tensor([int(t) for t in targets], dtype=torch.long)
        loss = F.cross_entropy(logits, labels, reduction=reduction)
    loss = loss * float(loss_spec.scale)
    loss.backward()  # type: ignore[no-untyped-call]

    problems: list[str] = []
    if abs(loss.item() - exact_loss) > tolerance(loss_scale + abs(exact_loss)):
        problems.append(f"loss: torch {loss.item():.17g}, exact {exact_loss:.17g}")
    shapes = network.parameter_shapes()
    float_gradients: dict[str, Any] = {}
    for name in shapes:
        grad = params[name].grad
        float_gradients[name] = grad.tolist() if grad is not None else _floats(
            evaluation.gradients[name])
    for name, shape in shapes.items():
        for position in entries(shape):
            got, want = _at(float_gradients[name], position), _at(exact_gradients[name], position)
            if abs(got - want) > tolerance(_at(gradient_scale[name], position)):
                problems.append(f"dL/d{name}{list(position)}: torch {got:.17g}, exact {want:.17g}")
    for target in spec.query.zero:
        indices = target.indices(shapes)
        for position in indices:
            got = _at(float_gradients[target.block], position)
            bound = tolerance(_at(gradient_scale[target.block], position))
            if abs(got) >= bound:
                problems.append(f"dL/d{target.block}{list(position)} must be 0; torch has {got:.3g}"
                                f" (tolerance {bound:.3g})")
    if problems:
        return Replay.DISAGREE, "; ".join(problems[:6])
    for target in spec.query.nonzero:
        indices = target.indices(shapes)
        if not any(abs(_at(float_gradients[target.block], position))
                   > 10 * tolerance(_at(gradient_scale[target.block], position))
                   for position in indices):
            return Replay.AMBIGUOUS, (f"dL/d{target} is nonzero exactly but not clearly "
                                      f"nonzero in float64")
    largest = max(tolerance(v) for v in _flat(list(gradient_scale.values())))
    return Replay.AGREE, f"float64 autograd agrees (largest tolerance {largest:.3g})"


# ----------------------------------------------------------------------------------------
# Randomized search for a counterexample to an unsat verdict.


_HALF_SUM = Loss(kind=LossKind.MSE, reduction=Reduction.SUM, scale=Fraction(1, 2))


class _PointSearch:
    """Draws rational points for a spec and asks :func:`verify` about each."""

    def __init__(self, spec: Spec, rng: random.Random, sample_counts: Sequence[int]) -> None:
        self.spec = spec
        self.rng = rng
        self.sample_counts = list(sample_counts)
        self.points = 0

    def value(self, nonzero: bool = False) -> Fraction:
        rng = self.rng
        while True:
            roll = rng.random()
            if roll < 0.15:
                value = Fraction(0)
            elif roll < 0.4:
                value = Fraction(rng.choice((1, -1)))
            elif roll < 0.8:
                value = Fraction(rng.randint(-3, 3), rng.choice((1, 2)))
            else:
                value = Fraction(rng.randint(-6, 6), rng.choice((1, 2, 3, 4)))
            if value != 0 or not nonzero:
                return value

    def entry(self, name: str, index: tuple[int, ...], nonzero: bool = False) -> Fraction:
        fixed = self.spec.fixed_value(name, index)
        return fixed if fixed is not None else self.value(nonzero)

    def parameters(self) -> Parameters:
        weights: list[Any] = []
        biases: list[Any] = []
        generic = self.spec.generic
        for name, shape in self.spec.network.parameter_shapes().items():
            if len(shape) == 2:
                weights.append(tuple(tuple(self.entry(name, (j, i), generic)
                                           for i in range(shape[1])) for j in range(shape[0])))
            else:
                biases.append(tuple(self.entry(name, (j,)) for j in range(shape[0])))
        return Parameters(tuple(weights), tuple(biases))

    def inputs(self, samples: int) -> tuple[tuple[Fraction, ...], ...]:
        rows: list[tuple[Fraction, ...]] = []
        for m in range(samples):
            if rows and self.rng.random() < 0.1 and "X" not in self.spec.fixed:
                rows.append(self.rng.choice(rows))
                continue
            rows.append(tuple(self.entry("X", (m, i)) for i in range(self.spec.network.inputs)))
        return tuple(rows)

    def random_targets(self, samples: int) -> tuple[Any, ...]:
        spec = self.spec
        outputs = spec.network.outputs
        rng = self.rng
        if spec.targets is TargetKind.CLASS:
            return tuple(spec.fixed_value("Y", (m,)) if spec.fixed_value("Y", (m,)) is not None
                         else Fraction(rng.randrange(outputs)) for m in range(samples))

        def draw() -> Fraction:
            if spec.targets is TargetKind.BINARY:
                return Fraction(rng.choice((0, 1)))
            if spec.targets is TargetKind.UNIT_INTERVAL:
                return Fraction(rng.randint(0, 4), 4)
            return self.value()

        return tuple(tuple(spec.fixed_value("Y", (m, k)) if spec.fixed_value("Y", (m, k))
                           is not None else draw() for k in range(outputs))
                     for m in range(samples))

    def solved_targets(self, params: Parameters, inputs: tuple[tuple[Fraction, ...], ...],
                       spec: Spec) -> list[tuple[Any, ...]]:
        """Targets making every queried-zero gradient vanish (exact linear algebra)."""
        network = spec.network
        outputs = network.outputs
        samples = len(inputs)
        zeros = tuple(tuple(Fraction(0) for _ in range(outputs)) for _ in range(samples))
        base = evaluate(network, spec.loss, spec.conventions, params, inputs, zeros)
        yhat = base.predictions
        # phi[(m, k)]: gradient of sum-MSE/2 when sample m alone has residual e_k.
        phi: list[dict[str, Any]] = []
        for m in range(samples):
            for k in range(outputs):
                single = (tuple(yhat[m][o] - (1 if o == k else 0) for o in range(outputs)),)
                phi.append(evaluate(network, _HALF_SUM, spec.conventions, params, (inputs[m],),
                                    single).gradients)
        shapes = network.parameter_shapes()
        coordinates: list[tuple[str, tuple[int, ...]]] = []
        for target in spec.query.zero:
            indices = target.indices(shapes)
            coordinates += [(target.block, index) for index in indices]
        free = [(m, k) for m in range(samples) for k in range(outputs)
                if spec.fixed_value("Y", (m, k)) is None]
        known = {(m, k): yhat[m][k] - value for m in range(samples) for k in range(outputs)
                 if (value := spec.fixed_value("Y", (m, k))) is not None}
        rows, rhs = [], []
        for name, index in coordinates:
            rows.append([Fraction(_at(phi[m * outputs + k][name], index)) for m, k in free])
            rhs.append(-sum((Fraction(_at(phi[m * outputs + k][name], index)) * r
                             for (m, k), r in known.items()), start=Fraction(0)))
        solution = solve_linear(rows, rhs, len(free))
        if solution is None:
            return []
        particular, basis = solution
        candidates = []
        for trial in range(4):
            weights = [Fraction(0) if trial == 0 else Fraction(self.rng.randint(-3, 3),
                                                               self.rng.choice((1, 2)))
                       for _ in basis]
            residual = dict(known)
            for position, (m, k) in enumerate(free):
                residual[(m, k)] = particular[position] + sum(
                    (w * vector[position] for w, vector in zip(weights, basis, strict=True)),
                    start=Fraction(0))
            candidates.append(tuple(tuple(yhat[m][k] - residual[(m, k)] for k in range(outputs))
                                    for m in range(samples)))
            if not basis:
                break
        return candidates

    def run(self, points: int, deadline: float) -> Witness | None:
        spec = self.spec
        linear = (spec.loss.kind is LossKind.MSE
                  and spec.targets is not TargetKind.CLASS
                  and all(layer.activation.is_piecewise_linear for layer in spec.network.layers))
        for _ in range(points):
            if time.perf_counter() > deadline:
                return None
            self.points += 1
            samples = self.rng.choice(self.sample_counts)
            target_spec = spec if spec.samples.min <= samples <= spec.samples.max \
                else spec.with_samples(samples)
            params = self.parameters()
            inputs = self.inputs(samples)
            candidates: list[tuple[Any, ...]] = []
            try:
                if linear and self.rng.random() < 0.85:
                    candidates = self.solved_targets(params, inputs, target_spec)
                else:
                    candidates = [self.random_targets(samples)]
            except (ValueError, ZeroDivisionError, ArithmeticError):
                continue
            for targets in candidates:
                witness = Witness(parameters=params, inputs=inputs, targets=targets)
                if verify(target_spec, witness).accepted:
                    return witness
        return None


def search_counterexample(spec: Spec, rng: random.Random, points: int, seconds: float,
                          all_samples: bool = False) -> tuple[Witness | None, int]:
    """Random rational points against an unsat verdict: a verified witness, or None.

    With ``all_samples`` (the verdict claims every M), M is also drawn beyond the
    spec's range (the point is then checked against the spec at that M).
    """
    counts = list(range(spec.samples.min, spec.samples.max + 1))
    if all_samples:
        counts = list(range(1, spec.samples.max + 3))
    searcher = _PointSearch(spec, rng, counts)
    found = searcher.run(points, time.perf_counter() + seconds)
    return found, searcher.points


# ----------------------------------------------------------------------------------------
# One case.


def _witness_text(spec: Spec, witness: Witness) -> str:
    try:
        return str(witness_to_json(witness, spec.network))
    except Exception as error:  # only used for messages
        return f"<unprintable witness: {error}>"


@dataclass
class Solved:
    """A solve run in a child process: its result, or what went wrong."""

    result: Result | None = None
    rejected: str | None = None  # WitnessRejected: the verifier refused a solver's witness
    error: str | None = None
    overrun: float | None = None  # seconds after which the child was killed


def guarded_solve(spec: Spec, options: SolveOptions, hard_limit: float | None = None
                  ) -> Solved:
    """``solve`` in a forked child, killed if it overruns its timeout by far.

    Solvers do not always honour their time limits; the fuzzer must not hang on
    them. The hard limit defaults to twice the timeout plus ten seconds.
    """
    import multiprocessing
    import os

    timeout = options.timeout if options.timeout is not None else 60.0
    limit = hard_limit if hard_limit is not None else 2 * timeout + 10
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        payload: tuple[str, Any]
        try:
            payload = ("ok", solve(spec, options))
        except WitnessRejected as error:
            payload = ("rejected", str(error))
        except BaseException as error:
            payload = ("error", f"{type(error).__name__}: {error}\n"
                                + "\n".join(traceback.format_exc().splitlines()[-10:]))
        try:
            sender.send(payload)
        except Exception as error:
            # Interval values (enclosure certificates) do not pickle; the witness does.
            kind, value = payload
            if kind == "ok" and isinstance(value, Result):
                try:
                    sender.send(("ok", dataclasses.replace(value, evaluation=None)))
                except Exception as again:
                    sender.send(("error", f"result cannot be sent back: {again}"))
            else:
                sender.send(("error", f"result cannot be sent back: {error}"))
        sender.close()
        os._exit(0)

    # Not a daemon: a backend may itself run the solver in a child process, which
    # multiprocessing forbids to daemonic processes. The child is killed below if need be.
    process = context.Process(target=child, daemon=False)
    started = time.perf_counter()
    process.start()
    sender.close()
    try:
        if receiver.poll(limit):
            kind, value = receiver.recv()
        else:
            kind, value = "overrun", time.perf_counter() - started
    except EOFError:
        kind, value = "error", f"the solving process died (exit code {process.exitcode})"
    finally:
        if kind == "overrun" or process.is_alive():
            process.join(2)
            if process.is_alive():
                process.kill()
        process.join()
        receiver.close()
    if kind == "ok":
        return Solved(result=value)
    if kind == "rejected":
        return Solved(rejected=value)
    if kind == "overrun":
        return Solved(overrun=value)
    return Solved(error=value)


def check_spec(spec: Spec, config: FuzzConfig, rng: random.Random, report: CaseReport) -> None:
    """Solve one spec and try to refute the answer; fill ``report``."""
    options = SolveOptions(timeout=config.timeout, backend=config.backend)
    solved = guarded_solve(spec, options)
    if solved.rejected is not None:
        report.category = Category.DISAGREEMENT
        report.verdict = "rejected"
        report.details.append(f"{config.backend}: {solved.rejected}")
        return
    if solved.overrun is not None:
        report.category = Category.OVERRUN
        report.details.append(f"{config.backend}: still running {solved.overrun:.0f} s into a "
                              f"{config.timeout:g} s timeout; killed")
        return
    if solved.error is not None or solved.result is None:
        report.category = Category.ERROR
        report.details.append(f"{config.backend}: {solved.error}")
        return
    result = solved.result
    report.verdict = result.verdict.value
    if result.verdict is Verdict.SAT:
        _check_sat(spec, config, result, report)
    elif result.verdict is Verdict.UNSAT:
        _check_unsat(spec, config, result, rng, report)
    else:
        report.category = Category.UNKNOWN
        report.details.append(f"unknown: {result.reason[:300]}")


def _check_sat(spec: Spec, config: FuzzConfig, result: Result, report: CaseReport) -> None:
    witness = result.witness
    if witness is None:
        report.category = Category.ERROR
        report.details.append("sat without a witness")
        return
    if result.samples != witness.samples or not (
            spec.samples.min <= witness.samples <= spec.samples.max):
        report.category = Category.DISAGREEMENT
        report.details.append(f"sat at M={result.samples}, witness has {witness.samples} "
                              f"samples, spec asks {spec.samples.min}..{spec.samples.max}")
        return
    check = verify(spec, witness)
    if not check.accepted:
        report.category = Category.DISAGREEMENT
        report.details.append(f"the verifier rejects the reported witness: {check.failures}")
        report.details.append(f"witness: {_witness_text(spec, witness)}")
        return
    report.category = Category.SAT_VERIFIED
    report.details.append(f"sat by {result.method} at M={result.samples}")
    if config.torch and result.certificate == "enclosure":
        report.details.append("torch skipped: an enclosure certificate has no exact point")
    elif config.torch and check.evaluation is not None:
        replay, why = torch_replay(spec, witness, check.evaluation)
        report.replay = replay
        if replay is Replay.SKIPPED:
            report.details.append(f"torch skipped: {why}")
        if replay is Replay.DISAGREE:
            report.category = Category.DISAGREEMENT
            report.details.append(f"torch: {why}")
            report.details.append(f"witness: {_witness_text(spec, witness)}")
        elif replay is Replay.AMBIGUOUS:
            report.details.append(f"float-ambiguous: {why}")
    if config.cross_sat and report.category is Category.SAT_VERIFIED:
        other = _second_opinion(spec, SolveOptions(timeout=config.timeout / 2,
                                                   backend=config.other_backend,
                                                   fast_path=False), report)
        if other is not None and other.verdict is Verdict.UNSAT:
            report.category = Category.DISAGREEMENT
            report.details.append(f"{config.other_backend} says unsat ({other.reason}) but "
                                  f"the witness is verified: {_witness_text(spec, witness)}")


def _second_opinion(spec: Spec, options: SolveOptions, report: CaseReport) -> Result | None:
    solved = guarded_solve(spec, options)
    if solved.rejected is not None:
        report.category = Category.DISAGREEMENT
        report.details.append(f"{options.backend}: {solved.rejected}")
    elif solved.overrun is not None:
        report.overruns += 1
        report.details.append(f"{options.backend} (second opinion): still running "
                              f"{solved.overrun:.0f} s into a {options.timeout:g} s timeout; "
                              f"killed")
    elif solved.error is not None:
        report.category = Category.ERROR
        report.details.append(f"{options.backend}: {solved.error}")
    return solved.result


def _check_unsat(spec: Spec, config: FuzzConfig, result: Result, rng: random.Random,
                 report: CaseReport) -> None:
    report.category = Category.UNSAT_CONFIRMED
    report.details.append(f"unsat ({result.proved}) by {result.method}")
    other = _second_opinion(spec, SolveOptions(timeout=config.timeout,
                                               backend=config.other_backend), report)
    if report.category is Category.UNSAT_CONFIRMED:
        if other is None:
            report.category = Category.UNSAT_UNCONFIRMED
        elif other.verdict is Verdict.SAT:
            report.category = Category.DISAGREEMENT
            witness = other.witness
            report.details.append(f"{config.other_backend} finds sat by {other.method}: "
                                  f"{_witness_text(spec, witness) if witness else '?'}")
        elif other.verdict is Verdict.UNKNOWN:
            report.category = Category.UNSAT_UNCONFIRMED
            report.details.append(f"{config.other_backend}: unknown ({other.reason[:200]})")
    found, tried = search_counterexample(spec, rng, config.points, config.search_seconds,
                                         all_samples=result.proved == "all M")
    report.points_tried = tried
    if found is not None:
        report.category = Category.DISAGREEMENT
        report.details.append(f"random search found a verified point after {tried} tries: "
                              f"{_witness_text(spec, found)}")


def run_case(index: int, seed: int, config: FuzzConfig) -> CaseReport:
    """Generate case ``index`` of batch ``seed`` and check it. Never raises."""
    rng = case_random(seed, index)
    text = random_spec(rng, config.smooth)
    report = CaseReport(index=index, seed=seed, spec_text=text)
    started = time.perf_counter()
    try:
        spec = parse_spec(text, f"<fuzz {seed}:{index}>")
    except SpecError as error:
        report.category = Category.ERROR
        report.details.append(f"the generator produced a spec smtgrad rejects: {error}")
        return report
    try:
        check_spec(spec, config, rng, report)
    except Exception as error:
        report.category = Category.ERROR
        report.details.append(f"{type(error).__name__}: {error}")
        report.details += traceback.format_exc().splitlines()[-12:]
    report.seconds = time.perf_counter() - started
    return report


# ----------------------------------------------------------------------------------------
# Batches.


@dataclass
class BatchSummary:
    """Counts over a batch, and the reports worth reading."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[CaseReport] = field(default_factory=list)
    ambiguous: list[CaseReport] = field(default_factory=list)
    reports: list[CaseReport] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, report: CaseReport) -> None:
        self.reports.append(report)
        self.counts[report.category.value] += 1
        if report.replay is not None:
            self.counts[report.replay.value] += 1
        if report.overruns:
            self.counts["second-solver-overrun"] += report.overruns
        if report.category in (Category.DISAGREEMENT, Category.ERROR):
            self.failures.append(report)
        if report.replay is Replay.AMBIGUOUS:
            self.ambiguous.append(report)

    @property
    def disagreements(self) -> int:
        return self.counts[Category.DISAGREEMENT.value]

    @property
    def errors(self) -> int:
        return self.counts[Category.ERROR.value]


ORDER = [c.value for c in Category] + [r.value for r in Replay] + ["second-solver-overrun"]


def _worker(job: tuple[int, int, FuzzConfig]) -> CaseReport:
    return run_case(*job)


def run_batch(count: int, seed: int = 0, config: FuzzConfig | None = None, jobs: int = 1,
              on_report: Callable[[CaseReport], None] | None = None,
              start: int = 0) -> BatchSummary:
    """Check cases ``start .. start + count - 1`` of batch ``seed``."""
    config = config or FuzzConfig()
    if config.torch and not torch_available():
        config = dataclasses.replace(config, torch=False)
    summary = BatchSummary()
    began = time.perf_counter()
    indices = range(start, start + count)
    if jobs <= 1:
        for index in indices:
            report = run_case(index, seed, config)
            summary.add(report)
            if on_report:
                on_report(report)
    else:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            for report in pool.map(_worker, [(i, seed, config) for i in indices]):
                summary.add(report)
                if on_report:
                    on_report(report)
    summary.reports.sort(key=lambda r: r.index)
    summary.seconds = time.perf_counter() - began
    return summary


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smtgrad.fuzz", description=(
        "Differential fuzzing: random specs; sat witnesses re-checked exactly and in float64 "
        "autograd, unsat verdicts cross-checked by the other solver and a random search."))
    parser.add_argument("--count", type=int, default=100, help="number of specs")
    parser.add_argument("--seed", type=int, default=0, help="batch seed")
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per solve")
    parser.add_argument("--backend", choices=("z3", "cvc5"), default="z3",
                        help="primary backend (the other one cross-checks)")
    parser.add_argument("--smooth", action="store_true",
                        help="also sigmoid/tanh/softmax units and bce/cross_entropy losses")
    parser.add_argument("--points", type=int, default=2000,
                        help="random points tried against each unsat")
    parser.add_argument("--search-seconds", type=float, default=6.0,
                        help="time cap of the random search per unsat")
    parser.add_argument("--no-torch", action="store_true", help="skip the autograd replay")
    parser.add_argument("--no-cross-sat", action="store_true",
                        help="do not run the other solver on sat specs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--save", type=Path, default=None,
                        help="write every failing and float-ambiguous spec to this folder")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if args.count < 0 or args.jobs < 1 or args.timeout <= 0 or args.points < 0:
        parser.error("--count, --points must be >= 0; --jobs >= 1; --timeout > 0")
    return args


def _save(folder: Path, summary: BatchSummary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for report in summary.failures + summary.ambiguous:
        name = f"case-{report.seed}-{report.index}-{report.category.value}.yaml"
        notes = "".join(f"# {line}\n" for line in report.describe().split("\n  spec:")[0]
                        .splitlines())
        (folder / name).write_text(notes + report.spec_text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a batch with a progress bar; print counts; 1 on any disagreement or error."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    args = _parse_args(argv)
    config = FuzzConfig(timeout=args.timeout, backend=args.backend, smooth=args.smooth,
                        points=args.points, search_seconds=args.search_seconds,
                        torch=not args.no_torch, cross_sat=not args.no_cross_sat)
    console = Console(stderr=True)
    out = Console()
    live: Counter[str] = Counter()
    with Progress(TextColumn("[bold]fuzz"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("fuzz", total=args.count, counts="")

        plain = not console.is_terminal

        def show(report: CaseReport) -> None:
            live[report.category.value] += 1
            done = sum(live.values())
            if plain and (done % 25 == 0 or done == args.count):
                summary_line = " ".join(f"{k}={live[k]}" for k in ORDER if live[k])
                progress.console.print(f"[{done}/{args.count}] {summary_line}", markup=False,
                                       highlight=False)
            if report.category in (Category.DISAGREEMENT, Category.ERROR) or args.verbose:
                progress.console.print(report.describe(), markup=False, highlight=False)
            text = " ".join(f"{k}={live[k]}" for k in ORDER if live[k])
            progress.update(task, advance=1, counts=text)

        summary = run_batch(args.count, args.seed, config, jobs=args.jobs, on_report=show,
                            start=args.start)
    if args.save is not None:
        _save(args.save, summary)
    command = " ".join(["python -m smtgrad.fuzz", *(argv if argv is not None else sys.argv[1:])])
    table = Table(title=f"{command}  ({summary.seconds:.0f} s)")
    table.add_column("category")
    table.add_column("count", justify="right")
    for key in ORDER:
        table.add_row(key, str(summary.counts[key]))
    table.add_row("specs", str(len(summary.reports)))
    searched = [r.points_tried for r in summary.reports if r.points_tried]
    if searched:
        table.add_row("random points (mean per unsat)",
                      f"{sum(searched) / len(searched):.0f}")
    out.print(table)
    for report in summary.ambiguous[:10]:
        out.print(f"float-ambiguous: case {report.index}: {report.details[-1]}", markup=False)
    bad = summary.disagreements + summary.errors
    out.print("counts: " + ", ".join(f"{key}={summary.counts[key]}" for key in ORDER),
              markup=False, soft_wrap=True)
    out.print(f"disagreements: {summary.disagreements}, errors: {summary.errors}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
