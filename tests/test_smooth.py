"""Exact log-lattice numbers, certified enclosures, and the smooth solving paths."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import mpmath
import pytest

from smtgrad.engine import SolveOptions, solve
from smtgrad.numbers.lognum import LatticeFunctions, LogNumber, LogSum, parse_value
from smtgrad.reference.intervals import Enclosure, parse_enclosure
from smtgrad.reference.verify import verify
from smtgrad.reference.witness import witness_from_json
from smtgrad.report import result_json
from smtgrad.spec import Verdict, load_spec

ROOT = Path(__file__).resolve().parent.parent
L2 = LogNumber.log(Fraction(2))


def test_log_numbers_are_exact() -> None:
    x = 3 * L2 / 2
    assert x - x == 0
    assert x != 0
    assert x > 1 > L2 > Fraction(69, 100)
    assert str(x) == "3*log(2)/2"
    assert parse_value("3*log(2)/2") == x
    assert parse_value(str(L2 * L2 / 4 + Fraction(1, 2))) == L2 * L2 / 4 + Fraction(1, 2)
    # ln 2 is transcendental: no nonzero rational polynomial in it vanishes.
    assert (L2 * L2 - 2 * L2 + Fraction(1, 3)) != 0


def test_lattice_functions_are_rational() -> None:
    f = LatticeFunctions()
    assert f.sigmoid(L2) == Fraction(2, 3)
    assert f.sigmoid(-2 * L2) == Fraction(1, 5)
    assert f.tanh(L2) == Fraction(3, 5)
    assert f.softmax([L2, 0 * L2, -L2]) == (Fraction(4, 7), Fraction(2, 7), Fraction(1, 7))
    # Mixed bases share one normal form (logs of primes): ln 3 - ln 2 = ln(3/2).
    L3 = LogNumber.log(Fraction(3))
    assert f.sigmoid(L3 - L2) == Fraction(3, 5)
    assert f.tanh((L3 - L2) / 2) == Fraction(1, 5)  # exp(2x) = 3/2
    with pytest.raises(ValueError):
        f.sigmoid(Fraction(1))  # sigmoid(1) is transcendental


def test_log_sums_decide_zero_and_sign_exactly() -> None:
    # LogSum is now a factory of LogNumbers (kept for compatibility).
    zero = LogSum(Fraction(0), {Fraction(2): Fraction(1), Fraction(3): Fraction(1),
                                Fraction(6): Fraction(-1)})
    assert zero == 0
    positive = LogSum(Fraction(0), {Fraction(3): Fraction(1), Fraction(2): Fraction(-1)})
    assert positive > 0
    assert float(positive) == pytest.approx(float(mpmath.log(1.5)))
    assert LogSum(Fraction(-1, 2), {Fraction(2): Fraction(1)}) > 0  # ln 2 > 1/2
    assert isinstance(zero, LogNumber) and zero.rational() == 0
    assert positive == LogNumber.log(Fraction(3, 2))
    assert positive != LogNumber.log(Fraction(4, 3))


def test_design_hard_label_witness_checks_exactly() -> None:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    data = json.loads((ROOT / "examples" / "design_hard_label_witness.json").read_text())
    check = verify(spec, witness_from_json(data, spec.network, spec.targets))
    assert check.accepted, check.failures
    assert check.evaluation is not None
    assert check.evaluation.gradients["b1"][0] == L2 / 10
    assert check.evaluation.gradients["W1"][0][0] == L2 / 10
    # Mutations: W2 = ln 3 instead of ln 2, or one label flipped, break it. Mixed bases
    # are evaluated exactly: the query itself fails.
    for key, value in (("W2", [["log(3)"]]), ("b2", ["log(2)"])):
        bad = witness_from_json({**data, key: value}, spec.network, spec.targets)
        check = verify(spec, bad)
        assert not check.accepted
        assert any("expected 0" in failure for failure in check.failures), check.failures
    flipped = dict(data, Y=["0", *data["Y"][1:]])
    assert not verify(spec, witness_from_json(flipped, spec.network, spec.targets)).accepted


@pytest.fixture(scope="module")
def hard_label_result() -> dict[str, object]:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    result = solve(spec, SolveOptions(samples=3, timeout=120))
    assert result.verdict is Verdict.SAT
    assert result.certificate == "enclosure"
    return result_json(result)


def test_enclosure_witness_is_recertified(hard_label_result: dict[str, object]) -> None:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    witness = witness_from_json(hard_label_result, spec.network, spec.targets)
    assert verify(spec, witness).accepted
    boxes = [v for row in hard_label_result["witness"].values()  # type: ignore[attr-defined]
             for v in _flat(row) if v.startswith("[")]
    assert boxes, "an enclosure certificate has interval entries"
    for text in boxes:
        box = parse_enclosure(text)
        assert box is not None
        for bound in text[1:-1].split(","):
            assert len(bound.strip().lstrip("-").replace(".", "").lstrip("0")) >= 30
    assert hard_label_result["gradients"]["W2"] == [["0"]]  # type: ignore[index]


def test_moved_or_widened_boxes_are_rejected(hard_label_result: dict[str, object]) -> None:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    data = json.loads(json.dumps(hard_label_result["witness"]))
    name, index = next((k, i) for k, rows in data.items() for i, v in enumerate(_flat(rows))
                       if v.startswith("["))
    original = parse_enclosure(_flat(data[name])[index])
    assert original is not None
    width = original.hi - original.lo
    for box in (Enclosure(original.lo + 3 * width, original.hi + 3 * width),
                Enclosure(original.lo - Fraction(1, 2), original.hi + Fraction(1, 2))):
        moved = json.loads(json.dumps(data))
        _set_flat(moved, name, index, str(box))
        witness = witness_from_json(moved, spec.network, spec.targets)
        assert not verify(spec, witness).accepted


def _flat(rows: object) -> list[str]:
    if isinstance(rows, list):
        return [item for row in rows for item in _flat(row)]
    return [str(rows)]


def _set_flat(data: dict[str, object], name: str, index: int, value: str) -> None:
    rows = data[name]
    assert isinstance(rows, list)
    if rows and isinstance(rows[0], list):
        width = len(rows[0])
        rows[index // width][index % width] = value
    else:
        rows[index] = value


@pytest.mark.parametrize(("stem", "verdict", "samples"), [
    ("sigmoid_bce_soft", Verdict.SAT, 3),
    ("tanh_mse", Verdict.SAT, 3),
    ("xor_sigmoid_stationary", Verdict.SAT, 4),
])
def test_smooth_lattice_witnesses_are_exact(stem: str, verdict: Verdict, samples: int) -> None:
    spec = load_spec(ROOT / "specs" / f"{stem}.yaml")
    result = solve(spec, SolveOptions(timeout=120))
    assert result.verdict is verdict
    assert result.samples == samples
    assert result.certificate == "exact"
    data = result_json(result)
    again = witness_from_json(data, spec.network, spec.targets)
    assert verify(spec, again).accepted


def test_hard_labels_two_samples_are_impossible() -> None:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    result = solve(spec, SolveOptions(samples=2, timeout=60))
    assert result.verdict is Verdict.UNSAT
    assert result.method == "two-sample lemma"
    assert result.proved == "M=2"
    # The monotone abstraction proves it as well, independently of the lemma.
    result = solve(spec, SolveOptions(samples=2, timeout=60, lemmas=False))
    assert result.verdict is Verdict.UNSAT
    assert "abstraction" in result.method
    assert result.proved == "M=2"
