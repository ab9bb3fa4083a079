"""Z3 backend: pysmt formula -> Z3 (nlsat for nonlinear real arithmetic)."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import z3
from pysmt.fnode import FNode
from pysmt.shortcuts import get_env
from pysmt.solvers.z3 import Z3Converter

from smtgrad.backends import IrrationalValue, SolverAnswer, SolverStatus, solver_thread_running


class _Z3Model:
    def __init__(self, model: z3.ModelRef, converter: Z3Converter) -> None:
        self._model = model
        self._converter = converter

    def value(self, term: FNode) -> Fraction:
        if term.is_constant():
            return Fraction(term.constant_value())
        result = self._model.eval(self._converter.convert(term), model_completion=True)
        if z3.is_rational_value(result):
            return Fraction(result.numerator_as_long(), result.denominator_as_long())
        if z3.is_algebraic_value(result):
            raise IrrationalValue(f"{term} = {result.as_decimal(20)} is irrational")
        raise IrrationalValue(f"{term} has no numeric value in the model ({result})")

    def approximate(self, term: FNode) -> Fraction:
        result = self._model.eval(self._converter.convert(term), model_completion=True)
        if z3.is_algebraic_value(result):
            result = result.approx(20)
        if z3.is_rational_value(result):
            return Fraction(result.numerator_as_long(), result.denominator_as_long())
        raise IrrationalValue(f"{term} has no numeric value in the model ({result})")

    def truth(self, term: FNode) -> bool:
        result = self._model.eval(self._converter.convert(term), model_completion=True)
        return bool(z3.is_true(result))


# z3's global parameters, set once per process when this module is imported: they are
# not safe to change while another thread solves, and an abandoned (timed-out) z3 thread
# may still be running when a later backend is created.
z3.set_param("smt.random_seed", 0)
z3.set_param("nlsat.seed", 0)
# z3 would catch Ctrl-C itself and answer "canceled"; let Python see it (exit 130).
z3.set_param("ctrl_c", False)


class Z3Backend:
    """Z3 through pysmt's converter; runs in a worker thread so Ctrl-C can interrupt it."""

    name = "z3"

    def version(self) -> str:
        return f"z3 {z3.get_version_string()}"

    def solve(self, formula: FNode, timeout: float | None) -> SolverAnswer:
        """Convert and check ``formula`` in a worker thread; the calling thread only waits.

        Every z3 call before the answer happens in the worker: a KeyboardInterrupt
        raised inside z3's Python API can corrupt reference counts (the main thread
        is where Python raises it). The worker's closure keeps the converter, whose
        cached terms belong to the context, alive until the worker ends, so an
        abandoned (timed-out) check never sees its terms released by another thread.
        """
        start = time.perf_counter()
        deadline = None if timeout is None else start + timeout
        cancelled, finished = threading.Event(), threading.Event()
        contexts: list[z3.Context] = []  # the worker's, once created (interrupt is thread-safe)
        built: list[tuple[z3.Solver, Z3Converter]] = []
        outcome: list[z3.CheckSatResult] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with solver_thread_running():
                    check()
            except BaseException as error:  # reported below, never swallowed
                failure.append(error)
            finally:
                finished.set()

        def check() -> None:
            context = z3.Context()  # fresh: answers never depend on earlier solves
            contexts.append(context)
            if cancelled.is_set():
                return
            converter = Z3Converter(get_env(), context)
            solver = z3.Solver(ctx=context)
            solver.add(converter.convert(formula))
            built.append((solver, converter))
            if deadline is not None:
                left = deadline - time.perf_counter()
                solver.set("timeout", max(1, int(left * 1000)))
            if not cancelled.is_set():
                outcome.append(solver.check())

        def interrupt() -> None:
            for context in contexts:
                context.interrupt()

        worker = threading.Thread(target=run, daemon=True)
        interrupted = False
        try:
            worker.start()
            # Waiting on an Event, not join(): see solver_threads_running.
            while not finished.wait(0.02):
                now = time.perf_counter()
                if deadline is not None and not interrupted and now > deadline:
                    interrupt()  # z3's own timeout can fire late in nlsat
                    interrupted = True
                if interrupted and deadline is not None and now > deadline + 0.3:
                    # Some z3 phases ignore interrupts for a while; the interrupted
                    # context stops on its own, and the daemon thread is left to it.
                    return SolverAnswer(SolverStatus.UNKNOWN,
                                        reason=f"z3: timeout after {timeout:g} s",
                                        seconds=now - start)
        except KeyboardInterrupt:
            cancelled.set()
            waited = time.perf_counter()
            while not finished.is_set() and time.perf_counter() - waited < 5:
                interrupt()  # repeated: an interrupt before check() starts is lost
                finished.wait(0.02)
            raise
        seconds = time.perf_counter() - start
        if failure:
            return SolverAnswer(SolverStatus.UNKNOWN, reason=f"z3 failed: {failure[0]}",
                                seconds=seconds)
        result = outcome[0]
        ((solver, converter),) = built
        if result == z3.sat:
            return SolverAnswer(SolverStatus.SAT, model=_Z3Model(solver.model(), converter),
                                seconds=seconds)
        if result == z3.unsat:
            return SolverAnswer(SolverStatus.UNSAT, seconds=seconds)
        reason = solver.reason_unknown()
        if (reason in ("timeout", "canceled") or interrupted) and timeout is not None:
            reason = f"timeout after {timeout:g} s"
        return SolverAnswer(SolverStatus.UNKNOWN, reason=f"z3: {reason}", seconds=seconds)
