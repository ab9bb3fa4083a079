"""Z3 backend: pysmt formula -> Z3 (nlsat for nonlinear real arithmetic).

Solver settings are per solver, in a fresh context per call (:data:`SOLVER_SETTINGS`),
except ``nlsat.seed``, which z3 reads only from its global parameters (see
:func:`_pin_global_parameters`).

pysmt: formulas are converted with the environment that built them -- pysmt's global
one, where :mod:`smtgrad.encoding.builder` builds every formula (the converter types a formula
with its environment's type checker and builds terms in its formula manager, so a
private environment would not match the formula's nodes). This module changes nothing
in that environment.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import z3
from pysmt.fnode import FNode
from pysmt.shortcuts import get_env
from pysmt.solvers.z3 import Z3Converter

from smtgrad.backends import IrrationalValue, SolverAnswer, SolverStatus
from smtgrad.backends.threads import solver_thread
from smtgrad.encoding.solving import declaration_order


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


#: Set on every solver before anything is asserted (z3 validates them at first use).
#: ``random_seed`` is the solver's (smt) seed, as the global ``smt.random_seed`` was.
#: ``ctrl_c`` off: z3 would otherwise install its own SIGINT handler for the length of
#: ``check()`` (process-wide, from the worker thread), answer "canceled" and keep
#: Python's handler from running; smtgrad's exit policy (exit 130 at once) needs it.
SOLVER_SETTINGS: dict[str, int | bool] = {"random_seed": 0, "ctrl_c": False}

_pinned = False
_pinned_lock = threading.Lock()


def _pin_global_parameters() -> None:
    """Set ``nlsat.seed`` to 0 in z3's global parameters, once per process.

    Only this one stays global: the default (strategic) solver rejects ``nlsat.seed``
    as a solver parameter ("unknown parameter") and a context configuration ignores
    it, yet nlsat reads it (its default is 0; pinning it keeps answers independent of
    whatever else in the process changed it). It is set when the first backend is
    constructed, not at import, and only once: z3's global parameters are not meant to
    change while another thread solves, and an abandoned (timed-out) z3 thread may
    still run when a later backend is created.
    """
    global _pinned
    with _pinned_lock:
        if not _pinned:
            z3.set_param("nlsat.seed", 0)
            _pinned = True


class Z3Backend:
    """Z3 through pysmt's converter; runs in a worker thread so Ctrl-C can interrupt it."""

    name = "z3"

    def __init__(self) -> None:
        _pin_global_parameters()

    def version(self) -> str:
        return f"z3 {z3.get_version_string()}"

    def solve(self, formula: FNode, timeout: float | None,
              work: int | None = None) -> SolverAnswer:
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
                with solver_thread():
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
            for key, value in SOLVER_SETTINGS.items():
                solver.set(key, value)
            if work is not None:
                # Counted per check in this fresh context: deterministic, unlike time.
                solver.set("rlimit", max(1, work))
            for symbol in declaration_order(formula):  # the order export declares them in
                converter.convert(symbol)
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
            # Waiting on an Event, not join(): see threads.running_solver_threads.
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
        used = _rlimit_count(solver)
        if result == z3.sat:
            return SolverAnswer(SolverStatus.SAT, model=_Z3Model(solver.model(), converter),
                                seconds=seconds, work=used)
        if result == z3.unsat:
            return SolverAnswer(SolverStatus.UNSAT, seconds=seconds, work=used)
        reason = solver.reason_unknown()
        if (reason in ("timeout", "canceled") or interrupted) and timeout is not None:
            reason = f"timeout after {timeout:g} s"
        elif work is not None and used is not None and used >= work:
            reason = f"work limit of {work} resource units reached"
        return SolverAnswer(SolverStatus.UNKNOWN, reason=f"z3: {reason}", seconds=seconds,
                            work=used)


def _rlimit_count(solver: z3.Solver) -> int | None:
    """The resource units the last check spent (z3's ``rlimit count`` statistic)."""
    try:
        statistics = solver.statistics()
        return int(statistics.get_key_value("rlimit count"))
    except (z3.Z3Exception, KeyError):
        return None
