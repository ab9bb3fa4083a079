"""The exact verifier can fail: mutation tests and every kind of requirement.

Every single number of a witness is changed (by +1/7, and negated where
nonzero) and the verifier must reject the result, unless the change provably
keeps every requirement, which is then decided by the independent reference
computation of tests/conftest.py and asserted to be accepted instead (with
the mathematical reason spelled out for the hand witness).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import HAND_WITNESS_JSON, network_yaml

from smtgrad.reference.network import Parameters
from smtgrad.reference.verify import verify
from smtgrad.reference.witness import Witness, witness_from_json, witness_to_json
from smtgrad.spec import load_spec, parse_spec

F = Fraction
SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture
def seed_spec(seed_spec_text: str) -> Callable[..., Any]:
    """Parse the seed spec text (conftest) with ``samples`` changed and ``extra`` appended."""

    def parse(extra: str = "", samples: int = 3) -> Any:
        text = seed_spec_text.replace("samples: 3", f"samples: {samples}") + extra
        return parse_spec(text, "seed.yaml")

    return parse


def make_witness(w1: Any, b1: Any, w2: Any, b2: Any, xs: list[Any], ys: list[Any]) -> Witness:
    """A 1-1-1 witness from scalars."""
    return Witness(
        parameters=Parameters(weights=((( F(w1),),), ((F(w2),),)), biases=((F(b1),), (F(b2),))),
        inputs=tuple((F(x),) for x in xs),
        targets=tuple((F(y),) for y in ys),
    )


HAND = make_witness(1, -1, 1, -1, [0, 2, 3], [-2, 2, 0])


# ----------------------------------------------------------------------------------------
# The seed witness, exactly.


def test_hand_witness_gradients_are_exact() -> None:
    spec = load_spec(SPECS / "relu_mse.yaml")
    result = verify(spec, HAND)
    assert result.accepted, result.failures
    assert result.failures == ()
    evaluation = result.evaluation
    assert evaluation is not None
    assert evaluation.gradients["W1"] == ((F(-2, 3),),)
    assert evaluation.gradients["b1"] == (F(-2, 3),)
    assert evaluation.gradients["W2"] == ((F(0),),)
    assert evaluation.gradients["b2"] == (F(0),)
    assert evaluation.loss == F(2)
    assert all(type(v) is Fraction for v in (evaluation.loss, evaluation.gradients["b1"][0]))
    assert evaluation.residuals == ((F(1),), (F(-2),), (F(1),))
    assert evaluation.predictions == ((F(-1),), (F(0),), (F(1),))
    assert evaluation.kinks == ()


def test_hand_witness_json_round_trip() -> None:
    spec = load_spec(SPECS / "relu_mse.yaml")
    data = witness_to_json(HAND, spec.network)
    assert data == HAND_WITNESS_JSON
    assert witness_from_json(data, spec.network, spec.targets) == HAND
    flat = {**data, "X": [0, 2, 3], "Y": ["-2", 2, 0.0]}
    assert witness_from_json(flat, spec.network, spec.targets) == HAND
    assert witness_from_json({"witness": data}, spec.network, spec.targets) == HAND


# ----------------------------------------------------------------------------------------
# Mutations of the hand witness, case by case.

# (block, index) of every number of the hand witness.
HAND_NUMBERS = [("W1", (0, 0)), ("b1", (0,)), ("W2", (0, 0)), ("b2", (0,)),
                ("X", (0, 0)), ("X", (1, 0)), ("X", (2, 0)),
                ("Y", (0, 0)), ("Y", (1, 0)), ("Y", (2, 0))]

# Mutations that provably keep every requirement of specs/relu_mse.yaml:
#
# * X[0] + 1/7: sample 0 has u = W1*x - 1 = -6/7 < 0, still on the flat piece of relu,
#   so a = 0, yhat = -1 and r = 1 are unchanged; relu'(u) = 0 makes x_0's weight in
#   dL/dW1 zero. Every gradient is unchanged (W2, b2 still 0; W1, b1 still -2/3).
#
# The other single changes all move the residual sum: sum(r) = 0 is dL/db2 = 0 up to
# the factor 2/3, and each of them shifts one r_m (b2, Y, W2, X[1], X[2]) or the
# active set (W1, b1) so that sum(r) != 0 (worked out in the test below).
STILL_VALID = {("X", (0, 0), "plus")}


def mutate(witness: Witness, block: str, index: tuple[int, ...], how: str) -> Witness:
    """One number changed: + 1/7 ("plus") or negated ("negate")."""
    def change(value: Any) -> Any:
        return value + F(1, 7) if how == "plus" else -value

    return _replace_value(witness, block, index, change)


def value_at(witness: Witness, block: str, index: tuple[int, ...]) -> Fraction:
    array: Any = witness.block(block)
    for position in index:
        array = array[position]
    return array


def hand_mutations() -> list[Any]:
    cases = []
    for block, index in HAND_NUMBERS:
        for how in ("plus", "negate"):
            if how == "negate" and value_at(HAND, block, index) == 0:
                continue  # -0 == 0: not a change (X[0] = 0 and Y[2] = 0)
            cases.append(pytest.param(block, index, how, id=f"{block}{list(index)}-{how}"))
    return cases


@pytest.mark.parametrize(("block", "index", "how"), hand_mutations())
def test_hand_witness_mutation(block: str, index: tuple[int, ...], how: str) -> None:
    spec = load_spec(SPECS / "relu_mse.yaml")
    mutated = mutate(HAND, block, index, how)
    assert mutated != HAND
    result = verify(spec, mutated)
    if (block, index, how) in STILL_VALID:
        assert result.accepted, result.failures
        assert result.evaluation is not None
        assert result.evaluation.gradients["W1"] == ((F(-2, 3),),)
        return
    assert not result.accepted
    # Every such change breaks dL/db2 = 0 (the residuals no longer sum to zero).
    assert any("dL/db2[0]" in failure for failure in result.failures), result.failures


def test_hand_mutation_case_count() -> None:
    # 10 numbers, +1/7 each, negation for the 8 nonzero ones.
    assert len(hand_mutations()) == 18


# ----------------------------------------------------------------------------------------
# Mutations of solver-found witnesses. These witnesses change with the engine, so the
# "provably still valid" cases cannot be listed by hand as for the seed: each change is
# decided by the suite's own exact computation (conftest.Reference, Fractions), and the
# verifier must agree with it on every single change. A change that survives is then
# proved valid by that exact re-computation, not skipped. Changes that no witness can
# survive (see _must_reject) must always be rejected.

SOLVED = [
    ("relu_mse.yaml", {"backend": "z3"}),
    ("relu_mse.yaml", {"backend": "z3", "fast_path": False}),
    ("deep_leaky.yaml", {"backend": "z3"}),
    ("kink_convention.yaml", {"backend": "z3", "fast_path": False}),
    ("two_hidden_units.yaml", {"backend": "z3"}),
    ("published_claim.yaml", {"backend": "cvc5"}),
]


def _independent_holds(spec: Any, witness: Witness, ref: Any) -> bool:
    """Every requirement of the spec, decided by the test suite's own exact arithmetic."""
    reference = ref.make("fractions")
    weights = [[list(row) for row in w] for w in witness.parameters.weights]
    biases = [list(b) for b in witness.parameters.biases]
    inputs = [list(x) for x in witness.inputs]
    targets = [list(y) for y in witness.targets]
    evaluation = reference.evaluate(spec, weights, biases, inputs, targets)
    if ref.query_failures(spec, evaluation.gradients, lambda v: v == 0):
        return False
    for name in spec.fixed:
        for index in _indices(witness.block(name)):
            wanted = spec.fixed_value(name, index)
            if wanted is not None and value_at(witness, name, index) != wanted:
                return False
    if spec.generic:
        if evaluation.kinks or len(set(witness.inputs)) != len(witness.inputs):
            return False
        if any(v == 0 for w in witness.parameters.weights for row in w for v in row):
            return False
    for assumption in spec.assume:
        # The golden specs only assume things about the loss.
        assert assumption.text in ("loss > 0", "loss == 2"), assumption.text
        if assumption.text == "loss > 0" and not evaluation.loss > 0:
            return False
        if assumption.text == "loss == 2" and evaluation.loss != 2:
            return False
    return True


def _indices(array: Any) -> list[tuple[int, ...]]:
    if isinstance(array, tuple):
        return [(k, *rest) for k, item in enumerate(array) for rest in _indices(item)]
    return [()]


def _numbers(spec: Any, witness: Witness) -> list[tuple[str, tuple[int, ...]]]:
    names = [*spec.network.parameter_shapes(), "X", "Y"]
    return [(name, index) for name in names for index in _indices(witness.block(name))]


@pytest.mark.parametrize(("name", "options"), SOLVED,
                         ids=[f"{n[:-5]}-{'-'.join(map(str, o.values()))}" for n, o in SOLVED])
def test_solver_witness_mutations(name: str, options: dict[str, Any], solved: Any,
                                  ref: Any) -> None:
    spec = load_spec(SPECS / name)
    result = solved(SPECS / name, **options)
    assert result.witness is not None, result.reason
    witness = result.witness
    assert verify(spec, witness).accepted
    assert _independent_holds(spec, witness, ref)
    numbers = _numbers(spec, witness)
    assert len(numbers) >= 8
    rejected = kept = 0
    for block, index in numbers:
        original = value_at(witness, block, index)
        for how in ("plus", "negate"):
            if how == "negate" and original == 0:
                continue
            mutated = mutate(witness, block, index, how)
            decision = verify(spec, mutated)
            holds = _independent_holds(spec, mutated, ref)
            assert decision.accepted == holds, (block, index, how, decision.failures)
            assert decision.accepted == (not decision.failures)
            if holds:
                kept += 1
            else:
                rejected += 1
            if _must_reject(spec, block, index):
                assert not decision.accepted, (block, index, how)
    assert rejected >= 1
    assert rejected + kept == sum(2 if value_at(witness, b, i) != 0 else 1 for b, i in numbers)


def _must_reject(spec: Any, block: str, index: tuple[int, ...]) -> bool:
    """Changes that no witness survives, whatever its values.

    * a fixed entry: the fixed-value check;
    * with a linear output, MSE and the whole last bias in the zero query: dL/db_L is
      c * sum_m r_m, and changing one target Y[m,k] (or b_L[k]) by d moves it by c*d
      (or c*M*d), never zero.
    """
    if spec.fixed_value(block, index) is not None:
        return True
    depth = spec.network.depth
    last = f"b{depth}"
    linear = spec.network.layers[-1].activation.name == "linear"
    whole = any(t.block == last and t.index is None for t in spec.query.zero)
    if linear and whole and spec.loss.kind.value == "mse":
        return block in ("Y", last)
    return False


def _smooth_result(name: str, solved: Any) -> Any:
    path = SPECS / name
    if not path.exists():
        pytest.skip(f"{name} is not in specs/")
    result = solved(path, backend="z3", fast_path=True)
    if result.witness is None:
        pytest.fail(f"{name}: no witness ({result.verdict.value}: {result.reason})")
    return load_spec(path), result


def test_log_lattice_witness_mutations(solved: Any) -> None:
    """tanh on the log lattice: exact values like 3*log(2); every change is caught."""
    spec, result = _smooth_result("tanh_mse.yaml", solved)
    witness = result.witness
    assert verify(spec, witness).accepted
    logs = 0
    for block, index in _numbers(spec, witness):
        original = value_at(witness, block, index)
        logs += type(original) is not Fraction
        for how in ("plus", "negate") if original != 0 else ("plus",):
            changed = verify(spec, mutate(witness, block, index, how))
            # A hidden weight or bias moved by 1/7 leaves the log lattice (tanh of it is
            # irrational: no exact acceptance); anything else breaks the query.
            assert not changed.accepted, (block, index, how, changed.failures)
    assert logs >= 1  # the witness really is a log-lattice one


def test_enclosure_witness_mutations(solved: Any) -> None:
    """A Krawczyk box is accepted; a shifted box, or its bare midpoint, is not."""
    from smtgrad.reference.intervals import Enclosure

    spec, result = _smooth_result("sigmoid_bce_hard.yaml", solved)
    witness = result.witness
    if result.certificate != "enclosure":
        pytest.skip("the engine found an exact witness for sigmoid_bce_hard this time")
    assert verify(spec, witness).accepted
    boxes = [(block, index) for block, index in _numbers(spec, witness)
             if isinstance(value_at(witness, block, index), Enclosure)]
    assert boxes

    def replace(block: str, index: tuple[int, ...], value: Any) -> Witness:
        return _replace_value(witness, block, index, lambda _: value)

    for block, index in boxes:
        box = value_at(witness, block, index)
        shifted = Enclosure(box.lo + F(1, 7), box.hi + F(1, 7))
        assert not verify(spec, replace(block, index, shifted)).accepted, (block, index)
    # The bare midpoint of a box is not an exact witness (sigmoid of it is irrational).
    block, index = boxes[0]
    box = value_at(witness, block, index)
    assert not verify(spec, replace(block, index, (box.lo + box.hi) / 2)).accepted
    # A hard label flipped: the requirements fail (or cannot be certified).
    flipped = _replace_value(witness, "Y", (0, 0), lambda old: 1 - old)
    assert not verify(spec, flipped).accepted


def _replace_value(witness: Witness, block: str, index: tuple[int, ...], change: Any
                   ) -> Witness:
    def rebuild(array: Any, position: tuple[int, ...]) -> Any:
        if not position:
            return change(array)
        return tuple(rebuild(item, position[1:]) if k == position[0] else item
                     for k, item in enumerate(array))

    if block == "X":
        return dataclasses.replace(witness, inputs=rebuild(witness.inputs, index))
    if block == "Y":
        return dataclasses.replace(witness, targets=rebuild(witness.targets, index))
    layer = int(block[1:]) - 1
    params = witness.parameters
    if block[0] == "W":
        weights = tuple(rebuild(w, index) if k == layer else w
                        for k, w in enumerate(params.weights))
        return dataclasses.replace(witness, parameters=Parameters(weights, params.biases))
    biases = tuple(rebuild(b, index) if k == layer else b for k, b in enumerate(params.biases))
    return dataclasses.replace(witness, parameters=Parameters(params.weights, biases))


# ----------------------------------------------------------------------------------------
# Each kind of requirement on its own.


def test_sample_count_is_checked(seed_spec: Callable[..., Any]) -> None:
    spec = seed_spec(samples=4)
    result = verify(spec, HAND)
    assert not result.accepted
    assert any("3 samples" in failure for failure in result.failures), result.failures


@pytest.mark.parametrize("reshape", ["extra weight column", "missing weight row"])
def test_misshapen_witness_is_rejected(reshape: str) -> None:
    """A witness built through the API with a block of the wrong shape is rejected, not
    evaluated on a truncated block (the exact pass compares lengths, it does not zip
    silently)."""
    spec = load_spec(SPECS / "relu_mse.yaml")
    weights = HAND.parameters.weights
    if reshape == "extra weight column":
        bad = ((weights[0][0] + (F(5),),), weights[1])
    else:
        bad = ((), weights[1])
    witness = dataclasses.replace(
        HAND, parameters=dataclasses.replace(HAND.parameters, weights=bad))
    result = verify(spec, witness)
    assert not result.accepted
    assert any("cannot evaluate" in failure for failure in result.failures), result.failures


def test_unit_interval_targets(seed_spec: Callable[..., Any]) -> None:
    spec = seed_spec("targets: unit_interval\n")
    result = verify(spec, HAND)
    assert not result.accepted
    # The query holds; only the targets are wrong: -2 and 2 are outside [0, 1].
    assert len(result.failures) == 2, result.failures
    assert all("outside [0, 1]" in failure for failure in result.failures)
    # Scaled residuals t*(1, -2, 1) with t = 1/10, W2 = 1/10, b2 = 1/2 give Y in [0, 1].
    good = make_witness(1, -1, F(1, 10), F(1, 2), [0, 2, 3], [F(2, 5), F(4, 5), F(3, 5)])
    assert verify(spec, good).accepted
    assert verify(spec, mutate(good, "Y", (1, 0), "plus")).failures  # 4/5 + 1/7 breaks the query
    edge = verify(spec, make_witness(1, -1, F(1, 10), F(1, 2), [0, 2, 3], [F(2, 5), 1, 0]))
    assert all("outside" not in failure for failure in edge.failures)  # 0 and 1 are allowed


def test_binary_targets(seed_spec: Callable[..., Any]) -> None:
    spec = seed_spec("targets: binary\n")
    bad = verify(spec, HAND)
    assert not bad.accepted
    assert sum("not a binary label" in failure for failure in bad.failures) == 2  # -2 and 2
    # W2 = 1/2, b2 = -1/6: yhat = (-1/6, 1/3, 5/6), r = (-1/6, 1/3, -1/6), Y = (0, 0, 1).
    good = make_witness(1, -1, F(1, 2), F(-1, 6), [0, 2, 3], [0, 0, 1])
    result = verify(spec, good)
    assert result.accepted, result.failures
    assert result.evaluation is not None
    assert result.evaluation.gradients["b1"] == (F(1, 18),)  # (2/3) * (1/2) * (1/3 - 1/6)


def test_fixed_values(seed_spec_text: str) -> None:
    spec = load_spec(SPECS / "published_claim.yaml")
    assert verify(spec, HAND).accepted
    # The b2 = 0 of the false claim: a fixed-value failure (and the query fails too).
    moved = mutate(HAND, "b2", (0,), "negate")
    failures = verify(spec, moved).failures
    assert "fixed b2[0] = -1, witness has 1" in failures
    # A fixed value that is wrong while the query and the loss still hold.
    text = seed_spec_text + "fixed:\n  X: [1/2, 2, 3]\n"
    fixed_spec = parse_spec(text.replace("samples: 3\n", ""), "fixed.yaml")
    failures = verify(fixed_spec, HAND).failures
    assert failures == ("fixed X[0,0] = 1/2, witness has 0",)
    moved_input = mutate(HAND, "X", (0, 0), "plus")  # x0 = 1/7: still dead
    assert verify(fixed_spec, moved_input).failures == ("fixed X[0,0] = 1/2, witness has 1/7",)


GENERIC_TWO_UNITS = """
""" + network_yaml("2 relu", "1 linear") + """loss: mse
samples: 3
generic: GENERIC
query:
  zero: [W2, b2]
  nonzero: [W1, b1]
"""


def test_generic_zero_weight() -> None:
    # Unit 0 is the seed; unit 1 has weight 0 and bias 5: a constant 5 that is absorbed
    # into the targets. The query holds, so only genericity rejects it.
    witness = Witness(
        parameters=Parameters(weights=(((F(1),), (F(0),)), ((F(1), F(1)),)),
                              biases=((F(-1), F(5)), (F(-1),))),
        inputs=((F(0),), (F(2),), (F(3),)),
        targets=((F(3),), (F(7),), (F(5),)),
    )
    plain = parse_spec(GENERIC_TWO_UNITS.replace("GENERIC", "false"), "plain.yaml")
    generic = parse_spec(GENERIC_TWO_UNITS.replace("GENERIC", "true"), "generic.yaml")
    assert verify(plain, witness).accepted
    assert verify(generic, witness).failures == ("generic: W1[1,0] is zero",)


def test_generic_kink(seed_spec: Callable[..., Any]) -> None:
    # x0 = 1 puts sample 0 exactly on the relu kink (u = 0); relu'(0) = 0 keeps the query.
    witness = make_witness(1, -1, 1, -1, [1, 2, 3], [-2, 2, 0])
    assert verify(seed_spec(), witness).accepted
    evaluation = verify(seed_spec(), witness).evaluation
    assert evaluation is not None and len(evaluation.kinks) == 1
    failures = verify(seed_spec("generic: true\n"), witness).failures
    assert len(failures) == 1 and "kink" in failures[0] and "sample 0" in failures[0]
    assert verify(seed_spec("generic: true\n"), HAND).accepted


def test_generic_duplicate_inputs(seed_spec: Callable[..., Any]) -> None:
    # Sample 0 split in two equal halves: X = (0, 0, 2, 3), r = (1/2, 1/2, -2, 1).
    witness = make_witness(1, -1, 1, -1, [0, 0, 2, 3], [F(-3, 2), F(-3, 2), 2, 0])
    assert verify(seed_spec(samples=4), witness).accepted
    failures = verify(seed_spec("generic: true\n", samples=4), witness).failures
    assert failures == ("generic: inputs of samples 0 and 1 are equal",)


@pytest.mark.parametrize(("condition", "holds"), [
    ("loss == 2", True),
    ("loss > 2", False),
    ("loss >= 2 and loss <= 2", True),
    ("W1[0,0] != 0", True),
    ("b2[0] == -1", True),
    ("yhat[0] == -1", True),
    ("yhat[2] > 1", False),
    ("X[1] < X[0]", False),
    ("0 <= X[0] < X[1] < X[2]", True),
    ("Y[0] * Y[1] == -4", True),
    ("not (W2[0,0] == 1)", False),
    ("W2[0,0] == 2 or b1[0] < 0", True),
])
def test_assumptions(condition: str, holds: bool, seed_spec: Callable[..., Any]) -> None:
    spec = seed_spec(f"assume: [{condition!r}]\n")
    result = verify(spec, HAND)
    assert result.accepted is holds
    if not holds:
        assert result.failures == (f"assume {condition!r} does not hold",)


def test_every_failure_is_reported(seed_spec: Callable[..., Any]) -> None:
    # A witness that breaks everything at once: all failures are listed, not just the first.
    spec = seed_spec("targets: binary\nassume: ['loss == 0']\n")
    broken = make_witness(0, 0, 0, 0, [1, 1, 1], [2, 2, 2])
    failures = verify(spec, broken).failures
    assert any("dL/db2[0]" in failure for failure in failures)
    assert any("dL/dW1 is zero" in failure for failure in failures)
    assert any("dL/db1 is zero" in failure for failure in failures)
    assert sum("binary" in failure for failure in failures) == 3
    assert any("loss == 0" in failure for failure in failures)
