"""The engine: SMT without the fast path, sample reduction, determinism, outcomes, deadlines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import network_yaml

from smtgrad.backends import SolverAnswer, SolverStatus, installed_backends
from smtgrad.engine import SolveOptions, WitnessRejected, solve
from smtgrad.reference.verify import verify
from smtgrad.spec import Verdict, load_spec, parse_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"
SEED = SPECS / "relu_mse.yaml"


def test_smt_path_finds_the_seed_witness() -> None:
    spec = load_spec(SEED)
    result = solve(spec, SolveOptions(backend="z3", fast_path=False, timeout=60))
    assert result.verdict is Verdict.SAT
    assert result.samples == 3
    assert "z3" in result.method and "rank" not in result.method
    assert result.witness is not None and result.witness.samples == 3
    check = verify(spec, result.witness)
    assert check.accepted, check.failures
    assert check.evaluation is not None
    assert result.evaluation is not None
    assert result.evaluation.gradients == check.evaluation.gradients
    assert result.certificate == "exact"


def test_default_options_find_the_seed_witness() -> None:
    spec = load_spec(SEED)
    result = solve(spec, SolveOptions(backend="z3", timeout=60))
    assert result.verdict is Verdict.SAT
    assert result.witness is not None and verify(spec, result.witness).accepted


def test_rank_criterion_alone_finds_the_seed_witness() -> None:
    from smtgrad.methods.rank import search

    spec = load_spec(SEED)
    witnesses = []
    for _ in range(2):
        found = search(spec, 3, time.perf_counter() + 20,
                       accept=lambda w: verify(spec, w).accepted)
        assert found is not None
        assert verify(spec, found).accepted
        witnesses.append(found)
    assert witnesses[0] == witnesses[1]  # seeded: the same draw every time
    # Nothing for one sample (the query is unsat there): the fast path never claims unsat.
    assert search(spec.with_samples(1), 1, time.perf_counter() + 0.5) is None


def test_sample_reduction_proves_all_m() -> None:
    spec = load_spec(SPECS / "linear_hidden.yaml")
    # (By default the linear-identity lemma settles this spec before any solver runs.)
    result = solve(spec, SolveOptions(backend="z3", timeout=60, lemmas=False))
    assert result.verdict is Verdict.UNSAT
    assert result.proved == "all M"
    assert "reduc" in result.reason  # says which argument proves every M
    assert result.witness is None
    # Without the reduction, only the M that was asked is proved.
    plain = solve(spec, SolveOptions(backend="z3", timeout=60, reduction=False, lemmas=False))
    assert plain.verdict is Verdict.UNSAT
    assert plain.proved == "M=6"


@pytest.mark.parametrize(("zero", "nonzero", "expected"), [
    ("[W2, b2]", "[W1, b1]", 9),  # 2 + 1 + 4 + 2 entries of a 2-2-1 net
    ("[W2, 'W2[0,1]', b2]", "[W1]", 7),  # an entry of a queried block counts once
    ("['W1[0,0]', 'W1[0,0]', 'b1[1]']", "[b2]", 3),  # a repeated entry counts once
])
def test_reduction_bound_counts_distinct_queried_entries(zero: str, nonzero: str,
                                                         expected: int) -> None:
    from smtgrad.engine import reduction_bound

    spec = parse_spec(textwrap.dedent(f"""\
        network:
          inputs: 2
          layers:
            - {{units: 2, activation: relu}}
            - {{units: 1, activation: linear}}
        loss: mse
        samples: 3
        query:
          zero: {zero}
          nonzero: {nonzero}
        """), "<bound>")
    assert reduction_bound(spec) == expected


def test_sample_reduction_pads_a_witness() -> None:
    # 4 queried entries, so M = 6 is decided at M = 4 and padded with zero-residual copies.
    spec = load_spec(SEED).with_samples(6)
    result = solve(spec, SolveOptions(backend="z3", fast_path=False, timeout=60))
    assert result.verdict is Verdict.SAT
    assert result.samples == 6
    assert result.witness is not None and result.witness.samples == 6
    assert verify(spec, result.witness).accepted
    assert result.evaluation is not None
    residuals = [row[0] for row in result.evaluation.residuals]
    assert residuals[4:] == [0, 0]  # the padded copies
    assert "padded" in result.method


def test_single_sample_is_unsat_for_that_m_only() -> None:
    result = solve(load_spec(SPECS / "seed_single_sample.yaml"), SolveOptions(timeout=60))
    assert result.verdict is Verdict.UNSAT
    assert result.proved == "M=1"


@pytest.mark.parametrize(("name", "options"), [
    ("relu_mse.yaml", {}),
    ("relu_mse.yaml", {"fast_path": False}),
    ("two_hidden_units.yaml", {}),
    ("kink_convention.yaml", {"fast_path": False, "backend": "cvc5"}),
], ids=["seed-default", "seed-z3", "generic-default", "kink-cvc5"])
def test_determinism(name: str, options: dict[str, Any]) -> None:
    if options.get("backend", "z3") not in installed_backends():
        pytest.skip("backend not installed")
    spec = load_spec(SPECS / name)
    results = [solve(spec, SolveOptions(timeout=60, **options)) for _ in range(3)]
    assert all(r.verdict is Verdict.SAT for r in results)
    assert results[0].witness is not None
    assert results[1].witness == results[0].witness
    assert results[2].witness == results[0].witness
    assert len({r.method for r in results}) == 1


def test_determinism_does_not_depend_on_earlier_solves() -> None:
    """A spec solved, then another spec, then the first again: the same witness.

    Run in a fresh interpreter so that the history is exactly this one. (Z3's shared
    main context keeps state from earlier queries; a solve must not depend on what was
    solved before it in the same process.)
    """
    script = textwrap.dedent(f"""
        from smtgrad.engine import SolveOptions, solve
        from smtgrad.spec import load_spec
        deep = load_spec({str(SPECS / "deep_leaky.yaml")!r})
        seed = load_spec({str(SPECS / "relu_mse.yaml")!r})
        options = SolveOptions(timeout=60, fast_path=False)
        first = solve(deep, options).witness
        solve(seed, options)
        second = solve(deep, options).witness
        print(first == second)
        print(first)
        print(second)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    same, first, second = done.stdout.splitlines()
    assert same == "True", f"first solve: {first}\nafter another spec: {second}"


def test_minimal_option_walks_from_one() -> None:
    result = solve(load_spec(SEED), SolveOptions(minimal=True, timeout=60))
    assert [(a.samples, a.verdict) for a in result.attempts] == [
        (1, Verdict.UNSAT), (2, Verdict.UNSAT), (3, Verdict.SAT)]
    assert result.samples == 3


def test_samples_option_overrides_the_spec() -> None:
    result = solve(load_spec(SEED), SolveOptions(samples=2, timeout=60))
    assert result.verdict is Verdict.UNSAT
    assert result.proved == "M=2"
    assert [a.samples for a in result.attempts] == [2]


def test_range_reports_every_unsat() -> None:
    spec = load_spec(SPECS / "seed_minimal.yaml")
    result = solve(spec, SolveOptions(samples=2, minimal=True, timeout=60))
    assert result.verdict is Verdict.UNSAT
    assert result.proved == "M=1..2"


def _forced(status: SolverStatus) -> Any:
    def answer(self: Any, formula: Any, timeout: float | None,
               work: int | None = None) -> SolverAnswer:
        return SolverAnswer(status, reason="forced")

    return answer


def test_unknown_is_never_unsat(monkeypatch: Any) -> None:
    from smtgrad.backends.cvc5_backend import Cvc5Backend
    from smtgrad.backends.z3_backend import Z3Backend

    monkeypatch.setattr(Z3Backend, "solve", _forced(SolverStatus.UNKNOWN))
    # cvc5 races z3 for the proof on the last step: it must give up too.
    monkeypatch.setattr(Cvc5Backend, "_solve", _forced(SolverStatus.UNKNOWN))
    result = solve(load_spec(SPECS / "seed_minimal.yaml"), SolveOptions(timeout=60,
                                                                        lemmas=False))
    # M = 1 is unknown: the walk stops there, it does not go on to a larger M.
    assert result.verdict is Verdict.UNKNOWN
    assert result.proved is None
    assert [a.samples for a in result.attempts] == [1]
    assert "forced" in result.reason


def test_rejected_witness_is_an_error(monkeypatch: Any) -> None:
    import smtgrad.methods.base
    from smtgrad.reference.verify import Verification

    def reject(*args: Any, **kwargs: Any) -> Verification:
        return Verification(False, ("forced rejection",), None)

    monkeypatch.setattr(smtgrad.methods.base, "verify", reject)  # every method's verifier
    with pytest.raises(WitnessRejected) as caught:
        solve(load_spec(SEED), SolveOptions(fast_path=False, timeout=60))
    assert "forced rejection" in str(caught.value)


def test_cross_check_names_both_solvers() -> None:
    if "cvc5" not in installed_backends():
        pytest.skip("cvc5 not installed")
    result = solve(load_spec(SPECS / "seed_single_sample.yaml"),
                   SolveOptions(cross_check=True, timeout=60))
    assert result.verdict is Verdict.UNSAT
    assert "z3" in result.solver and "cvc5" in result.solver


def test_cross_check_disagreement_is_unknown(monkeypatch: Any) -> None:
    if "cvc5" not in installed_backends():
        pytest.skip("cvc5 not installed")
    from smtgrad.backends.cvc5_backend import Cvc5Backend

    monkeypatch.setattr(Cvc5Backend, "solve", _forced(SolverStatus.UNKNOWN))
    monkeypatch.setattr(Cvc5Backend, "_solve", _forced(SolverStatus.UNKNOWN))  # the race's
    result = solve(load_spec(SPECS / "seed_single_sample.yaml"),
                   SolveOptions(cross_check=True, timeout=60))
    assert result.verdict is Verdict.UNKNOWN
    assert "disagree" in result.reason


def test_fixed_values_are_kept() -> None:
    spec = load_spec(SPECS / "kink_convention.yaml")
    result = solve(spec, SolveOptions(fast_path=False, timeout=60))
    assert result.witness is not None
    params = result.witness.parameters
    assert params.weights[0] == ((Fraction(1),),) and params.biases[0] == (Fraction(0),)
    assert result.witness.inputs == ((Fraction(0),), (Fraction(-1),))
    assert result.evaluation is not None
    assert result.evaluation.gradients["b1"] != (0,)
    assert [(k.sample, k.point) for k in result.evaluation.kinks] == [(0, 0)]


def test_enclosure_margins_accept_rational_pre_activations() -> None:
    """The enclosure search's margin check on a point whose first layer is all rational.

    Only b2 is unknown here, so the hidden pre-activations are plain Fractions, which
    mpmath.mpf cannot convert (TypeError: cannot create mpf from Fraction(...)). Seen in
    the golden run of sigmoid_bce_hard on cvc5 (a crash instead of a verdict).
    """
    import mpmath

    from smtgrad.reference import intervals as enclosure
    from smtgrad.reference.network import Parameters

    if not hasattr(enclosure, "_margins_ok"):
        pytest.skip("enclosure._margins_ok was refactored away")
    path = SPECS / "sigmoid_bce_hard.yaml"
    if not path.exists():
        pytest.skip("sigmoid_bce_hard.yaml is not in specs/")
    spec = load_spec(path).with_samples(3)
    F = Fraction
    point = enclosure.Point(
        Parameters((((F(-1),),), ((F(1),),)), ((F(-1),), (F(0),))),
        ((F(-1),), (F(-2),), (F(-5),)), ((F(1),), (F(0),), (F(1),)))
    answer = enclosure._margins_ok(spec, point, [("b2", (0,))], [mpmath.mpf(0)])
    assert answer in (True, False)


# ----------------------------------------------------------------------------------------
# Deadlines: --timeout is "seconds for the whole search".

def test_z3_timeout_is_honoured(hard_spec_text: str) -> None:
    """z3's own timeout fires late on this query (preprocessing is not interruptible by
    it), so the backend has to enforce the deadline itself."""
    smaller = hard_spec_text.replace("units: 6", "units: 5").replace(
        "[1, -2, 3, 5, -1, 2, 7, 4, -3, 0, 6, 1, -5, 2, 3, 8, -1, 4, 2, -2]",
        "[1, -2, 3, 5, -1, 2, 7, 4, -3, 0, 6, 1, -5, 2]")
    spec = parse_spec(smaller, "hard.yaml")
    solve(parse_spec(hard_spec_text.replace("units: 6", "units: 1"), "warm.yaml"),
          SolveOptions(timeout=0.2))  # imports and caches warm
    start = time.perf_counter()
    result = solve(spec, SolveOptions(backend="z3", timeout=0.2))
    elapsed = time.perf_counter() - start
    assert result.verdict is Verdict.UNKNOWN
    assert elapsed < 0.2 + 1.0, f"timeout 0.2 s, took {elapsed:.2f} s"


XOR = network_yaml("2 sigmoid", "1 sigmoid", inputs=2) + """\
loss: mse
fixed:
  X: [[0, 0], [0, 1], [1, 0], [1, 1]]
  Y: [[0], [1], [1], [0]]
query:
  zero: [W1, b1, W2, b2]
assume: ["loss > 0"]
"""


def test_cvc5_timeout_is_honoured(tmp_path: Path) -> None:
    """cvc5 on the monotone abstraction of the XOR stationary-point query, asked for 1 s.

    Run in a child process (killed after 5 s) because an overrun blocks the caller
    (asked for 1 s, it ran for more than 20 s when this test was written).
    """
    if "cvc5" not in installed_backends():
        pytest.skip("cvc5 not installed")
    spec_path = tmp_path / "xor.yaml"
    spec_path.write_text(XOR, encoding="utf-8")
    script = textwrap.dedent(f"""
        import time
        from smtgrad.spec import load_spec
        from smtgrad.encoding.builder import Mode, ModeKind, encode
        from smtgrad.backends.cvc5_backend import Cvc5Backend
        spec = load_spec({str(spec_path)!r})
        formula = encode(spec, 4, Mode(ModeKind.ABSTRACT)).formula()
        start = time.perf_counter()
        answer = Cvc5Backend().solve(formula, 1.0)
        print(answer.status.value, round(time.perf_counter() - start, 2))
    """)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("Cvc5Backend.solve(formula, timeout=1.0) was still running after 5 s")
    assert done.returncode == 0, done.stderr
    status, seconds = done.stdout.split()
    assert status in ("unknown", "sat", "unsat")
    assert float(seconds) < 2.0
