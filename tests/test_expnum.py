"""Exact numbers in Q(e^q : q in Q) (smtgrad.numbers.expnum).

Zero and equality must be symbolic (Lindemann-Weierstrass), signs rigorous or refused.
sympy and mpmath serve as oracles only: values are compared at 100+ digits and zero
claims re-checked by sympy simplification, and whole networks are re-computed by the
independent reference of tests/conftest.py (the ``ref`` fixture).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction as F
from typing import Any

import flint
import mpmath
import pytest
import sympy

from smtgrad.numbers import expnum
from smtgrad.numbers.expnum import ExpFunctions, ExpNumber, ExpPoly, OpaqueReal, exp_value
from smtgrad.reference.network import InexactValue, Parameters, evaluate
from smtgrad.spec import Spec, parse_spec

EXP = ExpFunctions()
sigmoid, tanh, softmax = EXP.sigmoid, EXP.tanh, EXP.softmax
QS = [F(1), F(-1), F(1, 2), F(7, 3), F(-5, 11), F(10), F(1, 1000)]
MP = mpmath.mp.clone()
MP.dps = 150


def _no_arb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ball evaluation fail: what still decides is symbolic."""

    def refuse(self: Any) -> Any:
        raise AssertionError(f"arb was consulted for {self}")

    monkeypatch.setattr(ExpPoly, "to_arb", refuse)


def _mp(q: F) -> Any:
    return MP.mpf(q.numerator) / q.denominator


def _mp_sigmoid(q: F) -> Any:
    return 1 / (1 + MP.exp(-_mp(q)))


def _mp_value(x: Any) -> Any:
    """An independent high-precision value of an ExpNumber (from its terms, via mpmath)."""
    if isinstance(x, F | int):
        return _mp(F(x))

    def poly(p: ExpPoly) -> Any:
        return MP.fsum(_mp(c) * MP.exp(_mp(q)) for q, c in p.terms.items())

    return poly(x.numerator) / poly(x.denominator)


def _sym(x: Any) -> sympy.Expr:
    """The value's text read back by sympy."""
    expr: sympy.Expr = sympy.sympify(str(x))
    return expr


def _close(x: Any, oracle: Any, digits: int = 100) -> bool:
    return bool(abs(sympy.N(_sym(x) - oracle, digits + 20)) < sympy.Float(10) ** -digits)


# -- symbolic zero ------------------------------------------------------------------------


@pytest.mark.parametrize("q", QS)
def test_sigmoid_of_q_plus_sigmoid_of_minus_q_is_exactly_one(
        q: F, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_arb(monkeypatch)
    total = sigmoid(q) + sigmoid(-q)
    assert type(total) is F and total == 1
    difference = sigmoid(q) + sigmoid(-q) - 1
    assert type(difference) is F and difference == 0
    assert sigmoid(q) == 1 - sigmoid(-q)
    assert not sigmoid(q) != 1 - sigmoid(-q)  # noqa: SIM202 (tests __ne__)
    # sigma' = sigma (1 - sigma) = sigma(q) sigma(-q)
    assert sigmoid(q) * (1 - sigmoid(q)) == sigmoid(q) * sigmoid(-q)


@pytest.mark.parametrize("q", QS)
def test_tanh_is_odd_and_equals_two_sigmoids(q: F, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_arb(monkeypatch)
    assert tanh(-q) == -tanh(q)
    total = tanh(q) + tanh(-q)
    assert type(total) is F and total == 0
    assert tanh(q) == 2 * sigmoid(2 * q) - 1
    # 1 - tanh^2 = 4 sigma(2q) sigma(-2q)
    assert 1 - tanh(q) * tanh(q) == 4 * sigmoid(2 * q) * sigmoid(-2 * q)


@pytest.mark.parametrize("logits", [
    [F(1), F(1, 3), F(-2)], [F(0), F(0), F(5, 7)], [F(3), F(3)], [F(-1, 2), F(9), F(9), F(1)],
])
def test_softmax_sums_to_one_and_is_shift_invariant(
        logits: list[F], monkeypatch: pytest.MonkeyPatch) -> None:
    _no_arb(monkeypatch)
    weights = softmax(logits)
    total = sum(weights, start=F(0))
    assert type(total) is F and total == 1
    shifted = softmax([z + F(13, 4) for z in logits])
    assert all(a == b for a, b in zip(weights, shifted, strict=True))
    for w, z in zip(weights, logits, strict=True):
        assert _close(w, sympy.exp(sympy.Rational(str(z))) / sum(
            sympy.exp(sympy.Rational(str(y))) for y in logits))


def test_softmax_of_two_is_a_sigmoid_and_equal_logits_are_rational() -> None:
    a, b = softmax([F(2), F(-1, 3)])
    assert a == sigmoid(F(7, 3)) and b == sigmoid(F(-7, 3))
    assert softmax([F(4), F(4), F(4)]) == (F(1, 3),) * 3
    assert all(type(w) is F for w in softmax([F(4), F(4)]))


def test_rational_arguments_and_results() -> None:
    assert sigmoid(0) == F(1, 2) and type(sigmoid(0)) is F
    assert tanh(0) == 0 and type(tanh(0)) is F
    assert sigmoid(ExpNumber(4, 2)) == sigmoid(2)  # an ExpNumber with a rational value
    assert sigmoid(sigmoid(1) + sigmoid(-1)) == sigmoid(1)
    assert exp_value(0) == 1 and type(exp_value(0)) is F
    e = exp_value(1)
    assert isinstance(e, ExpNumber) and e * exp_value(-1) == 1
    assert type(e * exp_value(-1)) is F
    assert ExpNumber(ExpPoly({F(1, 2): 2}), ExpPoly({F(1, 2): 4})).rational() == F(1, 2)
    assert sigmoid(1) / sigmoid(1) == 1
    assert (sigmoid(1) / (1 - sigmoid(1))) == e  # the odds are e^x


# -- nonzero, order, signs -----------------------------------------------------------------


def test_sigmoid_of_one_is_not_its_float() -> None:
    s = sigmoid(1)
    near = F(0.7310585786300049)  # the double nearest sigmoid(1)
    assert float(s) == 0.7310585786300049
    assert s != near and not s == near and near != s  # noqa: SIM201 (tests __eq__)
    truth = _mp_sigmoid(F(1)) > _mp(near)
    assert (s > near) is truth and (near < s) is truth and (s < near) is not truth
    assert (s >= near) is truth and (s <= near) is not truth
    assert hash(s) != hash(near)
    # and a 200-digit rational approximation, from both sides
    below = F(int(MP.floor(_mp_sigmoid(F(1)) * 10**140)), 10**140)
    assert below < s < below + F(1, 10**140)
    assert s - below > 0 and below - s < 0


def test_signs_agree_with_mpmath_on_random_expressions() -> None:
    rng = random.Random(20240611)
    functions: list[Callable[[F], Any]] = [sigmoid, tanh, exp_value]
    for _ in range(60):
        values: list[Any] = []
        for _ in range(3):
            q = F(rng.randint(-9, 9), rng.randint(1, 4))
            values.append(rng.choice(functions)(q))
        a, b, c = values
        x = a * b - c + F(rng.randint(-3, 3), rng.randint(1, 3))
        if rng.random() < 0.5 and b != 0:
            x = x / b
        truth = _mp_value(x)
        if type(x) is F and x == 0:
            assert truth == 0
            continue
        assert abs(truth) > MP.mpf(10) ** -100  # these are not near-ties
        sign = x.sign() if isinstance(x, ExpNumber) else (x > 0) - (x < 0)
        assert sign == (1 if truth > 0 else -1), x
        assert (x > 0) is (truth > 0) and (x < 0) is (truth < 0) and x != 0
        assert abs(float(x) - float(truth)) <= 1e-15 * abs(float(truth))
        if not isinstance(x, ExpNumber):
            continue
        with flint.ctx.workprec(200):  # to_arb encloses the value
            ball = x.to_arb()
        assert abs(MP.mpf(ball.mid().str(60, radius=False)) - truth) <= \
            MP.mpf(ball.rad().str(5, radius=False)) + MP.mpf(10) ** -55


def _close_to_e(bits: int) -> F:
    """A rational within 2^-bits of e (mpmath is only the oracle that picks it)."""
    local = mpmath.mp.clone()
    local.prec = bits + 64
    return F(int(local.floor(local.e * 2**bits)), 2**bits)


def test_a_near_tie_needs_more_than_the_start_precision() -> None:
    r = _close_to_e(600)
    x = exp_value(1) - r
    assert isinstance(x, ExpNumber) and x != 0
    with flint.ctx.workprec(128):
        assert not (x.to_arb() > 0) and not (x.to_arb() < 0)  # 128 bits cannot tell
    assert x > 0 and exp_value(1) > r and r < exp_value(1)
    assert x.sign() == 1 and (-x).sign() == -1 and abs(-x) == x
    assert exp_value(1) < r + F(1, 2**600)


def test_the_precision_cap_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    x = exp_value(1) - _close_to_e(600)
    monkeypatch.setattr(expnum, "_MAX_PRECISION", 256)
    with pytest.raises(InexactValue, match="cannot decide the sign"):
        _ = x > 0
    assert x != 0  # equality stays symbolic, whatever the cap


def test_negative_denominators() -> None:
    x = ExpNumber(1, ExpPoly({1: 1, 0: -3}))  # 1/(e - 3), about -3.55: the denominator < 0
    truth = 1 / (MP.e - 3)
    assert x.sign() == -1 and x < 0 and 0 > x and x < -3 and x > -4 and -4 < x  # noqa: SIM300
    assert x < sigmoid(1) and sigmoid(1) > x and abs(x) > 3
    y = ExpNumber(2, ExpPoly({1: 1, 0: -3}))  # 2x
    assert y < x and y - x == x and y / x == 2
    assert abs(float(x) - float(truth)) < 1e-14


def test_equal_signed_coefficients_need_no_balls(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_arb(monkeypatch)
    assert sigmoid(3) > 0 and sigmoid(-3) > 0 and -sigmoid(3) < 0
    assert ExpPoly({1: -2, F(-1, 2): -1}).sign() == -1


# -- normal form, hash, text ----------------------------------------------------------------


def test_common_factors_cancel() -> None:
    e2 = ExpPoly({2: 1, 0: -1})  # e^2 - 1
    e1 = ExpPoly({1: 1, 0: -1})  # e - 1
    assert str(ExpNumber(e2, e1)) == "exp(1) + 1"
    assert str(ExpNumber(ExpPoly({1: 1, 0: -1}), ExpPoly({F(1, 2): 1, 0: -1}))) == \
        "exp(1/2) + 1"
    # monomial factors and contents
    assert str(ExpNumber(ExpPoly({5: 6}), ExpPoly({5: 3, 4: 3}))) == "2*exp(1)/(exp(1) + 1)"
    assert ExpNumber(ExpPoly({5: 6}), ExpPoly({5: 3, 4: 3})) == 2 * sigmoid(1)
    # products of sigmoids of the same argument do not grow past their square
    s = sigmoid(F(1, 3))
    assert len((s * (1 - s) / s).denominator) == 2


def test_hash_is_an_invariant_of_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expnum, "_MAX_GCD_DEGREE", 0)  # no gcd: representations differ
    plain = ExpNumber(ExpPoly({1: 1, 0: 1}))
    inflated = ExpNumber(ExpPoly({2: 1, 0: -1}), ExpPoly({1: 1, 0: -1}))
    assert len(inflated.numerator) == 2 and len(inflated.denominator) == 2
    assert str(inflated) != str(plain)
    assert inflated == plain and hash(inflated) == hash(plain)
    assert {plain: "x"}[inflated] == "x"
    rational = ExpNumber(ExpPoly({3: 2, 1: 2}), ExpPoly({3: 3, 1: 3}))
    assert rational.rational() == F(2, 3) and hash(rational) == hash(F(2, 3))
    assert rational == F(2, 3) and str(rational) == "2/3"
    assert hash(sigmoid(1)) != hash(sigmoid(2))
    poly = ExpPoly({1: 1, 0: 1})
    assert poly == plain == inflated and plain == poly and inflated == poly
    assert hash(poly) == hash(plain) and hash(ExpPoly({0: 3})) == hash(3)


VALUES: dict[str, tuple[Callable[[], Any], Any]] = {
    "exp(1)/(exp(1) + 1)": (lambda: sigmoid(1), 1 / (1 + sympy.exp(-1))),
    "sigmoid(-7/3)": (lambda: sigmoid(F(-7, 3)), 1 / (1 + sympy.exp(sympy.Rational(7, 3)))),
    "tanh(1/2)": (lambda: tanh(F(1, 2)), sympy.tanh(sympy.Rational(1, 2))),
    "mixed": (lambda: 3 * sigmoid(F(1, 2)) * tanh(-2) / 7 - exp_value(F(-5, 3)),
              sympy.Rational(3, 7) / (1 + sympy.exp(-sympy.Rational(1, 2))) * sympy.tanh(-2)
              - sympy.exp(-sympy.Rational(5, 3))),
    "e": (lambda: exp_value(1), sympy.E),
    "1/e^2": (lambda: 1 / exp_value(2), sympy.exp(-2)),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_text_reads_back_in_sympy(name: str) -> None:
    make, oracle = VALUES[name]
    x = make()
    parsed = _sym(x)
    assert _close(x, oracle, 120)
    assert sympy.simplify((parsed - oracle).rewrite(sympy.exp)) == 0
    assert repr(x) == f"ExpNumber({str(x)!r})"


def test_text_format() -> None:
    assert str(sigmoid(1)) == "exp(1)/(exp(1) + 1)"
    assert str(sigmoid(-1)) == "1/(exp(1) + 1)"
    assert str(tanh(F(1, 2))) == "(exp(1) - 1)/(exp(1) + 1)"
    assert str(exp_value(F(-3, 2))) == "exp(-3/2)"
    assert str(ExpPoly({F(3, 2): F(2, 5), -1: -1, 0: 1})) == "2*exp(3/2)/5 + 1 - exp(-1)"
    assert str(ExpNumber(ExpPoly({1: 1, 0: 1}), 2)) == "(exp(1) + 1)/2"
    assert str(ExpNumber(ExpPoly({1: -3}), ExpPoly({1: 1, 0: 1}))) == \
        "-3*exp(1)/(exp(1) + 1)"


# -- guards and refusals -------------------------------------------------------------------


def test_size_guard() -> None:
    product: Any = F(1)
    for i in range(8):
        product = product * sigmoid(2**i)  # denominator prod (1 + e^(2^i)): 2^(i+1) terms
    assert len(product.denominator) == 256
    with pytest.raises(InexactValue, match="terms"):
        _ = product * sigmoid(2**8)  # 512 terms: over the guard of 400


def test_division_by_zero() -> None:
    s = sigmoid(1)
    with pytest.raises(ZeroDivisionError):
        _ = s / 0
    with pytest.raises(ZeroDivisionError):
        _ = s / (s - s)
    with pytest.raises(ZeroDivisionError):
        ExpNumber(1, ExpPoly())
    zero = ExpNumber(ExpPoly(), 5)
    assert zero == 0 and not zero and zero.rational() == 0 and hash(zero) == hash(0)
    with pytest.raises(ZeroDivisionError):
        _ = 1 / zero
    with pytest.raises(ZeroDivisionError):
        _ = s / zero


def test_floats_are_refused() -> None:
    s = sigmoid(1)
    with pytest.raises(TypeError):
        _ = s == 0.5
    with pytest.raises(TypeError):
        _ = s + 0.5
    with pytest.raises(TypeError):
        _ = s < 0.5


@pytest.mark.parametrize("argument", [
    lambda: sigmoid(1), lambda: tanh(F(1, 3)) + 1, lambda: OpaqueReal("loss"),
    lambda: "1/2",
])
def test_exponentials_of_non_rationals_are_refused(argument: Any) -> None:
    x = argument()
    for function in (sigmoid, tanh, exp_value):
        with pytest.raises(InexactValue):
            function(x)
    with pytest.raises(InexactValue):
        softmax([F(1), x])


# -- opaque reals --------------------------------------------------------------------------


def test_negative_log() -> None:
    assert EXP.negative_log(1) == 0 and EXP.negative_log(F(1)) == 0
    assert EXP.negative_log(sigmoid(1) + sigmoid(-1)) == 0
    assert EXP.negative_log(ExpNumber(3, 3)) == 0
    for p in (F(1, 2), sigmoid(1), sigmoid(-5)):
        assert isinstance(EXP.negative_log(p), OpaqueReal)
    assert isinstance(EXP.negative_log(OpaqueReal()), OpaqueReal)
    for bad in (0, F(-1, 2), sigmoid(1) - 1):
        with pytest.raises(InexactValue, match="undefined"):
            EXP.negative_log(bad)


def test_opaque_reals_stay_opaque() -> None:
    loss = EXP.negative_log(sigmoid(1))
    assert isinstance(loss, OpaqueReal)
    assert str(loss) == "<not a closed form>" and "log" in repr(loss)
    for other in (2, F(1, 3), sigmoid(2), OpaqueReal(), ExpPoly({1: 1})):
        for result in (loss + other, other + loss, loss - other, other - loss, loss * other,
                       other * loss, loss / other, other / loss):
            assert isinstance(result, OpaqueReal)
    assert isinstance(-loss, OpaqueReal) and isinstance(loss ** 2, OpaqueReal)
    assert isinstance(0 * loss, OpaqueReal)
    checks: list[Callable[[], Any]] = [
        lambda: loss == 0, lambda: loss != 0, lambda: loss < 1, lambda: loss <= 1,
        lambda: loss > 1, lambda: loss >= 1, lambda: 0 == loss, lambda: F(1) < loss,  # noqa: SIM300
        lambda: sigmoid(1) == loss, lambda: sigmoid(1) < loss, lambda: bool(loss),
        lambda: float(loss), lambda: loss.to_arb(), lambda: hash(loss), lambda: loss == loss]
    for check in checks:
        with pytest.raises(InexactValue, match="not a closed form"):
            check()
    with pytest.raises(TypeError):
        _ = loss + 0.5


# -- networks --------------------------------------------------------------------------------


def _spec(layers: str, loss: str, extra: str = "", samples: int = 2) -> Spec:
    """A spec with one input; ``layers`` holds one ``{units: .., activation: ..}`` a line."""
    rows = "".join(f"    {line.strip()}\n" for line in layers.strip().splitlines())
    text = (f"name: expnum-test\nnetwork:\n  inputs: 1\n  layers:\n{rows}loss: {loss}\n"
            f"samples: {samples}\n{extra}\nquery:\n  nonzero: [W1]\n")
    return parse_spec(text, "<expnum>")


def _params(weights: list[Any], biases: list[Any]) -> Parameters:
    return Parameters(tuple(tuple(tuple(F(v) for v in row) for row in w) for w in weights),
                      tuple(tuple(F(v) for v in b) for b in biases))


def _oracle(ref: Any, spec: Spec, weights: list[Any], biases: list[Any], inputs: list[Any],
            targets: list[Any]) -> Any:
    """The independent reference pass over exact sympy numbers."""
    kit = ref.kit("sympy")
    s = kit.const

    def conv(array: Any) -> Any:
        return [conv(item) for item in array] if isinstance(array, list) else s(F(array))

    class_targets = spec.loss.kind.value == "cross_entropy"
    return ref.make(kit).evaluate(spec, conv(weights), conv(biases), conv(inputs),
                                  targets if class_targets else conv(targets))


def _run(spec: Spec, weights: list[Any], biases: list[Any], inputs: list[Any],
         targets: list[Any]) -> Any:
    class_targets = spec.loss.kind.value == "cross_entropy"
    return evaluate(spec.network, spec.loss, spec.conventions, _params(weights, biases),
                    [tuple(F(v) for v in x) for x in inputs],
                    targets if class_targets else [tuple(F(v) for v in t) for t in targets],
                    smooth=EXP)


def _check_gradients(ref: Any, spec: Spec, weights: list[Any], biases: list[Any],
                     inputs: list[Any], targets: list[Any]) -> Any:
    evaluation = _run(spec, weights, biases, inputs, targets)
    oracle = _oracle(ref, spec, weights, biases, inputs, targets)
    for name, block in evaluation.gradients.items():
        for index in ref.entries(spec.network.parameter_shapes()[name]):
            mine, theirs = ref.pick(block, index), ref.pick(oracle.gradients[name], index)
            assert isinstance(mine, F | ExpNumber), (name, index, mine)
            assert _close(mine, theirs), (name, index, mine, theirs)
            if mine == 0:
                assert type(mine) is F
                assert sympy.simplify(theirs) == 0, (name, index, theirs)
    return evaluation, oracle


SIGMOID_LINEAR = """\
    - {units: 1, activation: sigmoid}
    - {units: 1, activation: linear}
"""


def test_sigmoid_mse_bias_gradient_is_exactly_zero(ref: Any) -> None:
    spec = _spec(SIGMOID_LINEAR, "mse")
    args: list[Any] = [[[[1]], [[1]]], [[0], [0]], [[1], [-1]], [[0], [1]]]
    evaluation, _ = _check_gradients(ref, spec, *args)
    db2 = evaluation.gradients["b2"][0]
    assert type(db2) is F and db2 == 0  # sigmoid(1) + sigmoid(-1) - 1 = 0
    dw1 = evaluation.gradients["W1"][0][0]
    assert isinstance(dw1, ExpNumber) and dw1 != 0 and dw1 > 0
    s = sigmoid(1)
    assert dw1 == 2 * s * s * (1 - s)  # (1/2) sum_m 2 r_m sigma'(u_m) x_m, by hand
    assert dw1 != F(float(dw1))
    loss = evaluation.loss
    assert isinstance(loss, ExpNumber) and loss == s * s  # MSE of s and s - 1 ... = s^2
    # a target nudged by a rational makes db2 nonzero, though tiny
    nudged: list[Any] = [[[[1]], [[1]]], [[0], [0]], [[1], [-1]], [[0], [1 + F(1, 10**30)]]]
    db2 = _check_gradients(ref, spec, *nudged)[0].gradients["b2"][0]
    assert db2 == -F(1, 10**30) and db2 != 0


def test_relu_sigmoid_bce_exact_gradients_opaque_loss(ref: Any) -> None:
    spec = _spec("""\
        - {units: 1, activation: relu}
        - {units: 1, activation: sigmoid}
    """, "bce", "targets: unit_interval")
    args: list[Any] = [[[[2]], [[F(-1, 2)]]], [[F(1, 3)], [F(1, 4)]], [[1], [F(-1, 2)]],
                       [[F(1, 3)], [1]]]
    evaluation, oracle = _check_gradients(ref, spec, *args)
    assert isinstance(evaluation.loss, OpaqueReal)
    assert str(evaluation.loss) == "<not a closed form>"
    assert float(sympy.N(oracle.loss)) > 0
    # the second sample is dead (2*(-1/2) + 1/3 < 0): dW1 gets only the first
    assert evaluation.gradients["W1"][0][0] != 0
    assert isinstance(evaluation.gradients["b2"][0], ExpNumber)


def test_softmax_cross_entropy(ref: Any) -> None:
    spec = _spec("""\
        - {units: 1, activation: relu}
        - {units: 3, activation: softmax}
    """, "cross_entropy", "targets: class")
    args: list[Any] = [[[[1]], [[1], [-1], [F(1, 2)]]], [[0], [0, F(1, 3), 0]], [[2], [F(1, 5)]],
                       [0, 2]]
    evaluation, _ = _check_gradients(ref, spec, *args)
    assert isinstance(evaluation.loss, OpaqueReal)
    # the bias gradients of a softmax layer sum to zero, exactly
    total = sum(evaluation.gradients["b2"], start=F(0))
    assert type(total) is F and total == 0


def test_piecewise_layers_compare_exp_numbers_exactly(ref: Any) -> None:
    """relu and hardtanh after a sigmoid: `u > 0` and the kink tests run on ExpNumbers."""
    spec = _spec("""\
        - {units: 1, activation: sigmoid}
        - {units: 1, activation: relu}
        - {units: 1, activation: linear}
    """, "mse", samples=3)
    # u2 = sigmoid(x) - 1/2: > 0 at x = 1/1000, < 0 at x = -1, exactly 0 (a kink) at x = 0
    args: list[Any] = [[[[1]], [[1]], [[3]]], [[0], [F(-1, 2)], [0]],
                       [[F(1, 1000)], [-1], [0]], [[1], [2], [3]]]
    evaluation, oracle = _check_gradients(ref, spec, *args)
    assert [(k.layer, k.sample) for k in evaluation.kinks] == [(2, 2)]
    assert [k[:2] for k in oracle.kinks] == [(2, 2)]
    hard = _spec("""\
        - {units: 1, activation: sigmoid}
        - {units: 1, activation: hardtanh}
        - {units: 1, activation: linear}
    """, "mse", samples=4)
    # u2 = 8 sigmoid(x) - 5: above 1 at x = 3, inside (-0.02) at x = 1/2, below -1 at x = -1,
    # and exactly -1 (a kink) at x = 0
    saturating: list[Any] = [[[[1]], [[8]], [[1]]], [[0], [-5], [F(1, 7)]],
                             [[3], [F(1, 2)], [-1], [0]], [[0], [1], [-1], [2]]]
    evaluation, oracle = _check_gradients(ref, hard, *saturating)
    assert [(k.layer, k.sample, k.point) for k in evaluation.kinks] == [(2, 3, -1)]
    assert [k[:2] for k in oracle.kinks] == [(2, 3)]
    u2 = evaluation.pre_activations[1]
    assert u2[0][0] > 1 and -1 < u2[1][0] < 0 and u2[2][0] < -1 and u2[3][0] == -1
    assert evaluation.gradients["W1"][0][0] != 0


def test_two_smooth_layers_are_refused() -> None:
    spec = _spec("""\
        - {units: 1, activation: tanh}
        - {units: 1, activation: sigmoid}
    """, "mse")
    with pytest.raises(InexactValue, match="sigmoid"):
        _run(spec, [[[1]], [[1]]], [[0], [0]], [[1], [2]], [[0], [1]])
    # with the first layer at 0 the second sees a rational (tanh(0) = 0) and succeeds
    evaluation = _run(spec, [[[1]], [[1]]], [[0], [F(1, 2)]], [[0], [0]], [[0], [1]])
    assert isinstance(evaluation.gradients["b2"][0], ExpNumber)
