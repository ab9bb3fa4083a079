"""The balance identity below linear layers (issue 17: identities for deeper nets)."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import pytest

from smtgrad.engine import SolveOptions, solve
from smtgrad.methods.identities import balance_proof
from smtgrad.spec import Verdict, parse_spec
from tests.test_scale import free_data_yaml


def _matmul(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def _transpose(a: list[list[Any]]) -> list[list[Any]]:
    return [list(row) for row in zip(*a, strict=True)]


@pytest.mark.parametrize("seed", range(8))
def test_the_identity_holds_exactly_in_the_independent_reference(seed: int, ref: Any) -> None:
    """W_l^T dL/dW_l = dL/dW_(l-1) W_(l-1)^T + dL/db_(l-1) b_(l-1)^T below a linear
    layer, on random rational points, computed by tests/conftest.py's reference."""
    rng = random.Random(seed)
    inputs, hidden = rng.randint(1, 3), [rng.randint(1, 3) for _ in range(2)]
    upper = rng.choice(["relu", "linear", "tanh"])
    text = (f"name: identity\nnetwork:\n  inputs: {inputs}\n  layers:\n"
            f"    - {{units: {hidden[0]}, activation: linear}}\n"
            f"    - {{units: {hidden[1]}, activation: {upper}}}\n"
            "    - {units: 1, activation: linear}\n"
            "loss: mse\nsamples: 4\nquery:\n  zero: [W3]\n  nonzero: [W1]\n")
    spec = parse_spec(text)
    kit = ref.kit("sympy" if upper == "tanh" else "fractions")

    def value() -> Any:
        return kit.const(Fraction(rng.randint(-9, 9), rng.randint(1, 4)))

    shapes = spec.network.parameter_shapes()
    weights = [[[value() for _ in range(shapes[f"W{layer}"][1])]
                for _ in range(shapes[f"W{layer}"][0])] for layer in (1, 2, 3)]
    biases = [[value() for _ in range(shapes[f"b{layer}"][0])] for layer in (1, 2, 3)]
    rows = [[value() for _ in range(inputs)] for _ in range(4)]
    targets = [[value()] for _ in range(4)]
    gradients = ref.make(kit).evaluate(spec, weights, biases, rows, targets).gradients
    left = _matmul(_transpose(weights[1]), gradients["W2"])
    right = _matmul(gradients["W1"], _transpose(weights[0]))
    bias_term = [[gradients["b1"][i] * biases[0][j] for j in range(len(biases[0]))]
                 for i in range(len(gradients["b1"]))]
    for i, row in enumerate(left):
        for j, entry in enumerate(row):
            assert kit.is_zero(entry - right[i][j] - bias_term[i][j])


def _linear(hidden: tuple[int, ...], samples: int, generic: bool = True,
            activation: str = "linear") -> Any:
    return parse_spec(free_data_yaml(hidden, samples, activation, generic))


def test_a_deep_linear_net_cannot_have_only_the_first_layer_gradient() -> None:
    result = solve(_linear((8, 8, 8), 64), SolveOptions(timeout=30))
    assert result.verdict is Verdict.UNSAT and result.proved == "all M"
    assert result.method == "balance identity" and "W1 is a nonzero column" in result.reason


@pytest.mark.parametrize("spec_kwargs", [
    {"hidden": (8, 8), "samples": 16, "generic": False},       # W1 = 0 is allowed: sat
    {"hidden": (8, 8), "samples": 16, "activation": "relu"},  # not linear
])
def test_the_lemma_stays_silent_where_its_premises_fail(spec_kwargs: dict[str, Any]) -> None:
    assert balance_proof(_linear(**spec_kwargs)) is None


def test_two_inputs_are_not_concluded() -> None:
    text = free_data_yaml((3, 3), 8).replace("inputs: 1", "inputs: 2")
    assert balance_proof(parse_spec(text)) is None


def test_the_solvers_confirm_it_on_small_cases() -> None:
    """--cross-check: the complete path agrees at a small M (a witness against the lemma
    would be an internal error)."""
    spec = _linear((2, 2), 2)
    result = solve(spec, SolveOptions(timeout=60, cross_check=True))
    assert result.verdict is Verdict.UNSAT and "confirmed" in result.reason
