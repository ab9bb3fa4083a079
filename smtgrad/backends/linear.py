"""Exact linear feasibility: strict and non-strict rational inequalities and equalities.

The fixed-data pattern method asks thousands of small questions of the form "is
there x with A x + a = 0, B x + b > 0, C x + c >= 0?" over the rationals. Building
a pysmt formula for each costs more than solving it, so this module talks to z3's
own API (QF_LRA: exact simplex over the rationals, strict inequalities included)
and returns an exact rational point or None (infeasible). Only backends import a
solver; this is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.errors import InternalError


@dataclass(frozen=True)
class Affine:
    """sum_k coefficients[k] * x_k + constant (sparse, exact)."""

    coefficients: tuple[tuple[int, Fraction], ...]
    constant: Fraction = Fraction(0)


class LinearUnknown(InternalError, RuntimeError):
    """z3 answered unknown on a linear problem (it should not: QF_LRA is decidable)."""


def _z3_term(xs: Sequence[Any], form: Affine) -> Any:
    """The affine form as a z3 real term over ``xs``."""
    import z3

    parts = [z3.RealVal(f"{c.numerator}/{c.denominator}") * xs[k]
             for k, c in form.coefficients if c]
    constant = z3.RealVal(f"{form.constant.numerator}/{form.constant.denominator}")
    return z3.Sum(*parts, constant) if parts else constant + 0


def feasible_point(variables: int, equal: Sequence[Affine], positive: Sequence[Affine],
                   nonnegative: Sequence[Affine] = (), backend: str = "z3"
                   ) -> list[Fraction] | None:
    """An exact point with every ``equal`` form 0 and every ``positive`` form > 0 (and
    ``nonnegative`` >= 0), or None when there is none. ``backend`` "cvc5" asks cvc5
    instead (a cross-check: only feasibility, the point is z3's job)."""
    if backend == "cvc5":
        return _cvc5_feasible(variables, equal, positive, nonnegative)
    import z3

    xs = [z3.Real(f"x{k}") for k in range(variables)]
    solver = z3.SolverFor("QF_LRA")

    def term(form: Affine) -> z3.ArithRef:
        return _z3_term(xs, form)

    for form in equal:
        solver.add(term(form) == 0)
    for form in positive:
        solver.add(term(form) > 0)
    for form in nonnegative:
        solver.add(term(form) >= 0)
    answer = solver.check()
    if answer == z3.unsat:
        return None
    if answer != z3.sat:
        raise LinearUnknown(f"z3 answered {answer} on a linear feasibility problem")
    model = solver.model()
    point = []
    for x in xs:
        value = model.eval(x, model_completion=True)
        point.append(Fraction(value.as_fraction()))
    return point


def _cvc5_feasible(variables: int, equal: Sequence[Affine], positive: Sequence[Affine],
                   nonnegative: Sequence[Affine]) -> list[Fraction] | None:
    """cvc5's QF_LRA answer; a point of all zeros stands for "feasible" (callers that
    cross-check read only None / not None)."""
    import cvc5

    tm = cvc5.TermManager()
    solver = cvc5.Solver(tm)
    solver.setLogic("QF_LRA")
    real = tm.getRealSort()
    xs = [tm.mkConst(real, f"x{k}") for k in range(variables)]

    def term(form: Affine) -> cvc5.Term:
        parts = [tm.mkTerm(cvc5.Kind.MULT, tm.mkReal(c.numerator, c.denominator), xs[k])
                 for k, c in form.coefficients if c]
        parts.append(tm.mkReal(form.constant.numerator, form.constant.denominator))
        return parts[0] if len(parts) == 1 else tm.mkTerm(cvc5.Kind.ADD, *parts)

    zero = tm.mkReal(0)
    for form in equal:
        solver.assertFormula(tm.mkTerm(cvc5.Kind.EQUAL, term(form), zero))
    for form in positive:
        solver.assertFormula(tm.mkTerm(cvc5.Kind.GT, term(form), zero))
    for form in nonnegative:
        solver.assertFormula(tm.mkTerm(cvc5.Kind.GEQ, term(form), zero))
    answer = solver.checkSat()
    if answer.isUnsat():
        return None
    if not answer.isSat():
        raise LinearUnknown(f"cvc5 answered {answer} on a linear feasibility problem")
    return [Fraction(0)] * variables


class IncrementalFeasibility:
    """A growing linear system with push/pop (one z3 QF_LRA solver): the depth-first
    enumeration of an arrangement's cells adds one sign constraint per level."""

    def __init__(self, variables: int) -> None:
        import z3

        self._z3 = z3
        self._xs = [z3.Real(f"x{k}") for k in range(variables)]
        self._solver = z3.SolverFor("QF_LRA")

    def push(self, form: Affine, relation: int) -> None:
        """Add ``form > 0`` (relation 1), ``form < 0`` (-1) or ``form == 0`` (0)."""
        self._solver.push()
        term = _z3_term(self._xs, form)
        self._solver.add(term > 0 if relation > 0 else term < 0 if relation < 0
                         else term == 0)

    def pop(self) -> None:
        self._solver.pop()

    def point(self) -> list[Fraction] | None:
        """A point of the current system, or None when it is infeasible."""
        z3 = self._z3
        answer = self._solver.check()
        if answer == z3.unsat:
            return None
        if answer != z3.sat:
            raise LinearUnknown(f"z3 answered {answer} on a linear feasibility problem")
        model = self._solver.model()
        return [Fraction(model.eval(x, model_completion=True).as_fraction())
                for x in self._xs]
