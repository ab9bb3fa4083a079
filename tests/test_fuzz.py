"""Differential fuzzing in CI: a fixed-seed batch must show no disagreement and no error.

Also checks the fuzzer's own parts (the spec generator, the exact linear solver
of the random search, the float64 replay, the hard kill of a runaway solve), so
that a clean batch means something: each checker is shown to fire on a planted
fault. And, for item 1 of issue 5, ``--cross-check`` is run on every example spec.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from smtgrad import fuzz
from smtgrad.engine import SolveOptions, solve
from smtgrad.fuzz import (
    Category,
    FuzzConfig,
    Replay,
    case_random,
    case_seeds,
    random_spec,
    random_spec_data,
    run_batch,
    search_counterexample,
    spec_texts,
    torch_available,
    torch_replay,
)
from smtgrad.rank import solve_linear
from smtgrad.spec import Verdict, load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
EXAMPLES = sorted(SPECS.glob("*.yaml"))

needs_torch = pytest.mark.skipif(not torch_available(), reason="torch is not installed")


# ----------------------------------------------------------------------------------------
# The generator.


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(spec_texts())
def test_generated_specs_are_valid(text: str) -> None:
    spec = parse_spec(text, "<generated>")
    assert 1 <= spec.network.inputs <= 2
    assert 2 <= spec.network.depth <= 3
    assert all(layer.units <= 3 for layer in spec.network.layers)
    assert 1 <= spec.samples.min <= spec.samples.max <= 5
    assert all(layer.activation.is_piecewise_linear for layer in spec.network.layers)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(spec_texts(smooth=True))
def test_generated_smooth_specs_are_valid(text: str) -> None:
    parse_spec(text, "<generated>")


@settings(max_examples=50, derandomize=True, deadline=None, database=None)
@given(case_seeds())
def test_cases_are_reproducible(pair: tuple[int, int]) -> None:
    seed, index = pair
    assert random_spec(case_random(seed, index)) == random_spec(case_random(seed, index))


def test_generator_covers_the_grammar() -> None:
    """Over a few hundred specs every feature the issue lists shows up."""
    seen: set[str] = set()
    for index in range(400):
        data = random_spec_data(random.Random(index), smooth=True)
        layers = data["network"]["layers"]
        seen.update(f"act:{layer['activation']}" for layer in layers)
        seen.update({"hidden:2"} if len(layers) == 3 else set())
        loss = data.get("loss")
        kind = loss if isinstance(loss, str) else loss["kind"]
        seen.add(f"loss:{kind}")
        if isinstance(loss, dict):
            seen.update(f"{key}:{value}" for key, value in loss.items() if key != "kind")
        seen.add(f"targets:{data.get('targets', 'real')}")
        fixed = data.get("fixed", {})
        seen.update(f"fixed:{name}" for name in fixed)
        if "X" in fixed and "Y" in fixed:
            seen.add("fixed:X+Y")
        query = data["query"]
        for part in ("zero", "nonzero"):
            for item in query.get(part, []):
                seen.add(f"{part}:{'entry' if '[' in item else 'block'}")
        for text in data.get("assume", []):
            seen.update(f"assume:{word}" for word in ("loss", "X[", "yhat", "!=", "not", "and",
                                                      "or") if word in text)
        seen.add(f"generic:{data.get('generic', False)}")
        conventions = data.get("conventions")
        if conventions:
            seen.add(f"kink:{conventions['relu_grad_at_zero']}")
        if isinstance(data["samples"], dict):
            seen.add("samples:range")
    wanted = {f"act:{name}" for name in (*fuzz.PIECEWISE_ACTIVATIONS, *fuzz.SMOOTH_ACTIVATIONS,
                                         "softmax")}
    wanted |= {"hidden:2", "loss:mse", "loss:bce", "loss:cross_entropy", "reduction:sum",
               "reduction:mean", "targets:real", "targets:binary", "targets:unit_interval",
               "targets:class", "fixed:X", "fixed:Y", "fixed:W1", "fixed:X+Y", "zero:entry",
               "zero:block", "nonzero:entry", "nonzero:block", "assume:loss", "assume:X[",
               "assume:yhat", "assume:!=", "assume:not", "assume:and", "assume:or",
               "generic:True", "kink:0", "kink:1", "samples:range"}
    assert wanted <= seen, sorted(wanted - seen)


# ----------------------------------------------------------------------------------------
# The checkers fire on planted faults.


def test_exact_linear_solver() -> None:
    F = Fraction
    rows = [[F(1), F(2), F(3)], [F(2), F(4), F(7)]]
    particular, basis = solve_linear(rows, [F(1), F(3)], 3) or ([], [])
    for row, value in zip(rows, [F(1), F(3)], strict=True):
        assert sum(a * x for a, x in zip(row, particular, strict=True)) == value
        for vector in basis:
            assert sum(a * x for a, x in zip(row, vector, strict=True)) == 0
    assert len(basis) == 1
    assert solve_linear([[F(1), F(1)], [F(2), F(2)]], [F(1), F(3)], 2) is None


@pytest.mark.parametrize("name", ["relu_mse.yaml", "deep_leaky.yaml", "kink_convention.yaml",
                                  "two_hidden_units.yaml"])
def test_random_search_finds_witnesses_of_sat_specs(name: str) -> None:
    """The search that must find nothing against an unsat does find sat points."""
    spec = load_spec(SPECS / name)
    witness, tried = search_counterexample(spec, random.Random(1), points=3000, seconds=60)
    assert witness is not None, f"no point in {tried} tries"


def test_random_search_finds_nothing_for_a_proved_unsat() -> None:
    spec = load_spec(SPECS / "linear_hidden.yaml")
    witness, tried = search_counterexample(spec, random.Random(2), points=500, seconds=30,
                                           all_samples=True)
    assert witness is None
    assert tried == 500


@needs_torch
def test_torch_replay_agrees_on_a_true_witness() -> None:
    spec = load_spec(SPECS / "deep_leaky.yaml")
    result = solve(spec, SolveOptions(timeout=60))
    assert result.witness is not None and result.evaluation is not None
    replay, why = torch_replay(spec, result.witness, result.evaluation)
    assert replay is Replay.AGREE, why


@needs_torch
def test_torch_replay_flags_a_wrong_exact_gradient() -> None:
    """Plant a fault in the exact evaluation: the float64 replay must disagree."""
    import dataclasses

    spec = load_spec(SPECS / "relu_mse.yaml")
    result = solve(spec, SolveOptions(timeout=60))
    assert result.witness is not None and result.evaluation is not None
    gradients = dict(result.evaluation.gradients)
    gradients["b2"] = (Fraction(1, 3),)  # the verifier "thinks" dL/db2 = 1/3
    wrong = dataclasses.replace(result.evaluation, gradients=gradients)
    replay, why = torch_replay(spec, result.witness, wrong)
    assert replay is Replay.DISAGREE, why
    assert "b2" in why


@needs_torch
def test_torch_replay_convention_one_on_a_kink() -> None:
    """relu'(0) = 1 is replayed with torch.where; PyTorch's own relu would disagree."""
    spec = load_spec(SPECS / "kink_convention.yaml")
    result = solve(spec, SolveOptions(timeout=60))
    assert result.witness is not None and result.evaluation is not None
    assert result.evaluation.kinks, "the example is meant to sit on the kink"
    replay, why = torch_replay(spec, result.witness, result.evaluation)
    assert replay is Replay.AGREE, why


def test_a_runaway_solve_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A solve that ignores its timeout is killed and reported, not waited for."""

    def hang(*args: object, **kwargs: object) -> None:
        time.sleep(120)

    monkeypatch.setattr(fuzz, "solve", hang)
    spec = load_spec(SPECS / "relu_mse.yaml")
    started = time.perf_counter()
    solved = fuzz.guarded_solve(spec, SolveOptions(timeout=0.5), hard_limit=2)
    assert solved.overrun is not None
    assert time.perf_counter() - started < 10


def test_a_witness_rejection_in_the_child_is_a_disagreement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from smtgrad.engine import WitnessRejected

    def rejected(*args: object, **kwargs: object) -> None:
        raise WitnessRejected("planted", ("dL/db2 = 1, expected 0",))

    monkeypatch.setattr(fuzz, "solve", rejected)
    report = fuzz.CaseReport(index=0, seed=0, spec_text="")
    fuzz.check_spec(load_spec(SPECS / "relu_mse.yaml"), FuzzConfig(timeout=5),
                    random.Random(0), report)
    assert report.category is Category.DISAGREEMENT


# ----------------------------------------------------------------------------------------
# The fixed-seed batch.


def test_fixed_seed_batch_has_no_disagreement() -> None:
    """48 random specs, each solved and checked every way; about a minute on 2 cores."""
    config = FuzzConfig(timeout=2.0, points=400, search_seconds=1.5)
    summary = run_batch(48, seed=7, config=config, jobs=2)
    details = "\n\n".join(report.describe() for report in summary.failures)
    assert summary.disagreements == 0, details
    assert summary.errors == 0, details
    assert len(summary.reports) == 48
    decided = summary.counts["sat-verified"] + summary.counts["unsat-confirmed"] \
        + summary.counts["unsat-unconfirmed"]
    assert decided >= 30, dict(summary.counts)
    if torch_available():
        assert summary.counts["torch-agree"] >= 20, dict(summary.counts)


def test_fixed_seed_smooth_batch_has_no_disagreement() -> None:
    """A few specs with sigmoid/tanh/softmax units and bce/cross-entropy losses."""
    config = FuzzConfig(timeout=2.0, smooth=True, points=100, search_seconds=1.0,
                        cross_sat=False)
    summary = run_batch(10, seed=11, config=config, jobs=2)
    details = "\n\n".join(report.describe() for report in summary.failures)
    assert summary.disagreements == 0, details
    assert summary.errors == 0, details


def test_command_line_exit_codes(tmp_path: Path) -> None:
    process = subprocess.run([sys.executable, "-m", "smtgrad.fuzz", "--count", "2", "--seed",
                              "3", "--timeout", "2", "--points", "50", "--search-seconds", "1",
                              "--save", str(tmp_path / "cases")],
                             capture_output=True, text=True, timeout=300, check=False)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "disagreements: 0, errors: 0" in process.stdout
    assert "counts: sat-verified=" in process.stdout
    bad = subprocess.run([sys.executable, "-m", "smtgrad.fuzz", "--count", "-1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2


# ----------------------------------------------------------------------------------------
# Regressions found by the fuzzer.

#: python -m smtgrad.fuzz --seed 1, case 32: cvc5's model holds an algebraic number.
CVC5_ALGEBRAIC_SPEC = """
name: cvc5-algebraic
network:
  inputs: 2
  layers:
    - {units: 3, activation: leaky_relu}
    - {units: 3, activation: linear}
    - {units: 2, activation: linear}
loss: mse
samples: 2
fixed:
  X: [[3/2, 0], [0, -1]]
query:
  zero: ["W3[1,1]"]
  nonzero: ["W2[2,1]"]
assume:
  - (loss == 1/2) or (Y[1,1] <= -1/2)
  - loss > 0
generic: false
"""


#: python -m smtgrad.fuzz --seed 1, case 480: X = 0 leaves W1 out of the formula, so cvc5's
#: model has no value for it (z3 completes models; the cvc5 backend does not).
CVC5_UNASSIGNED_SPEC = """
name: cvc5-unassigned
network:
  inputs: 1
  layers:
    - {units: 3, activation: linear}
    - {units: 2, activation: leaky_relu, slope: 1/100}
    - {units: 1, activation: linear}
loss: {kind: mse, scale: 1}
targets: unit_interval
samples: 2
fixed:
  b2: [-2, 1/3]
  b3: [null]
  X: [[0], [0]]
query:
  zero: ["W1[2,0]"]
  nonzero: [b1]
"""


@pytest.mark.parametrize("text", [CVC5_ALGEBRAIC_SPEC, CVC5_UNASSIGNED_SPEC],
                         ids=["algebraic", "unassigned"])
def test_cvc5_models_are_not_an_internal_error(text: str, tmp_path: Path) -> None:
    """An algebraic or partial cvc5 model must be rationalised or reported unknown."""
    spec = tmp_path / "cvc5.yaml"
    spec.write_text(text, encoding="utf-8")
    process = subprocess.run([sys.executable, "-c", "from smtgrad.cli import main; main()",
                              "solve", str(spec), "--backend", "cvc5", "--timeout", "20"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert process.returncode in (0, 3), process.stdout + process.stderr
    assert "internal error" not in process.stderr


#: python -m smtgrad.fuzz --smooth --seed 2, case 7: the enclosure (Krawczyk) attempt crashes
#: with "zip() argument 2 is shorter than argument 1" in enclosure.py's dual-number product.
SMOOTH_ENCLOSURE_SPEC = """
name: smooth-enclosure
network:
  inputs: 1
  layers:
    - {units: 2, activation: sigmoid}
    - {units: 2, activation: softmax}
loss: {kind: cross_entropy, reduction: mean}
targets: class
samples: 2
fixed:
  Y: [0, 1]
query:
  zero: [W1]
assume:
  - (W1[0,0] != 0) or (-1*W2[1,0] + b1[0] == -1/2)
"""


def test_smooth_enclosure_attempt_is_not_an_internal_error(tmp_path: Path) -> None:
    spec = tmp_path / "smooth.yaml"
    spec.write_text(SMOOTH_ENCLOSURE_SPEC, encoding="utf-8")
    process = subprocess.run([sys.executable, "-c", "from smtgrad.cli import main; main()",
                              "solve", str(spec), "--timeout", "5"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert process.returncode in (0, 1, 3), process.stdout + process.stderr
    assert "internal error" not in process.stderr


# ----------------------------------------------------------------------------------------
# Item 1: --cross-check on every example spec.


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_cross_check_on_every_example(path: Path) -> None:
    spec = load_spec(path)
    timeout = 30
    try:
        process = subprocess.run([sys.executable, "-c", "from smtgrad.cli import main; main()",
                                  "solve", str(path), "--cross-check", "--format", "json",
                                  "--timeout", str(timeout)],
                                 capture_output=True, text=True, timeout=2 * timeout + 30,
                                 check=False)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"--cross-check --timeout {timeout} still running after "
                             f"{error.timeout:.0f} s; stderr: {error.stderr!r}") from None
    assert process.returncode in (0, 1, 3), process.stderr
    assert "Traceback" not in process.stderr
    data = json.loads(process.stdout)
    if spec.expect is not None:
        if data["verdict"] == "unknown" and spec.expect.verdict.value == "unsat":
            # An unsat the second solver could not confirm in time is reported unknown, by
            # design (never unsat without the confirmation).
            assert "solvers disagree" in data["reason"], data["reason"]
            assert "says unknown" in data["reason"], data["reason"]
        else:
            assert data["verdict"] == spec.expect.verdict.value, data.get("reason")
    if data["verdict"] == "unsat":
        # The unsat was confirmed by the second solver, which the result names.
        assert "cvc5" in data["solver"] + data.get("reason", ""), data


def test_cross_check_disagreement_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the second solver does not confirm an unsat, the verdict is unknown, never unsat."""
    from smtgrad.backends import SolverAnswer, SolverStatus
    from smtgrad.backends.cvc5_backend import Cvc5Backend

    def unsure(self: object, formula: object, timeout: float | None) -> SolverAnswer:
        return SolverAnswer(SolverStatus.UNKNOWN, reason="planted: cvc5 gave up")

    monkeypatch.setattr(Cvc5Backend, "solve", unsure)
    spec = load_spec(SPECS / "seed_single_sample.yaml")
    plain = solve(spec, SolveOptions(timeout=30))
    assert plain.verdict is Verdict.UNSAT
    checked = solve(spec, SolveOptions(timeout=30, cross_check=True))
    assert checked.verdict is Verdict.UNKNOWN, checked.reason
    assert "disagree" in checked.reason or "cvc5" in checked.reason


@settings(max_examples=5, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(spec_texts())
def test_hypothesis_driven_cases(text: str) -> None:
    """The strategy plugs into @given: a handful of full checks, shrinkable on failure."""
    report = fuzz.CaseReport(index=0, seed=0, spec_text=text)
    fuzz.check_spec(parse_spec(text), FuzzConfig(timeout=2.0, points=100, search_seconds=1.0,
                                                 cross_sat=False), random.Random(0), report)
    assert report.category not in (Category.DISAGREEMENT, Category.ERROR), report.describe()
