"""Orchestration: fast path, sample reduction, SMT solving, verification.

For each M the engine tries, within one shared deadline:

0. the structural lemmas (:mod:`smtgrad.lemmas`): unsat proofs read off the
   query's shape (one and two samples, linear layers), with no solver;
1. the rank criterion (:mod:`smtgrad.rank`), a sat-only exact search;
2. the sample-reduction lemma: with free residuals, any witness reduces to one
   with at most D samples (D = number of queried gradient entries), so a query
   at M > D can be decided at M = D, and unsat at any M >= D is unsat for all M;
3. the SMT encoding (:mod:`smtgrad.encoding`) on the chosen backend.

Every sat passes :func:`smtgrad.verify.verify` before it is reported; a witness
the verifier rejects raises :class:`WitnessRejected` (a bug, exit 4).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from math import prod
from typing import TYPE_CHECKING, Any

from smtgrad.backends import (
    Backend,
    IrrationalValue,
    Model,
    SolverAnswer,
    SolverStatus,
    get_backend,
    require_backend,
)
from smtgrad.lemmas import Proof, structural_proof
from smtgrad.modes import EXACT, Mode, ModeKind, UnsupportedSpec, is_smooth
from smtgrad.network import Evaluation, Parameters
from smtgrad.rank import applicable as rank_applicable
from smtgrad.rank import search
from smtgrad.spec import (
    LossKind,
    Spec,
    TargetKind,
    Verdict,
    sample_plan,
)
from smtgrad.verify import Status, Verification, verify
from smtgrad.witness import Witness, fixed_witness

if TYPE_CHECKING:
    from smtgrad.encoding import Encoding

Progress = Callable[[str], None]

#: Up to this M the complete solver runs right after a short rank-criterion search.
SMALL_M = 4

#: Seconds of rank-criterion draws before the complete solver at M <= SMALL_M.
SMALL_M_FAST_PATH_SECONDS = 0.03

#: Bases beta of the log lattices tried, in order, and the largest |k| of k*ln(beta).
LATTICE_BASES = (Fraction(2), Fraction(3), Fraction(3, 2), Fraction(5), Fraction(4, 3))
LATTICE_RADIUS = 3


class LemmaContradicted(RuntimeError):
    """A verified witness exists where a structural lemma claimed unsat: a bug, exit 4."""

    def __init__(self, lemma: str, method: str) -> None:
        self.lemma = lemma
        self.method = method
        super().__init__(f"the {lemma} claimed unsat, but {method} found a witness that the "
                         "exact verifier accepts")


class WitnessRejected(RuntimeError):
    """A solver's witness failed exact verification: a bug in smtgrad, never a sat."""

    def __init__(self, method: str, failures: tuple[str, ...]) -> None:
        self.method = method
        self.failures = failures
        super().__init__(f"witness from {method} rejected by the exact verifier: "
                         + "; ".join(failures[:5]))


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: which M, how long, which backend."""

    samples: int | None = None
    minimal: bool = False
    timeout: float | None = 60.0
    backend: str = "z3"
    cross_check: bool = False
    fast_path: bool = True
    reduction: bool = True
    lemmas: bool = True


@dataclass(frozen=True)
class Attempt:
    """What happened at one M."""

    samples: int
    verdict: Verdict
    method: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Result:
    """The answer to a spec: verdict, witness or proof, and how it was obtained."""

    spec: Spec
    verdict: Verdict
    samples: int | None
    solver: str
    method: str
    seconds: float
    witness: Witness | None = None
    evaluation: Evaluation | None = None
    certificate: str | None = None
    reason: str = ""
    proved: str | None = None
    attempts: tuple[Attempt, ...] = ()
    notes: tuple[str, ...] = ()  # how the sample count was chosen, and similar remarks


@dataclass(frozen=True)
class _Outcome:
    verdict: Verdict
    method: str
    solver: str
    witness: Witness | None = None
    verification: Verification | None = None
    reason: str = ""
    all_samples: bool = False
    start: Witness | None = None  # an abstraction model: a starting point for enclosures
    certificate: str = "exact"


def lattice_bases(spec: Spec) -> tuple[Fraction, ...]:
    """Bases beta of the log lattices to try: first those the spec's fixed closed forms
    live on (a fixed ``log(7)`` needs the ln 7 lattice), then :data:`LATTICE_BASES`."""
    from smtgrad.lognum import LogNumber

    derived: list[Fraction] = []
    stack: list[Any] = list(spec.fixed.values())
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, LogNumber):
            form = item.linear_form()
            if not form:
                continue
            first = next(iter(form.values()))
            ratios = {prime: q / first for prime, q in form.items()}
            if all(r.denominator == 1 for r in ratios.values()):
                base = Fraction(1)
                for prime, ratio in ratios.items():
                    base *= Fraction(prime) ** int(ratio)
                base = base if base > 1 else 1 / base
                if base not in derived:
                    derived.append(base)
    return (*derived, *(b for b in LATTICE_BASES if b not in derived))


def reduction_bound(spec: Spec) -> int | None:
    """D, when the sample-reduction lemma applies to ``spec``; else None.

    With MSE, free real targets and no per-sample constraints (no fixed X or Y,
    no assumptions), the gradients are sum_m phi(theta, x_m) r_m with the r_m
    free. A vector in the span of the phi columns is a combination of at most
    D of them, D the number of queried coordinates, so any witness reduces to
    one with at most D of its samples (genericity is preserved by subsets).
    """
    if (spec.loss.kind is not LossKind.MSE or spec.targets is not TargetKind.REAL
            or "X" in spec.fixed or "Y" in spec.fixed or spec.assume or not spec.query.nonzero):
        return None
    shapes = spec.network.parameter_shapes()
    targets = (*spec.query.zero, *spec.query.nonzero)
    whole = {target.block for target in targets if target.index is None}
    single = {(target.block, target.index) for target in targets
              if target.index is not None and target.block not in whole}
    return sum(prod(shapes[block]) for block in whole) + len(single)


def _pad(witness: Witness, spec: Spec, samples: int) -> Witness:
    """Add copies of sample 0 with zero residual (gradients unchanged)."""
    from smtgrad.network import evaluate

    extra = samples - witness.samples
    first = witness.inputs[0]
    zero = tuple(Fraction(0) for _ in range(spec.network.outputs))
    prediction = evaluate(spec.network, spec.loss, spec.conventions, witness.parameters,
                          (first,), (zero,)).predictions[0]
    return Witness(parameters=witness.parameters,
                   inputs=witness.inputs + (first,) * extra,
                   targets=witness.targets + (tuple(prediction),) * extra)


class _Engine:
    def __init__(self, spec: Spec, options: SolveOptions, progress: Progress | None) -> None:
        require_backend(options.backend)  # a bad --backend fails even if no solver is needed
        self.spec = spec
        self.options = options
        self.progress = progress or (lambda message: None)
        self.reporting = progress is not None  # skip building per-M messages nobody reads
        self.start = time.perf_counter()
        self.deadline = None if options.timeout is None else self.start + options.timeout
        self._backend: Backend | None = None
        #: D of the sample-reduction lemma for the spec (every M shares it), or None.
        self.bound = reduction_bound(spec) if options.reduction else None
        self.notes: list[str] = []

    # -- helpers ---------------------------------------------------------------------------

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

    def accept(self, spec: Spec, witness: Witness) -> Verification:
        return verify(spec, witness)

    def judged(self, spec: Spec, witness: Witness, method: str, solver: str,
               check: Verification | None = None) -> _Outcome:
        """A candidate witness through the verifier: sat when every requirement is proved,
        a bug (:class:`WitnessRejected`) when one is refuted, unknown when one cannot be
        decided."""
        check = check or self.accept(spec, witness)
        if check.status is Status.HOLDS:
            return _Outcome(Verdict.SAT, method, solver, witness=witness, verification=check)
        if check.status is Status.FAILS:
            raise WitnessRejected(method, check.failures)
        return _Outcome(Verdict.UNKNOWN, method, solver, reason=(
            "a candidate witness was found, but the verifier cannot decide "
            + "; ".join(check.undecided[:3])))

    # -- one M -----------------------------------------------------------------------------

    def slice(self, share: float, cap: float) -> float | None:
        """A time slice: ``share`` of what remains, at most ``cap`` seconds."""
        remaining = self.remaining()
        if remaining is None:
            return cap
        return max(0.05, min(cap, remaining * share))

    def solve_at(self, samples: int) -> _Outcome:
        if self.options.lemmas:
            # The lemmas read the network, query and conventions, not the spec's M.
            proof = structural_proof(self.spec, samples)
            if proof is not None:
                if self.reporting:
                    self.progress(f"M={samples}: unsat by the {proof.lemma}")
                return self.by_lemma(samples, proof)
        return self.decide(self.spec.with_samples(samples), samples)

    def by_lemma(self, samples: int, proof: Proof) -> _Outcome:
        """Unsat by a lemma; with --cross-check, confirmed by the solvers as well."""
        outcome = _Outcome(Verdict.UNSAT, proof.lemma, "smtgrad structural lemma",
                           reason=proof.argument, all_samples=proof.all_samples)
        if not self.options.cross_check:
            return outcome
        self.progress(f"M={samples}: cross-checking the {proof.lemma} with the solvers")
        check = self.decide(self.spec.with_samples(samples), samples)
        if check.verdict is Verdict.SAT:
            raise LemmaContradicted(proof.lemma, check.method)
        if check.verdict is Verdict.UNKNOWN:
            return _Outcome(Verdict.UNKNOWN, proof.lemma, "smtgrad structural lemma", reason=(
                f"the {proof.lemma} proves unsat, but the cross-check could not confirm it "
                f"({check.reason})"))
        return dataclasses.replace(outcome, solver=check.solver,
                                   reason=f"{proof.argument}; confirmed: {check.reason}")

    def decide(self, spec: Spec, samples: int) -> _Outcome:
        """Fast path, sample reduction and the solvers at one M (no lemmas)."""
        candidate = fixed_witness(spec, samples)
        if candidate is not None:
            return self.evaluated(spec, samples, candidate)
        if is_smooth(spec) or spec.loss.kind is not LossKind.MSE:
            return self.solve_smooth(spec, samples)
        bound = self.bound
        if bound is not None and samples > bound and not spec.generic:
            outcome = self.reduced(spec, samples, bound)
            if outcome.verdict is Verdict.SAT and self.options.fast_path:
                # Sat is settled; prefer a witness with distinct samples to a padded one.
                fast = self.fast_path(spec, samples)
                if fast is not None:
                    return fast
            if outcome.verdict is not Verdict.UNKNOWN:
                return outcome
        elif samples <= SMALL_M:
            # Small problems: a few rank-criterion draws (milliseconds when sat), then the
            # complete solver, which is quick here and settles unsat at once.
            if self.options.fast_path:
                fast = self.fast_path(spec, samples, budget=SMALL_M_FAST_PATH_SECONDS)
                if fast is not None:
                    return fast
            outcome = self.smt(spec, samples, budget=self.slice(0.25, 1.0))
            if outcome.verdict is not Verdict.UNKNOWN:
                return self.all_samples_if_reducible(outcome, spec, samples, bound)
        if self.options.fast_path:
            fast = self.fast_path(spec, samples)
            if fast is not None:
                return fast
        outcome = self.smt(spec, samples)
        return self.all_samples_if_reducible(outcome, spec, samples, bound)

    def evaluated(self, spec: Spec, samples: int, candidate: Witness) -> _Outcome:
        """A fully fixed spec has one candidate: the verifier's answer on it is the verdict."""
        self.progress(f"M={samples}: every value is fixed; evaluating the one candidate")
        method, solver = "evaluation of the fully fixed spec", "smtgrad exact evaluation"
        check = self.accept(spec, candidate)
        if check.status is Status.HOLDS:
            return _Outcome(Verdict.SAT, method, solver, witness=candidate, verification=check)
        if check.status is Status.FAILS:
            return _Outcome(Verdict.UNSAT, method, solver, reason=(
                "every value is fixed, and the one candidate fails: "
                + "; ".join(check.failures[:5])))
        return _Outcome(Verdict.UNKNOWN, method, solver, reason=(
            "every value is fixed, but exact and ball arithmetic cannot decide: "
            + "; ".join(check.undecided[:5])))

    def all_samples_if_reducible(self, outcome: _Outcome, spec: Spec, samples: int,
                                 bound: int | None) -> _Outcome:
        """Unsat at M >= D (no genericity) is unsat for every M, by sample reduction."""
        if (outcome.verdict is Verdict.UNSAT and bound is not None and samples >= bound
                and not spec.generic):
            return dataclasses.replace(outcome, all_samples=True, reason=(
                f"{outcome.reason}; M={samples} >= {bound} queried entries, so by sample "
                f"reduction no M works"))
        return outcome

    def reduced(self, spec: Spec, samples: int, bound: int) -> _Outcome:
        """Decide M > D at M = D: unsat there is unsat for all M; sat pads up to M."""
        self.progress(f"M={samples}: reducing to M={bound} (sample-reduction lemma)")
        reduced = self.smt(spec.with_samples(bound), bound, budget=self.slice(0.5, 30.0))
        if reduced.verdict is Verdict.UNSAT:
            return dataclasses.replace(reduced, all_samples=True, reason=(
                f"{reduced.reason}; by sample reduction every witness reduces to at most "
                f"{bound} samples and pads with zero-residual copies, so no M works"))
        if reduced.verdict is Verdict.SAT and reduced.witness is not None:
            padded = _pad(reduced.witness, spec, samples)
            return self.judged(spec, padded, f"{reduced.method}, padded from M={bound}",
                               reduced.solver)
        return reduced

    def solve_smooth(self, spec: Spec, samples: int) -> _Outcome:
        """Smooth units: abstraction for unsat; concretised and full log lattices, then
        certified enclosures, for witnesses."""
        from smtgrad.encoding import check_supported  # pysmt: imported only when needed

        notes: list[str] = []
        weak = spec.network.layers[-1].activation.vector
        abstract = self.smt(spec, samples, Mode(ModeKind.ABSTRACT, strong=not weak),
                            self.slice(0.15, 3.0))
        if abstract.verdict is Verdict.UNSAT:
            return abstract
        outcome = self.concretised_lattice(spec, samples)
        if outcome is not None:
            return outcome
        notes.append("no witness among the concretised lattice draws")
        bases = lattice_bases(spec)
        for position, base in enumerate(bases):
            if self.expired():
                break
            mode = Mode(ModeKind.LATTICE, base, LATTICE_RADIUS)
            try:
                check_supported(spec, mode)
            except UnsupportedSpec as error:
                notes.append(f"lattice: {error}")
                break
            budget = self.slice(0.5 / (len(bases) - position), 20.0)
            outcome = self.smt(spec, samples, mode, budget)
            if outcome.verdict is Verdict.SAT:
                return outcome
            notes.append(f"no witness on the ln({base}) lattice"
                         + (f" ({outcome.reason})" if outcome.verdict is Verdict.UNKNOWN else ""))
        if not self.expired():
            outcome = self.enclose(spec, samples, abstract.start)
            if outcome is not None:
                return outcome
            notes.append("no certified enclosure found by interval Newton")
        if (abstract.verdict is Verdict.UNKNOWN and (abstract.start is None or weak)
                and not self.expired()):
            retry = self.smt(spec, samples, Mode(ModeKind.ABSTRACT), self.remaining())
            if retry.verdict is Verdict.UNSAT:
                return retry
            notes.append(f"abstraction: {retry.reason}")
        else:
            notes.append(f"abstraction: {abstract.reason}")
        return _Outcome(Verdict.UNKNOWN, "log lattices, abstraction and enclosures",
                        self.backend.version(), reason="; ".join(notes))

    def concretised_lattice(self, spec: Spec, samples: int) -> _Outcome | None:
        """Many cheap draws: lower layers and inputs fixed, top layer solved on the lattice."""
        from smtgrad.concretize import draws
        from smtgrad.encoding import check_supported

        budget = self.slice(0.35, 30.0)
        stop = time.perf_counter() + (budget if budget is not None else 30.0)
        self.progress(f"M={samples}: concretised log-lattice draws")
        base = lattice_bases(spec)[0]
        mode = Mode(ModeKind.LATTICE, base, 2)
        for attempt, candidate in enumerate(draws(spec, samples, base)):
            if attempt >= 200 or time.perf_counter() > stop or self.expired():
                return None
            try:
                check_supported(candidate, mode)
            except UnsupportedSpec:
                return None
            outcome = self.smt(candidate, samples, mode, min(1.0, max(0.05, stop -
                                                                     time.perf_counter())),
                               verify_against=spec)
            if outcome.verdict is Verdict.SAT:
                return dataclasses.replace(outcome, method=(
                    f"{outcome.method}, lower layers and inputs fixed by a random draw"))
        return None

    def enclose(self, spec: Spec, samples: int, start: Witness | None) -> _Outcome | None:
        """Newton from the abstraction's model and random points, then a Krawczyk test."""
        from smtgrad import enclosure

        self.progress(f"M={samples}: searching a certified enclosure (interval Newton)")
        starts = [] if start is None else [enclosure.Point(start.parameters, start.inputs,
                                                           start.targets)]
        starts += enclosure.random_points(spec, samples, 40)
        budget = self.slice(0.6, 60.0) or 60.0
        verified: list[tuple[Witness, Verification]] = []

        def accept(found: enclosure.Found) -> bool:
            values = {c: b for c, b in zip(found.unknowns, found.box, strict=True)}
            boxed = found.point.with_values(values)
            witness = Witness(boxed.parameters, boxed.inputs, boxed.targets)
            check = self.accept(spec, witness)
            if check.accepted:
                verified.append((witness, check))
            return check.accepted

        found = enclosure.search(spec, samples, starts, time.perf_counter() + budget,
                                 accept=accept)
        if found is None:
            return None
        witness, check = verified[-1]
        return _Outcome(Verdict.SAT, "interval Newton with a Krawczyk certificate",
                        "python-flint arb ball arithmetic", witness=witness, verification=check,
                        certificate="enclosure")

    def fast_path(self, spec: Spec, samples: int, budget: float = 0.5) -> _Outcome | None:
        remaining = self.remaining()
        if remaining is not None:
            budget = min(budget, remaining / 4)
        found: list[Verification] = []

        def accept(witness: Witness) -> bool:
            check = self.accept(spec, witness)
            if check.accepted:
                found.append(check)
            return check.accepted

        from smtgrad import toplayer

        solver = "smtgrad exact linear algebra"
        start = time.perf_counter()
        second = toplayer.applicable(spec)
        rank_share = budget / 2 if second and rank_applicable(spec) else budget
        witness = search(spec, samples, start + rank_share, accept=accept)
        if witness is not None:
            return _Outcome(Verdict.SAT, "rank criterion (exact linear algebra on residuals)",
                            solver, witness=witness, verification=found[-1])
        if second:
            witness = toplayer.search(spec, samples, start + budget, accept=accept)
            if witness is not None:
                return _Outcome(Verdict.SAT, "output layer solved exactly on biased draws "
                                "(zeros, repeated inputs and kinks allowed)", solver,
                                witness=witness, verification=found[-1])
        return None

    def smt(self, spec: Spec, samples: int, mode: Mode = EXACT,
            budget: float | None = None, verify_against: Spec | None = None) -> _Outcome:
        if self.expired():
            return _Outcome(Verdict.UNKNOWN, "none", "none",
                            reason=f"timeout after {self.options.timeout:g} s")
        from smtgrad.encoding import EncodingTimeout, encode

        self.progress(f"M={samples}: {mode.describe()} with {self.options.backend}")
        try:
            encoding = encode(spec, samples, mode, self.deadline)
        except UnsupportedSpec as error:
            return _Outcome(Verdict.UNKNOWN, mode.describe(), "none", reason=str(error))
        except EncodingTimeout:
            return _Outcome(Verdict.UNKNOWN, mode.describe(), "none",
                            reason=f"timeout after {self.options.timeout:g} s (while encoding)")
        backend = self.backend
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return _Outcome(Verdict.UNKNOWN, mode.describe(), backend.version(),
                            reason=f"timeout after {self.options.timeout:g} s")
        if budget is not None and remaining is not None:
            budget = min(budget, remaining)
        answer = backend.solve(encoding.formula(), budget if budget is not None else remaining)
        method = f"{backend.name} on the {mode.describe()}"
        if answer.status is SolverStatus.UNSAT:
            if mode.kind is ModeKind.LATTICE:
                return _Outcome(Verdict.UNKNOWN, method, backend.version(),
                                reason="the lattice has no witness (this proves nothing)")
            what = "the abstraction" if mode.kind is ModeKind.ABSTRACT else "the encoding"
            reason = f"{backend.version()} proved {what} unsat at M={samples}"
            if encoding.relaxed:
                reason += ", with " + ", ".join(
                    f"ln {p} relaxed to ({lo}, {hi})" for p, (lo, hi) in
                    sorted(encoding.relaxed.items())) + " (an over-approximation)"
            if self.options.cross_check:
                return self.cross_check(spec, encoding, samples, method, reason)
            return _Outcome(Verdict.UNSAT, method, backend.version(), reason=reason)
        if answer.status is SolverStatus.UNKNOWN:
            return _Outcome(Verdict.UNKNOWN, method, backend.version(), reason=answer.reason)
        if encoding.relaxed and mode.kind is not ModeKind.ABSTRACT:
            return self.completed_from_relaxation(spec, encoding, answer, method, backend)
        if mode.kind is ModeKind.ABSTRACT:
            assert answer.model is not None
            try:
                start = None if encoding.relaxed else _read_witness(encoding, answer.model,
                                                                    approximate=True)
            except IrrationalValue:
                start = None
            return _Outcome(Verdict.UNKNOWN, method, backend.version(), start=start,
                            reason="the abstraction is satisfiable (that proves nothing)")
        return self.witness_from(verify_against or spec, encoding, answer, method, backend)

    def completed_from_relaxation(self, spec: Spec, encoding: Encoding, answer: SolverAnswer,
                                  method: str, backend: Backend) -> _Outcome:
        """A model of the relaxed encoding (ln p in an interval) is no witness, but its
        parameters and inputs, rounded, with the closed forms put back exactly, are a
        point where the rank criterion solves the residuals exactly."""
        from smtgrad.rank import complete

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
                check = self.accept(spec, witness)
                if check.accepted:
                    found.append(check)
                return check.accepted

            witness = complete(spec, parameters, inputs, accept)
            if witness is not None:
                return _Outcome(Verdict.SAT, f"{method} (ln p relaxed), completed by the rank "
                                "criterion", backend.version(), witness=witness,
                                verification=found[-1])
        return _Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
            "the encoding with the logarithms of fixed closed forms relaxed to intervals "
            "is satisfiable (that proves nothing), and no exact witness was completed from "
            "its model"))

    def cross_check(self, spec: Spec, encoding: Encoding, samples: int, method: str,
                    reason: str) -> _Outcome:
        other_name = "cvc5" if self.options.backend == "z3" else "z3"
        try:
            other = get_backend(other_name)
        except Exception as error:  # BackendUnavailable and solver start-up failures
            return _Outcome(Verdict.UNKNOWN, method, self.backend.version(),
                            reason=f"{reason}, but the cross-check could not run: {error}")
        self.progress(f"M={samples}: cross-checking unsat with {other_name}")
        answer = other.solve(encoding.formula(), self.remaining())
        if answer.status is SolverStatus.UNSAT:
            return _Outcome(Verdict.UNSAT, method, f"{self.backend.version()} + "
                            f"{other.version()}", reason=f"{reason}; confirmed by "
                            f"{other.version()}")
        return _Outcome(Verdict.UNKNOWN, method, self.backend.version(), reason=(
            f"solvers disagree: {self.backend.version()} says unsat, {other.version()} says "
            f"{answer.status.value}{' (' + answer.reason + ')' if answer.reason else ''}"))

    def witness_from(self, spec: Spec, encoding: Encoding, answer: SolverAnswer, method: str,
                     backend: Backend) -> _Outcome:
        assert answer.model is not None
        try:
            witness = _read_witness(encoding, answer.model)
        except IrrationalValue as error:
            if encoding.mode.kind is not ModeKind.EXACT:
                return _Outcome(Verdict.UNKNOWN, method, backend.version(), reason=str(error))
            return self.rationalize(spec, encoding, answer.model, method, backend, str(error))
        check = self.accept(spec, witness)
        if (check.status is Status.FAILS and encoding.loss_unencoded
                and all(f.startswith("assume") for f in check.failures)):
            return _Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
                "the lattice candidate fails an assumption on the cross-entropy loss, "
                "which the lattice encoding cannot express"))
        return self.judged(spec, witness, method, backend.version(), check)

    def rationalize(self, spec: Spec, encoding: Encoding, model: Model, method: str,
                    backend: Backend, why: str) -> _Outcome:
        """Fix parameters and inputs to rational approximations and re-solve for residuals."""
        from smtgrad.encoding import encode

        self.progress("the solver's model is irrational; re-solving with rational parameters")
        fixed: dict[str, Any] = dict(spec.fixed)
        try:
            for name, terms in {**encoding.parameters, "X": encoding.inputs}.items():
                fixed[name] = _approximate(terms, model)
        except IrrationalValue as error:
            return _Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
                f"a solution exists but the solver's model is irrational and cannot be "
                f"approximated here ({error})"))
        candidate = dataclasses.replace(spec, fixed=fixed)
        encoding = encode(candidate, encoding.samples)
        answer = backend.solve(encoding.formula(), self.remaining())
        if answer.status is SolverStatus.SAT and answer.model is not None:
            try:
                witness = _read_witness(encoding, answer.model)
            except IrrationalValue:
                pass
            else:
                return self.judged(spec, witness, f"{method}, rationalised",
                                   backend.version())
        return _Outcome(Verdict.UNKNOWN, method, backend.version(), reason=(
            f"a solution exists but the solver's model is irrational ({why}) and no rational "
            "witness was found near it"))

    # -- the whole query -------------------------------------------------------------------

    def run(self) -> Result:
        spec = self.spec
        sample_range, notes = sample_plan(spec, self.options.samples, self.options.minimal)
        self.notes.extend(notes)
        for note in self.notes:
            self.progress(note)
        attempts: list[Attempt] = []
        bound = self.bound
        for samples in sample_range.values():
            started = time.perf_counter()
            outcome = self.solve_at(samples)
            attempts.append(Attempt(samples, outcome.verdict, outcome.method,
                                    time.perf_counter() - started, outcome.reason))
            if self.reporting:
                self.progress(f"M={samples}: {outcome.verdict.value}")
            if outcome.verdict is Verdict.SAT:
                return self.result(outcome, samples, attempts)
            if outcome.verdict is Verdict.UNKNOWN:
                return self.result(outcome, samples, attempts)
            if outcome.all_samples:
                return self.result(outcome, samples, attempts, proved="all M")
            if (bound is not None and spec.generic and samples >= bound
                    and all(a.verdict is Verdict.UNSAT for a in attempts)
                    and attempts[0].samples == 1):
                return self.result(outcome, samples, attempts, proved="all M", extra=(
                    f"; M=1..{bound} are unsat and every witness reduces to at most {bound} of "
                    f"its samples, so no M works"))
        low, high = sample_range.min, sample_range.max
        proved = f"M={low}" if low == high else f"M={low}..{high}"
        last = attempts[-1]
        return Result(spec=spec, verdict=Verdict.UNSAT, samples=None,
                      solver=outcome.solver, method=last.method,
                      seconds=time.perf_counter() - self.start,
                      reason=last.detail if low == high else
                      f"unsat at every M from {low} to {high}", proved=proved,
                      attempts=tuple(attempts), notes=tuple(self.notes))

    def result(self, outcome: _Outcome, samples: int, attempts: list[Attempt],
               proved: str | None = None, extra: str = "") -> Result:
        evaluation = outcome.verification.evaluation if outcome.verification else None
        if outcome.verdict is Verdict.UNSAT and proved is None:
            proved = f"M={samples}"
        return Result(
            spec=self.spec,
            verdict=outcome.verdict,
            samples=samples if outcome.verdict is not Verdict.UNKNOWN else None,
            solver=outcome.solver,
            method=outcome.method,
            seconds=time.perf_counter() - self.start,
            witness=outcome.witness,
            evaluation=evaluation,
            certificate=outcome.certificate if outcome.verdict is Verdict.SAT else None,
            reason=outcome.reason + extra,
            proved=proved,
            attempts=tuple(attempts),
            notes=tuple(self.notes),
        )


def _read_witness(encoding: Encoding, model: Model, approximate: bool = False) -> Witness:
    """Model values -> witness; lattice-encoded parameters are coefficients of ln(base)."""
    from smtgrad.lognum import LogNumber

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


def solve(spec: Spec, options: SolveOptions | None = None,
          progress: Progress | None = None) -> Result:
    """Answer a spec: sat with a verified witness, unsat with what proved it, or unknown."""
    return _Engine(spec, options or SolveOptions(), progress).run()
