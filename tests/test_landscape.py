"""Fixed-data loss landscapes: the pattern method, local-minimum certificates, the
``landscape`` command.

The pattern method is checked against the exact SMT encoding on random small
datasets (a different method, sharing only the verifier), its witnesses against the
verifier (and mutations of them), the pattern-convexity certificate against random
exact perturbations, saddle directions against the exact loss along them.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from typing import Any

import pytest
from conftest import network_yaml

from smtgrad.cli import app
from smtgrad.engine import SolveOptions, solve
from smtgrad.methods.patterns import (
    _sign_vectors_1d,
    _sign_vectors_by_lp,
    landscape_problem,
)
from smtgrad.reference.landscape import Kind, classify
from smtgrad.reference.network import Parameters, evaluate
from smtgrad.reference.verify import Status, verify
from smtgrad.reference.witness import Witness
from smtgrad.spec import Verdict, load_spec, parse_spec

STATIONARY = "query: {zero: [W1, b1, W2, b2]}\n"


def fixed_data_spec(units: int, xs: list[Any], ys: list[Any], *, activation: str = "relu",
                    assume: list[str] | None = None, extra: str = "",
                    query: str = STATIONARY, inputs: int = 1) -> str:
    rows = [[x] if inputs == 1 else x for x in xs]
    return (network_yaml(f"{units} {activation}", "1 linear", inputs=inputs)
            + "loss: {kind: mse, reduction: sum}\n" + query
            + f"fixed: {{X: {rows}, Y: {[[y] for y in ys]}}}\n"
            + (f"assume: {json.dumps(assume)}\n" if assume else "") + extra)


def _loss(spec: Any, witness: Witness, parameters: Parameters | None = None) -> Fraction:
    evaluation = evaluate(spec.network, spec.loss, spec.conventions,
                          parameters or witness.parameters, witness.inputs, witness.targets)
    return Fraction(evaluation.loss)


def _shifted(parameters: Parameters, step: dict[str, Any], t: Fraction) -> Parameters:
    def add(block: Any, delta: Any) -> Any:
        if isinstance(block, tuple):
            return tuple(add(b, d) for b, d in zip(block, delta, strict=True))
        return block + t * delta

    weights = tuple(add(w, step[f"W{i + 1}"]) for i, w in enumerate(parameters.weights))
    biases = tuple(add(b, step[f"b{i + 1}"]) for i, b in enumerate(parameters.biases))
    return Parameters(weights, biases)


# ----------------------------------------------------------------------------------------
# The table of the issue: decided, with the verdict the line fit predicts


def _line_fit_loss(xs: list[int], ys: list[int]) -> Fraction:
    n = len(xs)
    mx, my = Fraction(sum(xs), n), Fraction(sum(ys), n)
    slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
             / sum((x - mx) ** 2 for x in xs))
    return sum(((slope * (x - mx) + my - y) ** 2 for x, y in zip(xs, ys, strict=True)),
               Fraction(0))


@pytest.mark.parametrize(("units", "samples"), [(1, 8), (2, 4), (3, 4), (3, 6)])
def test_line_fit_loss_is_stationary_and_an_impossible_loss_is_not(units: int,
                                                                  samples: int) -> None:
    rng = random.Random(units * 100 + samples)
    xs = list(range(samples))
    ys = [rng.randint(-3, 3) for _ in xs]
    best_line = _line_fit_loss(xs, ys)
    sat = solve(parse_spec(fixed_data_spec(units, xs, ys, assume=[f"loss == {best_line}"])))
    assert sat.verdict is Verdict.SAT and sat.method == "fixed-data activation patterns"
    assert sat.witness is not None and verify(sat.spec, sat.witness).accepted
    unsat = solve(parse_spec(fixed_data_spec(units, xs, ys, assume=["loss == 1/7"])))
    assert unsat.verdict is Verdict.UNSAT and "every activation pattern refuted" in unsat.reason


# ----------------------------------------------------------------------------------------
# Differential: the pattern method against the exact SMT encoding


def _random_network_and_data(rng: random.Random
                             ) -> tuple[int, str, list[int], list[int]]:
    """Width, hidden activation and a small 1-D dataset for the differential tests."""
    units = rng.choice([1, 2])
    activation = rng.choice(["relu", "leaky_relu", "abs"])
    samples = rng.choice([2, 3, 4])
    xs = [rng.randint(-2, 3) for _ in range(samples)]
    ys = [rng.randint(-2, 2) for _ in range(samples)]
    return units, activation, xs, ys


def _random_case(rng: random.Random) -> tuple[str, str]:
    units, activation, xs, ys = _random_network_and_data(rng)
    assume = rng.choice([["loss > 0"], ["loss > 1"], ["loss < 1/2"], ["yhat[0] > 0"]])
    convention = f"conventions: {{relu_grad_at_zero: {rng.choice([0, 1])}}}\n"
    text = fixed_data_spec(units, xs, ys, activation=activation, assume=assume,
                           extra=convention)
    # An assumption naming a parameter takes the spec out of the pattern method's family
    # (the normalisation of outgoing weights would change it): the SMT encoding decides.
    other = text.replace("assume: [", 'assume: ["b2[0] == b2[0]", ')
    return text, other


@pytest.mark.parametrize("seed", range(12))
def test_patterns_agree_with_the_smt_encoding(seed: int) -> None:
    text, other = _random_case(random.Random(seed))
    by_patterns = solve(parse_spec(text), SolveOptions(timeout=20))
    by_smt = solve(parse_spec(other), SolveOptions(timeout=20))
    assert by_patterns.method == "fixed-data activation patterns"
    assert by_smt.method != "fixed-data activation patterns"
    if Verdict.UNKNOWN in (by_patterns.verdict, by_smt.verdict):
        pytest.skip(f"undecided: {by_patterns.reason or by_smt.reason}")
    assert by_patterns.verdict is by_smt.verdict, (text, by_patterns.reason, by_smt.reason)


def test_a_mutated_pattern_witness_is_rejected() -> None:
    spec = parse_spec(fixed_data_spec(2, [0, 1, 2, 3], [0, 1, 0, 2], assume=["loss > 0"]))
    result = solve(spec)
    assert result.verdict is Verdict.SAT and result.witness is not None
    witness = result.witness
    weights, biases = witness.parameters.weights, witness.parameters.biases
    mutated = Witness(Parameters(weights, (biases[0], (biases[1][0] + Fraction(1, 7),))),
                      witness.inputs, witness.targets)
    check = verify(spec, mutated)
    assert check.status is Status.FAILS
    assert any("dL/db2" in failure for failure in check.failures)


def test_sign_vectors_by_lp_match_the_closed_form_in_one_dimension() -> None:
    xs = [Fraction(v) for v in (3, -1, 0, 3, 2)]
    assert set(_sign_vectors_by_lp([(x,) for x in xs], None)) == set(_sign_vectors_1d(xs))


def test_two_dimensional_inputs() -> None:
    text = fixed_data_spec(2, [[0, 0], [0, 1], [1, 0]], [0, 1, 1], inputs=2,
                           assume=["loss > 0"])
    result = solve(parse_spec(text))
    assert result.verdict is Verdict.SAT and result.method == "fixed-data activation patterns"
    impossible = solve(parse_spec(text.replace("loss > 0", "loss == 1/7")))
    assert impossible.verdict is Verdict.UNSAT


def test_outside_the_family_the_method_does_not_apply() -> None:
    from smtgrad.methods.patterns import NotApplicable

    free_parameter = fixed_data_spec(1, [0, 1], [0, 1], extra="assume: ['W1[0,0] > 0']\n")
    with pytest.raises(NotApplicable, match="W1"):
        landscape_problem(parse_spec(free_parameter))
    seed_query = fixed_data_spec(1, [0, 1], [0, 1], query="query: {zero: [W2, b2]}\n")
    with pytest.raises(NotApplicable, match="every free parameter"):
        landscape_problem(parse_spec(seed_query))


# ----------------------------------------------------------------------------------------
# Certificates


def test_pattern_convexity_survives_random_exact_perturbations() -> None:
    spec = load_spec("specs/spurious_minimum_line_fit.yaml")
    result = solve(spec)
    assert result.verdict is Verdict.SAT and result.witness and result.evaluation
    classification = classify(spec, result.witness, result.evaluation)
    assert classification is not None and classification.kind is Kind.MINIMUM
    assert classification.certificate == "pattern-convexity"
    base = _loss(spec, result.witness)
    rng = random.Random(5)
    shapes = spec.network.parameter_shapes()
    for _ in range(200):
        step = {name: (tuple(tuple(Fraction(rng.randint(-1000, 1000), 10**6)
                                   for _ in range(shape[1])) for _ in range(shape[0]))
                       if len(shape) == 2 else
                       tuple(Fraction(rng.randint(-1000, 1000), 10**6)
                             for _ in range(shape[0])))
                for name, shape in shapes.items()}
        moved = _shifted(result.witness.parameters, step, Fraction(1))
        assert _loss(spec, result.witness, moved) >= base


def test_the_saddle_has_an_exact_descent_direction() -> None:
    spec = load_spec("specs/relu_saddle.yaml")
    result = solve(spec)
    assert result.verdict is Verdict.SAT and result.witness and result.evaluation
    classification = classify(spec, result.witness, result.evaluation)
    assert classification is not None and classification.kind is Kind.SADDLE
    base = _loss(spec, result.witness)
    for t in (Fraction(1, 100), Fraction(1, 1000), Fraction(-1, 1000)):
        moved = _shifted(result.witness.parameters, classification.direction, t)
        assert _loss(spec, result.witness, moved) < base


def test_pattern_convexity_needs_every_reaching_unit_to_have_an_outgoing_weight() -> None:
    """The saddle's dead unit reaches the loss (it is active on two samples) with outgoing
    weight 0: claiming pattern-convexity there would call a saddle a minimum."""
    from smtgrad.reference.landscape import _pattern_convexity

    spec = load_spec("specs/relu_saddle.yaml")
    result = solve(spec)
    assert result.witness is not None and result.evaluation is not None
    assert _pattern_convexity(spec, result.witness, result.evaluation) is None


def test_minimum_local_on_the_saddle_is_unsat() -> None:
    from pathlib import Path

    text = Path("specs/relu_saddle.yaml").read_text(encoding="utf-8")
    text = text.replace("  zero: [W1, b1, W2, b2]", "  minimum: local")
    result = solve(parse_spec(text))
    assert result.verdict is Verdict.UNSAT and "saddle" in result.reason


def test_a_positive_definite_hessian_is_a_strict_minimum() -> None:
    """sigma(w x + b) fits (0, 1/2), (1, 3/4) exactly at w = log 3, b = 0: the Hessian
    2 J^T J has full rank."""
    text = (network_yaml("1 sigmoid") + "loss: mse\nquery: {minimum: local}\n"
            "fixed: {X: [[0], [1]], Y: [[1/2], [3/4]], W1: [['log(3)']], b1: [0]}\n")
    result = solve(parse_spec(text))
    assert result.verdict is Verdict.SAT and result.witness and result.evaluation
    classification = classify(result.spec, result.witness, result.evaluation)
    assert classification is not None and classification.kind is Kind.STRICT_MINIMUM
    assert classification.certificate == "hessian"
    shifted = text.replace("Y: [[1/2], [3/4]]", "Y: [[1/2], [4/5]]")
    assert solve(parse_spec(shifted)).verdict is Verdict.UNSAT  # not stationary


def test_minimum_needs_every_gradient_zero() -> None:
    from smtgrad.spec import SpecError

    with pytest.raises(SpecError, match="every parameter block"):
        parse_spec(fixed_data_spec(1, [0, 1], [0, 1],
                                   query="query: {zero: [W2], minimum: local}\n"))
    with pytest.raises(SpecError, match=r"query\.minimum"):
        parse_spec(fixed_data_spec(1, [0, 1], [0, 1], query="query: {minimum: global}\n"))


def test_stationary_witnesses_carry_a_classification_in_json(runner: Any) -> None:
    outcome = runner.invoke(app, ["solve", "specs/relu_saddle.yaml", "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.output)
    assert data["classification"] == "saddle"
    assert data["second_order"]["descent_direction"]["W2"]
    seed = runner.invoke(app, ["solve", "specs/relu_mse.yaml", "--format", "json"])
    assert "classification" not in json.loads(seed.output)  # not stationary


# ----------------------------------------------------------------------------------------
# smtgrad landscape


def test_landscape_lists_stationary_patterns(runner: Any, tmp_path: Any) -> None:
    path = tmp_path / "five.yaml"
    path.write_text(fixed_data_spec(2, [0, 1, 2, 3, 4], [0, 1, 0, 1, 3]), encoding="utf-8")
    outcome = runner.invoke(app, ["landscape", str(path), "--as-json"])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.output)
    assert data["complete"] and data["least_stationary_loss"] == "1/2"
    losses = {entry["loss"] for entry in data["stationary"]}
    assert {"6", "12/5", "1/2"} <= losses  # constant fit, line fit, the best two-unit fit
    spec = parse_spec(path.read_text(encoding="utf-8"))
    for entry in data["stationary"]:
        from smtgrad.reference.witness import witness_from_json

        witness = witness_from_json(entry["witness"], spec.network, spec.targets)
        assert verify(spec, witness).accepted
        assert entry["spurious"] == (entry["classification"] in ("local minimum",
                                                                 "strict local minimum")
                                     and entry["loss"] != "1/2")
    table = runner.invoke(app, ["landscape", str(path), "--limit", "3"])
    assert table.exit_code == 0 and "3 stationary patterns" in table.output


def test_landscape_refuses_specs_outside_its_family(runner: Any) -> None:
    outcome = runner.invoke(app, ["landscape", "specs/relu_mse.yaml"])
    assert outcome.exit_code == 2
    assert "landscape needs fixed X and Y" in outcome.output
    assert "Traceback" not in outcome.output


def test_cross_check_confirms_every_infeasible_lp_with_cvc5() -> None:
    pytest.importorskip("cvc5")
    text = fixed_data_spec(2, [0, 1, 2, 3, 4], [0, 1, 0, 1, 3], assume=["loss < 1/2"])
    result = solve(parse_spec(text), SolveOptions(cross_check=True))
    assert result.verdict is Verdict.UNSAT
    assert "confirmed by cvc5" in result.solver
    assert "by exact linear feasibility" in result.reason


def test_the_two_lp_backends_agree() -> None:
    pytest.importorskip("cvc5")
    from smtgrad.backends.linear import Affine, feasible_point

    one = Fraction(1)
    # x > 0, y > 0, x + y = 1: feasible; add x - y > 1: infeasible.
    positive = [Affine(((0, one),)), Affine(((1, one),))]
    equal = [Affine(((0, one), (1, one)), -one)]
    point = feasible_point(2, equal, positive)
    assert point is not None and point[0] > 0 and point[1] > 0 and sum(point) == 1
    assert feasible_point(2, equal, positive, backend="cvc5") is not None
    tighter = [*positive, Affine(((0, one), (1, -one)), -one)]
    assert feasible_point(2, equal, tighter) is None
    assert feasible_point(2, equal, tighter, backend="cvc5") is None


def test_landscape_plot(runner: Any, tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "five.yaml"
    path.write_text(fixed_data_spec(1, [0, 1, 2, 3, 4], [0, 1, 0, 1, 3]), encoding="utf-8")
    picture = tmp_path / "landscape.png"
    outcome = runner.invoke(app, ["landscape", str(path), "--plot", str(picture)])
    assert outcome.exit_code == 0, outcome.output
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(app, ["landscape", str(path), "--plot", str(tmp_path / "x.gif")])
    assert bad.exit_code == 2 and ".png or .svg" in bad.output


# ----------------------------------------------------------------------------------------
# A fixed output layer (W2, and optionally b2, given: the hidden layer is what is trained)


def _fixed_output_case(rng: random.Random) -> tuple[str, str]:
    units, activation, xs, ys = _random_network_and_data(rng)
    outgoing = [rng.choice([1, -1, 2, "1/2", 0]) for _ in range(units)]
    fixed_bias = rng.random() < 0.5
    extra = f"W2: [{outgoing}]" + (f", b2: [{rng.choice([0, 1, -1])}]" if fixed_bias else "")
    query = "[W1, b1]" if fixed_bias else "[W1, b1, b2]"
    assume = rng.choice([["loss > 0"], ["loss < 1"], ["yhat[0] > 0"]])
    text = (network_yaml(f"{units} {activation}", "1 linear")
            + "loss: {kind: mse, reduction: sum}\n" + f"query: {{zero: {query}}}\n"
            + f"fixed: {{X: {[[x] for x in xs]}, Y: {[[y] for y in ys]}, {extra}}}\n"
            + f"assume: {json.dumps(assume)}\n")
    other = text.replace("assume: [", 'assume: ["W1[0,0] == W1[0,0]", ')
    return text, other


@pytest.mark.parametrize("seed", range(10))
def test_a_fixed_output_layer_agrees_with_the_smt_encoding(seed: int) -> None:
    text, other = _fixed_output_case(random.Random(1000 + seed))
    by_patterns = solve(parse_spec(text), SolveOptions(timeout=15))
    by_other = solve(parse_spec(other), SolveOptions(timeout=15))
    assert by_patterns.method == "fixed-data activation patterns", by_patterns.reason
    if Verdict.UNKNOWN in (by_patterns.verdict, by_other.verdict):
        pytest.skip(f"undecided: {by_patterns.reason or by_other.reason}")
    assert by_patterns.verdict is by_other.verdict, (text, by_patterns.reason, by_other.reason)


def test_a_fixed_abs_unit_on_every_kink_contributes_nothing() -> None:
    """W2 = -1 is fixed, so the unit is live; at (w, b) = (0, 0) every sample sits on the
    kink, abs'(0) = 0 and the unit contributes nothing: the constant fit is stationary
    (a fuzz finding: the method first called this unsat)."""
    text = (network_yaml("1 abs", "1 linear") + "loss: {kind: mse, reduction: sum}\n"
            "query: {zero: [W1, b1, b2]}\n"
            "fixed: {X: [[2], [1], [1]], Y: [[1], [2], [2]], W2: [[-1]]}\n"
            "assume: ['loss > 0']\n")
    result = solve(parse_spec(text))
    assert result.verdict is Verdict.SAT and result.method == "fixed-data activation patterns"


def test_output_weights_fixed_to_one_as_in_safran_and_shamir() -> None:
    """Two-layer ReLU nets with the output layer fixed to ones (Safran & Shamir 2018's
    setting) on a fixed dataset: a stationary point of the hidden layer with positive loss
    is found, verified and classified; spare units share a function."""
    text = (network_yaml("3 relu", "1 linear") + "loss: {kind: mse, reduction: sum}\n"
            "query: {zero: [W1, b1, b2]}\n"
            "fixed: {X: [[0], [1], [2], [3]], Y: [[0], [2], [0], [2]], W2: [[1, 1, 1]]}\n"
            "assume: ['loss > 0', 'loss < 3']\n")
    result = solve(parse_spec(text))
    assert result.verdict is Verdict.SAT and result.witness is not None
    assert result.witness.parameters.weights[1] == ((1, 1, 1),)
    assert verify(result.spec, result.witness).accepted
    assert result.evaluation is not None and result.evaluation.loss == Fraction(8, 3)
    # 8/3 is the least stationary loss (`smtgrad landscape`): below it, none (the SMT
    # encoding agrees: z3 proves the same spec unsat).
    lower = solve(parse_spec(text.replace("loss < 3", "loss < 8/3")))
    assert lower.verdict is Verdict.UNSAT


def test_no_spurious_minimum_of_a_linear_hidden_layer() -> None:
    """The constant fit is stationary but every point of its pattern has a unit with
    outgoing weight 0 and a descent direction: unsat, not unknown. The witness the
    enumeration builds there is classified a saddle, consistently."""
    spec = load_spec("specs/linear_no_spurious_minimum.yaml")
    result = solve(spec)
    assert result.verdict is Verdict.UNSAT, result.reason
    assert "descent direction" in result.reason
    problem = landscape_problem(spec.with_samples(5))
    from smtgrad.methods.patterns import Tally, enumerate_patterns

    constant = next(r for r in enumerate_patterns(problem, None, Tally()) if not r.live)
    assert constant.status == "stationary" and not constant.open
    assert constant.classification is not None
    assert constant.classification.kind is Kind.SADDLE


def test_a_dead_relu_unit_never_refutes_a_minimum() -> None:
    """relu units inactive on every sample reach nothing: the constant fit of a ReLU
    net is a (spurious) local minimum, so minimum: local with its loss is sat."""
    text = fixed_data_spec(2, [0, 1, 2, 3, 4], [0, 1, 0, 1, 3],
                           query="query: {minimum: local}\n", assume=["loss == 6"])
    result = solve(parse_spec(text))
    assert result.verdict is Verdict.SAT
