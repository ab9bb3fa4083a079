"""Methods for smooth networks (sigmoid, tanh, softmax, softplus, elu, silu, gelu) and
cross-entropy losses: the monotone abstraction (unsat), log lattices (exact sat),
concretised lattice draws, and certified enclosures (Krawczyk)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

from smtgrad.encoding.modes import Mode, ModeKind, UnsupportedSpec
from smtgrad.methods.base import Budget, Method, Outcome, Problem, Proves, solver_seconds
from smtgrad.methods.smt import SmtRunner
from smtgrad.reference.verify import Verification
from smtgrad.reference.witness import Witness
from smtgrad.spec import Spec, Verdict

#: Bases beta of the log lattices tried, in order, and the largest |k| of k*ln(beta).
LATTICE_BASES = (Fraction(2), Fraction(3), Fraction(3, 2), Fraction(5), Fraction(4, 3))
LATTICE_RADIUS = 3

#: Solver work for one concretised lattice draw (the top layer on the lattice).
CONCRETISED_DRAW_WORK = solver_seconds(1)


def lattice_bases(spec: Spec) -> tuple[Fraction, ...]:
    """Bases beta of the log lattices to try: first those the spec's fixed closed forms
    live on (a fixed ``log(7)`` needs the ln 7 lattice), then :data:`LATTICE_BASES`."""
    from smtgrad.numbers.lognum import LogNumber

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


def _weak(problem: Problem) -> bool:
    """A softmax output: the first abstraction keeps per-sample facts only (cheaper)."""
    return problem.spec.network.layers[-1].activation.vector


class Abstraction(Method):
    """Smooth units replaced by fresh values with true facts: its unsat is unsat."""

    name = "abstraction"
    proves = Proves.UNSAT

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        outcome = SmtRunner(problem.context).solve(
            problem.spec, problem.samples, Mode(ModeKind.ABSTRACT, strong=not _weak(problem)),
            budget.work)
        problem.hints["abstraction"] = outcome
        return outcome


class AbstractionRetry(Method):
    """The full abstraction with the rest of the time, when the first try was cut short."""

    name = "abstraction (full)"
    proves = Proves.UNSAT

    def applies(self, problem: Problem) -> bool:
        first = problem.hints.get("abstraction")
        return (isinstance(first, Outcome) and first.verdict is Verdict.UNKNOWN
                and (first.start is None or _weak(problem)))

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        # Unsat only (a model of the abstraction proves nothing here): cvc5 may race z3.
        retry = SmtRunner(problem.context).solve(problem.spec, problem.samples,
                                                 Mode(ModeKind.ABSTRACT), budget.work,
                                                 proof_race=True)
        return retry


class ConcretisedLattice(Method):
    """Many cheap draws: lower layers and inputs fixed, top layer solved on the lattice."""

    name = "concretised lattice"
    proves = Proves.SAT

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        from smtgrad.encoding.builder import check_supported
        from smtgrad.methods.concretize import draws

        spec, samples, context = problem.spec, problem.samples, problem.context
        limit = budget.draws(200)
        context.progress(f"M={samples}: concretised log-lattice draws")
        base = lattice_bases(spec)[0]
        mode = Mode(ModeKind.LATTICE, base, 2)
        runner = SmtRunner(context)
        for attempt, candidate in enumerate(draws(spec, samples, base)):
            if attempt >= limit or context.expired():
                break
            try:
                check_supported(candidate, mode)
            except UnsupportedSpec:
                break
            outcome = runner.solve(candidate, samples, mode, CONCRETISED_DRAW_WORK,
                                   verify_against=spec)
            if outcome.verdict is Verdict.SAT:
                return dataclasses.replace(outcome, method=(
                    f"{outcome.method}, lower layers and inputs fixed by a random draw"))
        return Outcome(Verdict.UNKNOWN, self.name, "none",
                       reason="no witness among the concretised lattice draws")


class Lattices(Method):
    """The log-lattice encodings, one base after the other (sat only: exact witnesses)."""

    name = "log lattices"
    proves = Proves.SAT

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        from smtgrad.encoding.builder import check_supported

        spec, samples, context = problem.spec, problem.samples, problem.context
        notes: list[str] = []
        bases = lattice_bases(spec)
        runner = SmtRunner(context)
        for base in bases:
            if context.expired():
                break
            mode = Mode(ModeKind.LATTICE, base, LATTICE_RADIUS)
            try:
                check_supported(spec, mode)
            except UnsupportedSpec as error:
                notes.append(f"lattice: {error}")
                break
            # An equal share of the step's solver work per base (None: unlimited each).
            work = None if budget.work is None else budget.work // len(bases)
            outcome = runner.solve(spec, samples, mode, work)
            if outcome.verdict is Verdict.SAT:
                return outcome
            notes.append(f"no witness on the ln({base}) lattice"
                         + (f" ({outcome.reason})" if outcome.verdict is Verdict.UNKNOWN else ""))
        return Outcome(Verdict.UNKNOWN, self.name, "none", reason="; ".join(notes))


class Enclosure(Method):
    """Newton from the abstraction's model and random points, then a Krawczyk test."""

    name = "enclosure"
    proves = Proves.SAT

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        from smtgrad.methods import newton

        spec, samples, context = problem.spec, problem.samples, problem.context
        context.progress(f"M={samples}: searching a certified enclosure (interval Newton)")
        first = problem.hints.get("abstraction")
        start = first.start if isinstance(first, Outcome) else None
        starts = [] if start is None else [newton.Point(start.parameters, start.inputs,
                                                           start.targets)]
        starts += newton.random_points(spec, samples, budget.draws(40))
        verified: list[tuple[Witness, Verification]] = []

        def accept(found: newton.Found) -> bool:
            values = {c: b for c, b in zip(found.unknowns, found.box, strict=True)}
            boxed = found.point.with_values(values)
            witness = Witness(boxed.parameters, boxed.inputs, boxed.targets)
            check = problem.context.verify(spec, witness)
            if check.accepted:
                verified.append((witness, check))
            return check.accepted

        found = newton.search(spec, samples, starts, context.deadline, accept=accept)
        if found is None:
            return Outcome(Verdict.UNKNOWN, self.name, "none",
                           reason="no certified enclosure found by interval Newton")
        witness, check = verified[-1]
        return Outcome(Verdict.SAT, "interval Newton with a Krawczyk certificate",
                       "python-flint arb ball arithmetic", witness=witness, verification=check,
                       certificate="enclosure")


class LatticeSites(Method):
    """Exact witnesses for fixed-label outputs: input sites with multiplicities, the output
    layer on the log lattice (:func:`~smtgrad.methods.concretize.lattice_sites`).
    Budget: draws, spread over the lattice bases in turn."""

    name = "lattice sites"
    proves = Proves.SAT

    def applies(self, problem: Problem) -> bool:
        from smtgrad.methods.concretize import top_unknowns

        return top_unknowns(problem.spec) is not None

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        from smtgrad.methods.concretize import lattice_residuals, lattice_sites

        spec, samples, context = problem.spec, problem.samples, problem.context
        limit = budget.draws(50)
        bases = lattice_bases(spec)[:3]
        context.progress(f"M={samples}: exact lattice sites ({limit} draws)")
        found_by = {lattice_sites: ("exact lattice sites: output logits on the log lattice, "
                                    "sample multiplicities solving the output layer exactly"),
                    lattice_residuals: ("exact lattice residuals: output logits on the log "
                                        "lattice, residuals in the null space of the output "
                                        "layer's equations (rank criterion)")}
        searches = [(found_by[search], search(spec, samples, base)) for base in bases
                    for search in (lattice_sites, lattice_residuals)]
        done = 0
        while done < limit and searches and not context.expired():
            position = done % len(searches)
            done += 1
            try:
                method, point = searches[position][0], next(searches[position][1])
            except StopIteration:  # the search does not apply to this spec
                del searches[position]
                continue
            if point is None:
                continue
            witness = Witness(point.parameters, point.inputs, point.targets)
            check = context.verify(spec, witness)
            if check.accepted:
                context.effort.add(self.name, done, "draws", limit)
                return context.judged(spec, witness, method,
                                      "smtgrad exact rational arithmetic", check)
        context.effort.add(self.name, done, "draws", limit)
        return Outcome(Verdict.UNKNOWN, self.name, "none",
                       reason=f"no exact lattice-site witness in {done} draws")


class TopLayer(Method):
    """Continuation's first stage: lower layers and inputs from lattice draws, the output
    layer's zero-gradient equations solved (exactly for a linear output with MSE, else by
    damped Newton), then certified by the Krawczyk test. Budget: draws."""

    name = "top-layer solve"
    proves = Proves.SAT

    def applies(self, problem: Problem) -> bool:
        from smtgrad.methods.concretize import top_unknowns

        return top_unknowns(problem.spec) is not None

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        from smtgrad.methods.concretize import certify, top_candidates

        spec, samples, context = problem.spec, problem.samples, problem.context
        limit = budget.draws(200)
        # A later step continues the same sequence of draws (one fixed seed per M).
        state = problem.hints.get(self.name)
        if not isinstance(state, tuple):
            state = (top_candidates(spec, samples, lattice_bases(spec)[0]), 0)
        candidates, before = state
        context.progress(f"M={samples}: top-layer solve on lattice draws {before + 1}.."
                         f"{before + limit}")
        done = 0
        for candidate in candidates:
            if done >= limit or context.expired():
                break
            done += 1
            problem.hints[self.name] = (candidates, before + done)
            if candidate is None:
                continue
            point, certificate = candidate.point, "exact"
            if not candidate.exact:
                box = certify(spec, candidate.point, candidate.unknowns, candidate.values)
                if box is None:
                    continue
                point = candidate.point.with_values(dict(zip(candidate.unknowns, box,
                                                             strict=True)))
                certificate = "enclosure"
            witness = Witness(point.parameters, point.inputs, point.targets)
            check = context.verify(spec, witness)
            if not check.accepted:
                continue
            context.effort.add(self.name, done, "draws", limit)
            if certificate == "exact":
                return context.judged(spec, witness, (
                    "top-layer solve: lower layers on the log lattice, the output layer's "
                    "normal equations solved exactly"), "smtgrad exact rational arithmetic",
                    check)
            return Outcome(Verdict.SAT, "top-layer solve (lower layers on the log lattice, "
                           "output layer by Newton) with a Krawczyk certificate",
                           "python-flint arb ball arithmetic", witness=witness,
                           verification=check, certificate="enclosure")
        context.effort.add(self.name, done, "draws", limit)
        if before == 0 and context.reporting:
            timeout = context.options.timeout
            context.progress(
                f"M={samples}: the fast searches found no witness ({done} top-layer draws); "
                "the abstraction, longer searches and the lattice solvers follow, and may "
                + (f"need the whole --timeout of {timeout:g} s" if timeout is not None
                   else "take long (no --timeout)"))
        return Outcome(Verdict.UNKNOWN, self.name, "none",
                       reason=f"no top-layer root certified in {before + done} draws")
