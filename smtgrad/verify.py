"""The exact, independent verifier, with three outcomes: holds, does not hold, cannot decide.

Given a spec and a witness, recompute predictions, loss and every gradient
with :mod:`smtgrad.network` and check every requirement of the spec: the
query, fixed values, target kinds, assumptions and genericity. It never
imports the encoder or a solver: a bug in the encoding surfaces here as a
rejected witness.

How each requirement is decided (nothing is ever decided by a float tolerance):

* **exactly**, when the witness evaluates in exact arithmetic: rationals, or
  closed forms in logarithms of primes where sigmoid, tanh and softmax take
  rational values (:mod:`smtgrad.lognum`);
* otherwise by **rigorous ball arithmetic** (python-flint's arb, through
  :func:`smtgrad.enclosure.interval_evaluation`): a ball that excludes 0 proves
  a gradient nonzero (so a nonzero requirement holds, and a zero requirement is
  refuted); a ball that contains 0 proves nothing;
* a **zero** requirement at a transcendental point holds only by a certificate:
  the Krawczyk test proves that the zero-gradient equations have exactly one
  solution inside the witness's enclosure box, and the other requirements are
  then checked over the whole box.

A requirement refuted anywhere makes the witness fail (:attr:`Status.FAILS`);
otherwise one that cannot be decided makes the answer :attr:`Status.UNDECIDED`,
naming the requirement and why.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from itertools import chain
from typing import Any

from smtgrad.enclosure import (
    Enclosure,
    Point,
    interval_evaluation,
    interval_sign,
    krawczyk,
    zero_coordinates,
)
from smtgrad.expr import FractionAlgebra, Ref, evaluate_condition
from smtgrad.lognum import LatticeFunctions
from smtgrad.network import Evaluation, InexactValue, SmoothFunctions, entry_at, evaluate
from smtgrad.numbers import NumberError
from smtgrad.spec import Spec, TargetKind, entries, normalize_ref
from smtgrad.witness import Witness


class Status(Enum):
    """The verifier's three answers (``smtgrad check`` exits 0, 1 and 3 on them)."""

    HOLDS = "holds"
    FAILS = "does not hold"
    UNDECIDED = "cannot decide"


@dataclass(frozen=True)
class Verification:
    """The verifier's decision: refuted requirements, undecided ones, and the evaluation.

    ``accepted`` is True only when every requirement was proved to hold.
    """

    accepted: bool
    failures: tuple[str, ...]
    evaluation: Evaluation | None
    undecided: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        if self.failures:
            return Status.FAILS
        if self.undecided or not self.accepted:
            return Status.UNDECIDED
        return Status.HOLDS


def _label(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{','.join(map(str, index))}]"


_RATIONAL_TYPES = {Fraction, int}


def _all_values(witness: Witness) -> list[Any]:
    """Every number of the witness (parameters, inputs, targets), flattened."""
    parameters = witness.parameters
    values = [*chain.from_iterable(chain.from_iterable(parameters.weights)),
              *chain.from_iterable(parameters.biases), *chain.from_iterable(witness.inputs)]
    for target in witness.targets:  # a row of outputs, or a class index
        if isinstance(target, tuple):
            values.extend(target)
        else:
            values.append(target)
    return values


def enclosed_coordinates(witness: Witness) -> list[tuple[str, tuple[int, ...]]]:
    """Entries of the witness given as enclosures "[lo, hi]" rather than exact values."""
    found = []
    blocks = [(f"W{i + 1}", w) for i, w in enumerate(witness.parameters.weights)]
    blocks += [(f"b{i + 1}", b) for i, b in enumerate(witness.parameters.biases)]
    blocks += [("X", witness.inputs), ("Y", witness.targets)]
    for name, array in blocks:
        stack: list[tuple[tuple[int, ...], Any]] = [((), array)]
        while stack:
            index, item = stack.pop()
            if isinstance(item, tuple):
                stack.extend(((*index, k), sub) for k, sub in enumerate(item))
            elif isinstance(item, Enclosure):
                found.append((name, index))
    return sorted(found)


def _is_binary(y: Any) -> bool:
    return bool(y == 0 or y == 1)


def _in_unit_interval(y: Any) -> bool:
    return bool(0 <= y <= 1)


def _exact_sign(value: Any) -> int | None:
    """-1, 0 or 1 for an exact value; None when it cannot be decided exactly."""
    try:
        if value == 0:
            return 0
        return 1 if value > 0 else -1
    except (InexactValue, TypeError):
        return None


def _sign(value: Any) -> int | None:
    """The sign of an exact value or of an arb-valued entry (None: undecided)."""
    if isinstance(value, Fraction | int):
        return (value > 0) - (value < 0)
    try:
        sign = interval_sign(value)
    except (InexactValue, TypeError):
        sign = None
    return sign if sign is not None else _exact_sign(value)


class _Checker:
    """Collects refuted and undecided requirements for one (spec, witness)."""

    def __init__(self, spec: Spec, witness: Witness) -> None:
        self.spec = spec
        self.witness = witness
        self.failures: list[str] = []
        self.undecided: list[str] = []

    def decide(self, holds: Callable[..., object], args: tuple[Any, ...], what: str,
               failure: str) -> None:
        """Record ``failure`` when ``holds(*args)`` is false, ``what`` when it cannot tell."""
        try:
            if not holds(*args):
                self.failures.append(failure)
        except InexactValue as error:
            self.undecided.append(f"{what}: {error}")


def verify(spec: Spec, witness: Witness, smooth: SmoothFunctions | None = None
           ) -> Verification:
    """Check a witness against every requirement of ``spec`` (see the module docstring)."""
    checker = _Checker(spec, witness)
    network = spec.network
    samples = witness.samples
    if not spec.samples.min <= samples <= spec.samples.max:
        checker.failures.append(f"the witness has {samples} samples; the spec asks for "
                                f"{spec.samples.min}..{spec.samples.max}")
    all_values = _all_values(witness)
    rational = set(map(type, all_values)) <= _RATIONAL_TYPES
    enclosed = [] if rational else enclosed_coordinates(witness)
    evaluation: Evaluation | None = None
    certified = False
    try:
        if not enclosed:
            # Not a closed form (InexactValue): ball arithmetic decides what it can.
            with contextlib.suppress(InexactValue):
                evaluation = evaluate(network, spec.loss, spec.conventions, witness.parameters,
                                      witness.inputs, witness.targets,
                                      smooth or LatticeFunctions(None))
        else:
            centre = {c: (entry_at(witness.block(c[0]), c[1]).lo
                          + entry_at(witness.block(c[0]), c[1]).hi) / 2 for c in enclosed}
            point = Point(witness.parameters, witness.inputs, witness.targets).with_values(
                centre)
            box = [entry_at(witness.block(c[0]), c[1]) for c in enclosed]
            certified, why = krawczyk(spec, point, enclosed, box)
            if not certified:
                checker.undecided.append(f"the zero-gradient equations: enclosure not "
                                         f"certified ({why})")
        if evaluation is None:
            try:
                evaluation = interval_evaluation(spec, witness)
            except InexactValue as error:
                checker.undecided.append(f"the network cannot be evaluated over balls: {error}")
    except NumberError as error:
        return Verification(False, (str(error),), None)
    except (ValueError, ZeroDivisionError) as error:
        return Verification(False, (f"cannot evaluate: {error}",), None)
    _requirements(checker, evaluation, certified)
    failures, undecided = tuple(checker.failures), tuple(checker.undecided)
    accepted = not failures and not undecided and evaluation is not None
    return Verification(accepted, failures, evaluation, undecided)


def _requirements(checker: _Checker, evaluation: Evaluation | None,
                  zero_certified: bool) -> None:
    """Every requirement of the spec, exactly where possible, else over balls."""
    spec, witness = checker.spec, checker.witness
    network = spec.network
    samples = len(witness.inputs)
    shapes = network.parameter_shapes()
    # Fixed values (exact values of the witness itself).
    for name in spec.fixed:
        shape = shapes.get(name) or ((samples,) if name == "Y" and spec.targets is
                                     TargetKind.CLASS else (samples, network.inputs if name ==
                                                            "X" else network.outputs))
        for index in entries(shape):
            wanted = spec.fixed_value(name, index)
            if wanted is None:
                continue
            try:
                actual = entry_at(witness.block(name), index)
            except IndexError:
                checker.failures.append(f"fixed {_label(name, index)} = {wanted}, but the "
                                        "witness has no such entry")
                continue
            checker.decide(operator.eq, (actual, wanted),
                           f"fixed {_label(name, index)}",
                           f"fixed {_label(name, index)} = {wanted}, witness has {actual}")

    # Target kinds (real and class targets need no check here).
    label_kinds = (TargetKind.BINARY, TargetKind.UNIT_INTERVAL)
    for m, row in enumerate(witness.targets if spec.targets in label_kinds else ()):
        values = row if isinstance(row, tuple) else (row,)
        for k, y in enumerate(values):
            if spec.targets is TargetKind.BINARY:
                checker.decide(_is_binary, (y,), f"Y[{m},{k}]",
                               f"Y[{m},{k}] = {y} is not a binary label")
            else:
                checker.decide(_in_unit_interval, (y,), f"Y[{m},{k}]",
                               f"Y[{m},{k}] = {y} is outside [0, 1]")

    # Genericity of the witness's own values.
    if spec.generic:
        for layer_index in range(network.depth):
            name = f"W{layer_index + 1}"
            for index in entries(shapes[name]):
                value = entry_at(witness.parameters.block(name), index)
                checker.decide(operator.ne, (value, 0), f"generic: {_label(name, index)}",
                               f"generic: {_label(name, index)} is zero")
        for m in range(samples):
            for n in range(m):
                checker.decide(operator.ne, (tuple(witness.inputs[m]), tuple(witness.inputs[n])),
                               f"generic: inputs of samples {n} and {m}",
                    f"generic: inputs of samples {n} and {m} are equal")

    if evaluation is None:
        return

    # The query.
    gradients = evaluation.gradients
    certified = set(zero_coordinates(spec)) if zero_certified else set()
    for target in spec.query.zero:
        for index in target.indices(shapes):
            if (target.block, index) in certified:
                continue
            value = entry_at(gradients[target.block], index)
            sign = _sign(value)
            if sign is None:
                checker.undecided.append(f"dL/d{_label(target.block, index)} = 0: the value "
                                         f"{value} is not known exactly")
            elif sign != 0:
                checker.failures.append(f"dL/d{_label(target.block, index)} = {value}, "
                                        "expected 0")
    for target in spec.query.nonzero:
        signs = [_sign(entry_at(gradients[target.block], index))
                 for index in target.indices(shapes)]
        if any(sign not in (0, None) for sign in signs):
            continue
        if all(sign == 0 for sign in signs):
            checker.failures.append(f"dL/d{target} is zero, expected a nonzero entry")
        else:
            checker.undecided.append(f"dL/d{target} != 0: no entry is proved nonzero (the "
                                     "balls contain 0)")

    # Kinks (genericity): the evaluation records samples exactly on a kink.
    if spec.generic:
        for kink in evaluation.kinks:
            checker.failures.append(f"generic: sample {kink.sample} sits on the kink "
                                    f"{kink.point} of layer {kink.layer} unit {kink.unit}")

    # Assumptions.
    def resolve(ref: Ref) -> Any:
        ref = normalize_ref(ref)
        if ref.name == "loss":
            return evaluation.loss
        if ref.name == "yhat":
            return entry_at(evaluation.predictions, ref.indices)
        if ref.name == "Y" and spec.targets is TargetKind.CLASS:
            return witness.targets[ref.indices[0]]
        return entry_at(witness.block(ref.name), ref.indices)

    algebra = FractionAlgebra()
    for assumption in spec.assume:
        try:
            holds = evaluate_condition(assumption.condition, resolve, algebra)
        except InexactValue as error:
            checker.undecided.append(f"assume {assumption.text!r}: {error}")
            continue
        except (IndexError, TypeError, ValueError, ZeroDivisionError) as error:
            checker.failures.append(f"assume {assumption.text!r} cannot be evaluated: {error}")
            continue
        if not holds:
            checker.failures.append(f"assume {assumption.text!r} does not hold")
