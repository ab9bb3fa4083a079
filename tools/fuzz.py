"""Differential fuzzing of smtgrad: random specs, every verdict checked another way.

For each randomly generated spec (small networks, every activation, random
queries, fixed values and assumptions) the fuzzer solves with a short timeout
and then tries to refute the answer:

* **sat** -- the witness is re-checked by the exact verifier
  (:func:`smtgrad.reference.verify.verify`) and, when PyTorch is importable, replayed in
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
  points: random parameters and inputs from small rationals, half of them (unless
  the spec is generic) biased towards degenerate points -- zero weights, repeated
  input rows, samples solved onto a first-layer kink -- always honouring fixed
  values; then free real residuals are solved exactly by linear algebra, or, for
  label targets (binary, unit interval, fixed Y), labels are drawn and a linear
  output layer is solved by exact least squares. The search must find no point
  whose :func:`verify` status is HOLDS.

Besides the general grammar (:func:`random_spec_data`), cases come from targeted
generators (:class:`CaseClass`), each with the solve options it needs and what
the contract (DESIGN section 3) expects: fixed X/Y rows against ``samples`` and
``minimal`` (a disagreeing M must raise SpecError; the walk must be that one M);
assumptions naming samples (the walk starts at 1 + the largest one); closed-form
fixed values (``log(2)``, ``2*log(3)``, two bases in one spec) on piecewise-linear
and sigmoid/tanh layers; degenerate witness spaces (zero weights, equal inputs,
kinks forced or needed); fully fixed nets (the verdict must be the verifier's
status of the one point: holds = sat, fails = unsat, and never unknown when the
values are exact); binary and unit-interval targets with MSE. Every case's
attempts must walk the expected range of M in order.

A sat whose witness does not verify (status HOLDS) is a disagreement; a solve
that raises (WitnessRejected, LemmaContradicted, anything else) is an error; a
SpecError is fine exactly where the contract asks for one.

Every solve runs in a forked child that is killed if it overruns its timeout
by far (``timeout-overrun``): a solver that ignores its time limit is a finding,
not a reason to hang.

Cases come from :func:`random_case` (specs of the general grammar from
:func:`random_spec`), pure functions of a :class:`random.Random`, also exposed
as Hypothesis strategies (:func:`spec_texts`, :func:`case_strategy`).
``python -m tools.fuzz --count N`` runs a batch and prints the counts, also
per class (``--class NAME`` draws only one class); it exits 1 on any
disagreement or error.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
import random
import re
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
from smtgrad.methods.rank import solve_linear
from smtgrad.numbers import NumberError
from smtgrad.numbers.lognum import LatticeFunctions
from smtgrad.reference.network import (
    Evaluation,
    Parameters,
    activation_derivative,
    evaluate,
    kink_points,
)
from smtgrad.reference.verify import Status, verify
from smtgrad.reference.witness import Witness, witness_to_json
from smtgrad.spec import (
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

# ----------------------------------------------------------------------------------------
# Random specs.

PIECEWISE_ACTIVATIONS = ("linear", "relu", "leaky_relu", "abs", "hardtanh")
SMOOTH_ACTIVATIONS = ("sigmoid", "tanh")
#: Smooth activations without closed-form generators here (softplus, elu, silu, gelu): the
#: base grammar draws them in smooth batches, for solve, verify and replay.
MORE_SMOOTH_ACTIVATIONS = ("softplus", "elu", "silu", "gelu")
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


def random_spec_data(rng: random.Random, smooth: bool = False, *,
                     targets: str | None = None, linear_output: bool = False,
                     fix_x: bool | None = None, fix_y: bool | None = None,
                     assume: bool | None = None, generic: bool | None = None
                     ) -> dict[str, Any]:
    """A random, valid spec as a plain mapping (the YAML document of :func:`random_spec`).

    Networks have 1-2 hidden layers of width 1-3, 1-2 inputs and M from 1 to 5.
    ``smooth`` adds sigmoid and tanh units and the bce / cross_entropy losses.
    The keywords force one feature (the target kind of an MSE spec, a linear output
    layer, fixed X / Y rows, assumptions, genericity); None leaves it to chance.
    """
    inputs = rng.randint(1, 2)
    hidden = rng.randint(1, 2)
    activations = PIECEWISE_ACTIVATIONS + (
        SMOOTH_ACTIVATIONS + MORE_SMOOTH_ACTIVATIONS if smooth else ())
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
        targets = rng.choice(("unit_interval", "binary")) if targets in (None, "real") \
            else targets
    elif loss_kind == "cross_entropy":
        outputs = rng.randint(2, 3)
        layers.append({"units": outputs, "activation": "softmax"})
        targets = "class"
    else:
        outputs = rng.randint(1, 2)
        output_activation = "linear"
        if rng.random() < 0.2 and not linear_output:
            output_activation = rng.choice(activations)
        layers.append({"units": outputs, "activation": output_activation})
        drawn = rng.choice(("real", "real", "real", "real", "unit_interval", "binary"))
        targets = drawn if targets is None else targets

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
    drawn_x, drawn_y = rng.random() < 0.2, rng.random() < 0.15
    fix_x = drawn_x if fix_x is None else fix_x
    fix_y = drawn_y if fix_y is None else fix_y
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

    if rng.random() < 0.4 if assume is None else assume:
        data["assume"] = [_assumption(rng, shapes, inputs, outputs, samples_count, targets)
                          for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.25:
        data["generic"] = True
    elif rng.random() < 0.1:
        data["generic"] = False
    if generic is not None:
        data.pop("generic", None)
        if generic or rng.random() < 0.3:
            data["generic"] = generic
    if rng.random() < 0.4:
        data["conventions"] = {"relu_grad_at_zero": rng.choice((0, 1))}
    return data


def random_spec(rng: random.Random, smooth: bool = False) -> str:
    """A random, valid spec as YAML text (a pure function of ``rng``)."""
    return yaml.safe_dump(random_spec_data(rng, smooth), sort_keys=False, width=120)


# ----------------------------------------------------------------------------------------
# Case classes: targeted generators for bugs that outside testers found.


class CaseClass(enum.Enum):
    """Which generator produced a case (each aims at one class of real bugs)."""

    BASE = "base"  # random_spec_data: the general grammar
    FIXED_SAMPLES = "fixed-samples"  # fixed X/Y rows against --samples / --minimal
    NAMED_SAMPLES = "named-samples"  # assumptions naming samples; where the walk starts
    CLOSED_FORM = "closed-form"  # fixed parameters such as "log(2)", "2*log(3)"
    DEGENERATE = "degenerate"  # zero weights, equal inputs, samples on kinks
    FULLY_FIXED = "fully-fixed"  # every value fixed: decided by evaluation
    LABELS = "labels"  # binary / unit-interval targets with MSE, piecewise-linear


#: How often each class is drawn in a mixed batch (the base grammar keeps half of it).
CLASS_WEIGHTS: dict[CaseClass, float] = {
    CaseClass.BASE: 0.50,
    CaseClass.FIXED_SAMPLES: 0.10,
    CaseClass.NAMED_SAMPLES: 0.08,
    CaseClass.CLOSED_FORM: 0.08,
    CaseClass.DEGENERATE: 0.10,
    CaseClass.FULLY_FIXED: 0.07,
    CaseClass.LABELS: 0.07,
}

#: Closed-form fixed values (logarithms of one or of several primes).
CLOSED_FORMS = ("log(2)", "log(1/2)", "log(7)", "2*log(3)", "log(2)/2", "log(3)", "-log(3)",
                "log(3/2)", "log(2) + log(3)", "1 + log(2)")
LOG2_FORMS = ("log(2)", "log(1/2)", "log(2)/2")
LOG3_FORMS = ("log(3)", "2*log(3)", "-log(3)")
#: log(q) as text, with q: sigmoid(log q) = q/(1+q) and tanh(log q) = (q^2-1)/(q^2+1).
LOG_EXPONENTIALS: tuple[tuple[str, Fraction], ...] = (
    ("log(2)", Fraction(2)), ("log(1/2)", Fraction(1, 2)), ("log(7)", Fraction(7)),
    ("2*log(3)", Fraction(9)), ("log(3)", Fraction(3)), ("-log(3)", Fraction(1, 3)),
    ("log(3/2)", Fraction(3, 2)), ("0", Fraction(1)))

#: Smooth solves are capped at this many seconds (they otherwise spend the whole timeout).
SMOOTH_TIMEOUT = 2.5

_NAMED_SAMPLE = re.compile(r"\b(?:X|Y|yhat)\[(\d+)")


@dataclass(frozen=True)
class FuzzCase:
    """A generated spec, the solve options to use on it, and what the contract expects."""

    kind: CaseClass
    data: dict[str, Any]
    samples: int | None = None  # SolveOptions.samples
    minimal: bool = False
    #: The M range the walk must cover (DESIGN 3, fixed data and the sample count);
    #: None when the options must be refused with a SpecError (exit 2).
    walk: tuple[int, int] | None = (1, 1)
    #: Fully fixed with exact values: the answer must be sat or unsat, never unknown.
    decided: bool = False
    timeout: float | None = None  # a cap on the solve's timeout

    @property
    def text(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False, width=120)

    @property
    def options_text(self) -> str:
        parts = [f"samples={self.samples}"] if self.samples is not None else []
        parts += ["minimal=True"] if self.minimal else []
        return ", ".join(parts) or "defaults"


def least_samples(data: dict[str, Any]) -> int:
    """1 + the largest sample index named in the spec's assumptions (1 if none is)."""
    named = [int(index) for text in data.get("assume", [])
             for index in _NAMED_SAMPLE.findall(text)]
    return 1 + max(named) if named else 1


def fixed_row_count(data: dict[str, Any]) -> int | None:
    """M when fixed X or Y rows define it."""
    fixed = data.get("fixed", {})
    for name in ("X", "Y"):
        if isinstance(fixed.get(name), list):
            return len(fixed[name])
    return None


def expected_walk(data: dict[str, Any], samples: int | None, minimal: bool
                  ) -> tuple[int, int] | None:
    """The values of M a solve with these options must walk, from the contract alone.

    Fixed rows define M: ``--samples`` that disagrees is a SpecError (None here) and
    ``--minimal`` solves that one M. A walk starts at the smallest M in which every
    sample named in ``assume`` exists; an explicit M below it is a SpecError.
    """
    rows = fixed_row_count(data)
    least = least_samples(data)
    if rows is not None:
        if samples is not None and samples != rows:
            return None
        return rows, rows
    if samples is not None:
        if samples < least:
            return None
        return (least if minimal else samples), samples
    raw = data["samples"]
    low, high = (int(raw.get("min", 1)), int(raw["max"])) if isinstance(raw, dict) \
        else (int(raw), int(raw))
    if minimal and low == high:
        return least, high
    return max(low, least), high


def _case(kind: CaseClass, data: dict[str, Any], samples: int | None = None,
          minimal: bool = False, decided: bool = False) -> FuzzCase:
    smooth = any(layer["activation"] in (*SMOOTH_ACTIVATIONS, *MORE_SMOOTH_ACTIVATIONS,
                                         "softmax")
                 for layer in data["network"]["layers"])
    capped = smooth and kind is not CaseClass.BASE  # base cases keep the whole timeout
    return FuzzCase(kind, data, samples, minimal, expected_walk(data, samples, minimal),
                    decided, SMOOTH_TIMEOUT if capped else None)


def _shapes(data: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    previous = int(data["network"]["inputs"])
    for index, layer in enumerate(data["network"]["layers"], start=1):
        shapes[f"W{index}"] = (int(layer["units"]), previous)
        shapes[f"b{index}"] = (int(layer["units"]),)
        previous = int(layer["units"])
    return shapes


def _ref(name: str, index: Sequence[int]) -> str:
    return f"{name}[{','.join(map(str, index))}]"


def _x_ref(sample: int, column: int, inputs: int) -> str:
    return f"X[{sample}]" if inputs == 1 else f"X[{sample},{column}]"


def _fixed_samples_case(rng: random.Random, smooth: bool) -> FuzzCase:
    """Fixed X and/or Y with M rows, solved with samples S != M (SpecError), S == M, or
    minimal (that one M)."""
    which = rng.choice(("X", "Y", "XY"))
    data = random_spec_data(rng, smooth, fix_x="X" in which, fix_y="Y" in which)
    rows = fixed_row_count(data)
    assert rows is not None
    if rng.random() < 0.3:
        del data["samples"]  # fixed rows define M
    roll = rng.random()
    if roll < 0.35:
        other = rng.choice([s for s in range(1, 7) if s != rows])
        return _case(CaseClass.FIXED_SAMPLES, data, other, rng.random() < 0.3)
    if roll < 0.6:
        return _case(CaseClass.FIXED_SAMPLES, data, rows, rng.random() < 0.3)
    return _case(CaseClass.FIXED_SAMPLES, data, None, roll < 0.92)


def _named_atom(rng: random.Random, sample: int, data: dict[str, Any]) -> str:
    inputs = int(data["network"]["inputs"])
    outputs = int(data["network"]["layers"][-1]["units"])
    targets = data.get("targets", "real")
    column = rng.randrange(inputs)
    kind = rng.choice(("x", "yhat", "y", "x!=x"))
    if kind == "x":
        return f"{_x_ref(sample, column, inputs)} {rng.choice(('>', '>=', '<', '!='))} " \
               f"{rng.choice(('0', '1', '-1', '1/2'))}"
    if kind == "yhat":
        ref = f"yhat[{sample}]" if outputs == 1 else f"yhat[{sample},{rng.randrange(outputs)}]"
        return f"{ref} {rng.choice(('<', '>', '!='))} {rng.choice(('1', '0', '-1', '1/2'))}"
    if kind == "y":
        if targets == "class":
            return f"Y[{sample}] == {rng.randrange(outputs)}"
        return f"Y[{sample}] {rng.choice(('>=', '<=', '!='))} {rng.choice(('0', '1', '1/2'))}"
    return f"{_x_ref(sample, column, inputs)} != {_x_ref(0, column, inputs)}"


def _named_samples_case(rng: random.Random, smooth: bool) -> FuzzCase:
    """Assumptions naming sample n, with minimal and with ranges: the walk starts at n + 1."""
    data = random_spec_data(rng, smooth, fix_x=False, fix_y=False, assume=False)
    if rng.random() < 0.5:
        data["samples"] = rng.randint(2, 5)
        top = int(data["samples"])
    else:
        low = rng.randint(1, 3)
        top = rng.randint(max(low, 2), 5)
        data["samples"] = {"min": low, "max": top} if low > 1 or rng.random() < 0.8 \
            else {"max": top}
    named = rng.randrange(1, top)
    atoms = [_named_atom(rng, named, data)]
    if rng.random() < 0.4:
        atoms.append(_named_atom(rng, rng.randrange(named + 1), data))
    data["assume"] = atoms if rng.random() < 0.7 else [" and ".join(f"({a})" for a in atoms)]
    minimal = rng.random() < 0.55
    samples: int | None = None
    least = named + 1
    roll = rng.random()
    if roll < 0.1:
        samples = rng.randint(1, least - 1)  # below the named sample: a SpecError
    elif roll < 0.3:
        samples = rng.randint(least, top)
    return _case(CaseClass.NAMED_SAMPLES, data, samples, minimal)


def _closed_form_case(rng: random.Random, smooth: bool) -> FuzzCase:
    """Fixed parameters as exact closed forms (logs of one or several primes), on
    piecewise-linear nets and on a sigmoid / tanh first layer."""
    data = random_spec_data(rng, False)
    layers = data["network"]["layers"]
    smooth_layer = rng.random() < 0.4
    if smooth_layer:
        layers[0] = {"units": layers[0]["units"], "activation": rng.choice(SMOOTH_ACTIVATIONS)}
    shapes = _shapes(data)
    fixed: dict[str, Any] = data.setdefault("fixed", {})
    names = [name for name in sorted(shapes) if name not in fixed]
    chosen = rng.sample(names, min(len(names), rng.randint(1, 2)))
    if smooth_layer and "W1" not in chosen and rng.random() < 0.6:
        chosen[0] = "W1"
    if not chosen:
        chosen = ["W1"]

    def value() -> str | None:
        roll = rng.random()
        if roll < 0.55:
            return rng.choice(CLOSED_FORMS)
        return _small(rng) if roll < 0.8 else None

    for name in chosen:
        fixed[name] = _fixed_block(rng, shapes[name], value, False)
    entries_chosen = [(name, index) for name in chosen for index in entries(shapes[name])]
    forms = [rng.choice(CLOSED_FORMS)]
    if rng.random() < 0.45:  # two bases in one spec
        forms = [rng.choice(LOG2_FORMS), rng.choice(LOG3_FORMS)]
    for form, (name, index) in zip(forms, rng.sample(entries_chosen, len(entries_chosen)),
                                   strict=False):
        block = fixed[name]
        for position in index[:-1]:
            block = block[position]
        block[index[-1]] = form
    if smooth_layer and "X" not in fixed and "Y" not in fixed and rng.random() < 0.5:
        # Integer inputs: log-valued first-layer weights give log-valued pre-activations,
        # where sigmoid and tanh take rational values.
        rows = rng.randint(1, 3)
        data["samples"] = rows
        fixed["X"] = [[rng.randint(-2, 2) for _ in range(int(data["network"]["inputs"]))]
                      for _ in range(rows)]
        data["assume"] = [text for text in data.get("assume", [])
                          if all(int(i) < rows for i in _NAMED_SAMPLE.findall(text))]
        if not data["assume"]:
            del data["assume"]
    return _case(CaseClass.CLOSED_FORM, data)


def _degenerate_assumptions(rng: random.Random, data: dict[str, Any]) -> list[str]:
    """Assumptions that force a zero weight, two equal inputs or a sample on a kink."""
    shapes = _shapes(data)
    inputs = int(data["network"]["inputs"])
    first = data["network"]["layers"][0]
    raw = data["samples"]
    top = int(raw["max"]) if isinstance(raw, dict) else int(raw)
    low = int(raw.get("min", 1)) if isinstance(raw, dict) else top
    kinds = ["zero"]
    if low >= 2:
        kinds.append("equal")
    if first["activation"] in ("relu", "leaky_relu", "abs", "hardtanh"):
        kinds.append("kink")
    found = []
    for kind in rng.sample(kinds, rng.randint(1, min(2, len(kinds)))):
        if kind == "zero":
            name = rng.choice([n for n in shapes if n.startswith("W")])
            found.append(f"{_ref(name, [rng.randrange(s) for s in shapes[name]])} == 0")
        elif kind == "equal":
            a, b = rng.sample(range(low), 2)
            found.append(" and ".join(f"{_x_ref(a, i, inputs)} == {_x_ref(b, i, inputs)}"
                                      for i in range(inputs)))
        else:
            unit = rng.randrange(int(first["units"]))
            sample = rng.randrange(low)
            point = rng.choice((-1, 1)) if first["activation"] == "hardtanh" else 0
            terms = [f"W1[{unit},{i}]*{_x_ref(sample, i, inputs)}" for i in range(inputs)]
            found.append(f"{' + '.join(terms)} + b1[{unit}] == {point}")
    return found


def _degenerate_template(rng: random.Random) -> dict[str, Any]:
    """Small nets and queries whose witnesses all have a zero weight or a kink."""
    activation = rng.choice(("linear", "relu", "leaky_relu", "abs"))
    template = rng.choice(("zero-b1", "zero-top"))
    data: dict[str, Any] = {
        "name": f"fuzz-degenerate-{template}",
        "network": {"inputs": 1, "layers": [{"units": 1, "activation": activation},
                                            {"units": 1, "activation": "linear"}]},
        "loss": rng.choice(("mse", {"kind": "mse", "reduction": "sum"},
                            {"kind": "mse", "scale": "1/2"})),
    }
    if template == "zero-b1":
        # M = 1: dL/db1 = c r W2 act'(u) = 0 and dL/dW2 = c r a != 0 force W2 = 0.
        data["samples"] = 1
        data["query"] = {"zero": ["b1"], "nonzero": ["W2"]}
    else:
        # M = 2: dL/dW2 = dL/db2 = 0 force a_1 = a_2 with r != 0; dL/dW1 != 0 then needs
        # W1 = 0 (or, for relu with relu'(0) = 1, a sample on the kink).
        data["samples"] = rng.choice((2, 2, {"min": 1, "max": 2}))
        data["query"] = {"zero": ["W2", "b2"], "nonzero": ["W1"]}
        if activation == "relu":
            data["conventions"] = {"relu_grad_at_zero": rng.choice((0, 1))}
    target = rng.choice(("real", "real", "binary", "unit_interval"))
    if target != "real":
        data["targets"] = target
    return data


def _degenerate_case(rng: random.Random, smooth: bool) -> FuzzCase:
    """No genericity, and degenerate points forced or needed: zero weights, equal inputs,
    samples on kinks, queries whose only witnesses are degenerate."""
    if rng.random() < 0.35:
        data = _degenerate_template(rng)
        if rng.random() < 0.3 and isinstance(data["samples"], int) and data["samples"] == 2:
            data["assume"] = ["X[0] == X[1]"]
        return _case(CaseClass.DEGENERATE, data, minimal=rng.random() < 0.15)
    data = random_spec_data(rng, smooth, generic=False)
    raw = data["samples"]
    if rng.random() < 0.5 and fixed_row_count(data) is None and not isinstance(raw, dict) \
            and raw == 1:
        data["samples"] = rng.randint(2, 3)
    data["assume"] = [*data.get("assume", [])[:1], *_degenerate_assumptions(rng, data)]
    return _case(CaseClass.DEGENERATE, data)


def _activation(name: str, slope: Fraction, u: Fraction) -> Fraction:
    """The fuzzer's own piecewise-linear activations (for fully fixed nets)."""
    if name == "linear":
        return u
    if name == "relu":
        return max(u, Fraction(0))
    if name == "leaky_relu":
        return u if u > 0 else slope * u
    if name == "abs":
        return abs(u)
    return min(max(u, Fraction(-1)), Fraction(1))  # hardtanh


def _text(value: Fraction) -> Any:
    return int(value) if value.denominator == 1 else str(value)


def _fit_output_layer(rng: random.Random, features: list[list[Fraction]],
                      targets: list[list[Fraction]], zero: list[tuple[str, tuple[int, ...]]],
                      outputs: int) -> tuple[list[list[Fraction]], list[Fraction]] | None:
    """An output layer (W, b) whose queried-zero MSE gradients vanish on these features:
    the normal equations of least squares, solved exactly."""
    width = len(features[0])
    columns = outputs * (width + 1)

    def column(k: int, j: int | None) -> int:
        return k * (width + 1) + (width if j is None else j)

    rows: list[list[Fraction]] = []
    rhs: list[Fraction] = []
    for block, index in zero:
        k = index[0]
        row = [Fraction(0)] * columns
        constant = Fraction(0)
        for a, y in zip(features, targets, strict=True):
            factor = Fraction(1) if block == "b" else a[index[1]]
            for j in range(width):
                row[column(k, j)] += factor * a[j]
            row[column(k, None)] += factor
            constant += factor * y[k]
        rows.append(row)
        rhs.append(constant)
    solved = solve_linear(rows, rhs, columns)
    if solved is None:
        return None
    particular, basis = solved
    values = list(particular)
    for vector in basis:
        weight = Fraction(rng.randint(-2, 2), rng.choice((1, 2)))
        values = [v + weight * b for v, b in zip(values, vector, strict=True)]
    return ([[values[column(k, j)] for j in range(width)] for k in range(outputs)],
            [values[column(k, None)] for k in range(outputs)])


def _fully_fixed_case(rng: random.Random, smooth: bool) -> FuzzCase:
    """Every parameter, input and target fixed: small rationals, or log-valued first-layer
    weights on a sigmoid / tanh layer with integer inputs (closed forms); the output layer
    sometimes solved so that the query holds."""
    roll = rng.random()
    flavor = "piecewise" if roll < 0.7 else "closed" if roll < 0.9 else "smooth"
    inputs = rng.randint(1, 2)
    samples = rng.randint(1, 4)
    hidden: list[dict[str, Any]] = []
    if flavor == "piecewise":
        for _ in range(rng.randint(1, 2)):
            layer: dict[str, Any] = {"units": rng.randint(1, 3),
                                     "activation": rng.choice(PIECEWISE_ACTIVATIONS)}
            if layer["activation"] == "leaky_relu" and rng.random() < 0.7:
                layer["slope"] = rng.choice(SLOPES)
            hidden.append(layer)
        outputs = rng.randint(1, 2)
        output_activation = "linear" if rng.random() < 0.85 else rng.choice(
            PIECEWISE_ACTIVATIONS)
        targets = rng.choice(("real", "real", "binary", "unit_interval"))
    else:
        hidden.append({"units": rng.randint(1, 2), "activation": rng.choice(SMOOTH_ACTIVATIONS)})
        outputs, output_activation, targets = 1, "linear", "real"
    layers = [*hidden, {"units": outputs, "activation": output_activation}]
    data: dict[str, Any] = {"name": f"fuzz-fully-fixed-{flavor}",
                            "network": {"inputs": inputs, "layers": layers},
                            "loss": rng.choice(("mse", {"kind": "mse", "reduction": "sum"},
                                                {"kind": "mse", "scale": "1/2"}))}
    if targets != "real" or rng.random() < 0.2:
        data["targets"] = targets
    shapes = _shapes(data)

    def small() -> Fraction:
        return Fraction(_small(rng))

    params: dict[str, Any] = {}
    first_q: list[list[Fraction]] = []  # closed flavor: W1[j][i] = log(q)
    bias_q: list[Fraction] = []
    for name, shape in shapes.items():
        if flavor == "closed" and name == "W1":
            drawn = [[rng.choice(LOG_EXPONENTIALS) for _ in range(shape[1])]
                     for _ in range(shape[0])]
            params[name] = [[text for text, _ in row] for row in drawn]
            first_q = [[q for _, q in row] for row in drawn]
        elif flavor == "closed" and name == "b1":
            drawn_bias = [rng.choice(LOG_EXPONENTIALS) for _ in range(shape[0])]
            params[name] = [text for text, _ in drawn_bias]
            bias_q = [q for _, q in drawn_bias]
        elif len(shape) == 2:
            params[name] = [[small() for _ in range(shape[1])] for _ in range(shape[0])]
        else:
            params[name] = [small() for _ in range(shape[0])]
    if flavor == "closed":
        xs = [[Fraction(rng.randint(-2, 2)) for _ in range(inputs)] for _ in range(samples)]
    else:
        xs = [[small() for _ in range(inputs)] for _ in range(samples)]

    def label() -> Fraction:
        if targets == "binary":
            return Fraction(rng.randint(0, 1))
        if targets == "unit_interval":
            return Fraction(rng.randint(0, 4), 4)
        return small()

    ys = [[label() for _ in range(outputs)] for _ in range(samples)]

    # The query: random, or the output layer's gradient made zero by solving for it.
    depth = len(layers)
    top_w, top_b = f"W{depth}", f"b{depth}"
    solve = output_activation == "linear" and flavor != "smooth" and rng.random() < 0.6
    zero: list[str] = []
    nonzero: list[str] = []
    if solve:
        zero = rng.choice(([top_w], [top_b], [top_w, top_b],
                           [_ref(top_w, [rng.randrange(outputs), 0])]))
        if rng.random() < 0.6:
            nonzero.append(rng.choice([n for n in shapes if n not in (top_w, top_b)]))
        if rng.random() < 0.1:
            zero.append(rng.choice([n for n in shapes if n not in (top_w, top_b)]))
    else:
        for name in shapes:
            pick = rng.random()
            if pick < 0.3:
                zero.append(name)
            elif pick < 0.5:
                nonzero.append(name)
    if not zero and not nonzero:
        nonzero.append(rng.choice(sorted(shapes)))
    if solve:
        features: list[list[Fraction]] = []
        for m in range(samples):
            current = xs[m]
            for index, layer in enumerate(hidden, start=1):
                if flavor == "closed":
                    # u = sum_i x_i log(q_ji) + log(c_j) = log(prod_i q_ji^x_i * c_j)
                    qs = [bias_q[j] * math.prod((first_q[j][i] ** int(current[i])
                                                 for i in range(inputs)), start=Fraction(1))
                          for j in range(int(layer["units"]))]
                    current = [q / (1 + q) if layer["activation"] == "sigmoid" else
                               (q * q - 1) / (q * q + 1) for q in qs]
                    continue
                weight, bias = params[f"W{index}"], params[f"b{index}"]
                slope = Fraction(layer.get("slope", "1/100"))
                current = [_activation(layer["activation"], slope, sum(
                    (w * x for w, x in zip(weight[j], current, strict=True)),
                    start=bias[j])) for j in range(int(layer["units"]))]
            features.append(current)
        coordinates: list[tuple[str, tuple[int, ...]]] = []
        for item in zero:
            if item == top_w:
                coordinates += [("W", index) for index in entries(shapes[top_w])]
            elif item == top_b:
                coordinates += [("b", index) for index in entries(shapes[top_b])]
            elif item.startswith(top_w + "["):
                coordinates.append(("W", tuple(int(i) for i in item[len(top_w) + 1:-1]
                                               .split(","))))
        fitted = _fit_output_layer(rng, features, ys, coordinates, outputs)
        if fitted is not None:
            params[top_w], params[top_b] = fitted

    def texts(array: Any) -> Any:
        if isinstance(array, list):
            return [texts(item) for item in array]
        return _text(array) if isinstance(array, Fraction) else array

    data["samples"] = samples
    if rng.random() < 0.3:
        del data["samples"]
    data["fixed"] = {**{name: texts(block) for name, block in params.items()},
                     "X": texts(xs), "Y": texts(ys)}
    query: dict[str, Any] = {}
    if zero:
        query["zero"] = zero
    if nonzero:
        query["nonzero"] = nonzero
    data["query"] = query
    if rng.random() < 0.2:
        data["assume"] = [_assumption(rng, shapes, inputs, outputs, samples, targets)]
    if rng.random() < 0.2:
        data["generic"] = rng.random() < 0.5
    if rng.random() < 0.3:
        data["conventions"] = {"relu_grad_at_zero": rng.choice((0, 1))}
    minimal = rng.random() < 0.15
    return _case(CaseClass.FULLY_FIXED, data, samples if rng.random() < 0.15 else None,
                 minimal, decided=flavor != "smooth")


def _labels_case(rng: random.Random, smooth: bool) -> FuzzCase:
    """Binary and unit-interval targets with MSE on piecewise-linear nets, the output layer
    mostly linear and queried zero (the zero conditions are then linear in it)."""
    targets = rng.choice(("binary", "unit_interval"))
    data = random_spec_data(rng, False, targets=targets, linear_output=rng.random() < 0.85)
    data["targets"] = targets
    shapes = _shapes(data)
    depth = len(data["network"]["layers"])
    if rng.random() < 0.7:
        query = data["query"]
        top = rng.choice((f"W{depth}", f"b{depth}"))
        zero = [item for item in query.get("zero", []) if not item.startswith(top)]
        query["zero"] = [*zero, top]
        query["nonzero"] = [item for item in query.get("nonzero", [])
                            if not item.startswith(top)]
        if not query["nonzero"]:
            del query["nonzero"]
            if rng.random() < 0.6:
                query["nonzero"] = [rng.choice([n for n in shapes if n[1:] != str(depth)])]
    return _case(CaseClass.LABELS, data)


def _base_case(rng: random.Random, smooth: bool) -> FuzzCase:
    return _case(CaseClass.BASE, random_spec_data(rng, smooth))


_GENERATORS: dict[CaseClass, Callable[[random.Random, bool], FuzzCase]] = {
    CaseClass.BASE: _base_case,
    CaseClass.FIXED_SAMPLES: _fixed_samples_case,
    CaseClass.NAMED_SAMPLES: _named_samples_case,
    CaseClass.CLOSED_FORM: _closed_form_case,
    CaseClass.DEGENERATE: _degenerate_case,
    CaseClass.FULLY_FIXED: _fully_fixed_case,
    CaseClass.LABELS: _labels_case,
}


def random_case(rng: random.Random, smooth: bool = False,
                kinds: Sequence[CaseClass] | None = None) -> FuzzCase:
    """A random case of one of ``kinds`` (default: every class, at :data:`CLASS_WEIGHTS`)."""
    pool = list(kinds) if kinds else list(CLASS_WEIGHTS)
    kind = pool[0] if len(pool) == 1 else rng.choices(pool, [CLASS_WEIGHTS[k] for k in pool])[0]
    return _GENERATORS[kind](rng, smooth)


def case_random(seed: int, index: int) -> random.Random:
    """The generator of case ``index`` of the batch with ``seed`` (stable across runs)."""
    return random.Random(f"smtgrad-fuzz:{seed}:{index}")


def spec_texts(smooth: bool = False) -> Any:
    """Hypothesis strategy of random spec texts (shrinks through the underlying Random)."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(lambda rng: random_spec(rng, smooth))


def case_strategy(smooth: bool = False, kinds: Sequence[CaseClass] | None = None) -> Any:
    """Hypothesis strategy of :class:`FuzzCase` values (of ``kinds``, default a mix)."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(lambda rng: random_case(rng, smooth, kinds))


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
    SPEC_ERROR = "spec-error-expected"  # options the contract refuses were refused (exit 2)
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
    classes: tuple[str, ...] = ()  # case classes to draw (CaseClass values); () = all

    @property
    def other_backend(self) -> str:
        return "cvc5" if self.backend == "z3" else "z3"


@dataclass
class CaseReport:
    """The fuzzer's findings on one spec."""

    index: int
    seed: int
    spec_text: str
    kind: str = CaseClass.BASE.value
    options: str = "defaults"
    category: Category = Category.ERROR
    verdict: str = ""
    replay: Replay | None = None
    details: list[str] = field(default_factory=list)
    points_tried: int = 0
    overruns: int = 0  # second-opinion solves killed for ignoring their timeout
    seconds: float = 0.0

    def describe(self) -> str:
        lines = [f"case {self.index} (seed {self.seed}, class {self.kind}, options "
                 f"{self.options}): {self.category.value}"
                 f" [verdict {self.verdict or '-'}"
                 f"{', ' + self.replay.value if self.replay else ''}]"]
        lines += [f"  {line}" for line in self.details]
        lines += ["  spec:"] + [f"    {line}" for line in self.spec_text.splitlines()]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Float64 autograd replay.


def _float(value: Any) -> float:
    from smtgrad.reference.intervals import Enclosure

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


def activation_name(layer: Layer) -> str:
    """The spec name of a layer's activation ("relu"), whichever activation type the spec
    model uses (an enum whose value is the name, or an object with a ``name``)."""
    activation: Any = layer.activation
    value = getattr(activation, "value", None)
    return value if isinstance(value, str) else str(activation.name)


def is_piecewise_linear(layer: Layer) -> bool:
    return activation_name(layer) in PIECEWISE_ACTIVATIONS


def _kink_one(torch: Any, layer: Layer, u: Any) -> Any:
    """An activation whose autograd derivative at a kink is the slope of the linear piece."""
    act = activation_name(layer)
    if act == "relu":
        return torch.where(u >= 0, u, u * 0)
    if act == "leaky_relu":
        return torch.where(u >= 0, u, u * float(layer.slope))
    if act == "abs":
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
        if activation_name(layer) == "softmax":
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
        act = activation_name(layer)
        if act == "linear":
            h = u
        elif kink_one and kinks:
            # relu_grad_at_zero: 1 -- the kink takes the slope of the linear piece. Built
            # from torch.where, whose gradient follows the branch taken.
            h = _kink_one(torch, layer, u)
        elif act == "relu":
            h = F.relu(u)
        elif act == "leaky_relu":
            h = F.leaky_relu(u, negative_slope=float(layer.slope))
        elif act == "abs":
            h = torch.abs(u)
        elif act == "hardtanh":
            h = F.hardtanh(u)
        elif act == "sigmoid":
            h = torch.sigmoid(u)
        elif act == "tanh":
            h = torch.tanh(u)
        elif act == "softplus":
            h = F.softplus(u)
        elif act == "elu":
            h = F.elu(u)
        elif act == "silu":
            h = F.silu(u)
        elif act == "gelu":
            h = F.gelu(u)  # the exact erf form, as smtgrad's
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
    loss.backward()  # type: ignore[no-untyped-call, unused-ignore]

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

#: Exceptions a point draw may raise (a closed form where a rational is needed, a
#: non-invertible system, an inexact smooth value): the point is skipped.
_DRAW_ERRORS = (ValueError, TypeError, ZeroDivisionError, ArithmeticError, NumberError)


def _rational(value: Any) -> Fraction | None:
    """``value`` as a Fraction when it is rational (a LogNumber may be), else None."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    rational = getattr(value, "rational", None)
    if callable(rational):
        result = rational()
        return Fraction(result) if isinstance(result, Fraction | int) else None
    return None


def _key(witness: Witness) -> Any:
    try:
        key = (witness.parameters.weights, witness.parameters.biases, witness.inputs,
               witness.targets)
        hash(key)
    except TypeError:
        return None
    return key


class _PointSearch:
    """Draws rational points for a spec and asks :func:`verify` about each.

    Half the draws (unless the spec is generic) are biased towards degenerate points:
    zero weights, repeated input rows and samples exactly on a first-layer kink (an
    input solved so that a pre-activation equals the kink). Fixed values are always
    honoured. The targets are then solved: free real residuals by exact linear algebra
    on the queried-zero gradients; or, for label targets (binary, unit interval, fixed
    Y), labels are drawn and a linear output layer is solved by exact least squares
    (its queried-zero gradient entries are linear in it).
    """

    def __init__(self, spec: Spec, rng: random.Random, sample_counts: Sequence[int]) -> None:
        self.spec = spec
        self.rng = rng
        self.sample_counts = list(sample_counts)
        self.points = 0
        self.smooth = LatticeFunctions(None)
        network = spec.network
        mse = spec.loss.kind is LossKind.MSE
        self.residuals_free = mse and spec.targets is TargetKind.REAL
        self.output_linear = (mse and spec.targets is not TargetKind.CLASS
                              and activation_name(network.layers[-1]) == "linear")
        last = network.depth
        self.top = (f"W{last}", f"b{last}")
        shapes = network.parameter_shapes()
        self.top_zero: list[tuple[str, tuple[int, ...]]] = []
        for target in spec.query.zero:
            if target.block in self.top:
                for index in target.indices(shapes):
                    if (target.block, index) not in self.top_zero:
                        self.top_zero.append((target.block, index))
        self.degenerate = not spec.generic

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

    def entry(self, name: str, index: tuple[int, ...], nonzero: bool = False,
              zero: float = 0.0) -> Any:
        fixed = self.spec.fixed_value(name, index)
        if fixed is not None:
            return fixed
        if zero and self.rng.random() < zero:
            return Fraction(0)
        return self.value(nonzero)

    def parameters(self, degenerate: bool = False) -> Parameters:
        weights: list[Any] = []
        biases: list[Any] = []
        generic = self.spec.generic
        for name, shape in self.spec.network.parameter_shapes().items():
            # Degenerate draws: single zero weights, now and then a whole zero block.
            zero = 0.0 if not degenerate else 1.0 if self.rng.random() < 0.1 else 0.3
            if len(shape) == 2:
                weights.append(tuple(tuple(self.entry(name, (j, i), generic, zero)
                                           for i in range(shape[1])) for j in range(shape[0])))
            else:
                biases.append(tuple(self.entry(name, (j,), zero=zero / 2)
                                    for j in range(shape[0])))
        return Parameters(tuple(weights), tuple(biases))

    def inputs(self, samples: int, params: Parameters | None = None,
               degenerate: bool = False) -> tuple[tuple[Any, ...], ...]:
        spec = self.spec
        width = spec.network.inputs
        first = spec.network.layers[0]
        points = kink_points(first)
        rows: list[tuple[Any, ...]] = []
        for m in range(samples):
            row = [self.entry("X", (m, i)) for i in range(width)]
            free = [i for i in range(width) if spec.fixed_value("X", (m, i)) is None]
            roll = self.rng.random()
            if degenerate and free and rows and roll < 0.35:
                source = self.rng.choice(rows)  # a repeated input (the free columns)
                row = [source[i] if i in free else row[i] for i in range(width)]
            elif degenerate and free and points and params is not None and roll < 0.75:
                self._on_kink(row, free, params, points)
            rows.append(tuple(row))
        return tuple(rows)

    def _on_kink(self, row: list[Any], free: list[int], params: Parameters,
                 points: tuple[int, ...]) -> None:
        """Solve one free input so that a random first-layer unit sits on a kink."""
        units = len(params.weights[0])
        unit = self.rng.randrange(units)
        weight_row = [_rational(w) for w in params.weights[0][unit]]
        bias = _rational(params.biases[0][unit])
        for column in self.rng.sample(free, len(free)):
            weight = weight_row[column]
            if not weight or bias is None:
                continue
            rest = bias
            for i, value in enumerate(row):
                if i != column:
                    w, x = weight_row[i], _rational(value)
                    if w is None or x is None:
                        return
                    rest += w * x
            row[column] = (Fraction(self.rng.choice(points)) - rest) / weight
            return

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

    def solved_targets(self, params: Parameters, inputs: tuple[tuple[Any, ...], ...],
                       spec: Spec) -> list[tuple[Any, ...]]:
        """Targets making every queried-zero gradient vanish (exact linear algebra)."""
        network = spec.network
        outputs = network.outputs
        samples = len(inputs)
        zeros = tuple(tuple(Fraction(0) for _ in range(outputs)) for _ in range(samples))
        base = evaluate(network, spec.loss, spec.conventions, params, inputs, zeros,
                        self.smooth)
        yhat = base.predictions
        # phi[(m, k)]: gradient of sum-MSE/2 when sample m alone has residual e_k.
        phi: list[dict[str, Any]] = []
        for m in range(samples):
            for k in range(outputs):
                single = (tuple(yhat[m][o] - (1 if o == k else 0) for o in range(outputs)),)
                phi.append(evaluate(network, _HALF_SUM, spec.conventions, params, (inputs[m],),
                                    single, self.smooth).gradients)
        shapes = network.parameter_shapes()
        coordinates: list[tuple[str, tuple[int, ...]]] = []
        for target in spec.query.zero:
            indices = target.indices(shapes)
            coordinates += [(target.block, index) for index in indices]
        free = [(m, k) for m in range(samples) for k in range(outputs)
                if spec.fixed_value("Y", (m, k)) is None]
        known = {(m, k): yhat[m][k] - value for m in range(samples) for k in range(outputs)
                 if (value := spec.fixed_value("Y", (m, k))) is not None}

        def rational(value: Any) -> Fraction:
            exact = _rational(value)
            if exact is None:
                raise TypeError(f"{value} is not rational")
            return exact

        rows, rhs = [], []
        for name, index in coordinates:
            rows.append([rational(_at(phi[m * outputs + k][name], index)) for m, k in free])
            rhs.append(-sum((rational(_at(phi[m * outputs + k][name], index)) * rational(r)
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

    def output_layers(self, params: Parameters, inputs: tuple[tuple[Any, ...], ...],
                      targets: tuple[Any, ...]) -> list[Parameters]:
        """Output layers (free entries only) whose queried-zero gradients vanish for these
        lower layers, inputs and targets: exact least squares on the last hidden features."""
        spec = self.spec
        network = spec.network
        depth = network.depth
        if depth > 1:
            zeros = tuple(tuple(Fraction(0) for _ in range(network.outputs)) for _ in inputs)
            hidden = evaluate(network, spec.loss, spec.conventions, params, inputs, zeros,
                              self.smooth).activations[depth - 2]
        else:
            hidden = inputs
        features = [[_rational(v) for v in row] for row in hidden]
        labels = [[_rational(v) for v in row] for row in targets]
        weight_name, bias_name = self.top
        width = len(features[0])
        unknowns: list[tuple[str, tuple[int, ...]]] = [
            (weight_name, (k, j)) for k in range(network.outputs) for j in range(width)]
        unknowns += [(bias_name, (k,)) for k in range(network.outputs)]
        free = [c for c in unknowns if spec.fixed_value(*c) is None]
        position = {c: n for n, c in enumerate(free)}
        rows: list[list[Fraction]] = []
        rhs: list[Fraction] = []
        for block, index in self.top_zero:
            k = index[0]
            row = [Fraction(0)] * len(free)
            constant = Fraction(0)
            for a, y in zip(features, labels, strict=True):
                factor = Fraction(1) if block == bias_name else a[index[1]]
                label = y[k]
                if factor is None or label is None:
                    return []
                if factor == 0:
                    continue
                terms: list[tuple[tuple[str, tuple[int, ...]], Fraction | None]] = [
                    ((weight_name, (k, j)), a[j]) for j in range(width)]
                terms.append(((bias_name, (k,)), Fraction(1)))
                for coordinate, coefficient in terms:
                    if coefficient is None:
                        return []
                    if coordinate in position:
                        row[position[coordinate]] += factor * coefficient
                        continue
                    known = _rational(spec.fixed_value(*coordinate))
                    if known is None:
                        return []
                    constant += factor * coefficient * known
                constant -= factor * label
            rows.append(row)
            rhs.append(-constant)
        solved = solve_linear(rows, rhs, len(free))
        if solved is None:
            return []
        particular, basis = solved
        found = []
        for trial in range(3 if basis else 1):
            values = list(particular)  # trial 0: the free directions at zero (degenerate)
            if trial:
                for vector in basis:
                    weight = Fraction(self.rng.randint(-2, 2), self.rng.choice((1, 2)))
                    values = [v + weight * b for v, b in zip(values, vector, strict=True)]
            weights = [list(row) for row in params.weights[-1]]
            biases = list(params.biases[-1])
            for (block, index), value in zip(free, values, strict=True):
                if block == weight_name:
                    weights[index[0]][index[1]] = value
                else:
                    biases[index[0]] = value
            top_weights = tuple(tuple(row) for row in weights)
            found.append(Parameters((*params.weights[:-1], top_weights),
                                    (*params.biases[:-1], tuple(biases))))
        return found

    def run(self, points: int, deadline: float) -> Witness | None:
        spec = self.spec
        seen: set[Any] = set()
        repeats = 0
        for _ in range(points):
            if time.perf_counter() > deadline or repeats > 200:
                return None  # out of time, or every draw is a point already tried
            self.points += 1
            samples = self.rng.choice(self.sample_counts)
            target_spec = spec if spec.samples.min <= samples <= spec.samples.max \
                else spec.with_samples(samples)
            degenerate = self.degenerate and self.rng.random() < 0.5
            try:
                params = self.parameters(degenerate)
                inputs = self.inputs(samples, params, degenerate)
                drawn = self._targets(params, inputs, target_spec)
            except _DRAW_ERRORS:
                continue
            for params_, targets in drawn:
                witness = Witness(parameters=params_, inputs=inputs, targets=targets)
                key = _key(witness)
                if key is not None:
                    if key in seen:
                        repeats += 1
                        continue
                    seen.add(key)
                repeats = 0
                # Lattice closed forms and balls first (fast; refutes almost every point);
                # the full verifier (exact in Q(e^q), which can be slow) only on survivors.
                quick = verify(target_spec, witness, self.smooth)
                if quick.status is Status.HOLDS or (
                        quick.status is Status.UNDECIDED
                        and verify(target_spec, witness).status is Status.HOLDS):
                    return witness
        return None

    def _targets(self, params: Parameters, inputs: tuple[tuple[Any, ...], ...], spec: Spec
                 ) -> list[tuple[Parameters, tuple[Any, ...]]]:
        """Candidate (parameters, targets) for drawn lower layers and inputs."""
        samples = len(inputs)
        roll = self.rng.random()
        found: list[tuple[Parameters, tuple[Any, ...]]] = []
        free_y = any(spec.fixed_value("Y", (m, k)) is None for m in range(samples)
                     for k in range(spec.network.outputs))
        if self.residuals_free and free_y and roll < 0.6:
            found = [(params, targets) for targets in self.solved_targets(params, inputs, spec)]
        elif self.output_linear and self.top_zero and roll < 0.9:
            targets = self.random_targets(samples)
            found = [(layer, targets) for layer in self.output_layers(params, inputs, targets)]
        if not found:
            found = [(params, self.random_targets(samples))]
        return found


def search_counterexample(spec: Spec, rng: random.Random, points: int, seconds: float,
                          all_samples: bool = False,
                          sample_counts: Sequence[int] | None = None
                          ) -> tuple[Witness | None, int]:
    """Random rational points against an unsat verdict: a verified witness, or None.

    M is drawn from ``sample_counts`` (default: the spec's range). With
    ``all_samples`` (the verdict claims every M) M is also drawn beyond it, up to
    two above the largest (the point is then checked against the spec at that M).
    """
    counts = list(sample_counts) if sample_counts else list(
        range(spec.samples.min, spec.samples.max + 1))
    if all_samples:
        counts = sorted(set(counts) | set(range(1, max(counts) + 3)))
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
    spec_error: str | None = None  # SpecError: the input (spec or options) was refused
    error: str | None = None
    overrun: float | None = None  # seconds after which the child was killed


def _short(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters (exact values can run to megabytes)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _in_child(work: Callable[[], tuple[str, Any]], limit: float,
              shrink: Callable[[tuple[str, Any]], tuple[str, Any]] | None = None
              ) -> tuple[str, Any]:
    """``work()`` in a forked child: its ``(kind, value)``, ``("overrun", seconds)`` when
    it runs past ``limit`` seconds (it is then killed), or ``("error", why)``.

    ``shrink`` makes a payload that does not pickle sendable (else it is an error).
    """
    import multiprocessing
    import os

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        payload: tuple[str, Any]
        try:
            payload = work()
        except BaseException as error:
            payload = ("error", f"{type(error).__name__}: {error}\n"
                                + "\n".join(traceback.format_exc().splitlines()[-10:]))
        try:
            sender.send(payload)
        except Exception as error:
            try:
                if shrink is None:
                    raise
                sender.send(shrink(payload))
            except Exception:
                sender.send(("error", f"result cannot be sent back: {error}"))
        sender.close()
        os._exit(0)

    # Not a daemon: a backend may itself run the solver in a child process, which
    # multiprocessing forbids to daemonic processes. The child is killed below if need be.
    process = context.Process(target=child, daemon=False)
    started = time.perf_counter()
    process.start()
    sender.close()
    kind: str = "error"
    value: Any = "the child process did not answer"
    try:
        if receiver.poll(limit):
            kind, value = receiver.recv()
        else:
            kind, value = "overrun", time.perf_counter() - started
    except EOFError:
        kind, value = "error", f"the child process died (exit code {process.exitcode})"
    finally:
        if kind == "overrun" or process.is_alive():
            process.join(2)
            if process.is_alive():
                process.kill()
        process.join()
        receiver.close()
    return kind, value


def guarded_solve(spec: Spec, options: SolveOptions, hard_limit: float | None = None
                  ) -> Solved:
    """``solve`` in a forked child, killed if it overruns its timeout by far.

    Solvers do not always honour their time limits; the fuzzer must not hang on
    them. The hard limit defaults to twice the timeout plus ten seconds.
    """
    timeout = options.timeout if options.timeout is not None else 60.0
    limit = hard_limit if hard_limit is not None else 2 * timeout + 10

    def work() -> tuple[str, Any]:
        try:
            return "ok", solve(spec, options)
        except WitnessRejected as error:
            return "rejected", str(error)
        except SpecError as error:
            return "spec-error", str(error)

    def shrink(payload: tuple[str, Any]) -> tuple[str, Any]:
        # Interval values (enclosure certificates) do not pickle; the witness does.
        kind, value = payload
        if kind == "ok" and isinstance(value, Result):
            return "ok", dataclasses.replace(value, evaluation=None)
        raise TypeError("not a result")

    kind, value = _in_child(work, limit, shrink)
    if kind == "ok":
        return Solved(result=value)
    if kind == "rejected":
        return Solved(rejected=value)
    if kind == "spec-error":
        return Solved(spec_error=value)
    if kind == "overrun":
        return Solved(overrun=value)
    return Solved(error=value)


def guarded_status(spec: Spec, witness: Witness, limit: float
                   ) -> tuple[Status | None, tuple[str, ...], str]:
    """``verify(spec, witness)`` in a forked child: the status (None when it ran past
    ``limit`` or failed), the refuted and undecided requirements, and what went wrong."""

    def work() -> tuple[str, Any]:
        check = verify(spec, witness)
        return "ok", (check.status.value, tuple(_short(text) for text in
                                                (*check.failures, *check.undecided)))

    kind, value = _in_child(work, limit)
    if kind == "ok":
        return Status(value[0]), tuple(value[1]), ""
    if kind == "overrun":
        return None, (), f"the verifier was still running after {value:.0f} s; killed"
    return None, (), str(value)


def _spec_walk(spec: Spec) -> tuple[int, int]:
    """The walk of a solve with default options (for specs the generator did not make)."""
    fixed = spec.fixed_rows
    if fixed is not None:
        return fixed[1], fixed[1]
    return max(spec.samples.min, spec.least_samples), spec.samples.max


def _at_samples(spec: Spec, samples: int) -> Spec:
    """The spec to verify an M-sample witness against (``--samples`` / ``--minimal`` may
    solve an M outside the spec's own range)."""
    if spec.samples.min <= samples <= spec.samples.max:
        return spec
    return spec.with_samples(samples)


def _walk_problem(result: Result, walk: tuple[int, int]) -> str | None:
    """Why the attempts of ``result`` do not walk ``walk`` in order, or None."""
    seen = [attempt.samples for attempt in result.attempts]
    low, high = walk
    if not seen:
        return f"no attempt recorded; the walk should cover M={low}..{high}"
    if seen != list(range(low, low + len(seen))) or seen[-1] > high:
        return f"attempts at M={seen}; the walk should go M={low}..{high} in order"
    if result.verdict is Verdict.SAT and result.samples != seen[-1]:
        return f"sat at M={result.samples}, but the last attempt is at M={seen[-1]}"
    if result.verdict is Verdict.UNSAT and result.proved != "all M" and seen[-1] != high:
        return f"unsat ({result.proved}) after attempts at M={seen}; the walk ends at M={high}"
    return None


def fixed_witness_of(spec: Spec) -> Witness | None:
    """The one point of a fully fixed spec, read off the fixed values (None if one is free)."""
    network = spec.network
    rows = spec.fixed_rows
    if rows is None:
        return None
    blocks: dict[str, Any] = {}
    for name, shape in network.parameter_shapes().items():
        values = [spec.fixed_value(name, index) for index in entries(shape)]
        if any(value is None for value in values):
            return None
        blocks[name] = tuple(values) if len(shape) == 1 else tuple(
            tuple(values[j * shape[1]:(j + 1) * shape[1]]) for j in range(shape[0]))
    inputs = tuple(tuple(spec.fixed_value("X", (m, i)) for i in range(network.inputs))
                   for m in range(rows[1]))
    if spec.targets is TargetKind.CLASS:
        targets: tuple[Any, ...] = tuple(spec.fixed_value("Y", (m,)) for m in range(rows[1]))
    else:
        targets = tuple(tuple(spec.fixed_value("Y", (m, k)) for k in range(network.outputs))
                        for m in range(rows[1]))
    if any(v is None for v in _flat(list(inputs))) or any(v is None for v in _flat(
            list(targets))):
        return None
    depth = network.depth
    return Witness(Parameters(tuple(blocks[f"W{i}"] for i in range(1, depth + 1)),
                              tuple(blocks[f"b{i}"] for i in range(1, depth + 1))),
                   inputs, targets)


def check_spec(spec: Spec, config: FuzzConfig, rng: random.Random, report: CaseReport,
               case: FuzzCase | None = None) -> None:
    """Solve one spec (with the case's options) and try to refute the answer; fill
    ``report``."""
    timeout = config.timeout
    if case is not None and case.timeout is not None:
        timeout = min(timeout, case.timeout)
    samples = case.samples if case is not None else None
    minimal = case.minimal if case is not None else False
    walk = case.walk if case is not None else _spec_walk(spec)
    options = SolveOptions(timeout=timeout, backend=config.backend, samples=samples,
                           minimal=minimal)
    solved = guarded_solve(spec, options)
    if solved.spec_error is not None:
        report.verdict = "spec-error"
        if walk is None:
            report.category = Category.SPEC_ERROR
            report.details.append(f"refused as the contract asks: {_short(solved.spec_error)}")
        else:
            report.category = Category.DISAGREEMENT
            report.details.append(f"{config.backend}: SpecError on a valid request (the walk "
                                  f"should be M={walk[0]}..{walk[1]}): "
                                  f"{_short(solved.spec_error)}")
        return
    if solved.rejected is not None:
        report.category = Category.ERROR
        report.verdict = "rejected"
        report.details.append(f"{config.backend}: {_short(solved.rejected, 2000)}")
        return
    if solved.overrun is not None:
        report.category = Category.OVERRUN
        report.details.append(f"{config.backend}: still running {solved.overrun:.0f} s into a "
                              f"{timeout:g} s timeout; killed")
        return
    if solved.error is not None or solved.result is None:
        report.category = Category.ERROR
        report.details.append(f"{config.backend}: {solved.error}")
        return
    result = solved.result
    report.verdict = result.verdict.value
    if walk is None:
        report.category = Category.DISAGREEMENT
        report.details.append(f"options {report.options} must be refused (SpecError, exit 2): "
                              f"fixed rows define M, or the spec names a later sample; got "
                              f"{result.verdict.value} at M={result.samples} "
                              f"({_short(result.reason, 200)})")
        return
    problem = _walk_problem(result, walk)
    if problem is not None:
        report.category = Category.DISAGREEMENT
        report.details.append(f"{problem} (notes: {'; '.join(result.notes) or '-'})")
        return
    if (case is not None and case.kind is CaseClass.FULLY_FIXED
            and not _check_fully_fixed(spec, case, result, report)):
        return
    if result.verdict is Verdict.SAT:
        _check_sat(spec, config, result, report, options, walk)
    elif result.verdict is Verdict.UNSAT:
        _check_unsat(spec, config, result, rng, report, options, walk)
    else:
        report.category = Category.UNKNOWN
        report.details.append(f"unknown: {_short(result.reason)}")


def _check_fully_fixed(spec: Spec, case: FuzzCase, result: Result, report: CaseReport
                       ) -> bool:
    """A fully fixed spec: the verdict must be the verifier's status of its one point."""
    witness = fixed_witness_of(spec)
    if witness is None:
        report.category = Category.ERROR
        report.details.append("the generator left a value free in a fully fixed spec")
        return False
    timeout = case.timeout or 60.0
    status, why, trouble = guarded_status(spec, witness, 2 * timeout + 10)
    if status is None:
        report.category = Category.OVERRUN if "still running" in trouble else Category.ERROR
        report.details.append(f"fully fixed: verify on the fixed point: {_short(trouble)}")
        return False
    wanted = {Status.HOLDS: Verdict.SAT, Status.FAILS: Verdict.UNSAT,
              Status.UNDECIDED: Verdict.UNKNOWN}[status]
    report.details.append(f"fully fixed: the verifier says {status.value} on the fixed "
                          f"point ({_short('; '.join(why[:2]) or '-')})")
    if case.decided and status is Status.UNDECIDED:
        report.category = Category.DISAGREEMENT
        report.details.append("every value is exact (rational or a closed form), yet the "
                              f"verifier cannot decide: {_short('; '.join(why[:3]))}")
        return False
    if result.verdict is not wanted:
        report.category = Category.DISAGREEMENT
        report.details.append(f"the solve says {result.verdict.value} ({result.method}: "
                              f"{_short(result.reason, 200)}), the fixed point {status.value}")
        return False
    return True


def _check_sat(spec: Spec, config: FuzzConfig, result: Result, report: CaseReport,
               options: SolveOptions | None = None,
               walk: tuple[int, int] | None = None) -> None:
    options = options or SolveOptions(timeout=config.timeout, backend=config.backend)
    witness = result.witness
    if witness is None:
        report.category = Category.ERROR
        report.details.append("sat without a witness")
        return
    low, high = walk or (spec.samples.min, spec.samples.max)
    if result.samples != witness.samples or not low <= witness.samples <= high:
        report.category = Category.DISAGREEMENT
        report.details.append(f"sat at M={result.samples}, witness has {witness.samples} "
                              f"samples, the walk is M={low}..{high}")
        return
    target = _at_samples(spec, witness.samples)
    check = verify(target, witness)
    if check.status is not Status.HOLDS:
        report.category = Category.DISAGREEMENT
        report.details.append(f"the verifier says {check.status.value!r} on the reported "
                              f"witness: {_short(str((*check.failures, *check.undecided)), 2000)}")
        report.details.append(f"witness: {_witness_text(spec, witness)}")
        return
    report.category = Category.SAT_VERIFIED
    report.details.append(f"sat by {result.method} at M={result.samples}")
    if config.torch and result.certificate == "enclosure":
        report.details.append("torch skipped: an enclosure certificate has no exact point")
    elif config.torch and check.evaluation is not None:
        replay, why = torch_replay(target, witness, check.evaluation)
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
        other = _second_opinion(spec, dataclasses.replace(
            options, timeout=(options.timeout or config.timeout) / 2,
            backend=config.other_backend, fast_path=False), report)
        if other is not None and other.verdict is Verdict.UNSAT:
            report.category = Category.DISAGREEMENT
            report.details.append(f"{config.other_backend} says unsat "
                                  f"({_short(other.reason)}) but "
                                  f"the witness is verified: {_witness_text(spec, witness)}")


def _second_opinion(spec: Spec, options: SolveOptions, report: CaseReport) -> Result | None:
    solved = guarded_solve(spec, options)
    if solved.rejected is not None:
        report.category = Category.ERROR
        report.details.append(f"{options.backend}: {_short(solved.rejected, 2000)}")
    elif solved.spec_error is not None:
        report.category = Category.DISAGREEMENT
        report.details.append(f"{options.backend}: SpecError where the first solve ran: "
                              f"{_short(solved.spec_error)}")
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
                 report: CaseReport, options: SolveOptions | None = None,
                 walk: tuple[int, int] | None = None) -> None:
    options = options or SolveOptions(timeout=config.timeout, backend=config.backend)
    report.category = Category.UNSAT_CONFIRMED
    report.details.append(f"unsat ({result.proved}) by {result.method}")
    other = _second_opinion(spec, dataclasses.replace(options, backend=config.other_backend),
                            report)
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
            report.details.append(f"{config.other_backend}: unknown "
                                  f"({_short(other.reason, 200)})")
    low, high = walk or (spec.samples.min, spec.samples.max)
    all_samples = result.proved == "all M" and spec.fixed_rows is None
    found, tried = search_counterexample(spec, rng, config.points, config.search_seconds,
                                         all_samples=all_samples,
                                         sample_counts=range(low, high + 1))
    report.points_tried = tried
    if found is not None:
        report.category = Category.DISAGREEMENT
        report.details.append(f"random search found a verified point after {tried} tries: "
                              f"{_witness_text(spec, found)}")


def run_case(index: int, seed: int, config: FuzzConfig) -> CaseReport:
    """Generate case ``index`` of batch ``seed`` and check it. Never raises."""
    rng = case_random(seed, index)
    kinds = [CaseClass(name) for name in config.classes] or None
    case = random_case(rng, config.smooth, kinds)
    text = case.text
    report = CaseReport(index=index, seed=seed, spec_text=text, kind=case.kind.value,
                        options=case.options_text)
    started = time.perf_counter()
    try:
        spec = parse_spec(text, f"<fuzz {seed}:{index}>")
    except SpecError as error:
        report.category = Category.ERROR
        report.details.append(f"the generator produced a spec smtgrad rejects: {error}")
        return report
    try:
        check_spec(spec, config, rng, report, case)
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
    by_class: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[CaseReport] = field(default_factory=list)
    ambiguous: list[CaseReport] = field(default_factory=list)
    reports: list[CaseReport] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, report: CaseReport) -> None:
        self.reports.append(report)
        self.counts[report.category.value] += 1
        self.by_class.setdefault(report.kind, Counter())[report.category.value] += 1
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
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=(
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
    parser.add_argument("--class", dest="classes", action="append", default=[],
                        choices=[kind.value for kind in CaseClass],
                        help="draw only cases of this class (repeatable; default: a mix)")
    args = parser.parse_args(argv)
    if args.count < 0 or args.jobs < 1 or args.timeout <= 0 or args.points < 0:
        parser.error("--count, --points must be >= 0; --jobs >= 1; --timeout > 0")
    return args


#: Columns of the per-class table: a heading and the categories it adds up.
CLASS_COLUMNS: tuple[tuple[str, tuple[Category, ...]], ...] = (
    ("sat", (Category.SAT_VERIFIED,)),
    ("unsat", (Category.UNSAT_CONFIRMED, Category.UNSAT_UNCONFIRMED)),
    ("unknown", (Category.UNKNOWN,)),
    ("refused", (Category.SPEC_ERROR,)),
    ("overrun", (Category.OVERRUN,)),
    ("failed", (Category.DISAGREEMENT, Category.ERROR)),
)


def class_table(summary: BatchSummary) -> Any:
    """Counts per case class (a rich Table)."""
    from rich.table import Table

    table = Table(title="per case class")
    table.add_column("class", no_wrap=True, min_width=13)
    table.add_column("cases", justify="right", no_wrap=True)
    for heading, _ in CLASS_COLUMNS:
        table.add_column(heading, justify="right", no_wrap=True)
    for kind in CaseClass:
        counts = summary.by_class.get(kind.value, Counter())
        table.add_row(kind.value, str(sum(counts.values())),
                      *(str(sum(counts[c.value] for c in categories))
                        for _, categories in CLASS_COLUMNS))
    return table


def _save(folder: Path, summary: BatchSummary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for report in summary.failures + summary.ambiguous:
        name = f"case-{report.seed}-{report.index}-{report.kind}-{report.category.value}.yaml"
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
                        torch=not args.no_torch, cross_sat=not args.no_cross_sat,
                        classes=tuple(args.classes))
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
    command = " ".join(["python -m tools.fuzz", *(argv if argv is not None else sys.argv[1:])])
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
    out.print(class_table(summary))
    for report in summary.ambiguous[:10]:
        out.print(f"float-ambiguous: case {report.index}: {report.details[-1]}", markup=False)
    bad = summary.disagreements + summary.errors
    out.print("counts: " + ", ".join(f"{key}={summary.counts[key]}" for key in ORDER),
              markup=False, soft_wrap=True)
    out.print("classes: " + ", ".join(
        f"{kind}={sum(summary.by_class.get(kind, Counter()).values())}"
        for kind in (k.value for k in CaseClass)), markup=False, soft_wrap=True)
    out.print(f"disagreements: {summary.disagreements}, errors: {summary.errors}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
