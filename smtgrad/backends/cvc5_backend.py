"""cvc5 backend, driven through pysmt's cvc5 solver wrapper (QF_NRA)."""

from __future__ import annotations

import time
from fractions import Fraction

import cvc5
from pysmt.exceptions import SolverReturnedUnknownResultError
from pysmt.fnode import FNode
from pysmt.logics import QF_NRA
from pysmt.shortcuts import Solver

from smtgrad.backends import IrrationalValue, SolverAnswer, SolverStatus


class _Cvc5Model:
    def __init__(self, values: dict[FNode, FNode], irrational: dict[FNode, str]) -> None:
        self._values = values
        self._irrational = irrational  # symbols whose value pysmt cannot represent

    def value(self, term: FNode) -> Fraction:
        if term.is_constant():
            return Fraction(term.constant_value())
        for symbol in term.get_free_variables():
            if symbol in self._irrational:
                raise IrrationalValue(f"cvc5 value of {symbol}: {self._irrational[symbol]}")
        result = term.substitute(self._values).simplify()
        if result.is_constant() and result.is_real_constant():
            return Fraction(result.constant_value())
        raise IrrationalValue(f"{term} has no rational value in the cvc5 model ({result})")

    def approximate(self, term: FNode) -> Fraction:
        return self.value(term)

    def truth(self, term: FNode) -> bool:
        result = term.substitute(self._values).simplify()
        return bool(result.is_true())


class Cvc5Backend:
    """cvc5 through pysmt. Nonlinear real arithmetic via cvc5's cylindrical algebraic coverings."""

    name = "cvc5"

    def version(self) -> str:
        return f"cvc5 {cvc5.__version__}" if hasattr(cvc5, "__version__") else "cvc5"

    def solve(self, formula: FNode, timeout: float | None) -> SolverAnswer:
        start = time.perf_counter()
        options: dict[str, object] = {"nl-cov": "true"}
        if timeout is not None:
            options["tlimit-per"] = max(1, int(timeout * 1000))
        with Solver(name="cvc5", logic=QF_NRA, solver_options=options) as solver:
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
            return SolverAnswer(SolverStatus.SAT, model=_Cvc5Model(values, irrational),
                                seconds=seconds)
