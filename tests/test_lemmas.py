"""Structural lemmas: they fire where they are true, stay silent where they would be wrong,
and a planted bug in them is caught by the solvers (--cross-check)."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest

from smtgrad import activations
from smtgrad.engine import LemmaContradicted, SolveOptions, solve
from smtgrad.methods.lemmas import derivative_determined_by_value, structural_proof
from smtgrad.reference.verify import verify
from smtgrad.spec import Conventions, Layer, Verdict, parse_spec


def spec_text(hidden: str, samples: int = 2, zero: str = "W2, b2", nonzero: str = "W1, b1",
              convention: int = 0, extra_layer: str = "", slope: str = "") -> str:
    slope_key = f", slope: {slope}" if slope else ""
    return (
        "name: lemma-case\n"
        "network:\n"
        "  inputs: 1\n"
        "  layers:\n"
        f"    - {{units: 1, activation: {hidden}{slope_key}}}\n"
        f"{extra_layer}"
        "    - {units: 1, activation: linear}\n"
        "loss: mse\n"
        f"samples: {samples}\n"
        f"conventions: {{relu_grad_at_zero: {convention}}}\n"
        f"query:\n  zero: [{zero}]\n  nonzero: [{nonzero}]\n"
    )


def without_lemmas(spec_source: str, **options: object) -> Verdict:
    """The solvers' verdict with the lemmas switched off (sat witnesses re-verified)."""
    spec = parse_spec(spec_source, "<lemma test>")
    settings: dict[str, object] = {"timeout": 60, **options}
    result = solve(spec, SolveOptions(lemmas=False, **settings))  # type: ignore[arg-type]
    if result.verdict is Verdict.SAT:
        assert result.witness is not None and verify(spec, result.witness).accepted
    return result.verdict


@pytest.mark.parametrize(("text", "lemma", "all_samples"), [
    (spec_text("relu", samples=1), "one-sample lemma", False),
    (spec_text("relu", samples=2), "two-sample lemma", False),
    (spec_text("tanh", samples=2), "two-sample lemma", False),
    (spec_text("leaky_relu", samples=2, slope="1/4"), "two-sample lemma", False),
    (spec_text("hardtanh", samples=2), "two-sample lemma", False),
    (spec_text("linear", samples=5), "linear-identity lemma", True),
    (spec_text("relu", samples=4, zero="W2, b2", nonzero="b2"), "contradictory query", True),
])
def test_lemma_fires_and_the_solvers_agree(text: str, lemma: str, all_samples: bool) -> None:
    spec = parse_spec(text, "<lemma test>")
    proof = structural_proof(spec, spec.samples.max)
    assert proof is not None
    assert proof.lemma == lemma and proof.all_samples is all_samples
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.UNSAT and result.method == lemma
    assert result.proved == ("all M" if all_samples else f"M={spec.samples.max}")
    assert result.reason == proof.argument
    if "tanh" not in text:  # smooth abstraction unsats need not come quickly
        assert without_lemmas(text) is Verdict.UNSAT


@pytest.mark.parametrize("text", [
    spec_text("relu", samples=2, convention=1),      # relu(0) = relu(-1), relu'(0) = 1
    spec_text("abs", samples=2),                     # abs(1) = abs(-1), derivatives +-1
    spec_text("hardtanh", samples=2, convention=1),  # hardtanh(1) = hardtanh(2)
])
def test_lemma_is_silent_where_it_would_be_wrong(text: str) -> None:
    """Each of these is sat: a lemma that fired here would be a wrong verdict."""
    spec = parse_spec(text, "<lemma test>")
    assert structural_proof(spec, 2) is None
    assert without_lemmas(text) is Verdict.SAT


def test_partial_zero_queries_do_not_fire() -> None:
    # b2 is not required to vanish: the deltas need not cancel.
    assert structural_proof(parse_spec(spec_text("relu", samples=1, zero="W2"), "t"), 1) is None
    # Only W2 and b2[0]... of a two-output net: b2[1] free.
    two_outputs = spec_text("relu", samples=1).replace(
        "    - {units: 1, activation: linear}\n", "    - {units: 2, activation: linear}\n")
    two_outputs = two_outputs.replace("zero: [W2, b2]", "zero: [W2, 'b2[0]']")
    assert structural_proof(parse_spec(two_outputs, "t"), 1) is None
    # Three samples: neither the one- nor the two-sample lemma applies.
    assert structural_proof(parse_spec(spec_text("relu", samples=3), "t"), 3) is None


def test_planted_lemma_bug_is_caught_by_the_cross_check(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """A lemma that wrongly trusts abs (not injective) claims unsat; the solvers object."""
    monkeypatch.setattr("smtgrad.methods.lemmas.derivative_determined_by_value",
                        lambda layer, conventions: True)
    spec = parse_spec(spec_text("abs", samples=2), "<planted>")
    assert structural_proof(spec, 2) is not None  # the bug is live
    with pytest.raises(LemmaContradicted):
        solve(spec, SolveOptions(timeout=60, cross_check=True))


def test_cross_check_confirms_a_true_lemma() -> None:
    spec = parse_spec(spec_text("relu", samples=2), "<lemma test>")
    result = solve(spec, SolveOptions(timeout=60, cross_check=True))
    assert result.verdict is Verdict.UNSAT and result.method == "two-sample lemma"
    assert "confirmed" in result.reason


def test_derivative_determined_by_value_table() -> None:
    zero, one = Conventions(relu_grad_at_zero=0), Conventions(relu_grad_at_zero=1)
    cases = {
        (activations.LINEAR, Fraction(1, 100)): (True, True),
        (activations.RELU, Fraction(1, 100)): (True, False),
        (activations.LEAKY_RELU, Fraction(1, 100)): (True, True),
        (activations.LEAKY_RELU, Fraction(0)): (True, False),
        (activations.LEAKY_RELU, Fraction(-1)): (False, False),
        (activations.ABS, Fraction(1, 100)): (False, False),
        (activations.HARDTANH, Fraction(1, 100)): (True, False),
        (activations.SIGMOID, Fraction(1, 100)): (True, True),
        (activations.TANH, Fraction(1, 100)): (True, True),
        (activations.SOFTMAX, Fraction(1, 100)): (False, False),
    }
    for (activation, slope), expected in cases.items():
        layer = Layer(units=2, activation=activation, slope=slope)
        got = (derivative_determined_by_value(layer, zero),
               derivative_determined_by_value(layer, one))
        assert got == expected, activation


PIECEWISE = ["linear", "relu", "leaky_relu", "abs", "hardtanh"]


def _random_case(rng: random.Random) -> str:
    depth = rng.choice([2, 3])
    widths = [rng.choice([1, 2]) for _ in range(depth - 1)] + [rng.choice([1, 2])]
    layers = "".join(
        f"    - {{units: {width}, activation: "
        f"{rng.choice(PIECEWISE) if index < depth - 1 else 'linear'}}}\n"
        for index, width in enumerate(widths))
    blocks = [f"{kind}{index}" for index in range(1, depth + 1) for kind in "Wb"]
    zero = rng.sample(blocks, rng.randint(1, len(blocks) - 1))
    if rng.random() < 0.7:  # make the lemmas' premises likely
        zero = sorted(set(zero) | {f"b{depth}", f"W{depth}"})
    rest = [block for block in blocks if block not in zero] or blocks[:1]
    nonzero = rng.sample(rest, rng.randint(1, min(2, len(rest))))
    return (
        "name: random-lemma-case\n"
        "network:\n  inputs: 1\n  layers:\n" + layers +
        "loss: mse\n"
        f"samples: {rng.choice([1, 2, 2, 3])}\n"
        f"conventions: {{relu_grad_at_zero: {rng.choice([0, 1])}}}\n"
        f"query:\n  zero: [{', '.join(zero)}]\n  nonzero: [{', '.join(nonzero)}]\n"
    )


def test_lemmas_never_contradict_the_complete_solver() -> None:
    """Differential: on random piecewise-linear specs, a lemma's unsat is never sat for z3."""
    rng = random.Random(20261126)
    fired = 0
    for case in itertools.islice(iter(lambda: _random_case(rng), None), 60):
        spec = parse_spec(case, "<random>")
        proof = structural_proof(spec, spec.samples.max)
        if proof is None:
            continue
        fired += 1
        assert without_lemmas(case, timeout=10) is not Verdict.SAT, (proof, case)
    assert fired >= 15  # the generator exercises the lemmas, not just their silence
