"""Each activation object: its value and derivative against an independent computation,
its exact lattice forms, its lemma fact, and the soundness of its abstraction.

The four activations added with the registry (softplus, elu, silu, gelu) also run
through solve and check here; their golden specs are in specs/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import flint
import mpmath
import pytest
from conftest import one_hidden

from smtgrad import activations
from smtgrad.activations import Activation
from smtgrad.cli import app
from smtgrad.numbers.lognum import LatticeFunctions, LogNumber
from smtgrad.reference.intervals import ArbContext, DualFunctions, ball_bounds
from smtgrad.spec import Layer

SMOOTH_ELEMENTWISE = [a for a in activations.REGISTRY.values() if a.smooth and not a.vector]
POINTS = [Fraction(-3), Fraction(-1, 2), Fraction(1, 3), Fraction(2), Fraction(7, 5)]


def _mp_reference(name: str, u: Any) -> tuple[Any, Any]:
    """Value and derivative from mpmath formulas written here, not from smtgrad."""
    s = 1 / (1 + mpmath.exp(-u))
    if name == "sigmoid":
        return s, s * (1 - s)
    if name == "tanh":
        return mpmath.tanh(u), 1 - mpmath.tanh(u) ** 2
    if name == "softplus":
        return mpmath.log(1 + mpmath.exp(u)), s
    if name == "elu":
        return (u, mpmath.mpf(1)) if u > 0 else (mpmath.exp(u) - 1, mpmath.exp(u))
    if name == "silu":
        return u * s, s + u * s * (1 - s)
    if name == "gelu":
        cdf = mpmath.ncdf(u)
        return u * cdf, cdf + u * mpmath.npdf(u)
    raise AssertionError(name)


@pytest.mark.parametrize("activation", SMOOTH_ELEMENTWISE, ids=lambda a: a.name)
@pytest.mark.parametrize("u", POINTS, ids=str)
def test_ball_value_and_derivative_contain_the_true_ones(activation: Activation,
                                                         u: Fraction) -> None:
    layer = Layer(1, activation)
    numbers = DualFunctions(ArbContext())
    with flint.ctx.workprec(200), mpmath.workdps(60):
        value = activation.value(ctx_rational(u), layer, numbers)
        slope = activation.derivative(ctx_rational(u), value, layer, False, numbers)
        true_value, true_slope = _mp_reference(activation.name,
                                               mpmath.mpf(u.numerator) / u.denominator)
        for ball, truth in ((value, true_value), (slope, true_slope)):
            arb = ball.value if hasattr(ball, "value") else ball
            lo, hi = ball_bounds(numbers.ctx.mpf(arb))
            assert hi - lo < Fraction(1, 10**40)
            tolerance = mpmath.mpf(10) ** -45
            assert mpmath.mpf(lo.numerator) / lo.denominator - tolerance <= truth
            assert truth <= mpmath.mpf(hi.numerator) / hi.denominator + tolerance


def ctx_rational(u: Fraction) -> Any:
    from smtgrad.reference.intervals import Dual

    ctx = ArbContext()
    return Dual(ctx, ctx.rational(u), ())


def test_exact_lattice_forms_of_the_new_activations() -> None:
    """softplus(ln 2) = ln 3; elu(-ln 2) = -1/2; silu(ln 2) = (2/3) ln 2; gelu has none."""
    numbers = LatticeFunctions()
    ln2 = LogNumber.log(Fraction(2))
    layer = Layer(1, activations.SOFTPLUS)
    assert activations.SOFTPLUS.value(ln2, layer, numbers) == LogNumber.log(Fraction(3))
    assert activations.SOFTPLUS.derivative(ln2, None, layer, False, numbers) == Fraction(2, 3)
    assert activations.SOFTPLUS.value(ln2, layer, numbers) != LogNumber.log(Fraction(2))
    elu = activations.ELU.value(-ln2, Layer(1, activations.ELU), numbers)
    assert elu == Fraction(-1, 2)
    assert activations.ELU.derivative(-ln2, elu, Layer(1, activations.ELU), False,
                                      numbers) == Fraction(1, 2)
    assert activations.ELU.value(ln2, Layer(1, activations.ELU), numbers) == ln2
    silu = activations.SILU.value(ln2, Layer(1, activations.SILU), numbers)
    assert silu == ln2 * Fraction(2, 3)
    from smtgrad.reference.network import InexactValue

    with pytest.raises(InexactValue):
        activations.GELU.value(ln2, Layer(1, activations.GELU), numbers)
    assert activations.GELU.value(Fraction(0), Layer(1, activations.GELU), numbers) == 0


def test_lemma_facts() -> None:
    table = {name: activation.derivative_determined_by_value(Layer(1, activation), False)
             for name, activation in activations.REGISTRY.items() if not activation.vector}
    assert table == {"linear": True, "relu": True, "leaky_relu": True, "abs": False,
                     "hardtanh": True, "sigmoid": True, "tanh": True, "softplus": True,
                     "elu": True, "silu": False, "gelu": False}


class _Facts:
    """The abstraction builder of the encoder, with its facts collected for a check."""

    def __init__(self) -> None:
        from smtgrad.encoding.builder import _Builder

        self.assertions: list[Any] = []
        self.function_families: dict[str, list[Any]] = {}
        self._builder = _Builder
        self.count = 0

    def fresh(self, name: str) -> Any:
        from pysmt.shortcuts import FreshSymbol
        from pysmt.typing import REAL

        return FreshSymbol(REAL)

    def require(self, *facts: Any) -> None:
        self.assertions.extend(facts)

    def same_function(self, *args: Any, **kwargs: Any) -> None:
        self._builder.same_function(self, *args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("activation", [a for a in SMOOTH_ELEMENTWISE if a.has_abstraction],
                         ids=lambda a: a.name)
def test_abstraction_admits_the_true_values(activation: Activation) -> None:
    """Sound for unsat: the facts, with u at several points and the value and the slope
    pinned to rigorous balls around the true ones, are satisfiable."""
    from pysmt.shortcuts import GE, LE, And, Equals, Real, Symbol
    from pysmt.typing import REAL

    from smtgrad.backends import SolverStatus, get_backend

    facts = _Facts()
    pins = []
    numbers = DualFunctions(ArbContext())
    for index, u in enumerate([Fraction(-2), Fraction(-1, 3), Fraction(0), Fraction(5, 4),
                               Fraction(2)]):
        variable = Symbol(f"u{index}", REAL)
        value, backward = activation.abstract(facts, variable, f"t{index}")
        delta = Symbol(f"delta{index}", REAL)
        slope_term = backward(delta)
        pins.append(Equals(variable, Real(u)))
        pins.append(Equals(delta, Real(1)))
        with flint.ctx.workprec(200):
            layer = Layer(1, activation)
            true_value = activation.value(ctx_rational(u), layer, numbers)
            true_slope = activation.derivative(ctx_rational(u), true_value, layer, False,
                                               numbers)
            for term, ball in ((value, true_value), (slope_term, true_slope)):
                lo, hi = (ball_bounds(ball.value) if hasattr(ball, "value")
                          else (Fraction(ball), Fraction(ball)))
                pins += [GE(term, Real(lo - Fraction(1, 10**30))),
                         LE(term, Real(hi + Fraction(1, 10**30)))]
    answer = get_backend("z3").solve(And([*facts.assertions, *pins]), 30)
    assert answer.status is SolverStatus.SAT, activation.name


# -- end to end ------------------------------------------------------------------------------



@pytest.mark.parametrize(("name", "w1", "x", "y", "holds"), [
    ("softplus", "log(2)", "1", "log(3)", True),     # softplus(ln 2) = ln 3
    ("softplus", "log(2)", "1", "log(2)", False),
    ("elu", "log(2)", "-1", "-1/2", True),           # elu(-ln 2) = 1/2 - 1
    ("elu", "log(2)", "-1", "-1/3", False),
    ("silu", "log(2)", "1", "2*log(2)/3", True),     # silu(ln 2) = ln 2 * 2/3
    ("silu", "log(2)", "1", "log(2)/2", False),
])
def test_check_decides_lattice_witnesses_of_new_activations_exactly(
        name: str, w1: str, x: str, y: str, holds: bool, write_spec: Callable[..., Path],
        write_json: Callable[..., Path], runner: Any) -> None:
    spec = write_spec(one_hidden(name, samples=1, query="{zero: [b2]}"))
    witness = write_json({"W1": [[w1]], "b1": ["0"], "W2": [["1"]], "b2": ["0"],
                          "X": [[x]], "Y": [[y]]})
    result = runner.invoke(app, ["check", str(spec), "--witness", str(witness), "--format",
                                 "json"])
    assert result.exit_code == (0 if holds else 1), result.output
    data = json.loads(result.output)
    assert data["status"] == ("holds" if holds else "does not hold")
