"""Running the SMT encoding: encode, solve, read the model back, verify.

Shared by the methods that use a solver (exact encoding, abstraction, lattices,
sample reduction). A solver's unsat of the exact encoding or the abstraction is
an unsat proof at that M (with ``--cross-check``, confirmed by the other
backend); a lattice's unsat proves nothing; a model of the abstraction is only
a starting point; a model of an encoding with ln p relaxed to an interval is
completed into an exact witness where the rank criterion can.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from smtgrad.backends import (
    Backend,
    BackendUnavailable,
    IrrationalValue,
    Model,
    SolverAnswer,
    SolverStatus,
    get_backend,
    require_backend,
)
from smtgrad.encoding.modes import EXACT, Mode, ModeKind, UnsupportedSpec
from smtgrad.methods.base import Context, Outcome
from smtgrad.reference.network import Parameters
from smtgrad.reference.verify import Status, Verification
from smtgrad.reference.witness import Witness
from smtgrad.spec import Spec, TargetKind, Verdict

if TYPE_CHECKING:
    from smtgrad.encoding.builder import Encoding


def installed(name: str) -> bool:
    """Whether a backend's solver package is installed (nothing is imported)."""
    try:
        require_backend(name)
    except BackendUnavailable:
        return False
    return True


class SmtRunner:
    """The solver side of one solve (its context gives the backend and the deadline)."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self._lattice_backend: Backend | None = None

    def solve(self, spec: Spec, samples: int, mode: Mode = EXACT,
              work: int | None = None, verify_against: Spec | None = None,
              proof_race: bool = False) -> Outcome:
        """Encode ``spec`` at M = ``samples`` in ``mode``, solve within ``work`` solver
        resource units (None: unlimited) and the deadline, and turn the answer into an
        outcome (module docstring). ``proof_race``: with the default backend z3 and cvc5
        installed, cvc5 runs beside z3 for an unsat proof (the portfolio's last steps)."""
        if self.context.expired():
            return Outcome(Verdict.UNKNOWN, "none", "none",
                           reason=self.context.timeout_reason())
        from smtgrad.encoding.builder import EncodingTimeout, encode

        context = self.context
        context.smt_environment()
        context.progress(f"M={samples}: {mode.describe()} with {context.options.backend}")
        try:
            encoding = encode(spec, samples, mode, self.context.deadline)
        except UnsupportedSpec as error:
            return Outcome(Verdict.UNKNOWN, mode.describe(), "none", reason=str(error))
        except EncodingTimeout:
            return Outcome(Verdict.UNKNOWN, mode.describe(), "none",
                           reason=f"{context.timeout_reason()} (while encoding)")
        backend = self.backend_for(mode, proof_race)
        remaining = self.context.remaining()
        if remaining is not None and remaining <= 0:
            return Outcome(Verdict.UNKNOWN, mode.describe(), backend.version(),
                           reason=self.context.timeout_reason())
        answer = backend.solve(encoding.formula(), remaining, work)
        if answer.solver:  # backend "both": name the solver that answered
            backend = _Answered(backend, answer.solver)
        if answer.work is not None:
            context.effort.add(backend.name, answer.work, "resource units", work)
        else:
            context.effort.add(backend.name, round(answer.seconds, 1), "s")
        method = f"{backend.name} on the {mode.describe()}"
        if answer.status is SolverStatus.UNSAT:
            if mode.kind is ModeKind.LATTICE:
                return Outcome(Verdict.UNKNOWN, method, backend.version(),
                               reason="the lattice has no witness (this proves nothing)")
            what = "the abstraction" if mode.kind is ModeKind.ABSTRACT else "the encoding"
            reason = f"{backend.version()} proved {what} unsat at M={samples}"
            if encoding.relaxed:
                reason += ", with " + ", ".join(
                    f"ln {p} relaxed to ({lo}, {hi})" for p, (lo, hi) in
                    sorted(encoding.relaxed.items())) + " (an over-approximation)"
            if self.context.options.cross_check:
                return self.cross_check(spec, encoding, samples, method, reason,
                                        backend.version())
            return Outcome(Verdict.UNSAT, method, backend.version(), reason=reason)
        if answer.status is SolverStatus.UNKNOWN:
            return Outcome(Verdict.UNKNOWN, method, backend.version(), reason=answer.reason)
        if encoding.relaxed and mode.kind is not ModeKind.ABSTRACT:
            return self.completed_from_relaxation(spec, encoding, answer, method, backend)
        if mode.kind is ModeKind.ABSTRACT:
            assert answer.model is not None
            try:
                start = None if encoding.relaxed else _read_witness(encoding, answer.model,
                                                                    approximate=True)
            except IrrationalValue:
                start = None
            return Outcome(Verdict.UNKNOWN, method, backend.version(), start=start,
                           reason="the abstraction is satisfiable (that proves nothing)")
        return self.witness_from(verify_against or spec, encoding, answer, method, backend)

    def completed_from_relaxation(self, spec: Spec, encoding: Encoding, answer: SolverAnswer,
                                  method: str, backend: Backend) -> Outcome:
        """A model of the relaxed encoding (ln p in an interval) is no witness, but its
        parameters and inputs, rounded, with the closed forms put back exactly, are a
        point where the rank criterion solves the residuals exactly."""
        from smtgrad.methods.rank import complete

        assert answer.model is not None
        model = answer.model
        try:
            parameters = Parameters(
                weights=tuple(_exact_or_rounded(encoding.parameters[f"W{i}"], model,
                                                spec.fixed.get(f"W{i}"))
                              for i in range(1, spec.network.depth + 1)),
                biases=tuple(_exact_or_rounded(encoding.parameters[f"b{i}"], model,
                                               spec.fixed.get(f"b{i}"))
                             for i in range(1, spec.network.depth + 1)))
            inputs = _exact_or_rounded(encoding.inputs, model, spec.fixed.get("X"))
        except IrrationalValue:
            parameters = None
        if parameters is not None:
            found: list[Verification] = []

            def accept(witness: Witness) -> bool:
                check = self.context.verify(spec, witness)
                if check.accepted:
                    found.append(check)
                return check.accepted

            witness = complete(spec, parameters, inputs, accept)
            if witness is not None:
                return Outcome(Verdict.SAT, f"{method} (ln p relaxed), completed by the rank "
                                "criterion", backend.version(), witness=witness,
                                verification=found[-1])
        return Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
            "the encoding with the logarithms of fixed closed forms relaxed to intervals "
            "is satisfiable (that proves nothing), and no exact witness was completed from "
            "its model"))

    def backend_for(self, mode: Mode, proof_race: bool = False) -> Backend:
        """The solve's backend; with ``both``, z3 alone on log lattices (many small sat-only
        calls, where two processes per call would cost more than they win). A proof race
        (z3 and cvc5 for unsat, z3 alone for sat) replaces the default z3 where asked."""
        if self.context.options.backend == "both" and mode.kind is ModeKind.LATTICE:
            if self._lattice_backend is None:
                self._lattice_backend = get_backend("z3")
            return self._lattice_backend
        if (proof_race and self.context.options.backend == "z3"
                and mode.kind is not ModeKind.LATTICE and installed("cvc5")):
            from smtgrad.backends.race import ProofRaceBackend

            return ProofRaceBackend()
        return self.context.backend

    def cross_check(self, spec: Spec, encoding: Encoding, samples: int, method: str,
                    reason: str, proved_by: str) -> Outcome:
        other_name = "z3" if proved_by.startswith("cvc5") else "cvc5"
        try:
            other = get_backend(other_name)
        except Exception as error:  # BackendUnavailable and solver start-up failures
            return Outcome(Verdict.UNKNOWN, method, proved_by,
                           reason=f"{reason}, but the cross-check could not run: {error}")
        self.context.progress(f"M={samples}: cross-checking unsat with {other_name}")
        answer = other.solve(encoding.formula(), self.context.remaining())
        if answer.status is SolverStatus.UNSAT:
            return Outcome(Verdict.UNSAT, method, f"{proved_by} + "
                            f"{other.version()}", reason=f"{reason}; confirmed by "
                            f"{other.version()}")
        return Outcome(Verdict.UNKNOWN, method, proved_by, reason=(
            f"solvers disagree: {proved_by} says unsat, {other.version()} "
            f"says "
            f"{answer.status.value}{' (' + answer.reason + ')' if answer.reason else ''}"))

    def witness_from(self, spec: Spec, encoding: Encoding, answer: SolverAnswer, method: str,
                     backend: Backend) -> Outcome:
        assert answer.model is not None
        try:
            witness = _read_witness(encoding, answer.model)
        except IrrationalValue as error:
            if encoding.mode.kind is not ModeKind.EXACT:
                return Outcome(Verdict.UNKNOWN, method, backend.version(), reason=str(error))
            return self.rationalize(spec, encoding, answer.model, method, backend, str(error))
        check = self.context.verify(spec, witness)
        if (check.status is Status.FAILS and encoding.loss_unencoded
                and all(f.startswith("assume") for f in check.failures)):
            return Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
                "the lattice candidate fails an assumption on the cross-entropy loss, "
                "which the lattice encoding cannot express"))
        return self.context.judged(spec, witness, method, backend.version(), check)

    def rationalize(self, spec: Spec, encoding: Encoding, model: Model, method: str,
                    backend: Backend, why: str) -> Outcome:
        """Fix parameters and inputs to rational approximations and re-solve for residuals."""
        from smtgrad.encoding.builder import encode

        self.context.progress("the solver's model is irrational; re-solving with rational "
                              "parameters")
        fixed: dict[str, Any] = dict(spec.fixed)
        try:
            for name, terms in {**encoding.parameters, "X": encoding.inputs}.items():
                fixed[name] = _approximate(terms, model)
        except IrrationalValue as error:
            return Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
                f"a solution exists but the solver's model is irrational and cannot be "
                f"approximated here ({error})"))
        candidate = dataclasses.replace(spec, fixed=fixed)
        encoding = encode(candidate, encoding.samples)
        answer = backend.solve(encoding.formula(), self.context.remaining())
        if answer.status is SolverStatus.SAT and answer.model is not None:
            try:
                witness = _read_witness(encoding, answer.model)
            except IrrationalValue:
                pass
            else:
                return self.context.judged(spec, witness, f"{method}, rationalised",
                                           backend.version())
        return Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
            f"a solution exists but the solver's model is irrational ({why}) and no rational "
            "witness was found near it"))



class _Answered:
    """A backend that runs several solvers, named after the one that answered (its
    reasons say who proved what); solving again runs all of them again."""

    def __init__(self, backend: Backend, solver: str) -> None:
        self._backend = backend
        self._solver = solver
        self.name = solver.split()[0]

    def version(self) -> str:
        return self._solver

    def solve(self, formula: Any, timeout: float | None,
              work: int | None = None) -> SolverAnswer:
        return self._backend.solve(formula, timeout, work)


def _read_witness(encoding: Encoding, model: Model, approximate: bool = False) -> Witness:
    """Model values -> witness; lattice-encoded parameters are coefficients of ln(base)."""
    from smtgrad.numbers.lognum import LogNumber

    def values(terms: Any, scale: bool = False) -> Any:
        if isinstance(terms, list | tuple):
            return tuple(values(item, scale) for item in terms)
        value = model.approximate(terms).limit_denominator(10**6) if approximate \
            else model.value(terms)
        return LogNumber((0, value), encoding.mode.base) if scale and value != 0 else value

    spec = encoding.spec
    depth = spec.network.depth
    scaled = encoding.scaled_layers
    parameters = Parameters(
        weights=tuple(values(encoding.parameters[f"W{i}"], i in scaled)
                      for i in range(1, depth + 1)),
        biases=tuple(values(encoding.parameters[f"b{i}"], i in scaled)
                     for i in range(1, depth + 1)),
    )
    targets = values(encoding.targets)
    if spec.targets is TargetKind.CLASS:
        targets = tuple(Fraction(row.index(1)) for row in targets)
    return Witness(parameters=parameters, inputs=values(encoding.inputs), targets=targets)


def _exact_or_rounded(terms: Any, model: Model, fixed: Any) -> Any:
    """Model values as exact rationals (rounded where irrational), but fixed entries as the
    spec gives them (closed forms included)."""
    if isinstance(terms, list | tuple):
        return tuple(_exact_or_rounded(item, model,
                                       fixed[k] if isinstance(fixed, tuple) else None)
                     for k, item in enumerate(terms))
    if fixed is not None:
        return fixed
    return _approximate(terms, model)


def _approximate(terms: Any, model: Model) -> Any:
    if isinstance(terms, list | tuple):
        return tuple(_approximate(item, model) for item in terms)
    try:
        return model.value(terms)
    except IrrationalValue:
        return model.approximate(terms).limit_denominator(1000)


