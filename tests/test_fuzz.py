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
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import network_yaml
from hypothesis import HealthCheck, given, settings

from smtgrad.engine import SolveOptions, solve
from smtgrad.methods.rank import solve_linear
from smtgrad.reference.verify import Status, verify
from smtgrad.spec import LossKind, TargetKind, Verdict, load_spec, parse_spec
from tools import fuzz
from tools.fuzz import (
    CaseClass,
    Category,
    FuzzCase,
    FuzzConfig,
    Replay,
    case_random,
    case_seeds,
    expected_walk,
    fixed_row_count,
    fixed_witness_of,
    least_samples,
    random_case,
    random_spec,
    random_spec_data,
    run_batch,
    search_counterexample,
    spec_texts,
    torch_available,
    torch_replay,
)

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
# Spec files only: a sweep grid (specs/atlas.yaml: base: and axes:) is not a spec.
EXAMPLES = [path for path in sorted(SPECS.glob("*.yaml"))
            if "\naxes:" not in path.read_text(encoding="utf-8")]

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
    assert all(fuzz.is_piecewise_linear(layer) for layer in spec.network.layers)


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


def test_a_witness_rejection_in_the_child_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """WitnessRejected (exit 4) is an internal error of smtgrad, reported as such."""
    from smtgrad.engine import WitnessRejected

    def rejected(*args: object, **kwargs: object) -> None:
        raise WitnessRejected("planted", ("dL/db2 = 1, expected 0",))

    monkeypatch.setattr(fuzz, "solve", rejected)
    report = fuzz.CaseReport(index=0, seed=0, spec_text="")
    fuzz.check_spec(load_spec(SPECS / "relu_mse.yaml"), FuzzConfig(timeout=5),
                    random.Random(0), report)
    assert report.category is Category.ERROR
    assert "planted" in "\n".join(report.details)


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
        + summary.counts["unsat-unconfirmed"] + summary.counts["spec-error-expected"]
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
    process = subprocess.run([sys.executable, "-m", "tools.fuzz", "--count", "2", "--seed",
                              "3", "--timeout", "2", "--points", "50", "--search-seconds", "1",
                              "--save", str(tmp_path / "cases")],
                             capture_output=True, text=True, timeout=300, check=False)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "disagreements: 0, errors: 0" in process.stdout
    assert "counts: sat-verified=" in process.stdout
    bad = subprocess.run([sys.executable, "-m", "tools.fuzz", "--count", "-1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2


# ----------------------------------------------------------------------------------------
# Regressions found by the fuzzer.

#: python -m tools.fuzz --seed 1, case 32: cvc5's model holds an algebraic number.
CVC5_ALGEBRAIC_SPEC = """
name: cvc5-algebraic
""" + network_yaml("3 leaky_relu", "3 linear", "2 linear", inputs=2) + """loss: mse
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


#: python -m tools.fuzz --seed 1, case 480: X = 0 leaves W1 out of the formula, so cvc5's
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


#: python -m tools.fuzz --smooth --seed 2, case 7: the enclosure (Krawczyk) attempt crashes
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
    if data["verdict"] == "unsat" and data["solver"] != "smtgrad exact evaluation":
        # The unsat was confirmed by the second solver, which the result names. (A fully
        # fixed spec is decided by exact evaluation of its one point: no solver runs.)
        assert "cvc5" in data["solver"] + data.get("reason", ""), data


def test_cross_check_disagreement_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the second solver does not confirm an unsat, the verdict is unknown, never unsat."""
    from smtgrad.backends import SolverAnswer, SolverStatus
    from smtgrad.backends.cvc5_backend import Cvc5Backend

    def unsure(self: object, formula: object, timeout: float | None,
               work: int | None = None) -> SolverAnswer:
        return SolverAnswer(SolverStatus.UNKNOWN, reason="planted: cvc5 gave up")

    monkeypatch.setattr(Cvc5Backend, "solve", unsure)
    monkeypatch.setattr(Cvc5Backend, "_solve", unsure)  # cvc5 racing z3 on the last step
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


# ----------------------------------------------------------------------------------------
# The targeted case classes (fixed data vs M, named samples, closed forms, degenerate
# points, fully fixed nets, label targets) and the biased unsat oracle.


def _cases(kind: CaseClass, count: int = 80, smooth: bool = False) -> list[FuzzCase]:
    return [random_case(random.Random(f"{kind.value}:{index}"), smooth, [kind])
            for index in range(count)]


def _fixed_entries(data: dict[str, object]) -> list[object]:
    fixed = data.get("fixed", {})
    assert isinstance(fixed, dict)
    found: list[object] = []
    stack = [value for name, value in fixed.items() if name not in ("X", "Y")]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            found.append(item)
    return found


@pytest.mark.parametrize("kind", list(CaseClass), ids=[kind.value for kind in CaseClass])
def test_every_case_class_generates_valid_specs(kind: CaseClass) -> None:
    for smooth in (False, True):
        for case in _cases(kind, 60, smooth):
            spec = parse_spec(case.text, f"<{kind.value}>")
            assert case.kind is kind
            assert spec.network.inputs <= 2 and all(layer.units <= 3
                                                    for layer in spec.network.layers)
            assert case.walk == expected_walk(case.data, case.samples, case.minimal)
            if case.walk is not None:
                low, high = case.walk
                assert 1 <= low <= high <= 6


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(fuzz.case_strategy(smooth=True))
def test_case_strategy_gives_valid_cases(case: FuzzCase) -> None:
    parse_spec(case.text, "<generated>")
    assert case.walk == expected_walk(case.data, case.samples, case.minimal)


def test_mixed_batch_draws_every_class() -> None:
    seen = Counter(random_case(case_random(0, index)).kind for index in range(400))
    assert set(seen) == set(CaseClass), seen
    assert 0.35 < seen[CaseClass.BASE] / 400 < 0.65, seen


def test_fixed_samples_cases() -> None:
    """Fixed rows define M: samples S != M must be refused, S == M and minimal walk M only."""
    outcomes: Counter[str] = Counter()
    for case in _cases(CaseClass.FIXED_SAMPLES, 120):
        spec = parse_spec(case.text)
        rows = fixed_row_count(case.data)
        assert rows is not None and spec.fixed_rows is not None
        assert spec.fixed_rows[1] == rows
        if case.samples is not None and case.samples != rows:
            assert case.walk is None
            outcomes["refused"] += 1
        else:
            assert case.walk == (rows, rows)
            outcomes["minimal" if case.minimal else "samples" if case.samples else "plain"] += 1
        outcomes["no samples key"] += "samples" not in case.data
    assert all(outcomes[key] >= 5 for key in ("refused", "minimal", "samples", "plain",
                                              "no samples key")), outcomes


def test_named_samples_cases() -> None:
    """The walk starts at 1 + the largest named sample, also with minimal and ranges."""
    outcomes: Counter[str] = Counter()
    for case in _cases(CaseClass.NAMED_SAMPLES, 120):
        spec = parse_spec(case.text)
        least = least_samples(case.data)
        assert least == spec.least_samples >= 2
        if case.walk is None:
            assert case.samples is not None and case.samples < least
            outcomes["refused"] += 1
            continue
        assert case.walk[0] == (max(least, spec.samples.min) if not case.minimal
                                and case.samples is None else case.walk[0])
        if case.minimal and case.samples is None and spec.samples.min == spec.samples.max:
            assert case.walk[0] == least
            outcomes["minimal"] += 1
        if spec.samples.min < least and case.samples is None:
            assert case.walk[0] == least
            outcomes["range raised"] += 1
    assert all(outcomes[key] >= 5 for key in ("refused", "minimal", "range raised")), outcomes


def test_expected_walk_follows_the_contract() -> None:
    fixed = {"samples": 3, "fixed": {"X": [[0], [1], [2]]}}
    assert expected_walk(fixed, None, False) == (3, 3)
    assert expected_walk(fixed, None, True) == (3, 3)
    assert expected_walk(fixed, 3, True) == (3, 3)
    assert expected_walk(fixed, 2, False) is None
    named = {"samples": {"min": 1, "max": 5}, "assume": ["X[2] > 0", "yhat[1] < 1"]}
    assert expected_walk(named, None, False) == (3, 5)
    assert expected_walk(named, None, True) == (3, 5)
    assert expected_walk({**named, "samples": 4}, None, True) == (3, 4)
    assert expected_walk({**named, "samples": 4}, None, False) == (4, 4)
    assert expected_walk(named, 2, False) is None
    assert expected_walk(named, 4, True) == (3, 4)


def test_closed_form_cases() -> None:
    outcomes: Counter[str] = Counter()
    for case in _cases(CaseClass.CLOSED_FORM, 120):
        spec = parse_spec(case.text)
        values = [str(v) for v in _fixed_entries(case.data)]
        logs = [v for v in values if "log" in v]
        assert logs, case.text
        outcomes["log(2) and log(3)"] += (any("log(2" in v or "log(1/2)" in v for v in logs)
                                          and any("log(3" in v for v in logs))
        smooth = any(not fuzz.is_piecewise_linear(layer) for layer in spec.network.layers)
        outcomes["sigmoid/tanh" if smooth else "piecewise"] += 1
        if smooth:
            assert case.timeout is not None
        outcomes["fixed X"] += "X" in spec.fixed
    assert all(outcomes[key] >= 10 for key in ("log(2) and log(3)", "sigmoid/tanh",
                                               "piecewise", "fixed X")), outcomes


def test_degenerate_cases() -> None:
    outcomes: Counter[str] = Counter()
    for case in _cases(CaseClass.DEGENERATE, 120):
        spec = parse_spec(case.text)
        assert not spec.generic
        text = " ".join(case.data.get("assume", []))
        if str(case.data.get("name", "")).startswith("fuzz-degenerate-"):
            outcomes["template"] += 1
        outcomes["zero weight"] += "] == 0" in text and "*" not in text
        outcomes["equal inputs"] += "] == X[" in text
        outcomes["kink"] += "*X[" in text
    assert all(outcomes[key] >= 8 for key in ("template", "zero weight", "equal inputs",
                                               "kink")), outcomes


def test_fully_fixed_cases_are_decidable() -> None:
    """Every value fixed; exact values (rationals, logs under sigmoid/tanh with integer
    inputs) give a decided verifier status, and solving the output layer makes some hold."""
    outcomes: Counter[str] = Counter()
    for case in _cases(CaseClass.FULLY_FIXED, 80):
        spec = parse_spec(case.text)
        witness = fixed_witness_of(spec)
        assert witness is not None, case.text
        if not case.decided:
            continue  # sigmoid / tanh at rationals: the exact verifier may take long
        status = verify(spec, witness).status
        assert status is not Status.UNDECIDED, case.text
        outcomes[status.value] += 1
        outcomes["closed form"] += "log" in case.text
    assert outcomes[Status.HOLDS.value] >= 10 and outcomes[Status.FAILS.value] >= 10, outcomes
    assert outcomes["closed form"] >= 5, outcomes


def test_label_cases() -> None:
    outcomes: Counter[str] = Counter()
    for case in _cases(CaseClass.LABELS, 80):
        spec = parse_spec(case.text)
        assert spec.targets in (TargetKind.BINARY, TargetKind.UNIT_INTERVAL)
        assert spec.loss.kind is LossKind.MSE
        assert all(fuzz.is_piecewise_linear(layer) for layer in spec.network.layers)
        top = {f"W{spec.network.depth}", f"b{spec.network.depth}"}
        outcomes["top zero"] += any(target.block in top for target in spec.query.zero)
        outcomes[spec.targets.value] += 1
    assert all(outcomes[key] >= 10 for key in ("top zero", "binary", "unit_interval")), outcomes


#: Witnesses need X[0] == X[1] and yhat = 1/2 exactly (binary labels 0 and 1).
EQUAL_INPUTS_SPEC = """
network: {inputs: 1, layers: [{units: 1, activation: relu}, {units: 1, activation: linear}]}
loss: mse
targets: binary
samples: 2
assume: ["X[0] == X[1]", "loss > 0"]
query: {zero: [W2, b2]}
"""

#: W1 != 0, so a nonzero dL/dW1 with dL/dW2 = dL/db2 = 0 needs a sample exactly on the kink
#: (relu'(0) = 1), the other inactive, and b2 = 1/2 between two different binary labels.
KINK_SPEC = """
network: {inputs: 1, layers: [{units: 1, activation: relu}, {units: 1, activation: linear}]}
loss: mse
targets: binary
samples: 2
conventions: {relu_grad_at_zero: 1}
assume: ["W1[0,0] != 0"]
query: {zero: [W2, b2], nonzero: [W1]}
"""

#: Fixed real targets (they define M = 2), equal two-column inputs forced: yhat = 1/2.
EQUAL_INPUTS_FIXED_Y_SPEC = """
network: {inputs: 2, layers: [{units: 2, activation: abs}, {units: 1, activation: linear}]}
loss: mse
fixed: {Y: [[1], [0]]}
assume: ["X[0,0] == X[1,0] and X[0,1] == X[1,1]", "loss > 0"]
query: {zero: [W2, b2]}
"""

#: M = 1: dL/db1 = 0 with dL/dW2 != 0 forces W2 = 0.
ZERO_WEIGHT_SPEC = """
network: {inputs: 1, layers: [{units: 1, activation: relu}, {units: 1, activation: linear}]}
loss: mse
targets: unit_interval
samples: 1
query: {zero: [b1], nonzero: [W2]}
"""


@pytest.mark.parametrize("text", [EQUAL_INPUTS_SPEC, KINK_SPEC, EQUAL_INPUTS_FIXED_Y_SPEC,
                                  ZERO_WEIGHT_SPEC],
                         ids=["equal-inputs", "kink", "equal-inputs-fixed-Y", "zero-weight"])
def test_biased_oracle_finds_degenerate_only_witnesses(text: str) -> None:
    """Against a (wrong) unsat the search must find the degenerate witnesses."""
    spec = parse_spec(text)
    for seed in range(3):
        witness, tried = search_counterexample(spec, random.Random(seed), points=300,
                                               seconds=30)
        assert witness is not None, f"seed {seed}: no point in {tried} tries"
        check = verify(spec, witness)
        assert check.status is Status.HOLDS
        if "X[0] == X[1]" in text or "X[0,0] == X[1,0]" in text:
            assert witness.inputs[0] == witness.inputs[1]
        if text is KINK_SPEC:
            assert check.evaluation is not None and check.evaluation.kinks
        if text is ZERO_WEIGHT_SPEC:
            assert witness.parameters.weights[1] == ((0,),)


def test_oracle_honours_fixed_values_and_stops_on_a_fully_fixed_spec() -> None:
    case = next(c for c in _cases(CaseClass.FULLY_FIXED, 40) if c.samples is None
                and not c.minimal)
    spec = parse_spec(case.text)
    fixed = fixed_witness_of(spec)
    started = time.perf_counter()
    witness, tried = search_counterexample(spec, random.Random(0), points=2000, seconds=30)
    assert time.perf_counter() - started < 5
    assert tried < 2000  # one point only: the search stops once every draw repeats
    if witness is not None:
        assert witness == fixed


def _case_report(case: FuzzCase) -> fuzz.CaseReport:
    report = fuzz.CaseReport(index=0, seed=0, spec_text=case.text, kind=case.kind.value,
                             options=case.options_text)
    fuzz.check_spec(parse_spec(case.text), FuzzConfig(timeout=3, points=100,
                                                      search_seconds=1, cross_sat=False),
                    random.Random(0), report, case)
    return report


FIXED_ROWS_DATA = {"network": {"inputs": 1, "layers": [{"units": 1, "activation": "relu"},
                                                      {"units": 1, "activation": "linear"}]},
                   "loss": "mse", "fixed": {"X": [[0], [1], [2]]},
                   "query": {"zero": ["W2", "b2"], "nonzero": ["W1"]}}


def test_a_refused_sample_count_is_counted_and_a_verdict_is_a_disagreement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    case = fuzz._case(CaseClass.FIXED_SAMPLES, FIXED_ROWS_DATA, samples=2)
    assert case.walk is None
    assert _case_report(case).category is Category.SPEC_ERROR

    from smtgrad import spec as spec_module

    def ignore(spec: object, samples: int | None, minimal: bool) -> object:
        # Planted fault: the engine forgets that fixed rows define M.
        return spec_module.SampleRange(samples or 1, samples or 1), ()

    monkeypatch.setattr("smtgrad.engine.sample_plan", ignore)
    report = _case_report(case)
    assert report.category is Category.DISAGREEMENT, report.describe()
    assert "must be refused" in "\n".join(report.details)


def test_a_walk_that_skips_the_named_samples_is_a_disagreement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = {**FIXED_ROWS_DATA, "samples": {"min": 1, "max": 3}, "assume": ["X[1] > 0"]}
    del data["fixed"]
    case = fuzz._case(CaseClass.NAMED_SAMPLES, data, minimal=True)
    assert case.walk == (2, 3)
    assert _case_report(case).category not in (Category.DISAGREEMENT, Category.ERROR)

    from smtgrad import spec as spec_module

    def from_one(spec: object, samples: int | None, minimal: bool) -> object:
        return spec_module.SampleRange(1, 3), ()  # planted: the walk starts at M=1

    monkeypatch.setattr("smtgrad.engine.sample_plan", from_one)
    report = _case_report(case)
    assert report.category is Category.DISAGREEMENT, report.describe()
    assert "the walk should go M=2..3" in "\n".join(report.details)


def test_a_fully_fixed_verdict_against_the_fixed_point_is_a_disagreement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    case = next(c for c in _cases(CaseClass.FULLY_FIXED, 80)
                if c.decided and c.samples is None and not c.minimal
                and verify(parse_spec(c.text), fixed_witness_of(parse_spec(c.text))
                           or fuzz.Witness(fuzz.Parameters((), ()), (), ())).status
                is Status.HOLDS)
    assert _case_report(case).category is Category.SAT_VERIFIED
    real = fuzz.solve

    def flipped(spec: object, options: SolveOptions) -> object:
        import dataclasses

        result = real(spec, options)  # type: ignore[arg-type]
        return dataclasses.replace(result, verdict=Verdict.UNSAT, witness=None,
                                   proved=f"M={result.samples}")

    monkeypatch.setattr(fuzz, "solve", flipped)
    report = _case_report(case)
    assert report.category is Category.DISAGREEMENT, report.describe()
    assert "the fixed point holds" in "\n".join(report.details)


def test_new_classes_in_a_short_batch() -> None:
    """A few cases of every new class, checked every way (no disagreement, no error)."""
    config = FuzzConfig(timeout=2.0, points=200, search_seconds=1.0, cross_sat=False,
                        classes=tuple(kind.value for kind in CaseClass
                                      if kind is not CaseClass.BASE and kind is not
                                      CaseClass.CLOSED_FORM))
    summary = run_batch(12, seed=5, config=config, jobs=2)
    details = "\n\n".join(report.describe() for report in summary.failures)
    assert summary.disagreements == 0, details
    assert summary.errors == 0, details
    assert len(summary.by_class) >= 3, summary.by_class
