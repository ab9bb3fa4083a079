"""The engine: for each M, the structural lemmas, then a portfolio of methods.

It is the only place that turns outcomes into verdicts:

* a method's sat is already verified (:meth:`Context.judged`); a refuted
  witness is a bug (:class:`WitnessRejected`, exit 4);
* a lemma's unsat stands, or with ``--cross-check`` is confirmed by the
  portfolio (a verified witness against it is :class:`LemmaContradicted`);
* unsat at M >= D without genericity is unsat for every M (sample reduction);
* the walk over M stops at the first sat or unknown.

Which methods run, in which order and with which budgets, is declared in
:mod:`smtgrad.methods`. May import the methods, the spec and the backends; a
:class:`Result`'s views (:mod:`smtgrad.views`) import the report and the exports lazily.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from smtgrad.backends import require_backend
from smtgrad.errors import InternalError
from smtgrad.methods import LEMMAS, SMOOTH, UNLIMITED, Context, Outcome, Problem, portfolio
from smtgrad.methods import SolveOptions as SolveOptions  # re-exported: the public API
from smtgrad.methods import WitnessRejected as WitnessRejected  # re-exported (exit 4)
from smtgrad.methods import reduction_bound as reduction_bound  # re-exported
from smtgrad.methods.base import Progress
from smtgrad.reference.network import Evaluation
from smtgrad.reference.witness import Witness
from smtgrad.spec import Spec, Verdict, sample_plan
from smtgrad.views import WitnessViews


class LemmaContradicted(InternalError, RuntimeError):
    """A verified witness exists where a structural lemma claimed unsat: a bug, exit 4."""

    def __init__(self, lemma: str, method: str) -> None:
        self.lemma = lemma
        self.method = method
        super().__init__(f"the {lemma} claimed unsat, but {method} found a witness that the "
                         "exact verifier accepts")


@dataclass(frozen=True)
class Attempt:
    """What happened at one M."""

    samples: int
    verdict: Verdict
    method: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Result(WitnessViews):
    """The answer to a spec: verdict, witness or proof, and how it was obtained.

    Besides the fields: ``.gradients`` and ``.loss`` (exact), ``.to_dict()`` (the JSON
    contract), ``.to_torch()``, ``.to_numpy()``, ``.to_onnx()``, ``.replay()``,
    ``.save(path)`` and a notebook display (:class:`smtgrad.views.WitnessViews`).
    """

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

    def _evaluation(self) -> Evaluation | None:
        return self.evaluation if self.verdict is Verdict.SAT else None

    def _enclosure(self) -> bool:
        return self.certificate == "enclosure"

    @property
    def has_witness(self) -> bool:
        return self.verdict is Verdict.SAT and self.witness is not None

    def _why_none(self) -> str:
        return f"the verdict is {self.verdict.value}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (DESIGN section 3): exactly ``smtgrad.report.result_json``."""
        from smtgrad.report import result_json

        return result_json(self)

    def text(self) -> str:
        """The text report that ``smtgrad solve`` prints."""
        from smtgrad.report import render_result

        return render_result(self)

    def __repr__(self) -> str:
        where = f" at M={self.samples}" if self.samples is not None else ""
        how = f", certificate={self.certificate!r}" if self.certificate else \
            (f", proved={self.proved!r}" if self.proved else "")
        return (f"Result(spec={self.spec.name!r}, verdict={self.verdict.value}{where}{how}, "
                f"method={self.method!r})")


class _Engine:
    def __init__(self, spec: Spec, options: SolveOptions, progress: Progress | None) -> None:
        require_backend(options.backend)  # a bad --backend fails even if no solver is needed
        self.spec = spec
        self.options = options
        self.context = Context(options, progress)
        #: D of the sample-reduction lemma for the spec (every M shares it), or None.
        self.bound = reduction_bound(spec) if options.reduction else None
        self.notes: list[str] = []

    def solve_at(self, samples: int) -> Outcome:
        problem = self.problem(self.spec, samples)
        proof = LEMMAS.run(problem, UNLIMITED) if LEMMAS.applies(problem) else None
        if proof is None:
            return self.decide(samples)
        if not self.options.cross_check:
            return proof
        self.context.progress(f"M={samples}: cross-checking the {proof.method} with the "
                              "solvers")
        check = self.decide(samples)
        if check.verdict is Verdict.SAT:
            raise LemmaContradicted(proof.method, check.method)
        if check.verdict is Verdict.UNKNOWN:
            return Outcome(Verdict.UNKNOWN, proof.method, proof.solver, reason=(
                f"the {proof.method} proves unsat, but the cross-check could not confirm it "
                f"({check.reason})"))
        return dataclasses.replace(proof, solver=check.solver,
                                   reason=f"{proof.reason}; confirmed: {check.reason}")

    def problem(self, spec: Spec, samples: int) -> Problem:
        return Problem(spec, samples, self.context, {"reduction bound": self.bound})

    def decide(self, samples: int) -> Outcome:
        """The portfolio at one M (no lemmas): the first sat or unsat, else unknown."""
        problem = self.problem(self.spec.with_samples(samples), samples)
        steps = portfolio(problem.spec)
        unknown: list[Outcome] = []
        for step in steps:
            if self.context.expired():
                break
            if not (step.method.applies(problem) and step.when(problem)):
                continue
            outcome = step.method.run(problem, step.budget)
            if outcome is None:
                continue
            if outcome.verdict is not Verdict.UNKNOWN:
                return self.unsat_for_every_m(outcome, problem)
            unknown.append(outcome)
        if self.context.expired() or not unknown:
            reason = self.context.timeout_reason() if self.context.expired() else \
                "no method applies"
            unknown.append(Outcome(Verdict.UNKNOWN, "none", "none", reason=reason))
        last = unknown[-1]
        if steps is not SMOOTH:
            return last
        reasons = list(dict.fromkeys(o.reason for o in unknown if o.reason))
        return Outcome(Verdict.UNKNOWN, "log lattices, abstraction and enclosures",
                       self.context.backend.version(), reason="; ".join(reasons))

    def unsat_for_every_m(self, outcome: Outcome, problem: Problem) -> Outcome:
        """Unsat at M >= D (no genericity) is unsat for every M, by sample reduction."""
        bound = self.bound
        if (outcome.verdict is Verdict.UNSAT and not outcome.all_samples and bound is not None
                and problem.samples >= bound and not problem.spec.generic):
            return dataclasses.replace(outcome, all_samples=True, reason=(
                f"{outcome.reason}; M={problem.samples} >= {bound} queried entries, so by "
                "sample reduction no M works"))
        return outcome

    def run(self) -> Result:
        sample_range, notes = sample_plan(self.spec, self.options.samples, self.options.minimal)
        self.notes.extend(notes)
        for note in self.notes:
            self.context.progress(note)
        attempts: list[Attempt] = []
        bound = self.bound
        outcome: Outcome | None = None
        for samples in sample_range.values():
            started = time.perf_counter()
            outcome = self.solve_at(samples)
            attempts.append(Attempt(samples, outcome.verdict, outcome.method,
                                    time.perf_counter() - started, outcome.reason))
            if self.context.reporting:
                self.context.progress(f"M={samples}: {outcome.verdict.value}")
            if outcome.verdict is not Verdict.UNSAT:
                return self.result(outcome, samples, attempts)
            if outcome.all_samples:
                return self.result(outcome, samples, attempts, proved="all M")
            if (bound is not None and self.spec.generic and samples >= bound
                    and attempts[0].samples == 1):
                return self.result(outcome, samples, attempts, proved="all M", extra=(
                    f"; M=1..{bound} are unsat and every witness reduces to at most {bound} of "
                    f"its samples, so no M works"))
        assert outcome is not None
        low, high = sample_range.min, sample_range.max
        last = attempts[-1]
        return Result(spec=self.spec, verdict=Verdict.UNSAT, samples=None,
                      solver=outcome.solver, method=last.method,
                      seconds=time.perf_counter() - self.context.start,
                      reason=last.detail if low == high else
                      f"unsat at every M from {low} to {high}",
                      proved=f"M={low}" if low == high else f"M={low}..{high}",
                      attempts=tuple(attempts), notes=tuple(self.notes))

    def result(self, outcome: Outcome, samples: int, attempts: list[Attempt],
               proved: str | None = None, extra: str = "") -> Result:
        evaluation = outcome.verification.evaluation if outcome.verification else None
        if outcome.verdict is Verdict.UNSAT and proved is None:
            proved = f"M={samples}"
        return Result(
            spec=self.spec, verdict=outcome.verdict,
            samples=samples if outcome.verdict is not Verdict.UNKNOWN else None,
            solver=outcome.solver, method=outcome.method,
            seconds=time.perf_counter() - self.context.start,
            witness=outcome.witness, evaluation=evaluation,
            certificate=outcome.certificate if outcome.verdict is Verdict.SAT else None,
            reason=outcome.reason + extra, proved=proved, attempts=tuple(attempts),
            notes=tuple(self.notes))


def solve(spec: Spec, options: SolveOptions | None = None,
          progress: Progress | None = None) -> Result:
    """Answer a spec: sat with a verified witness, unsat with what proved it, or unknown."""
    engine = _Engine(spec, options or SolveOptions(), progress)
    with engine.context.resources:
        return engine.run()
