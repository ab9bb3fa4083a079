"""Methods for piecewise-linear networks with MSE: evaluation, lemmas, the fast path
(rank criterion and output-layer solve), sample reduction, the exact SMT encoding."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from math import prod

from smtgrad.methods import rank, toplayer
from smtgrad.methods.base import UNLIMITED, Budget, Method, Outcome, Problem, Proves
from smtgrad.methods.identities import balance_proof
from smtgrad.methods.lemmas import Proof, structural_proof
from smtgrad.methods.smt import SmtRunner
from smtgrad.reference.verify import Status, Verification
from smtgrad.reference.witness import Witness, fixed_witness
from smtgrad.spec import LossKind, Spec, TargetKind, Verdict

#: Up to this M the complete solver runs right after a short fast-path search.
SMALL_M = 4

#: Fast-path draws of a step whose budget says "until the deadline".
DEFAULT_DRAWS = 200


class FullyFixed(Method):
    """Every value fixed: one candidate, and the verifier's answer on it is the verdict."""

    name = "evaluation"
    proves = Proves.BOTH

    def applies(self, problem: Problem) -> bool:
        return fixed_witness(problem.spec, problem.samples) is not None

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        spec, samples = problem.spec, problem.samples
        candidate = fixed_witness(spec, samples)
        assert candidate is not None
        problem.context.progress(f"M={samples}: every value is fixed; evaluating the one "
                                 "candidate")
        method, solver = "evaluation of the fully fixed spec", "smtgrad exact evaluation"
        check = problem.context.verify(spec, candidate)
        if check.status is Status.HOLDS:
            return Outcome(Verdict.SAT, method, solver, witness=candidate, verification=check)
        if check.status is Status.FAILS:
            return Outcome(Verdict.UNSAT, method, solver, reason=(
                "every value is fixed, and the one candidate fails: "
                + "; ".join(check.failures[:5])))
        return Outcome(Verdict.UNKNOWN, method, solver, reason=(
            "every value is fixed, but exact and ball arithmetic cannot decide: "
            + "; ".join(check.undecided[:5])))


class StructuralLemmas(Method):
    """Unsat proofs read off the query's shape, with no solver (:mod:`smtgrad.methods.lemmas`)."""

    name = "lemmas"
    proves = Proves.UNSAT

    def applies(self, problem: Problem) -> bool:
        return problem.context.options.lemmas

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        # The lemmas read the network, query and conventions, not the spec's M.
        proof = structural_proof(problem.spec, problem.samples)
        if proof is None:
            balance = balance_proof(problem.spec)
            if balance is None:
                return None
            proof = Proof(lemma=balance[0], argument=balance[1], all_samples=True)
        if problem.context.reporting:
            problem.context.progress(f"M={problem.samples}: unsat by the {proof.lemma}")
        return Outcome(Verdict.UNSAT, proof.lemma, "smtgrad structural lemma",
                       reason=proof.argument, all_samples=proof.all_samples)


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


def _bound(problem: Problem) -> int | None:
    """D for the problem when sample reduction is switched on (cached per solve)."""
    if not problem.context.options.reduction:
        return None
    key = "reduction bound"
    if key not in problem.hints:
        problem.hints[key] = reduction_bound(problem.spec)
    bound = problem.hints[key]
    assert bound is None or isinstance(bound, int)
    return bound


def reducible(problem: Problem) -> bool:
    """M > D without genericity: the problem is decided at M = D."""
    bound = _bound(problem)
    return bound is not None and problem.samples > bound and not problem.spec.generic


def small(problem: Problem) -> bool:
    """A small problem (M <= SMALL_M) that sample reduction does not take."""
    return problem.samples <= SMALL_M and not reducible(problem)


class FastPath(Method):
    """Sat-only exact searches: the rank criterion (free residuals), then the output-layer
    solve (fixed, binary or bounded targets; degenerate draws)."""

    name = "fast path"
    proves = Proves.SAT

    def applies(self, problem: Problem) -> bool:
        return problem.context.options.fast_path

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        spec, samples, context = problem.spec, problem.samples, problem.context
        draws = budget.draws(DEFAULT_DRAWS)
        # Each fast-path step of a portfolio continues the draw sequence of the last one
        # (new draws, growing magnitudes), so the rounds never repeat work.
        first = problem.hints.get("fast path draws", 0)
        assert isinstance(first, int)
        problem.hints["fast path draws"] = first + draws
        found: list[Verification] = []

        def accept(witness: Witness) -> bool:
            check = context.verify(spec, witness)
            if check.accepted:
                found.append(check)
            return check.accepted

        solver = "smtgrad exact linear algebra"
        deadline = context.deadline
        second = toplayer.applicable(spec)
        witness = rank.search(spec, samples, deadline, attempts=draws, first=first,
                              accept=accept, effort=context.effort)
        if witness is not None:
            return Outcome(Verdict.SAT, "rank criterion (exact linear algebra on residuals)",
                           solver, witness=witness, verification=found[-1])
        if second:
            witness = toplayer.search(spec, samples, deadline, attempts=2 * draws,
                                      first=2 * first, accept=accept, effort=context.effort)
            if witness is not None:
                return Outcome(Verdict.SAT, "output layer solved exactly on biased draws "
                               "(zeros, repeated inputs and kinks allowed)", solver,
                               witness=witness, verification=found[-1])
        return None


class ExactSMT(Method):
    """The residual/phase encoding on the chosen backend: complete for piecewise-linear
    networks with MSE. ``proof_race``: cvc5 beside the default z3 for an unsat proof (the
    last step, where the second core has nothing else to do; sat still comes from z3)."""

    name = "exact encoding"
    proves = Proves.BOTH

    def __init__(self, proof_race: bool = False) -> None:
        self.proof_race = proof_race

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        return SmtRunner(problem.context).solve(problem.spec, problem.samples, work=budget.work,
                                                proof_race=self.proof_race)


def _pad(witness: Witness, spec: Spec, samples: int) -> Witness:
    """Add copies of sample 0 with zero residual (gradients unchanged)."""
    from smtgrad.reference.network import evaluate

    extra = samples - witness.samples
    first = witness.inputs[0]
    zero = tuple(Fraction(0) for _ in range(spec.network.outputs))
    prediction = evaluate(spec.network, spec.loss, spec.conventions, witness.parameters,
                          (first,), (zero,)).predictions[0]
    return Witness(parameters=witness.parameters,
                   inputs=witness.inputs + (first,) * extra,
                   targets=witness.targets + (tuple(prediction),) * extra)


class SampleReduction(Method):
    """M > D: decide at M = D (unsat there is unsat for every M; sat pads up to M)."""

    name = "sample reduction"
    proves = Proves.BOTH

    def applies(self, problem: Problem) -> bool:
        return reducible(problem)

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        spec, samples, context = problem.spec, problem.samples, problem.context
        bound = _bound(problem)
        assert bound is not None
        context.progress(f"M={samples}: reducing to M={bound} (sample-reduction lemma)")
        reduced = SmtRunner(context).solve(spec.with_samples(bound), bound, work=budget.work)
        if reduced.verdict is Verdict.UNSAT:
            return dataclasses.replace(reduced, all_samples=True, reason=(
                f"{reduced.reason}; by sample reduction every witness reduces to at most "
                f"{bound} samples and pads with zero-residual copies, so no M works"))
        if reduced.verdict is Verdict.SAT and reduced.witness is not None:
            if context.options.fast_path:
                # Sat is settled; prefer a witness with distinct samples to a padded one.
                fast = FastPath().run(problem, UNLIMITED)
                if fast is not None:
                    return fast
            padded = _pad(reduced.witness, spec, samples)
            return context.judged(spec, padded, f"{reduced.method}, padded from M={bound}",
                                  reduced.solver)
        return None  # unknown at M = D: the full problem is tried next
