"""Methods and the portfolios the engine runs, in order, at each M.

A portfolio is declarative: each :class:`Step` names a method, its time budget
(a share of what remains, capped; or a fixed number of seconds) and an optional
condition. The engine runs the steps in order and stops at the first sat or
unsat; unknown outcomes contribute their reasons. To add a method: write a
:class:`~smtgrad.methods.base.Method` and put a step for it in a portfolio here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smtgrad.encoding.modes import is_smooth
from smtgrad.methods.base import (
    Context,
    Method,
    Outcome,
    Problem,
    Proves,
    SolveOptions,
    WitnessRejected,
)
from smtgrad.methods.exact import (
    SMALL_M_FAST_PATH_SECONDS,
    ExactSMT,
    FastPath,
    FullyFixed,
    SampleReduction,
    StructuralLemmas,
    reducible,
    reduction_bound,
    small,
)
from smtgrad.methods.patterns import FixedDataPatterns
from smtgrad.methods.smooth import (
    Abstraction,
    AbstractionRetry,
    ConcretisedLattice,
    Enclosure,
    Lattices,
)
from smtgrad.spec import LossKind, Spec


def _always(problem: Problem) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    """One method in a portfolio, with its budget: ``seconds`` flat, or ``share`` of the
    remaining time capped at ``cap`` seconds, or (neither) the rest of the deadline."""

    method: Method
    share: float | None = None
    cap: float | None = None
    seconds: float | None = None
    when: Callable[[Problem], bool] = _always

    def budget(self, context: Context) -> float | None:
        if self.seconds is not None:
            return self.seconds
        if self.share is not None and self.cap is not None:
            return context.slice(self.share, self.cap)
        return context.remaining()


#: Piecewise-linear networks with MSE. Small problems: a few fast-path draws
#: (milliseconds when sat), then the complete solver, which is quick there and settles
#: unsat at once; then a longer fast path, then the solver with the rest of the time.
PIECEWISE: tuple[Step, ...] = (
    Step(FullyFixed()),
    # Complete on its family (fixed data, stationary points, one hidden layer): most of
    # the time; the solver keeps a tenth in case the enumeration is cut short.
    Step(FixedDataPatterns(), share=0.9, cap=1e9),
    Step(SampleReduction(), share=0.5, cap=30.0),
    Step(FastPath(), seconds=SMALL_M_FAST_PATH_SECONDS, when=small),
    Step(ExactSMT(), share=0.25, cap=1.0, when=small),
    Step(FastPath(), seconds=0.5),
    Step(ExactSMT()),
)

#: Smooth networks or cross-entropy: abstraction for unsat; concretised and full log
#: lattices, then certified enclosures, for witnesses; the full abstraction last.
SMOOTH: tuple[Step, ...] = (
    Step(FullyFixed()),
    Step(Abstraction(), share=0.15, cap=3.0),
    Step(ConcretisedLattice(), share=0.35, cap=30.0),
    Step(Lattices()),
    Step(Enclosure(), share=0.6, cap=60.0),
    Step(AbstractionRetry()),
)

LEMMAS = StructuralLemmas()


def portfolio(spec: Spec) -> tuple[Step, ...]:
    """The steps for a spec: smooth units or a non-MSE loss need the smooth portfolio."""
    return SMOOTH if is_smooth(spec) or spec.loss.kind is not LossKind.MSE else PIECEWISE


__all__ = ["LEMMAS", "PIECEWISE", "SMOOTH", "Context", "Method", "Outcome", "Problem",
           "Proves", "SolveOptions", "Step", "WitnessRejected", "portfolio", "reducible",
           "reduction_bound"]
