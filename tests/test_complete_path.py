"""The complete path of issue 19: pieces settled by fixed values and assumptions (the
encoder drops their phases, the fixed-piece lemma uses their derivative), class-label
symmetry breaking, z3 and cvc5 raced in child processes, and exports that are what the
backends solve (same options, logic and declaration order), run through both solvers'
own parsers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import one_hidden

from smtgrad.encoding.phases import settled, settled_every_m
from smtgrad.engine import SolveOptions, WitnessRejected, solve
from smtgrad.methods.lemmas import piece_proof
from smtgrad.spec import Verdict, parse_spec

ACTIVE = ["W1[0,0]*X[*] + b1[0] > 0"]


def _spec(assume: list[str] | None = None, samples: int = 4, extra: str = "") -> Any:
    text = one_hidden(samples=samples, extra=extra)
    if assume:
        text += "assume: [" + ", ".join(f'"{a}"' for a in assume) + "]\n"
    return parse_spec(text)


# -- which pieces are settled -----------------------------------------------------------


def test_a_strict_assumption_settles_the_active_piece_at_every_sample() -> None:
    spec = _spec(ACTIVE)
    assert settled(spec, 4) == {(1, m, 0): 1 for m in range(4)}
    assert settled_every_m(spec) == {(1, 0): 1}
    # Scaled, negated and rearranged forms are the same interval.
    for text in ("-(W1[0,0]*X[*] + b1[0]) < 0", "2*W1[0,0]*X[*] > -2*b1[0]",
                 "0 < b1[0] + X[*]*W1[0,0]"):
        assert settled_every_m(_spec([text])) == {(1, 0): 1}, text


def test_the_kink_belongs_to_the_piece_the_convention_gives_it() -> None:
    # u >= 0 includes the kink: relu'(0) = 0 puts it on the flat piece, so [0, inf) lies
    # in no single piece; with relu'(0) = 1 it is the active piece's.
    weak = ["W1[0,0]*X[*] + b1[0] >= 0"]
    assert settled_every_m(_spec(weak)) == {}
    kink_one = _spec(weak, extra="conventions: {relu_grad_at_zero: 1}\n")
    assert settled_every_m(kink_one) == {(1, 0): 1}
    assert settled_every_m(_spec(["W1[0,0]*X[*] + b1[0] <= 0"])) == {(1, 0): 0}


def test_only_exact_matches_settle_a_piece() -> None:
    for text in ("W1[0,0]*X[*] > 0",  # b1 missing
                 "W1[0,0]*X[*] + b1[0] > 0 or W1[0,0] > 0",  # a disjunction
                 "W1[0,0]*X[*] + b1[0] != 0",
                 "W1[0,0]*X[*]*X[*] + b1[0] > 0"):
        assert settled_every_m(_spec([text])) == {}, text
    # One sample named: only that sample, and only at that M.
    spec = _spec(["W1[0,0]*X[1] + b1[0] > 0"])
    assert settled(spec, 4) == {(1, 1, 0): 1}
    assert settled_every_m(spec) == {}


def test_fixed_values_settle_pieces() -> None:
    dead = _spec(extra="fixed: {W1: [[0]], b1: [-1]}\n")
    assert settled_every_m(dead) == {(1, 0): 0}
    data = parse_spec(one_hidden(samples=None, extra=(
        "fixed: {W1: [[1]], b1: [-1], X: [[0], [1], [3]]}\n")))
    # u = -1, 0, 2: the flat piece owns the kink at 0 (relu'(0) = 0).
    assert settled(data, 3) == {(1, 0, 0): 0, (1, 1, 0): 0, (1, 2, 0): 1}


# -- the fixed-piece lemma --------------------------------------------------------------


@pytest.mark.parametrize("samples", [3, 8, 12, 50])
def test_all_active_is_unsat_for_every_m_by_the_lemma(samples: int) -> None:
    start = time.perf_counter()
    result = solve(_spec(ACTIVE, samples=samples))
    assert time.perf_counter() - start < 0.5
    assert result.verdict is Verdict.UNSAT
    assert result.proved == "all M"
    assert result.method == "fixed-piece lemma"
    assert "dL/db1 = 0" in result.reason


def test_a_dead_unit_kills_the_hidden_gradients() -> None:
    result = solve(_spec(samples=8, extra="fixed: {W1: [[0]], b1: [-1]}\n"))
    assert result.verdict is Verdict.UNSAT
    assert result.method == "fixed-piece lemma"


def test_the_lemma_does_not_fire_where_a_witness_exists() -> None:
    """The kink admitted (u >= 0, relu'(0) = 0): samples on the kink have derivative 0,
    others 1, so dL/db1 need not follow dL/db2, and a verified witness exists. A lemma
    (or a settled phase) that treated u >= 0 as the active piece would claim unsat here,
    and the engine's cross-check would catch it as a contradicted lemma."""
    spec = _spec(["W1[0,0]*X[*] + b1[0] >= 0"], samples=4)
    assert piece_proof(spec, 4) is None
    result = solve(spec, SolveOptions(timeout=30))
    assert result.verdict is Verdict.SAT
    witness = result.witness
    assert witness is not None
    (w,), b = witness.parameters.weights[0][0], witness.parameters.biases[0][0]
    kinks = [w * x + b == 0 for (x,) in witness.inputs]
    assert any(kinks)  # all on the active side would contradict the lemma


def test_one_settled_sample_keeps_a_sat_query_sat() -> None:
    """Sample 0 on the active side only: the phase of sample 0 is fixed in the encoding,
    the others stay free; the solver's witness passes the exact verifier (with the fast
    path off, the encoding itself must find it)."""
    spec = _spec(["W1[0,0]*X[0] + b1[0] > 0"], samples=3)
    result = solve(spec, SolveOptions(fast_path=False, timeout=30))
    assert result.verdict is Verdict.SAT
    assert result.witness is not None


def test_a_wrongly_settled_phase_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the encoder told that sample 0 is on the *flat* piece although the
    assumption puts it on the active side. The encoding then contradicts the assumption
    (unsat, where the real query is sat) or yields a witness the verifier rejects; both
    are visible, and the honest analysis gives sat."""
    import smtgrad.encoding.builder as builder

    spec = _spec(["W1[0,0]*X[0] + b1[0] > 0"], samples=3)
    honest = solve(spec, SolveOptions(fast_path=False, lemmas=False, timeout=30))
    assert honest.verdict is Verdict.SAT
    monkeypatch.setattr(builder, "settled_pieces", lambda spec, samples: {(1, 0, 0): 0})
    try:
        planted = solve(spec, SolveOptions(fast_path=False, lemmas=False, timeout=30))
    except WitnessRejected:
        return
    assert planted.verdict is not Verdict.SAT


# -- softmax class labels -----------------------------------------------------------------

SOFTMAX = """\
network: {inputs: 1, layers: [{units: 2, activation: relu}, {units: 3, activation: softmax}]}
loss: cross_entropy
targets: class
samples: 3
query: {zero: [W2, b2], nonzero: [W1, b1]}
"""


def test_softmax_three_classes_three_samples_is_unsat_quickly() -> None:
    start = time.perf_counter()
    result = solve(parse_spec(SOFTMAX), SolveOptions(timeout=60))
    assert result.verdict is Verdict.UNSAT
    assert "abstraction" in result.method
    assert time.perf_counter() - start < 20


def test_class_order_only_where_classes_are_exchangeable() -> None:
    from smtgrad.encoding.builder import encode
    from smtgrad.encoding.environment import private_environment
    from smtgrad.encoding.modes import Mode, ModeKind

    def ordered(text: str) -> bool:
        with private_environment():
            encoding = encode(parse_spec(text), 3, Mode(ModeKind.ABSTRACT))
            return "class_0_0" in {str(a) for a in encoding.assertions} or any(
                a.is_implies() and str(a.arg(1)) == "False" for a in encoding.assertions)

    assert ordered(SOFTMAX)
    assert not ordered(SOFTMAX.replace("zero: [W2, b2]", "zero: [W2, 'b2[0]', 'b2[1]', "
                                       "'b2[2]']"))
    assert not ordered(SOFTMAX + "fixed: {b2: [0, 0, 1]}\n")
    assert not ordered(SOFTMAX + "assume: ['yhat[0,0] > 1/2']\n")


# -- both solvers at once -------------------------------------------------------------------


def _slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slow"


def test_the_race_stops_the_slower_child() -> None:
    from smtgrad.backends.process import ChildStatus, race_in_children

    start = time.perf_counter()
    results = race_in_children([(_slow, (30.0,), 60.0), (_slow, (0.0,), 60.0)],
                               lambda value: value == "slow")
    assert time.perf_counter() - start < 10
    assert results[1].status is ChildStatus.OK
    assert results[0].status is ChildStatus.TIMEOUT
    assert results[0].error.startswith("stopped")


def test_the_race_times_out_each_child_on_its_own() -> None:
    from smtgrad.backends.process import ChildStatus, race_in_children

    results = race_in_children([(_slow, (30.0,), 0.3), (_slow, (0.1,), 5.0)],
                               lambda value: False)
    assert [r.status for r in results] == [ChildStatus.TIMEOUT, ChildStatus.OK]


@pytest.mark.parametrize(("text", "verdict"), [
    (one_hidden(samples=3), Verdict.SAT),
    (one_hidden(samples=2), Verdict.UNSAT),
])
def test_backend_both_names_the_solver_that_answered(text: str, verdict: Verdict) -> None:
    pytest.importorskip("cvc5")
    result = solve(parse_spec(text), SolveOptions(backend="both", fast_path=False,
                                                  lemmas=False, timeout=30))
    assert result.verdict is verdict
    assert result.solver.startswith(("z3", "cvc5"))
    assert "+" not in result.solver


# -- export = what is solved ----------------------------------------------------------------


def _run_z3(text: str) -> str:
    import z3

    solver = z3.Solver()
    solver.set("timeout", 30_000)
    solver.from_string(text.replace("(get-model)", ""))
    return str(solver.check())


def _run_cvc5(text: str) -> str:
    cvc5 = pytest.importorskip("cvc5")
    terms = cvc5.TermManager()
    solver = cvc5.Solver(terms)
    solver.setOption("tlimit-per", "30000")
    symbols = cvc5.SymbolManager(terms)
    parser = cvc5.InputParser(solver, symbols)
    parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, text.replace("(get-model)", ""),
                          "export")
    answer = ""
    while True:
        command = parser.nextCommand()
        if command.isNull():
            break
        answer = command.invoke(solver, symbols).strip() or answer
    return answer


def _export(text: str, samples: int, solver: str, mode: Any = None) -> tuple[str, Any]:
    from smtgrad.encoding.builder import encode
    from smtgrad.encoding.environment import private_environment
    from smtgrad.encoding.modes import EXACT
    from smtgrad.encoding.smtlib import to_smtlib

    with private_environment():
        encoding = encode(parse_spec(text), samples, mode or EXACT)
        return to_smtlib(encoding, "test", solver=solver), encoding


@pytest.mark.parametrize("solver", ["z3", "cvc5"])
@pytest.mark.parametrize(("text", "samples", "expected"), [
    (one_hidden(samples=3), 3, "sat"),
    (one_hidden(samples=2), 2, "unsat"),
    (one_hidden(samples=8) + "assume: ['W1[0,0]*X[*] + b1[0] > 0']\n", 8, "unsat"),
])
def test_an_export_runs_through_both_solvers_parsers(solver: str, text: str, samples: int,
                                                    expected: str) -> None:
    script, _ = _export(text, samples, solver)
    runner = _run_z3 if solver == "z3" else _run_cvc5
    assert runner(script) == expected
    if solver == "z3":  # a file for z3 is plain SMT-LIB: cvc5 reads it too
        assert _run_cvc5(script) == expected


def test_the_export_declares_in_the_order_the_cvc5_backend_creates() -> None:
    """cvc5's coverings order variables by creation; the backend creates them in
    declaration_order, and the export declares them in the same order."""
    pytest.importorskip("cvc5")
    import re

    from pysmt.logics import QF_NRA
    from pysmt.shortcuts import Solver

    from smtgrad.encoding.environment import private_environment
    from smtgrad.encoding.solving import OPTIONS

    script, encoding = _export(SOFTMAX, 3, "cvc5", _abstract())
    declared = re.findall(r"\(declare-fun (\S+) \(\)", script)
    for option, value in OPTIONS["cvc5"].items():
        assert f"(set-option :{option} {value})" in script
    with private_environment():
        formula = encoding.formula()
        with Solver(name="cvc5", logic=QF_NRA) as solver:
            from smtgrad.encoding.solving import declaration_order

            for symbol in declaration_order(formula):
                solver.converter.convert(symbol)
            solver.add_assertion(formula)
            created = sorted(formula.get_free_variables(),
                             key=lambda s: solver.converter.convert(s).getId())
    assert declared == [symbol.symbol_name() for symbol in created]


def _abstract() -> Any:
    from smtgrad.encoding.modes import Mode, ModeKind

    return Mode(ModeKind.ABSTRACT)
