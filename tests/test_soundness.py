"""Soundness outside the seed family: fixed data and M, fully fixed specs, degenerate and
label-constrained witnesses, and the three-valued ``check``.

Each test names the class of bug it guards; each can fail (reverting the fix makes it
fail, and mutated witnesses are shown to be rejected).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import HAND_WITNESS_JSON, SPECS, network_yaml, one_hidden

from smtgrad.cli import app
from smtgrad.engine import SolveOptions, solve
from smtgrad.reference.verify import Status, verify
from smtgrad.reference.witness import fixed_witness
from smtgrad.spec import SpecError, Verdict, load_spec, parse_spec

#: A fully fixed 1-1-1 ReLU net on three samples. Every gradient is computable by hand:
#: u = x, a = x, yhat = x, r = x (targets 0), so dL/db2 = (2/3) * (1 + 2 + 3) = 4 != 0.
FULLY_FIXED = one_hidden(samples=None, query="{zero: [b2], nonzero: [W1]}", extra=(
    "fixed: {W1: [[1]], b1: [0], W2: [[1]], b2: [0], X: [[1], [2], [3]], "
    "Y: [[0], [0], [0]]}\n"))


def _solve(text: str, **options: Any) -> Any:
    options.setdefault("timeout", 30)
    return solve(parse_spec(text), SolveOptions(**options))


# -- fixed rows define M -------------------------------------------------------------------


def test_samples_that_disagree_with_fixed_rows_are_an_input_error(
        write_spec: Callable[..., Path], runner: Any) -> None:
    """The old bug: --samples 2 cut the fixed rows to two and answered a wrong sat."""
    path = write_spec(FULLY_FIXED)
    result = runner.invoke(app, ["solve", str(path), "--samples", "2"])
    assert result.exit_code == 2, result.output
    assert "--samples 2" in result.output and "3 rows" in result.output
    with pytest.raises(SpecError, match="fixed X has 3 rows"):
        _solve(FULLY_FIXED, samples=2)
    export = runner.invoke(app, ["export", str(path), "--samples", "2"])
    assert export.exit_code == 2


def test_minimal_on_fixed_rows_solves_that_one_m_and_says_so(
        write_spec: Callable[..., Path], runner: Any) -> None:
    result = _solve(FULLY_FIXED, minimal=True)
    assert [a.samples for a in result.attempts] == [3]
    assert result.verdict is Verdict.UNSAT and result.proved == "M=3"
    assert any("only M=3" in note for note in result.notes)
    output = runner.invoke(app, ["solve", str(write_spec(FULLY_FIXED)), "--minimal",
                                 "--format", "json"]).output
    data = json.loads(output)
    assert data["verdict"] == "unsat" and data["proved"] == "M=3" and data["notes"]


def test_a_walk_over_m_starts_where_every_named_sample_exists(runner: Any) -> None:
    """The old bug: --minimal on specs/hardtanh_dead.yaml exited 4 with an IndexError."""
    result = runner.invoke(app, ["solve", str(SPECS / "hardtanh_dead.yaml"), "--minimal"])
    assert result.exit_code == 1, result.output
    assert "starts at M=3" in result.output
    spec = load_spec(SPECS / "hardtanh_dead.yaml")
    solved = solve(spec, SolveOptions(minimal=True, timeout=30))
    assert [a.samples for a in solved.attempts] == [3]
    with pytest.raises(SpecError, match="at least 3"):
        solve(spec, SolveOptions(samples=2, timeout=30))


def test_a_sample_range_may_name_samples_beyond_its_minimum() -> None:
    text = one_hidden(samples=None, query="{zero: [W2, b2], nonzero: [W1]}",
                      extra="samples: {min: 1, max: 4}\nassume: ['X[2] > X[1]']\n")
    result = _solve(text)
    assert result.attempts[0].samples == 3
    with pytest.raises(SpecError, match="at most 4"):
        parse_spec(text.replace("X[2] > X[1]", "X[4] > X[1]"))


# -- fully fixed specs are decided by evaluation --------------------------------------------


def test_a_fully_fixed_unsat_spec_is_unsat_by_evaluation() -> None:
    result = _solve(FULLY_FIXED)
    assert result.verdict is Verdict.UNSAT
    assert result.method == "evaluation of the fully fixed spec"
    assert "dL/db2[0] = 4" in result.reason


def test_a_fully_fixed_sat_spec_is_sat_by_evaluation() -> None:
    # The accepted answer's hand witness, every value fixed.
    text = one_hidden(samples=None, query="{zero: [W2, b2], nonzero: [W1]}", extra=(
        "fixed: {W1: [[1]], b1: [-1], W2: [[1]], b2: [-1], X: [[0], [2], [3]], "
        "Y: [[-2], [2], [0]]}\n"))
    result = _solve(text)
    assert result.verdict is Verdict.SAT and result.method.startswith("evaluation")
    assert result.evaluation.gradients["W1"] == ((Fraction(-2, 3),),)


def test_fixed_witness_needs_every_value() -> None:
    spec = parse_spec(FULLY_FIXED)
    assert fixed_witness(spec, 3) is not None
    assert fixed_witness(parse_spec(FULLY_FIXED.replace(" b2: [0],", "")), 3) is None


# -- witnesses the generic search never drew ------------------------------------------------


@pytest.mark.parametrize("targets", ["binary", "unit_interval"])
def test_label_targets_with_mse_find_a_witness(targets: str) -> None:
    text = one_hidden(extra=f"targets: {targets}\n")
    result = _solve(text, minimal=True)
    assert result.verdict is Verdict.SAT and result.samples == 3
    check = verify(result.spec, result.witness)
    assert check.status is Status.HOLDS
    # Mutating a label out of its kind is refuted.
    witness = result.witness
    bad = type(witness)(witness.parameters, witness.inputs,
                        ((Fraction(2),), *witness.targets[1:]))
    assert verify(result.spec, bad).status is Status.FAILS


def test_fixed_targets_with_free_parameters_find_a_witness() -> None:
    """Fixed Y (so no free residuals): the output layer is solved exactly."""
    text = one_hidden(samples=None, extra="fixed:\n  Y: [[0], [1], [0], [1]]\n")
    result = _solve(text)
    assert result.verdict is Verdict.SAT, result.reason
    assert verify(result.spec, result.witness).status is Status.HOLDS


# -- the three-valued check -----------------------------------------------------------------


def _check(runner: Any, spec: Path, witness: Path) -> Any:
    return runner.invoke(app, ["check", str(spec), "--witness", str(witness), "--format",
                               "json"])


def test_check_exit_codes_hold_fail(write_spec: Callable[..., Path],
                                    write_json: Callable[..., Path], runner: Any) -> None:
    spec = SPECS / "relu_mse.yaml"
    hand = HAND_WITNESS_JSON
    held = _check(runner, spec, write_json(hand))
    assert held.exit_code == 0 and json.loads(held.output)["status"] == "holds"
    wrong = dict(hand, Y=[["-2"], ["2"], ["1"]])
    failed = _check(runner, spec, write_json(wrong))
    assert failed.exit_code == 1 and json.loads(failed.output)["holds"] is False


# -- closed-form fixed values ----------------------------------------------------------------

RELU_LOG = one_hidden(extra='fixed:\n  W1: [["log(2)"]]\n')


def test_a_log_fixed_weight_on_a_relu_net_is_solved_exactly(
        write_spec: Callable[..., Path], write_json: Callable[..., Path], runner: Any) -> None:
    """The old bug: a TypeError (exit 4). With W1 = ln 2 every rational residual vector
    fails; the residuals live in Q[ln 2]."""
    path = write_spec(RELU_LOG)
    solved = runner.invoke(app, ["solve", str(path), "--format", "json"])
    assert solved.exit_code == 0, solved.output
    data = json.loads(solved.output)
    assert data["certificate"] == "exact" and "log(2)" in json.dumps(data["witness"]["Y"])
    assert _check(runner, path, write_json(data)).exit_code == 0
    # Mutate one target by ln 2: the zero gradients are refuted exactly.
    witness = data["witness"]
    witness["Y"][0] = [f"{witness['Y'][0][0]} + log(2)"]
    refuted = _check(runner, path, write_json(witness))
    assert refuted.exit_code == 1, refuted.output


@pytest.mark.parametrize("fixed", ['b1: ["log(1/2)"]', 'b1: ["log(7)"]', 'W2: [["log(2)"]]',
                                   'W1: [["log(2)*log(3)"]]'])
def test_a_log_fixed_value_on_a_sigmoid_net_is_not_an_internal_error(
        fixed: str, write_spec: Callable[..., Path], runner: Any) -> None:
    """The old bug: TypeErrors (exit 4) in the lattice, the Newton search and Krawczyk."""
    text = one_hidden("sigmoid", extra=f"fixed:\n  {fixed}\n")
    result = runner.invoke(app, ["solve", str(write_spec(text)), "--timeout", "20"])
    assert result.exit_code in (0, 3), result.output
    if result.exit_code == 0:
        assert "certificate: exact" in result.output or "enclosure" in result.output


# -- check: true witnesses that are not rational are not "does not hold" --------------------



def _net(act: str, samples: int, query: str) -> str:
    return one_hidden(act, samples=samples, query="{" + query + "}")


def _witness(**blocks: Any) -> dict[str, Any]:
    base = {"W1": [["1"]], "b1": ["0"], "W2": [["1"]], "b2": ["0"]}
    base.update(blocks)
    return base


def test_check_decides_nonzero_by_balls_at_sigmoid_one(
        write_spec: Callable[..., Path], write_json: Callable[..., Path], runner: Any) -> None:
    """The old bug: 'exp(1) is not rational' made a true witness 'does NOT satisfy' (1)."""
    witness = write_json(_witness(X=[["1"], ["2"]], Y=[["0"], ["1"]]))
    nonzero = write_spec(_net("sigmoid", 2, "nonzero: [W1, b2]"))
    held = _check(runner, nonzero, witness)
    assert held.exit_code == 0, held.output
    # The same witness with b2 required zero is refuted: its ball excludes 0.
    zero = write_spec(_net("sigmoid", 2, "zero: [b2]"))
    refuted = _check(runner, zero, witness)
    assert refuted.exit_code == 1, refuted.output
    assert json.loads(refuted.output)["failures"]


def test_check_half_lattice_tanh_and_mixed_log_bases(
        write_spec: Callable[..., Path], write_json: Callable[..., Path], runner: Any) -> None:
    # tanh((1/2) ln 3) = 1/2 exactly: tanh needs exp(2x) rational, not exp(x).
    tanh = write_spec(_net("tanh", 1, "zero: [b2]"))
    exact = write_json(_witness(W1=[["log(3)/2"]], W2=[["2"]], X=[["1"]], Y=[["1"]]))
    assert _check(runner, tanh, exact).exit_code == 0
    off = write_json(_witness(W1=[["log(3)/2"]], W2=[["2"]], X=[["1"]], Y=[["1/2"]]))
    assert _check(runner, tanh, off).exit_code == 1
    # log(2) and log(3) in one witness: yhat = ln 2 + ln 3 = ln 6 = Y exactly.
    relu = write_spec(_net("relu", 1, "zero: [b2]"))
    mixed = write_json(_witness(W1=[["log(2)"]], b1=["log(3)"], X=[["1"]], Y=[["log(6)"]]))
    assert _check(runner, relu, mixed).exit_code == 0
    wrong = write_json(_witness(W1=[["log(2)"]], b1=["log(3)"], X=[["1"]], Y=[["log(5)"]]))
    assert _check(runner, relu, wrong).exit_code == 1


def test_check_cannot_decide_a_box_too_wide_for_its_certificate(
        solved: Any, write_json: Callable[..., Path], runner: Any) -> None:
    result = solved(SPECS / "sigmoid_bce_hard.yaml", minimal=True)
    if result.certificate != "enclosure":
        pytest.skip(f"no enclosure witness here ({result.verdict.value}: {result.reason})")
    from smtgrad.report import result_json

    witness = result_json(result)["witness"]
    spec = SPECS / "sigmoid_bce_hard.yaml"
    assert _check(runner, spec, write_json(witness)).exit_code == 0
    # The boxed entry is the method's choice (the top-layer solve boxes W2 and b2).
    name = next(n for n in ("W1", "b1", "W2", "b2") if str(_first(witness[n])).startswith("["))
    lo, hi = (Fraction(part) for part in _first(witness[name])[1:-1].split(","))

    def boxed(text: str) -> list[Any]:
        return [[text]] if name.startswith("W") else [text]

    wide = dict(witness, **{name: boxed(f"[{lo - Fraction(3, 10)}, {hi + Fraction(3, 10)}]")})
    undecided = _check(runner, spec, write_json(wide))
    assert undecided.exit_code == 3, undecided.output
    data = json.loads(undecided.output)
    assert data["status"] == "cannot decide" and data["holds"] is None and data["undecided"]
    shifted = dict(witness, **{name: boxed(f"[{lo + Fraction(3, 10)}, "
                                           f"{hi + Fraction(35, 100)}]")})
    assert _check(runner, spec, write_json(shifted)).exit_code == 1


def _first(array: Any) -> Any:
    return _first(array[0]) if isinstance(array, list) else array


def test_a_fully_fixed_sigmoid_net_is_decided_exactly_in_the_exponential_field() -> None:
    """sigmoid(1) + sigmoid(-1) = 1: dL/db2 is exactly zero, which no ball can show."""
    text = one_hidden("sigmoid", samples=None, query="{zero: [b2], nonzero: [W1]}", extra=(
        "fixed: {W1: [[1]], b1: [0], W2: [[1]], b2: [0], X: [[1], [-1], [0]], "
        "Y: [[0], [1], [1/2]]}\n"))
    result = _solve(text)
    assert result.verdict is Verdict.SAT, result.reason
    assert result.evaluation.gradients["b2"] == (0,)
    assert "exp(1)" in str(result.evaluation.gradients["W1"][0][0])
    shifted = _solve(text.replace("[1/2]]", "[1/3]]"))
    assert shifted.verdict is Verdict.UNSAT, shifted.reason


def test_a_model_of_the_relaxed_encoding_is_completed_exactly() -> None:
    """Linear hidden layer, W2[0,0] = ln 2 fixed: every witness has W1 = 0 (degenerate).
    z3's model of the encoding with ln 2 in an interval is no witness by itself; its
    point, with ln 2 put back, is completed by the rank criterion."""
    text = one_hidden("linear", units=2, query="{zero: [W2, b2], nonzero: [W1]}",
                      extra='fixed:\n  W2: [["log(2)", null]]\n')
    result = _solve(text)
    assert result.verdict is Verdict.SAT, result.reason
    assert "relaxed" in result.method
    assert verify(result.spec, result.witness).status is Status.HOLDS


def test_a_large_square_subsystem_search_keeps_the_deadline() -> None:
    """A fuzzer finding: 15 zero-gradient equations in 33 unknowns made the enclosure
    search build all C(33, 15) subsets (an overrun far past --timeout)."""
    import time

    text = network_yaml("3 softplus", "2 linear", inputs=2) + (
        "loss: {kind: mse, reduction: sum, scale: 1/2}\nsamples: 4\n"
        "query: {zero: [W1, b1, W2]}\nconventions: {relu_grad_at_zero: 1}\n")
    started = time.perf_counter()
    result = _solve(text, timeout=4)
    assert time.perf_counter() - started < 4 + 3, result.reason
