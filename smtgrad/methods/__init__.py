"""Methods and the portfolios the engine runs, in order, at each M.

A portfolio is declarative: each :class:`Step` names a method, its budget in
counted work (draws, starts, solver resource units; see
:class:`~smtgrad.methods.base.Budget`) and an optional condition. The engine
runs the steps in order and stops at the first sat or unsat; unknown outcomes
contribute their reasons. The only clock is the solve's deadline, so the steps
run, and answer, the same on an idle and on a busy machine: a load only makes
the deadline arrive earlier in the schedule (issue 18).

The schedules alternate cheap incomplete searches with the complete solver in
growing rounds (Luby-style doubling, a few rounds): a witness the search finds
in its first hundred draws is never queued behind a solver call that cannot
end, and the solver still gets the rest of the time at the end.

To add a method: write a :class:`~smtgrad.methods.base.Method` and put a step
for it in a portfolio here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smtgrad.encoding.modes import is_smooth
from smtgrad.methods.base import (
    UNLIMITED,
    Budget,
    Context,
    Method,
    Outcome,
    Problem,
    Proves,
    SolveOptions,
    WitnessRejected,
    solver_seconds,
)
from smtgrad.methods.exact import (
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
    LatticeSites,
    TopLayer,
)
from smtgrad.spec import LossKind, Spec


def _always(problem: Problem) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    """One method in a portfolio with its budget: ``work`` counted units of the method's
    kind (None: until the deadline)."""

    method: Method
    work: int | None = None
    when: Callable[[Problem], bool] = _always

    @property
    def budget(self) -> Budget:
        return UNLIMITED if self.work is None else Budget(self.work)


#: Piecewise-linear networks with MSE. The fast path's budgets are draws, the solver's
#: are resource units (``solver_seconds(s)``: about s idle seconds of z3, counted, not
#: timed). Small problems: a few draws, then a short solver call, which settles most
#: of them; then rounds of 200 and 2000 draws between growing solver calls; the solver
#: keeps the rest of the deadline at the end.
PIECEWISE: tuple[Step, ...] = (
    Step(FullyFixed()),
    # Complete on its family (fixed data, stationary points, one hidden layer), and much
    # faster there than the solver (bench/landscape.md): the whole deadline.
    Step(FixedDataPatterns()),
    Step(SampleReduction(), work=solver_seconds(30)),
    Step(FastPath(), work=10, when=small),
    Step(ExactSMT(), work=solver_seconds(1), when=small),
    Step(FastPath(), work=200),
    Step(ExactSMT(), work=solver_seconds(4)),
    Step(FastPath(), work=2000),
    # The rest of the deadline; cvc5 races z3 for the proof on the second core.
    Step(ExactSMT(proof_race=True)),
)

#: Smooth networks or cross-entropy: abstraction for unsat; concretised and full log
#: lattices, then certified enclosures, for witnesses; the full abstraction last.
SMOOTH: tuple[Step, ...] = (
    Step(FullyFixed()),
    # Cheap sat-only searches first (a few milliseconds a draw): exact lattice sites, then
    # the top-layer solve (exact or certified); an exact witness is preferred.
    Step(LatticeSites(), work=40),
    Step(TopLayer(), work=200),
    Step(Abstraction(), work=solver_seconds(3)),
    Step(TopLayer(), work=3000),  # the same draws continued
    Step(ConcretisedLattice(), work=200),
    Step(Lattices(), work=solver_seconds(4)),
    Step(Enclosure(), work=40),
    Step(AbstractionRetry()),
)

LEMMAS = StructuralLemmas()


def portfolio(spec: Spec) -> tuple[Step, ...]:
    """The steps for a spec: smooth units or a non-MSE loss need the smooth portfolio."""
    return SMOOTH if is_smooth(spec) or spec.loss.kind is not LossKind.MSE else PIECEWISE


__all__ = ["LEMMAS", "PIECEWISE", "SMOOTH", "UNLIMITED", "Budget", "Context", "Method",
           "Outcome", "Problem",
           "Proves", "SolveOptions", "Step", "WitnessRejected", "portfolio", "reducible",
           "reduction_bound"]
