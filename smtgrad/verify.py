"""The exact, independent verifier.

Given a spec and a witness, recompute predictions, loss and every gradient
with :mod:`smtgrad.network` (exact numbers) and check every requirement of the
spec: the query, fixed values, target kinds, assumptions and genericity. It
never imports the encoder or a solver: a bug in the encoding surfaces here as
a rejected witness.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from typing import Any

from smtgrad.enclosure import Enclosure, Point, box_evaluation, krawczyk
from smtgrad.expr import FractionAlgebra, Ref, evaluate_condition
from smtgrad.lognum import LatticeFunctions, lattice_base
from smtgrad.network import Evaluation, InexactValue, SmoothFunctions, entry_at, evaluate
from smtgrad.numbers import NumberError
from smtgrad.spec import Spec, TargetKind, entries, normalize_ref
from smtgrad.witness import Witness


@dataclass(frozen=True)
class Verification:
    """The verifier's decision, every failed requirement, and the exact evaluation."""

    accepted: bool
    failures: tuple[str, ...]
    evaluation: Evaluation | None


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


def verify(spec: Spec, witness: Witness, smooth: SmoothFunctions | None = None
           ) -> Verification:
    """Check a witness against every requirement of ``spec``, exactly.

    Smooth activations are evaluated exactly on the log lattice of the witness's
    base (values such as ``3*log(2)/2``). A witness with enclosures ("[lo, hi]"
    values) is accepted only if the Krawczyk test proves a unique exact zero of
    the zero-gradient equations inside the box and every other requirement holds
    over the whole box. Nothing is ever decided by a float tolerance.
    """
    failures: list[str] = []
    network = spec.network
    samples = witness.samples
    if not spec.samples.min <= samples <= spec.samples.max:
        failures.append(f"the witness has {samples} samples; the spec asks for "
                        f"{spec.samples.min}..{spec.samples.max}")
    all_values = _all_values(witness)
    rational = set(map(type, all_values)) <= _RATIONAL_TYPES
    enclosed = [] if rational else enclosed_coordinates(witness)
    certified = False
    values: Any = witness
    try:
        if enclosed:
            centre = {c: (entry_at(witness.block(c[0]), c[1]).lo + entry_at(witness.block(c[0]),
                                                                      c[1]).hi) / 2
                      for c in enclosed}
            point = Point(witness.parameters, witness.inputs, witness.targets).with_values(
                centre)
            box = [entry_at(witness.block(c[0]), c[1]) for c in enclosed]
            certified, why = krawczyk(spec, point, enclosed, box)
            if not certified:
                failures.append(f"enclosure not certified: {why}")
            values, evaluation = box_evaluation(spec, point, enclosed, box)
        else:
            if smooth is None:
                smooth = LatticeFunctions(None if rational else lattice_base(all_values))
            evaluation = evaluate(network, spec.loss, spec.conventions, witness.parameters,
                                  witness.inputs, witness.targets, smooth)
    except NumberError as error:
        return Verification(False, (str(error),), None)
    except InexactValue as error:
        return Verification(False, (f"cannot evaluate exactly: {error}",), None)
    except (ValueError, ZeroDivisionError) as error:
        return Verification(False, (f"cannot evaluate: {error}",), None)
    try:
        failures += _requirements(spec, values, evaluation, certified)
    except InexactValue as error:
        failures.append(f"cannot decide over the enclosure box: {error}")
    return Verification(not failures, tuple(failures), evaluation)


def _requirements(spec: Spec, witness: Any, evaluation: Evaluation,
                  zero_certified: bool) -> list[str]:
    """Every requirement of the spec, on exact values (or dual intervals over a box)."""
    failures: list[str] = []
    network = spec.network
    samples = len(witness.inputs)
    shapes = network.parameter_shapes()
    # Fixed values.
    for name in spec.fixed:
        shape = shapes.get(name) or ((samples,) if name == "Y" and spec.targets is
                                     TargetKind.CLASS else (samples, network.inputs if name ==
                                                            "X" else network.outputs))
        for index in entries(shape):
            wanted = spec.fixed_value(name, index)
            if wanted is None:
                continue
            actual = entry_at(witness.block(name), index)
            if actual != wanted:
                failures.append(f"fixed {_label(name, index)} = {wanted}, witness has {actual}")

    # Target kinds (real and class targets need no check here).
    label_kinds = (TargetKind.BINARY, TargetKind.UNIT_INTERVAL)
    for m, row in enumerate(witness.targets if spec.targets in label_kinds else ()):
        values = row if isinstance(row, tuple) else (row,)
        for k, y in enumerate(values):
            if spec.targets is TargetKind.BINARY and y not in (0, 1):
                failures.append(f"Y[{m},{k}] = {y} is not a binary label")
            if spec.targets is TargetKind.UNIT_INTERVAL and not 0 <= y <= 1:
                failures.append(f"Y[{m},{k}] = {y} is outside [0, 1]")

    # The query.
    gradients = evaluation.gradients
    for target in spec.query.zero if not zero_certified else ():
        indices = target.indices(shapes)
        for index in indices:
            value = entry_at(gradients[target.block], index)
            if value != 0:
                failures.append(f"dL/d{_label(target.block, index)} = {value}, expected 0")
    for target in spec.query.nonzero:
        indices = target.indices(shapes)
        if all(entry_at(gradients[target.block], index) == 0 for index in indices):
            failures.append(f"dL/d{target} is zero, expected a nonzero entry")

    # Genericity.
    if spec.generic:
        for layer_index in range(network.depth):
            name = f"W{layer_index + 1}"
            for index in entries(shapes[name]):
                if entry_at(witness.parameters.block(name), index) == 0:
                    failures.append(f"generic: {_label(name, index)} is zero")
        for kink in evaluation.kinks:
            failures.append(f"generic: sample {kink.sample} sits on the kink {kink.point} of "
                            f"layer {kink.layer} unit {kink.unit}")
        for m in range(samples):
            for n in range(m):
                if tuple(witness.inputs[m]) == tuple(witness.inputs[n]):
                    failures.append(f"generic: inputs of samples {n} and {m} are equal")

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
        except (IndexError, TypeError, ValueError, ZeroDivisionError) as error:
            failures.append(f"assume {assumption.text!r} cannot be evaluated: {error}")
            continue
        if not holds:
            failures.append(f"assume {assumption.text!r} does not hold")
    return failures
