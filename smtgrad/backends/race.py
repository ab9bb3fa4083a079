"""z3 and cvc5 side by side (backend ``both``): each in its own child process on the same
formula, the first definite answer wins and the other child is killed.

Why: on the complete path neither solver dominates (issue 19's profile: z3 proves the
strong softmax abstraction unsat in 25 s, cvc5 in 0.4 s; on fixed-data ReLU encodings
cvc5 answers in seconds where z3's nlsat gives up; on the residual/phase encodings of
free data z3 is usually the faster one). Two cores run both for the price of one.

Soundness and determinism:

* **unsat** is unsat whoever wins: each solver proved it on the same formula (the reason
  names the solver that answered);
* **sat** is a model of the winning solver, re-verified exactly by the caller (as for
  any backend); which solver wins may depend on the machine's load, so the witness is
  *the winning solver's* (each solver is deterministic on its own: fixed seeds, one
  thread, z3 within a counted ``rlimit``); the verdict sat does not depend on who wins;
* **unknown** only when neither decides (both reasons are given). A solver that would
  contradict the winner is not waited for (``--cross-check`` asks the other solver to
  confirm an unsat, and a disagreement there is unknown).

``work`` (z3 resource units) is passed to both as each backend reads it (z3 ``rlimit``;
cvc5 ``rlimit-per`` plus its time cap, see :mod:`smtgrad.backends.cvc5_backend`). An
unsat or a sat therefore never depends on the load; an *unknown* can, where only cvc5
(time-capped) would have decided.

Children are forked: a child inherits the parent's memory, so a z3 thread the parent
abandoned at an earlier timeout could in principle hold a z3-internal lock at the fork;
the child would then hang, and is killed at its limit like any child that overruns
(unknown, never a wrong answer).
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

from pysmt.fnode import FNode
from pysmt.shortcuts import Bool, Real

from smtgrad.backends import IrrationalValue, SolverAnswer, SolverStatus
from smtgrad.backends.plain import PlainModel
from smtgrad.backends.process import ChildResult, ChildStatus, race_in_children

#: What a child sends back: status, reason, {name: (kind, text)}, {name: why irrational},
#: {name: rational approximation of an irrational value}, resource units used.
_Plain = tuple[str, str, dict[str, tuple[str, str]], dict[str, str], dict[str, str],
               int | None]

#: Seconds the parent waits past a solver's own time limit before killing its child.
_KILL_MARGIN = 0.5


def _z3_child(formula: FNode, timeout: float | None, work: int | None) -> _Plain:
    """In a child: z3 on the formula (its own worker thread, as in-process), plain data."""
    from smtgrad.backends.z3_backend import Z3Backend

    answer = Z3Backend().solve(formula, timeout, work)
    values: dict[str, tuple[str, str]] = {}
    irrational: dict[str, str] = {}
    approximations: dict[str, str] = {}
    model = answer.model
    if answer.status is SolverStatus.SAT and model is not None:
        for symbol in formula.get_free_variables():
            name = symbol.symbol_name()
            if symbol.symbol_type().is_bool_type():
                values[name] = ("bool", "true" if model.truth(symbol) else "false")
                continue
            try:
                values[name] = ("real", str(model.value(symbol)))
            except IrrationalValue as error:
                irrational[name] = " ".join(str(error).split())[:200]
                approximations[name] = str(model.approximate(symbol))
    return (answer.status.value, answer.reason, values, irrational, approximations,
            answer.work)


def _cvc5_child(formula: FNode, timeout: float | None, work: int | None) -> _Plain:
    """In a child: cvc5 on the formula (the backend's own in-child function)."""
    from smtgrad.backends.cvc5_backend import Cvc5Backend, _child

    status, reason, values, irrational = _child(Cvc5Backend(), formula, timeout, work)
    return (status, reason, values, irrational, {}, None)


def _cvc5_proof_child(formula: FNode, timeout: float | None, work: int | None) -> _Plain:
    """cvc5 for proofs only: its unsat stands, a model it finds is set aside (the witness
    of a proof race always comes from z3, so it never depends on which solver is faster)."""
    plain = _cvc5_child(formula, timeout, work)
    if plain[0] == SolverStatus.SAT.value:
        return (SolverStatus.UNKNOWN.value, "cvc5 found a model; on this path witnesses come "
                "from z3 alone (load-independent)", {}, {}, {}, None)
    return plain


def _decisive(value: Any) -> bool:
    return isinstance(value, tuple) and value[0] in (SolverStatus.SAT.value,
                                                     SolverStatus.UNSAT.value)


class RaceBackend:
    """``both``: z3 and cvc5 in parallel child processes; the first definite answer."""

    name = "both"

    #: The cvc5 child: every definite answer, or (a proof race) unsat only.
    _cvc5_function: Any = staticmethod(_cvc5_child)

    def __init__(self) -> None:
        from smtgrad.backends.cvc5_backend import Cvc5Backend
        from smtgrad.backends.z3_backend import Z3Backend

        self._z3 = Z3Backend()
        self._cvc5 = Cvc5Backend()

    def version(self) -> str:
        return f"{self._z3.version()} + {self._cvc5.version()}"

    def versions(self) -> tuple[str, str]:
        return self._z3.version(), self._cvc5.version()

    def solve(self, formula: FNode, timeout: float | None,
              work: int | None = None) -> SolverAnswer:
        from smtgrad.backends.cvc5_backend import cvc5_time_limit

        start = time.perf_counter()
        cvc5_timeout = cvc5_time_limit(timeout, work)
        calls = [(_z3_child, (formula, timeout, work),
                  None if timeout is None else timeout + _KILL_MARGIN),
                 (self._cvc5_function, (formula, cvc5_timeout, work),
                  None if cvc5_timeout is None else cvc5_timeout + _KILL_MARGIN)]
        results = race_in_children(calls, _decisive)
        seconds = time.perf_counter() - start
        names = self.versions()
        reasons = []
        for solver, limit, result in zip(names, (timeout, cvc5_timeout), results,
                                         strict=True):
            answer = _answer(formula, solver, limit, result, seconds)
            if answer.status is not SolverStatus.UNKNOWN:
                return answer
            reasons.append(answer.reason)
        return SolverAnswer(SolverStatus.UNKNOWN, reason="; ".join(reasons), seconds=seconds,
                            work=_work(results[0]))


def _work(result: ChildResult[Any]) -> int | None:
    value = result.value
    return value[5] if result.status is ChildStatus.OK and isinstance(value, tuple) else None


def _answer(formula: FNode, solver: str, limit: float | None, result: ChildResult[Any],
            seconds: float) -> SolverAnswer:
    short = solver.split()[0]
    if result.status is not ChildStatus.OK or result.value is None:
        if result.error.startswith("stopped"):
            why = f"{short}: stopped (the other solver answered first)"
        elif result.status is ChildStatus.TIMEOUT:
            why = f"{short}: timeout after {limit:g} s" if limit is not None else \
                f"{short}: no answer"
        elif result.status is ChildStatus.RAISED:
            why = f"{short} failed: {result.error}"
        else:
            why = f"{short} crashed ({result.error})"
        return SolverAnswer(SolverStatus.UNKNOWN, reason=why, seconds=seconds, solver=solver)
    status, reason, values, irrational, approximations, work = result.value
    if status != SolverStatus.SAT.value:
        return SolverAnswer(SolverStatus(status), reason=reason, seconds=seconds, work=work,
                            solver=solver)
    symbols = {symbol.symbol_name(): symbol for symbol in formula.get_free_variables()}
    model = PlainModel(
        {symbols[name]: (Real(Fraction(text)) if kind == "real" else Bool(text == "true"))
         for name, (kind, text) in values.items()},
        {symbols[name]: text for name, text in irrational.items()},
        {symbols[name]: Real(Fraction(text)) for name, text in approximations.items()})
    return SolverAnswer(SolverStatus.SAT, model=model, seconds=seconds, work=work,
                        solver=solver)


class ProofRaceBackend(RaceBackend):
    """z3 with cvc5 beside it for proofs: the first unsat of either stands; sat comes from
    z3 alone, so verdict and witness stay a function of the spec (issue 18) while the
    second core works on the proof (issue 19). The default backend's last solver steps."""

    name = "z3 (cvc5 for unsat)"
    _cvc5_function = staticmethod(_cvc5_proof_child)
