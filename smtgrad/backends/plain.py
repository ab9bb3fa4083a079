"""A solver model as plain values, rebuilt in the parent from a child process's answer
(cvc5, and both solvers of a race). May import pysmt only."""

from __future__ import annotations

from fractions import Fraction

from pysmt.fnode import FNode
from pysmt.shortcuts import Real

from smtgrad.backends import IrrationalValue


class PlainModel:
    """A model held as plain values: exact constants per symbol, the symbols whose value is
    irrational (with why), and rational approximations of those. Symbols without a value
    do not occur in the solved formula, and any value satisfies it: they read as 0 (model
    completion, as z3's ``model_completion``)."""

    def __init__(self, values: dict[FNode, FNode], irrational: dict[FNode, str],
                 approximations: dict[FNode, FNode]) -> None:
        self.values = values
        self.irrational = irrational
        self.approximations = approximations

    def _substituted(self, term: FNode, approximate: bool) -> FNode:
        completion = {symbol: Real(0) for symbol in term.get_free_variables()
                      if symbol not in self.values and symbol not in self.irrational
                      and symbol.symbol_type().is_real_type()}
        values = {**self.values, **completion}
        if approximate:
            values.update(self.approximations)
        return term.substitute(values).simplify()

    def value(self, term: FNode) -> Fraction:
        if term.is_constant():
            return Fraction(term.constant_value())
        for symbol in term.get_free_variables():
            if symbol in self.irrational:
                raise IrrationalValue(f"value of {symbol}: {self.irrational[symbol]}")
        result = self._substituted(term, approximate=False)
        if result.is_constant() and result.is_real_constant():
            return Fraction(result.constant_value())
        raise IrrationalValue(f"{term} has no rational value in the model ({result})")

    def approximate(self, term: FNode) -> Fraction:
        result = self._substituted(term, approximate=True)
        if result.is_constant() and result.is_real_constant():
            return Fraction(result.constant_value())
        raise IrrationalValue(f"{term} has no numeric value in the model ({result})")

    def truth(self, term: FNode) -> bool:
        return bool(self._substituted(term, approximate=False).is_true())
