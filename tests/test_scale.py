"""Free-data queries at scale (issue 17): structured rank draws, the modular kernel,
the sample limit and its memory guard, the O(M) distinctness check."""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from smtgrad.cli import MAX_SAMPLES as CLI_MAX_SAMPLES
from smtgrad.engine import SolveOptions, solve
from smtgrad.methods import rank
from smtgrad.reference.network import RATIONAL, kink_points
from smtgrad.reference.verify import verify
from smtgrad.spec import MAX_SAMPLES, SpecError, Verdict, parse_spec
from smtgrad.spec.model import MAX_PROBLEM_SIZE, size_refusal
from tests.test_golden import _blocks


def free_data_yaml(hidden: tuple[int, ...], samples: int, activation: str = "relu",
                   generic: bool = True) -> str:
    """The issue's workload: zero gradients above the first layer, nonzero W1 (and b1 with
    one hidden layer)."""
    layers = "".join(f"    - {{units: {k}, activation: {activation}}}\n" for k in hidden)
    depth = len(hidden) + 1
    zero = ", ".join(f"W{layer}, b{layer}" for layer in range(depth, 1, -1))
    nonzero = "W1, b1" if depth == 2 else "W1"
    return (f"name: scale\nnetwork:\n  inputs: 1\n  layers:\n{layers}"
            f"    - {{units: 1, activation: linear}}\nloss: mse\nsamples: {samples}\n"
            f"query:\n  zero: [{zero}]\n  nonzero: [{nonzero}]\n"
            f"generic: {'true' if generic else 'false'}\n")


@pytest.mark.parametrize(("hidden", "samples"), [
    ((64,), 64), ((8, 8), 64), ((8, 8, 8), 64), ((4, 4), 64), ((16,), 64)])
def test_wide_and_deep_free_data_queries_are_sat_and_recheck(
        hidden: tuple[int, ...], samples: int, ref: Any) -> None:
    """Each was unknown at 60 s before the structured draws; the witness is re-checked in
    exact Fractions by the independent reference (tests/conftest.py), not only by
    smtgrad's verifier."""
    spec = parse_spec(free_data_yaml(hidden, samples))
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT, result.reason
    assert result.method.startswith("rank criterion")
    kit = ref.kit("fractions")
    evaluation = ref.make(kit).evaluate(spec, *_blocks(spec, result.to_dict()["witness"], kit,
                                                      ref))
    assert ref.query_failures(spec, evaluation.gradients, kit.is_zero) == []


def test_the_seed_at_ten_thousand_samples() -> None:
    spec = parse_spec(free_data_yaml((1,), 10_000))
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT and result.samples == 10_000
    assert result.witness is not None and verify(spec, result.witness).accepted
    # Witness numbers stay small: most residuals are zero (sparse null vectors).
    largest = max(abs(Fraction(y[0]).numerator) for y in result.witness.targets)
    assert largest < 10**12


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs", "hardtanh"])
@pytest.mark.parametrize("attempt", [0, 2, 4])
def test_structured_draws_are_generic_by_construction(activation: str, attempt: int) -> None:
    """Nonzero weights, distinct inputs, no pre-activation on a kink: for every layer."""
    spec = parse_spec(free_data_yaml((5, 4), 40, activation))
    sampler = rank._Sampler(spec, 40, seed=attempt)
    parameters, inputs = sampler.structured(2 + attempt, attempt)
    assert len(set(inputs)) == len(inputs) == 40
    assert all(w != 0 for block in parameters.weights for row in block for w in row)
    for row in inputs:
        current: tuple[Any, ...] = row
        for layer, weight, bias in zip(spec.network.layers, parameters.weights,
                                       parameters.biases, strict=True):
            pre = tuple(sum(w * x for w, x in zip(weights, current, strict=True)) + b
                        for weights, b in zip(weight, bias, strict=True))
            assert not set(pre) & set(kink_points(layer)), (layer, pre)
            current = tuple(layer.activation.value(u, layer, RATIONAL) for u in pre)


def test_a_mutated_structured_witness_is_rejected() -> None:
    """Genericity in the verifier: a repeated input row (found by hashing at M = 2000)."""
    spec = parse_spec(free_data_yaml((8,), 2000))
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT and result.witness is not None
    inputs = list(result.witness.inputs)
    inputs[1500] = inputs[17]
    mutated = dataclasses.replace(result.witness, inputs=tuple(inputs))
    check = verify(spec, mutated)
    assert not check.accepted
    assert any("inputs of samples 17 and 1500 are equal" in f for f in check.failures)


def _random_rows(rng: random.Random, rank_: int, rows: int, columns: int) -> list[list[int]]:
    """rows x columns integer matrix of rank at most rank_ (dependent rows planted)."""
    basis = [[rng.randint(-5, 5) for _ in range(columns)] for _ in range(rank_)]
    result = []
    for _ in range(rows):
        weights = [rng.randint(-2, 2) for _ in range(rank_)]
        result.append([sum(w * b[c] for w, b in zip(weights, basis, strict=True))
                       for c in range(columns)])
    return result


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("modular", [True, False])
def test_kernel_vectors_annihilate_every_row(seed: int, modular: bool) -> None:
    rng = random.Random(seed)
    rows = _random_rows(rng, rng.randint(1, 12), rng.randint(2, 30), 60)
    kernel = rank._Kernel.of(rows, 60, modular=modular)
    flint = __import__("flint")
    assert len(kernel.free) == 60 - flint.fmpz_mat(rows).rank()
    sampler = rank._Sampler(parse_spec(free_data_yaml((1,), 3)), 3, seed)
    for trial in range(6):
        vector = kernel.draw(sampler, trial)
        assert vector is not None and any(vector)
        assert all(sum(a * b for a, b in zip(row, vector, strict=True)) == 0 for row in rows)


def test_kernel_refuses_a_vector_a_dependent_row_refutes() -> None:
    """The modular kernel checks its vectors against the rows it left out as dependent:
    plant a wrong 'dependent' row and the vector is refused (then the exact form runs)."""
    rng = random.Random(5)
    rows = _random_rows(rng, 3, 8, 40)
    kernel = rank._Kernel.of(rows, 40)
    assert kernel.checks  # the modular path left dependent rows out
    wrong = dataclasses.replace(kernel, checks=(*kernel.checks, [1] * 40))
    vectors = [wrong.vector({column: 1}) for column in kernel.free[:5]]
    assert any(vector is None for vector in vectors)


def test_sample_limits_and_the_memory_guard(write_spec: Any, runner: Any) -> None:
    from smtgrad.cli import app

    assert MAX_SAMPLES == CLI_MAX_SAMPLES == 10_000
    with pytest.raises(SpecError, match="2 GB"):
        parse_spec(free_data_yaml((64, 64), 10_000))
    network = parse_spec(free_data_yaml((64, 64), 64)).network
    message = size_refusal(network, 10_000)
    assert message is not None and f"at most M = {MAX_PROBLEM_SIZE // 4353:,}" in message
    path: Path = write_spec(free_data_yaml((64, 64), 64))
    refused = runner.invoke(app, ["solve", str(path), "--samples", "5000"])
    assert refused.exit_code == 2 and "--samples" in refused.output
    assert "2 GB" in refused.output and "Traceback" not in refused.output
    too_many = runner.invoke(app, ["solve", str(path), "--samples", "10001"])
    assert too_many.exit_code == 2


def test_unknown_names_how_far_each_method_got() -> None:
    """A deadline that cuts the search short says so, with the work done. (A deep linear
    net without genericity: sat only with W1 = 0, which no draw finds.)"""
    spec = parse_spec(free_data_yaml((8, 8, 8), 64, "linear", generic=False))
    result = solve(spec, SolveOptions(timeout=0.5))
    assert result.verdict is Verdict.UNKNOWN
    assert "timeout after 0.5 s" in result.reason and "work done" in result.reason
    assert "rank criterion:" in result.reason and "draws" in result.reason
