"""cvc5 backend, driven through pysmt's cvc5 solver wrapper (QF_NRA)."""

from __future__ import annotations

import multiprocessing
import time
from fractions import Fraction
from typing import Any

import cvc5
from pysmt.exceptions import SolverReturnedUnknownResultError
from pysmt.fnode import FNode
from pysmt.logics import QF_NRA
from pysmt.shortcuts import Bool, Real, Solver

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
        """Run cvc5 in a forked child process that is killed at the deadline.

        cvc5 does not always honour its own time limit on nonlinear problems and
        holds the interpreter lock while it works, so neither its option nor a
        thread can stop it; a process can.
        """
        start = time.perf_counter()
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        # Not a daemon: the engine may itself run inside a daemonic worker process.
        child = context.Process(target=_child, args=(self, formula, timeout, sender))
        child.start()
        sender.close()
        wait = None if timeout is None else timeout + 0.5
        try:
            if not receiver.poll(wait):
                return SolverAnswer(SolverStatus.UNKNOWN,
                                    reason=f"cvc5: timeout after {timeout:g} s",
                                    seconds=time.perf_counter() - start)
            status, reason, values, irrational = receiver.recv()
        except EOFError:
            return SolverAnswer(SolverStatus.UNKNOWN, reason="cvc5 crashed",
                                seconds=time.perf_counter() - start)
        finally:
            # Also on Ctrl-C: never leave a cvc5 process running behind us.
            if child.is_alive():
                child.kill()
            child.join()
        seconds = time.perf_counter() - start
        if status != SolverStatus.SAT.value:
            return SolverAnswer(SolverStatus(status), reason=reason, seconds=seconds)
        symbols = {symbol.symbol_name(): symbol for symbol in formula.get_free_variables()}
        model_values = {symbols[name]: (Real(Fraction(text)) if kind == "real" else
                                        Bool(text == "true"))
                        for name, (kind, text) in values.items()}
        model_irrational = {symbols[name]: text for name, text in irrational.items()}
        return SolverAnswer(SolverStatus.SAT, model=_Cvc5Model(model_values, model_irrational),
                            seconds=seconds)

    def _solve(self, formula: FNode, timeout: float | None) -> SolverAnswer:
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


def _child(backend: Cvc5Backend, formula: FNode, timeout: float | None, sender: Any) -> None:
    """In the forked process: solve, and send back plain data (status, values as text)."""
    try:
        answer = backend._solve(formula, timeout)
    except Exception as error:  # reported to the parent as unknown
        sender.send((SolverStatus.UNKNOWN.value, f"cvc5 failed: {error}", {}, {}))
        return
    values: dict[str, tuple[str, str]] = {}
    irrational: dict[str, str] = {}
    model = answer.model
    if isinstance(model, _Cvc5Model):
        for symbol, value in model._values.items():
            if value.is_bool_constant():
                values[symbol.symbol_name()] = ("bool", "true" if value.is_true() else "false")
            else:
                values[symbol.symbol_name()] = ("real", str(Fraction(value.constant_value())))
        irrational = {symbol.symbol_name(): text for symbol, text in model._irrational.items()}
    sender.send((answer.status.value, answer.reason, values, irrational))
