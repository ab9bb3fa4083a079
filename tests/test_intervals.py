"""Rigorous ball arithmetic (python-flint arb) under certificates and ball evaluations.

mpmath's ``iv`` context is not rigorous (mpmath issue #1181: ``iv.exp(-2**-53)``
at 53 bits is a point interval that excludes the true value); smtgrad's
Krawczyk certificates and every sign read from a ball evaluation use arb. The
tests here check the balls against exact reasoning, and check that the
certificate can fail: a box moved off the zero is rejected.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import flint
import pytest

from smtgrad.reference.intervals import (
    Ambiguous,
    ArbContext,
    Dual,
    Enclosure,
    Point,
    ball_bounds,
    box_evaluation,
    interval_evaluation,
    interval_sign,
    interval_text,
    krawczyk,
    parse_enclosure,
)
from smtgrad.reference.network import InexactValue, Parameters, entry_at, evaluate
from smtgrad.reference.witness import Witness, witness_from_json
from smtgrad.spec import Spec, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
F = Fraction

#: A certified enclosure witness of specs/sigmoid_bce_hard.yaml, as printed by
#: ``smtgrad solve specs/sigmoid_bce_hard.yaml --minimal --format json`` (M = 3).
HARD_WITNESS = {
    "W1": [["[-0.6732555975056708710426168734143730877714, "
            "-0.6732555975056708710426168734123730877714]"]],
    "b1": ["-1"],
    "W2": [["1"]],
    "b2": ["[0.000016251281673074936916195028704910960301862, "
           "0.000016251281673074936916195030704910960301862]"],
    "X": [["-1"], ["-2"], ["-5"]],
    "Y": [["1"], ["0"], ["1"]],
}

SIGMOID_MSE = """\
name: sigmoid-mse
network:
  inputs: 1
  layers:
    - {units: 1, activation: sigmoid}
loss: mse
samples: 1
query:
  zero: [b1]
  nonzero: [W1]
"""


def _witness(weights: Any, biases: Any, inputs: Any, targets: Any) -> Witness:
    return Witness(Parameters(tuple(weights), tuple(biases)), tuple(inputs), tuple(targets))


def _flat(array: Any) -> list[Any]:
    if isinstance(array, tuple):
        return [item for sub in array for item in _flat(sub)]
    return [array]


def _contains(value: Any, exact: Fraction) -> bool:
    """``exact`` lies in the ball of ``value`` (a Dual over arb, or an exact number)."""
    if isinstance(value, Dual):
        lo, hi = ball_bounds(value.value)
        return lo <= exact <= hi
    return bool(value == exact)


# ----------------------------------------------------------------------------------------
# Balls themselves.


def test_exp_ball_contains_the_true_value_of_mpmath_issue_1181() -> None:
    """exp(-2**-53) at 53 bits: the ball contains e^x, which lies in [1 + x, 1 + x + x^2/2]."""
    t = F(1, 2**53)
    with flint.ctx.workprec(53):
        x = -(flint.arb(2) ** -53)
        assert x.is_exact()
        ball = ArbContext().exp(x)
    # Exact bounds on e^x for x = -t < 0: 1 + x < e^x (strictly, x != 0) and
    # e^x <= 1 + x + x^2/2 (alternating series with decreasing terms).
    lo, hi = ball_bounds(ball)
    assert lo <= 1 - t and 1 - t + t * t / 2 <= hi
    # The value lies strictly above 1 - 2**-53, the point that mpmath's iv returns.
    assert hi > 1 - t and not ball.is_exact()
    with flint.ctx.workprec(2000):
        precise = (-(flint.arb(2) ** -53)).exp()
    assert ball.contains(precise)


def test_rationals_and_boxes_enter_balls_rigorously() -> None:
    ctx = ArbContext()
    with flint.ctx.workprec(64):
        third = ctx.rational(F(1, 3))
        box = ctx.ball(F(-1, 10), F(7, 3))
    lo, hi = ball_bounds(third)
    assert lo < F(1, 3) < hi
    lo, hi = ball_bounds(box)
    assert lo <= F(-1, 10) and F(7, 3) <= hi
    with pytest.raises(ValueError):
        ctx.ball(F(1), F(0))


@pytest.mark.parametrize("value", [F(1, 3), F(-22, 7), F(10**-45), F(-(10**50) - 1, 3)])
def test_interval_text_rounds_outward(value: Fraction) -> None:
    with flint.ctx.workprec(256):
        ball = ArbContext().rational(value) * 1  # an inexact ball around ``value``
    text = interval_text(ball)
    assert text.startswith("[") and text.endswith("]")
    low, high = (Fraction(part.strip()) for part in text[1:-1].split(","))
    lo, hi = ball_bounds(ball)
    assert low <= lo <= value <= hi <= high, text
    assert low < high
    if abs(value) > F(1, 10**30):  # smaller values print with more than 256-bit numerators
        assert parse_enclosure(text) == Enclosure(low, high)


def test_signs_of_balls() -> None:
    with flint.ctx.workprec(128):
        tiny = flint.arb(0, 2.0**-100)
        touching = flint.arb(1, 1)  # [0, 2]
        assert interval_sign(flint.arb(0)) == 0
        assert interval_sign(tiny) is None
        assert interval_sign(touching) is None
        assert interval_sign(-touching) is None
        assert interval_sign(flint.arb(-3)) == -1
        assert interval_sign(ArbContext().rational(F(1, 10**30))) == 1
        assert interval_sign(flint.arb("nan")) is None
        ctx = ArbContext()
        assert interval_sign(Dual(ctx, ctx.rational(F(-1, 3)), ())) == -1
        assert interval_sign(Dual(ctx, tiny, ())) is None
        with pytest.raises(Ambiguous):
            bool(Dual(ctx, tiny, ()) > 0)
        with pytest.raises(Ambiguous):
            bool(Dual(ctx, touching, ()) > 0)  # touches 0: not certain
        assert Dual(ctx, touching, ()) < 3
        assert Dual(ctx, ctx.rational(F(1, 3)), ()) != F(1, 3) * 1 + 1
    assert interval_sign(F(0)) == 0 and interval_sign(-2) == -1 and interval_sign(F(1, 7)) == 1
    with pytest.raises(TypeError):
        interval_sign("1")


def test_enclosure_comparisons_are_decided_or_ambiguous() -> None:
    box = Enclosure(F(1, 3), F(1, 2))
    assert box > 0 and box < 1 and box != 0
    assert 0 < box  # noqa: SIM300 (the reflected comparison)
    assert Enclosure(F(0), F(0)) == 0
    assert box == Enclosure(F(1, 3), F(1, 2)) and len({box, Enclosure(F(1, 3), F(1, 2))}) == 1
    touching = Enclosure(F(0), F(1))  # 0 <= x holds, but the box touches the threshold
    checks: list[Callable[[], object]] = [lambda: box == F(2, 5), lambda: box > F(2, 5),
                                          lambda: 0 <= touching]  # noqa: SIM300
    for check in checks:
        with pytest.raises(Ambiguous):
            check()


# ----------------------------------------------------------------------------------------
# The Krawczyk certificate.


def _hard() -> tuple[Spec, Witness, list[tuple[str, tuple[int, ...]]]]:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    witness = witness_from_json(HARD_WITNESS, spec.network, spec.targets)
    enclosed = [("W1", (0, 0)), ("b2", (0,))]
    assert all(isinstance(entry_at(witness.block(n), i), Enclosure) for n, i in enclosed)
    return spec, witness, enclosed


def _certify(spec: Spec, witness: Witness, enclosed: list[tuple[str, tuple[int, ...]]],
             box: list[Enclosure]) -> tuple[bool, str]:
    centre = {c: (b.lo + b.hi) / 2 for c, b in zip(enclosed, box, strict=True)}
    point = Point(witness.parameters, witness.inputs, witness.targets).with_values(centre)
    return krawczyk(spec, point, enclosed, box)


def test_krawczyk_accepts_the_certified_witness_and_rejects_moved_boxes() -> None:
    spec, witness, enclosed = _hard()
    box = [entry_at(witness.block(n), i) for n, i in enclosed]
    precision = flint.ctx.prec
    ok, why = _certify(spec, witness, enclosed, box)
    assert ok, why
    for k, original in enumerate(box):
        width = original.hi - original.lo
        for shift in (width, -width, 3 * width, F(1, 7)):  # the zero is no longer inside
            moved = list(box)
            moved[k] = Enclosure(original.lo + shift, original.hi + shift)
            ok, why = _certify(spec, witness, enclosed, moved)
            assert not ok, (k, shift)
            assert "leaves the box" in why
    # Much wider: the relu pre-activation of sample 0 straddles 0 over the box.
    wide = [Enclosure(box[0].lo - F(1, 2), box[0].hi + F(1, 2)), box[1]]
    ok, why = _certify(spec, witness, enclosed, wide)
    assert not ok and "ball evaluation failed" in why
    assert flint.ctx.prec == precision


class _One:
    """The number 1 as a closed form that only offers ``to_arb()``."""

    def to_arb(self) -> flint.arb:
        return flint.arb(1)


def test_krawczyk_encloses_closed_forms_of_the_point() -> None:
    spec, witness, enclosed = _hard()
    box = [entry_at(witness.block(n), i) for n, i in enclosed]
    parameters = Parameters((*witness.parameters.weights[:1], ((_One(),),)),
                            witness.parameters.biases)
    ok, why = _certify(spec, Witness(parameters, witness.inputs, witness.targets), enclosed,
                       box)
    assert ok, why


def test_ball_evaluation_of_the_certified_witness() -> None:
    spec, witness, enclosed = _hard()
    evaluation = interval_evaluation(spec, witness)
    gradients = evaluation.gradients
    assert interval_sign(gradients["W1"][0][0]) == -1
    # The same balls as over the box's unknowns (box_evaluation, with derivatives).
    point = Point(witness.parameters, witness.inputs, witness.targets)
    _, over_box = box_evaluation(spec, point, enclosed,
                                 [entry_at(witness.block(n), i) for n, i in enclosed])
    for name, values in gradients.items():
        for ball, dual in zip(_flat(values), _flat(over_box.gradients[name]), strict=True):
            assert ball.value.overlaps(dual.value) and len(dual.grad) == len(enclosed)
    assert interval_sign(gradients["b1"][0]) == 1
    # The zero-query entries are proved zero by the certificate, not by the balls.
    assert interval_sign(gradients["W2"][0][0]) is None
    assert interval_sign(gradients["b2"][0]) is None
    assert interval_sign(evaluation.loss) == 1
    lo, hi = ball_bounds(evaluation.loss.value)
    assert hi - lo < F(1, 10**25)


# ----------------------------------------------------------------------------------------
# interval_evaluation against the exact pass.


@pytest.mark.parametrize(("w1", "b1", "xs"), [
    (F(1, 3), F(-1, 7), (1, 3, -2)),
    (F(1), F(-1), (0, 2, 3)),
    (F(1), F(-1), (1, 2, 3)),  # sample 0 sits exactly on the relu kink (u = 0)
])
def test_rational_witness_agrees_with_the_exact_pass(w1: Fraction, b1: Fraction,
                                                     xs: tuple[int, ...]) -> None:
    spec = load_spec(ROOT / "specs" / "relu_mse.yaml")
    witness = _witness([((w1,),), ((F(5, 3),),)], [(b1,), (F(2, 9),)],
                       [(F(x),) for x in xs], [(F(1, 5),), (F(-3),), (F(7, 11),)])
    exact = evaluate(spec.network, spec.loss, spec.conventions, witness.parameters,
                     witness.inputs, witness.targets)
    balls = interval_evaluation(spec, witness)
    assert _contains(balls.loss, exact.loss)
    for name, values in exact.gradients.items():
        for value, ball in zip(_flat(values), _flat(balls.gradients[name]), strict=True):
            assert _contains(ball, value), (name, value, str(ball))
            assert interval_sign(ball) in ((value > 0) - (value < 0), None)
    for rows, ball_rows in ((exact.predictions, balls.predictions),
                            (exact.residuals, balls.residuals)):
        for value, ball in zip(_flat(rows), _flat(ball_rows), strict=True):
            assert _contains(ball, value)
    assert balls.kinks == exact.kinks


def test_sigmoid_at_one_decides_the_gradient_sign() -> None:
    spec = parse_spec(SIGMOID_MSE)
    witness = _witness([((F(1),),)], [(F(0),)], [(F(1),)], [(F(0),)])
    with pytest.raises(InexactValue):  # sigmoid(1) is transcendental: no exact pass
        evaluate(spec.network, spec.loss, spec.conventions, witness.parameters,
                 witness.inputs, witness.targets)
    evaluation = interval_evaluation(spec, witness)
    gradient = evaluation.gradients["W1"][0][0]
    assert interval_sign(gradient) == 1
    with flint.ctx.workprec(1000):  # dL/dW1 = 2 s * s (1 - s) * x, s = sigmoid(1)
        s = 1 / (1 + flint.arb(-1).exp())
        reference = 2 * s * s * (1 - s)
    assert gradient.value.contains(reference)
    lo, hi = ball_bounds(gradient.value)
    assert F(28, 100) < lo and hi < F(29, 100) and hi - lo < F(1, 10**60)


def test_relu_pre_activation_straddling_zero_is_ambiguous() -> None:
    spec = load_spec(ROOT / "specs" / "relu_mse.yaml")
    for box in (Enclosure(F(-1, 10), F(1, 10)), Enclosure(F(0), F(1, 10))):
        witness = _witness([((box,),), ((F(1),),)], [(F(0),), (F(0),)],
                           [(F(1),), (F(2),), (F(3),)], [(F(0),), (F(1),), (F(2),)])
        precision = flint.ctx.prec
        with pytest.raises(Ambiguous):
            interval_evaluation(spec, witness)
        assert flint.ctx.prec == precision
    assert issubclass(Ambiguous, InexactValue)


class _Log2:
    """An exact closed form ln 2 offering only ``to_arb()`` (duck-typed by the evaluator)."""

    def to_arb(self) -> flint.arb:
        return flint.arb(2).log()

    def __str__(self) -> str:
        return "log(2)"


def test_closed_forms_with_to_arb_and_class_targets() -> None:
    spec = load_spec(ROOT / "specs" / "sigmoid_bce_hard.yaml")
    xs = (0, 0, 2, 2, 2, 3, 3, 3, 3, 3)
    ys = (1, 1, 0, 0, 0, 1, 1, 1, 1, 1)
    witness = _witness([((F(1),),), ((_Log2(),),)], [(F(-1),), (F(0),)],
                       [(F(x),) for x in xs], [(F(y),) for y in ys])
    evaluation = interval_evaluation(spec, witness)
    with flint.ctx.workprec(1000):
        tenth_ln2 = flint.arb(2).log() / 10  # the exact dL/db1 of this witness
    assert evaluation.gradients["b1"][0].value.contains(tenth_ln2)
    assert interval_sign(evaluation.gradients["b1"][0]) == 1
    assert interval_sign(evaluation.gradients["W2"][0][0]) is None  # exactly 0: a ball
    with pytest.raises(InexactValue):
        interval_evaluation(spec, _witness([((F(1),),), ((object(),),)], [(F(-1),), (F(0),)],
                                           [(F(x),) for x in xs], [(F(y),) for y in ys]))
    # Cross-entropy: class targets stay exact indices; equal logits give p = 1/3.
    ce = load_spec(ROOT / "specs" / "softmax_ce.yaml")
    witness = _witness([((F(1),),), ((F(0),), (F(0),), (F(0),))],
                       [(F(-1),), (F(0), F(0), F(0))], [(F(2),), (F(3),)], [F(0), F(2)])
    evaluation = interval_evaluation(ce, witness)
    for ball, value in zip(evaluation.gradients["b2"], (F(-1, 6), F(1, 3), F(-1, 6)),
                           strict=True):
        assert _contains(ball, value)
    with flint.ctx.workprec(1000):
        assert evaluation.loss.value.contains(flint.arb(3).log())
    with pytest.raises(InexactValue):
        interval_evaluation(ce, _witness(witness.parameters.weights, witness.parameters.biases,
                                         witness.inputs, [Enclosure(F(0), F(0)), F(2)]))


def _uses_mpmath_iv(source: str) -> bool:
    """True when code (not prose) reaches mpmath's iv context."""
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr == "iv"
                and isinstance(node.value, ast.Name) and node.value.id == "mpmath"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "mpmath") and any(alias.name == "iv" for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "mpmath.iv":
            return True
        if isinstance(node, ast.Import) and any(alias.name == "mpmath.iv"
                                                for alias in node.names):
            return True
    return False


def test_the_package_no_longer_uses_mpmath_iv() -> None:
    assert _uses_mpmath_iv("import mpmath\nx = mpmath.iv.exp(1)\n")
    assert _uses_mpmath_iv("from mpmath import iv, mp\n")
    assert not _uses_mpmath_iv('"""mpmath.iv is not rigorous."""\nimport mpmath\n')
    offenders = [path.name for path in (ROOT / "smtgrad").rglob("*.py")
                 if _uses_mpmath_iv(path.read_text("utf-8"))]
    assert not offenders
