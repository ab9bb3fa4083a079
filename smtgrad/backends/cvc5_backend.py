"""cvc5 backend, driven through pysmt's cvc5 solver wrapper (QF_NRA)."""

from __future__ import annotations

import time
from fractions import Fraction

import cvc5
from pysmt.exceptions import SolverReturnedUnknownResultError
from pysmt.fnode import FNode
from pysmt.logics import QF_NRA
from pysmt.shortcuts import Bool, Real, Solver

from smtgrad.backends import Z3_UNITS_PER_SECOND, SolverAnswer, SolverStatus
from smtgrad.backends.plain import PlainModel
from smtgrad.backends.process import ChildStatus, run_in_child
from smtgrad.encoding.solving import OPTIONS, declaration_order

#: What the child sends back: status, reason, {name: (kind, text)}, {name: why irrational}.
_PlainAnswer = tuple[str, str, dict[str, tuple[str, str]], dict[str, str]]

#: Seconds the parent waits past the time limit it gives cvc5, so that cvc5 can answer
#: "unknown" itself when it honours the limit; past that, the child is killed.
_KILL_MARGIN = 0.5

#: cvc5 counts resources more coarsely than z3 (measured on the exact encodings of the
#: golden specs, about 2M z3 units and 140k cvc5 units per idle second); a z3 work budget
#: is divided by this for cvc5's ``rlimit-per``.
CVC5_UNITS_PER_Z3_UNIT = 16

#: cvc5 does not check its resource limit inside the nonlinear (coverings) procedure, so
#: a work budget is also a time limit of this many times its idle-second equivalent: on
#: nonlinear problems a cvc5 budget is therefore not load-independent (z3's is).
CVC5_TIME_PER_WORK = 3.0


def cvc5_time_limit(timeout: float | None, work: int | None) -> float | None:
    """The time limit cvc5 gets: the deadline's, capped by the work budget's time
    equivalent (:data:`CVC5_TIME_PER_WORK`)."""
    if work is None:
        return timeout
    capped = CVC5_TIME_PER_WORK * work / Z3_UNITS_PER_SECOND
    return capped if timeout is None else min(timeout, capped)


class Cvc5Backend:
    """cvc5 through pysmt. Nonlinear real arithmetic via cvc5's cylindrical algebraic coverings."""

    name = "cvc5"

    def version(self) -> str:
        return f"cvc5 {cvc5.__version__}" if hasattr(cvc5, "__version__") else "cvc5"

    def solve(self, formula: FNode, timeout: float | None,
              work: int | None = None) -> SolverAnswer:
        """Run cvc5 in a child process (:func:`~smtgrad.backends.process.run_in_child`)
        that is killed at the deadline.

        cvc5 does not always honour its own time limit on nonlinear problems and
        holds the interpreter lock while it works, so neither its option nor a
        thread can stop it; a process can. The child builds its pysmt solver in its
        own (forked) copy of pysmt's environment and sends back plain text; the model
        terms are rebuilt here, in the environment that built ``formula``.
        """
        start = time.perf_counter()
        timeout = cvc5_time_limit(timeout, work)
        wait = None if timeout is None else timeout + _KILL_MARGIN
        result = run_in_child(_child, (self, formula, timeout, work), wait)
        if result.status is not ChildStatus.OK or result.value is None:
            reason = {ChildStatus.TIMEOUT: f"cvc5: timeout after {timeout:g} s",
                      ChildStatus.RAISED: f"cvc5 failed: {result.error}"}.get(
                          result.status, f"cvc5 crashed ({result.error})")
            return SolverAnswer(SolverStatus.UNKNOWN, reason=reason,
                                seconds=time.perf_counter() - start)
        status, reason, values, irrational = result.value
        seconds = time.perf_counter() - start
        if status != SolverStatus.SAT.value:
            return SolverAnswer(SolverStatus(status), reason=reason, seconds=seconds)
        symbols = {symbol.symbol_name(): symbol for symbol in formula.get_free_variables()}
        model_values = {symbols[name]: (Real(Fraction(text)) if kind == "real" else
                                        Bool(text == "true"))
                        for name, (kind, text) in values.items()}
        model_irrational = {symbols[name]: text for name, text in irrational.items()}
        return SolverAnswer(SolverStatus.SAT, model=PlainModel(model_values, model_irrational, {}),
                            seconds=seconds)

    def _solve(self, formula: FNode, timeout: float | None,
               work: int | None = None) -> SolverAnswer:
        start = time.perf_counter()
        options: dict[str, object] = dict(OPTIONS["cvc5"])  # as `smtgrad export` writes
        if timeout is not None:
            options["tlimit-per"] = max(1, int(timeout * 1000))
        if work is not None:
            options["rlimit-per"] = max(1, work // CVC5_UNITS_PER_Z3_UNIT)
        with Solver(name="cvc5", logic=QF_NRA, solver_options=options) as solver:
            for symbol in declaration_order(formula):  # cvc5's variable order (solving.py)
                solver.converter.convert(symbol)
            solver.add_assertion(formula)
            try:
                satisfiable = solver.solve()
            except SolverReturnedUnknownResultError:
                return SolverAnswer(SolverStatus.UNKNOWN, reason="cvc5: unknown (timeout or "
                                    "incomplete)", seconds=time.perf_counter() - start)
            seconds = time.perf_counter() - start
            if not satisfiable:
                return SolverAnswer(SolverStatus.UNSAT, seconds=seconds)
            values: dict[FNode, FNode] = {}
            irrational: dict[FNode, str] = {}
            for symbol in formula.get_free_variables():
                try:
                    values[symbol] = solver.get_value(symbol)
                except Exception as error:  # algebraic values pysmt cannot represent
                    irrational[symbol] = " ".join(str(error).split())[:200]
            return SolverAnswer(SolverStatus.SAT, model=PlainModel(values, irrational, {}),
                                seconds=seconds)


def _child(backend: Cvc5Backend, formula: FNode, timeout: float | None,
           work: int | None) -> _PlainAnswer:
    """In the child process: solve, and return plain data (status, values as text)."""
    try:
        answer = backend._solve(formula, timeout, work)
    except Exception as error:  # reported to the parent as unknown
        return (SolverStatus.UNKNOWN.value, f"cvc5 failed: {error}", {}, {})
    values: dict[str, tuple[str, str]] = {}
    irrational: dict[str, str] = {}
    model = answer.model
    if isinstance(model, PlainModel):
        for symbol, value in model.values.items():
            if value.is_bool_constant():
                values[symbol.symbol_name()] = ("bool", "true" if value.is_true() else "false")
            else:
                values[symbol.symbol_name()] = ("real", str(Fraction(value.constant_value())))
        irrational = {symbol.symbol_name(): text for symbol, text in model.irrational.items()}
    return (answer.status.value, answer.reason, values, irrational)
