"""What a method is, what it returns, and the per-solve context it runs in.

A :class:`Method` declares what it can prove (:class:`Proves`), whether it
applies to a problem, and runs within a :class:`Budget` of counted work (draws,
starts, solver resource units; never seconds: the only clock is the solve's
deadline), returning an :class:`Outcome` (or None: nothing found, nothing
proved). Counted work makes a verdict and its witness a function of the spec,
the options and the version, not of how busy the machine is. Methods never decide
the final verdict: the engine does (:mod:`smtgrad.engine`). Every candidate
witness goes through the verifier here (:meth:`Context.judged`): a refuted one
is a bug (:class:`WitnessRejected`), an undecided one is unknown.

May import the spec, the reference network and verifier, and the backends;
never the engine.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Flag
from typing import ClassVar

from smtgrad.backends import Z3_UNITS_PER_SECOND, Backend, get_backend
from smtgrad.errors import InternalError
from smtgrad.reference.verify import Status, Verification, verify
from smtgrad.reference.witness import Witness
from smtgrad.spec import Spec, Verdict

Progress = Callable[[str], None]


class WitnessRejected(InternalError, RuntimeError):
    """A method's witness failed exact verification: a bug in smtgrad, never a sat."""

    def __init__(self, method: str, failures: tuple[str, ...]) -> None:
        self.method = method
        self.failures = failures
        super().__init__(f"witness from {method} rejected by the exact verifier: "
                         + "; ".join(failures[:5]))


class Proves(Flag):
    """What a method's answers can establish."""

    SAT = 1
    UNSAT = 2
    BOTH = 3


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: which M, how long, which backend, which methods."""

    samples: int | None = None
    minimal: bool = False
    timeout: float | None = 60.0
    backend: str = "z3"
    cross_check: bool = False
    fast_path: bool = True
    reduction: bool = True
    lemmas: bool = True


SOLVER_UNITS_PER_SECOND = Z3_UNITS_PER_SECOND


def solver_seconds(seconds: float) -> int:
    """A solver work budget of about ``seconds`` idle seconds, in resource units."""
    return int(seconds * SOLVER_UNITS_PER_SECOND)


@dataclass(frozen=True)
class Budget:
    """How much a method may do at one step: ``work`` counted units of the method's own
    kind (draws for searches, Newton starts, solver resource units for SMT), or None:
    until the solve's deadline. There is no seconds field on purpose."""

    work: int | None = None

    def draws(self, default: int) -> int:
        return default if self.work is None else self.work


UNLIMITED = Budget()


class Effort:
    """How far each method got in one solve, for the reason of an unknown that a
    deadline cut short ("rank criterion: 137 of 200 draws; z3: 4.1M resource units")."""

    def __init__(self) -> None:
        self._entries: dict[str, list[float]] = {}
        self._units: dict[str, str] = {}

    def add(self, what: str, done: float, unit: str, planned: float | None = None) -> None:
        entry = self._entries.setdefault(what, [0.0, 0.0])
        entry[0] += done
        entry[1] += planned if planned is not None else done
        self._units[what] = unit

    def summary(self) -> str:
        parts = []
        for what, (done, planned) in self._entries.items():
            unit = self._units[what]
            amount = f"{_count(done)} {unit}"
            if planned > done:
                amount = f"{_count(done)} of {_count(planned)} {unit}"
            parts.append(f"{what}: {amount}")
        return "; ".join(parts)


class Draws:
    """The counted draws of one search step: iterating yields the draw numbers first ..
    first + planned - 1 until the deadline passes, and leaving the ``with`` block (however
    the search ends) records how many were made in the solve's :class:`Effort`."""

    def __init__(self, what: str, planned: int, effort: Effort | None,
                 deadline: float | None, first: int = 0) -> None:
        self.what, self.planned, self.effort = what, planned, effort
        self.deadline, self.first = deadline, first
        self.done = 0

    def __iter__(self) -> Iterator[int]:
        for attempt in range(self.first, self.first + self.planned):
            if self.deadline is not None and time.perf_counter() > self.deadline:
                return
            self.done += 1
            yield attempt

    def __enter__(self) -> Draws:
        return self

    def __exit__(self, *exception: object) -> None:
        if self.effort is not None:
            self.effort.add(self.what, self.done, "draws", self.planned)


def _count(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value:g}" if value != int(value) else str(int(value))


@dataclass(frozen=True)
class Outcome:
    """What one method established at one M."""

    verdict: Verdict
    method: str
    solver: str
    witness: Witness | None = None
    verification: Verification | None = None
    reason: str = ""
    all_samples: bool = False
    start: Witness | None = None  # an abstraction model: a starting point for enclosures
    certificate: str = "exact"


class Context:
    """One solve's shared state: options, the deadline, the backend, progress."""

    def __init__(self, options: SolveOptions, progress: Progress | None) -> None:
        self.options = options
        self.progress: Progress = progress or (lambda message: None)
        self.reporting = progress is not None  # skip building messages nobody reads
        self.start = time.perf_counter()
        self.deadline = None if options.timeout is None else self.start + options.timeout
        self._backend: Backend | None = None
        #: What the solve holds until it ends (smtgrad's pysmt environment, once pushed).
        self.resources = contextlib.ExitStack()
        self._environment_pushed = False
        #: Work done per method (reported when the deadline ends the solve).
        self.effort = Effort()

    def smt_environment(self) -> None:
        """Work in smtgrad's own pysmt environment from here to the end of the solve
        (pushed on first use, so that solves that need no formula never import pysmt)."""
        if not self._environment_pushed:
            from smtgrad.encoding.environment import private_environment

            self.resources.enter_context(private_environment())
            self._environment_pushed = True

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - time.perf_counter()

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = get_backend(self.options.backend)
        return self._backend

    def verify(self, spec: Spec, witness: Witness) -> Verification:
        """The exact verifier (every method's candidates go through here)."""
        return verify(spec, witness)

    def timeout_reason(self) -> str:
        effort = self.effort.summary()
        return f"timeout after {self.options.timeout:g} s" + (
            f" (work done: {effort})" if effort else "")

    def judged(self, spec: Spec, witness: Witness, method: str, solver: str,
               check: Verification | None = None) -> Outcome:
        """A candidate witness through the verifier: sat when every requirement is proved,
        a bug (:class:`WitnessRejected`) when one is refuted, unknown when one cannot be
        decided."""
        check = check or self.verify(spec, witness)
        if check.status is Status.HOLDS:
            return Outcome(Verdict.SAT, method, solver, witness=witness, verification=check)
        if check.status is Status.FAILS and check.only_minimum_refuted:
            return Outcome(Verdict.UNKNOWN, method, solver, reason=(
                "a stationary point was found, but it is not a local minimum: "
                + "; ".join(check.failures[:1])))
        if check.status is Status.FAILS:
            raise WitnessRejected(method, check.failures)
        return Outcome(Verdict.UNKNOWN, method, solver, reason=(
            "a candidate witness was found, but the verifier cannot decide "
            + "; ".join(check.undecided[:3])))


@dataclass(frozen=True)
class Problem:
    """One query at one M: the spec fixed at that M, and the solve's context."""

    spec: Spec
    samples: int
    context: Context
    #: Results earlier methods left for later ones (an abstraction's model, ...).
    hints: dict[str, object]


class Method(ABC):
    """A way to answer a problem. Subclasses say what they prove and when they apply."""

    name: ClassVar[str]
    proves: ClassVar[Proves]

    def applies(self, problem: Problem) -> bool:
        return True

    @abstractmethod
    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        """An outcome (sat, unsat or unknown with a reason), or None when the method found
        nothing worth reporting, within ``budget`` (counted work) and the deadline."""
