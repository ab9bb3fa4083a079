"""Exact closed-form numbers Q[ln 2, ln 3, ln 5, ...] (smtgrad.numbers.lognum).

Every zero / nonzero / sign decision must be exact or refused: these tests pin
each proof rule of the module docstring, the refusal of an undecidable case,
the exact smooth functions, parsing and printing.
"""

from __future__ import annotations

import random
from fractions import Fraction as F

import flint
import pytest
import sympy

from smtgrad.numbers import NumberError, lognum
from smtgrad.numbers.lognum import (
    LatticeFunctions,
    LogNumber,
    LogSum,
    exact_exp,
    lattice_base,
    parse_value,
)
from smtgrad.reference.network import InexactValue

L2, L3, L5, L7 = (LogNumber.log(p) for p in (2, 3, 5, 7))


def _no_arb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ball evaluation fail: what still decides is a symbolic proof."""

    def refuse(self: LogNumber) -> int | None:
        raise AssertionError(f"arb was consulted for {self}")

    monkeypatch.setattr(LogNumber, "_arb_sign", refuse)


def _as_sympy(x: LogNumber) -> sympy.Expr:
    """An independent sympy image of the normal form (logs of primes)."""
    total: sympy.Expr = sympy.Integer(0)
    for monomial, c in x.terms.items():
        term: sympy.Expr = sympy.Rational(c.numerator, c.denominator)
        for prime, exponent in monomial:
            term = term * sympy.log(prime) ** exponent
        total = total + term
    return total


# -- parsing and printing ------------------------------------------------------------------


def test_logs_of_rationals_have_one_normal_form() -> None:
    assert parse_value("log(1/2)") == -L2
    assert parse_value("log(6)") == L2 + L3
    assert parse_value("log(3/2)") == L3 - L2
    assert parse_value("log(0.5)") == -L2
    assert parse_value("log(12)/2") == L2 + L3 / 2
    assert parse_value("log(7)") == L7
    assert parse_value("log(6)") != L2 + L5  # a wrong value is rejected
    assert parse_value("log(6)").terms == {((2, 1),): F(1), ((3, 1),): F(1)}
    assert LogNumber.log(F(9, 10)).linear_form() == {2: F(-1), 3: F(2), 5: F(-1)}
    # Rational results come back as Fractions.
    for text, value in (("log(1)", F(0)), ("log(6) - log(2) - log(3)", F(0)),
                        ("2*log(4)^2 - 8*log(2)**2 + 3/4", F(3, 4))):
        result = parse_value(text)
        assert type(result) is F and result == value
    assert parse_value("-1/3") == F(-1, 3)


def test_text_round_trips_through_parse_value_and_sympy() -> None:
    examples = [
        3 * L2 / 2 + L3 * L3 - F(1, 2),
        L2 * L3,
        -L2 * L3 * L3 / 7 + L5 - 3,
        L2 ** 3 - L7 / 5,
        LogNumber.log(F(2, 3)) * LogNumber.log(F(5, 7)),
    ]
    rng = random.Random(7)
    for _ in range(30):
        x = LogNumber.from_terms({
            tuple((rng.choice((2, 3, 5)), rng.randint(1, 3)) for _ in range(rng.randint(0, 2))):
                F(rng.randint(-9, 9), rng.randint(1, 5))
            for _ in range(rng.randint(1, 4))})
        examples.append(x)
    assert str(examples[0]) == "3*log(2)/2 + log(3)**2 - 1/2"
    assert str(examples[1]) == "log(2)*log(3)"
    for x in examples:
        text = str(x)
        again = parse_value(text)
        assert again == x, text
        assert repr(x) == f"LogNumber({text!r})" or isinstance(again, F)
        assert sympy.expand(sympy.sympify(text) - _as_sympy(x)) == 0, text
        # A wrong value is rejected by both readers.
        assert parse_value(text) != x + F(1, 1000)
        assert sympy.expand(sympy.sympify(text) - _as_sympy(x + L2)) != 0


@pytest.mark.parametrize("text", [
    "log(0)", "log(-1)", "log(x)", "log(2", "log()", "log((2))", "log(log(2))",
    "log(2)/log(3)", "log(2)/0", "logarg0 + log(2)", "L + log(2)", "log(2) < 1",
    "log(2)**-1", "3 log(2)",
])
def test_malformed_values_are_number_errors(text: str) -> None:
    with pytest.raises(NumberError):
        parse_value(text)


def test_compat_constructors() -> None:
    assert LogNumber((0, 3), F(4)) == 6 * L2
    assert LogNumber((1, 0, 2), F(3, 2)) == 1 + 2 * (L3 - L2) ** 2
    assert LogNumber.log_base(F(2)) == L2
    with pytest.raises(NumberError):
        LogNumber((0, 1), F(1))
    with pytest.raises(NumberError):
        LogNumber.log(F(-2))
    with pytest.raises(NumberError):
        LogNumber.log(0)
    total = LogSum(F(1, 2), {F(6): F(1), F(2): F(-1), F(1): F(5)})
    assert isinstance(total, LogNumber)
    assert total == L3 + F(1, 2)
    assert LogNumber.from_terms({((6, 1),): 2, (): 1}) == 2 * L2 + 2 * L3 + 1
    assert LogNumber.from_terms({((2, 2), (3, 1)): F(1, 3)}) == L2 * L2 * L3 / 3


def test_structure() -> None:
    x = 3 * L2 * L3 - L5 / 2 + 4
    assert x.degree == 2 and x.primes == (2, 3, 5)
    assert x.rational() is None and x.linear_form() is None
    assert (L2 - L2).degree == -1 and (L2 - L2 + 1).degree == 0
    assert (L3 - 2 * L2).linear_form() == {3: F(1), 2: F(-2)}
    assert (L3 + 1).linear_form() is None
    assert (L2 - L2).linear_form() == {}
    assert (L2 - L2 + F(2, 3)).rational() == F(2, 3)
    # coefficient_of: k when the value is exactly k*ln(base).
    assert (3 * L2).coefficient_of(F(4)) == F(3, 2)
    assert (2 * (L3 - L2)).coefficient_of(F(3, 2)) == 2
    assert (2 * (L3 - L2)).coefficient_of(F(2, 3)) == -2
    assert (L2 - L2).coefficient_of(F(7)) == 0
    assert (L2 + L3).coefficient_of(F(2)) is None
    assert (L2 + 2 * L3).coefficient_of(F(6)) is None
    assert (L2 + 1).coefficient_of(F(2)) is None
    assert lattice_base([L2, F(1), 3 * L2 * L2]) == 2
    assert lattice_base([L2, L3]) is None  # mixed bases: no error


def test_encoding_reads_lattice_coefficients_of_any_base() -> None:
    from smtgrad.encoding.builder import _lattice_coefficient

    assert _lattice_coefficient(2 * (L3 - L2), F(3, 2)) == 2
    assert _lattice_coefficient(2 * (L3 - L2), F(2)) is None
    assert _lattice_coefficient(F(0), F(2)) == 0
    assert _lattice_coefficient(F(1), F(2)) is None


# -- exact zero, nonzero proofs, signs -----------------------------------------------------


def test_exact_zero_of_mixed_bases(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_arb(monkeypatch)
    zero = parse_value("log(6) - log(2) - log(3)")
    assert zero == 0
    square = LogNumber.log(6) ** 2 - (L2 + L3) * (L2 + L3)
    assert square.is_zero() and square == 0 and not square and square.sign() == 0
    assert LogNumber.log(F(10, 3)) * L7 == (L2 + L5 - L3) * L7
    assert hash(square) == hash(0) == hash(F(0))
    assert hash(L2 + L3) == hash(LogNumber.log(6))
    assert len({L2 + L3, LogNumber.log(6), LogNumber.log(F(12, 2))}) == 1
    assert hash(L2 - L2 + F(1, 2)) == hash(F(1, 2))
    assert {F(1, 2): "half"}[L3 - L3 + F(1, 2)] == "half"


def test_nonzero_proofs_a_b_c_need_no_numerics(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_arb(monkeypatch)
    # (a) rational and nonzero.
    assert (L2 - L2 + F(1, 3)) != 0
    # (b) one prime: ln 2 is transcendental, even for a value that is nearly 0.
    near = L2 * L2 - F(480453, 1000000)  # (ln 2)^2 = 0.4804530139...
    assert near != 0 and bool(near)
    assert (L2 * L2 - 2 * L2 + F(1, 3)) != 0
    assert (L3 ** 5 - 7 * L3).is_zero() is False
    # (c) linear forms: c = 0 by unique factorisation, c != 0 by Lindemann.
    assert (3 * L2 - 2 * L3) != 0
    assert LogNumber.log(6) - F(1791759, 1000000) != 0  # ln 6 = 1.7917594...
    assert (L2 + L3 + L5 - L7 - 1) != 0
    # Exact signs of linear forms without constant: 3 ln 2 - 2 ln 3 = ln(8/9) < 0.
    assert (3 * L2 - 2 * L3).sign() == -1
    assert (5 * L2 - 2 * L5).sign() == 1  # 32 > 25
    assert (F(1, 2) * L3 - F(1, 3) * L5).sign() == 1  # 27 > 25
    assert 3 * L2 < 2 * L3
    assert not 3 * L2 > 2 * L3


def test_nonzero_proof_d_and_signs_by_balls() -> None:
    # (d): degree 2 in two primes, decided by a ball that excludes 0.
    x = L2 * L3 - F(1, 2)  # 0.7615... - 1/2
    assert x != 0 and x > 0 and x.sign() == 1
    assert not x == 0  # noqa: SIM201 (the __eq__ path itself)
    assert L2 * L3 - F(7616, 10000) < 0
    assert F(7615, 10000) < L2 * L3
    # Signs of proven-nonzero values (one prime, or linear with a constant) by balls.
    assert (L2 * L2 - F(480453, 1000000)).sign() == 1
    assert (L2 * L2 - F(480454, 1000000)).sign() == -1
    assert LogNumber.log(F(3, 2)) < F(1, 2)  # ln 1.5 = 0.405...
    assert F(1, 2) > LogNumber.log(F(3, 2))
    assert L2 > F(1, 2) > L2 - L2
    assert 0 < L2 <= L2 < L3
    assert float(L2 * L3) == pytest.approx(0.7615000104)
    assert float(L2 - L2 + F(1, 4)) == 0.25


def _nearly_ln2_ln3(bits: int) -> F:
    """A rational within 2^-bits of ln 2 * ln 3 (the midpoint of a ball)."""
    with flint.ctx.workprec(bits + 64):
        mantissa, exponent = (flint.arb(2).log() * flint.arb(3).log()).mid().man_exp()
    return F(int(mantissa)) * F(2) ** int(exponent)


def test_undecidable_values_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _nearly_ln2_ln3(400)
    x = L2 * L3 - r  # degree 2, two primes, |x| < 2^-400
    monkeypatch.setattr(lognum, "_MAX_PRECISION", 256)
    with pytest.raises(InexactValue, match="cannot decide whether"):
        _ = x == 0
    with pytest.raises(InexactValue):
        _ = x != 0
    with pytest.raises(InexactValue):
        bool(x)
    with pytest.raises(InexactValue):
        x.sign()
    with pytest.raises(InexactValue):
        _ = x > 0
    with pytest.raises(InexactValue):
        x.is_zero()
    # A higher cap decides it: the value is nonzero and its sign is proven.
    monkeypatch.setattr(lognum, "_MAX_PRECISION", 2048)
    assert x != 0
    assert x.sign() in (-1, 1)
    oracle = sympy.N(sympy.log(2) * sympy.log(3) - sympy.Rational(r.numerator, r.denominator),
                     400)
    assert abs(oracle) < sympy.Float(2, 400) ** -400
    assert x.sign() == (1 if oracle > 0 else -1)


def test_to_arb_is_a_rigorous_ball() -> None:
    x = L2 * L3 - L5 / 3 + F(1, 7)
    with flint.ctx.workprec(300):
        ball = x.to_arb()
        exact = flint.arb(2).log() * flint.arb(3).log() - flint.arb(5).log() / 3 \
            + flint.arb(1) / 7
        assert ball.overlaps(exact)
        assert ball.rad() < flint.arb(2) ** -250
    assert flint.ctx.prec == 53


def test_division_only_by_rationals() -> None:
    assert (L2 + L3) * F(1, 2) == (L2 + L3) / 2
    assert (L2 + L3) / (L5 - L5 + 4) == (L2 + L3) / 4
    assert F(1, 2) == 1 / (L2 - L2 + 2)
    with pytest.raises(InexactValue):
        _ = L2 / L3
    with pytest.raises(InexactValue):
        _ = 1 / L2
    with pytest.raises(ZeroDivisionError):
        _ = L2 / 0
    with pytest.raises(ZeroDivisionError):
        _ = L2 / (L3 - L3)


# -- exact smooth functions ---------------------------------------------------------------


def test_exact_exp() -> None:
    assert exact_exp(0) == 1 and exact_exp(F(0)) == 1 and exact_exp(L2 - L2) == 1
    assert exact_exp(2 * L3 - L2) == F(9, 2)
    assert exact_exp(LogNumber.log(F(4, 9)) / 2) == F(2, 3)  # = ln 2 - ln 3
    assert exact_exp(2 * L3 - L2) != F(9, 4)
    assert exact_exp(1) is None  # e is irrational
    assert exact_exp(L2 / 2) is None  # sqrt(2)
    assert exact_exp(L2 + 1) is None
    assert exact_exp(L2 * L2) is None
    with pytest.raises(InexactValue, match="bits"):
        exact_exp(10 ** 6 * L2)


def test_lattice_functions_with_mixed_bases() -> None:
    f = LatticeFunctions()
    assert f.tanh(L3 / 2) == F(1, 2)  # exp(2x) = 3
    assert f.tanh(L3 / 2) != F(1, 3)
    assert f.sigmoid(L2 - L3) == F(2, 5)
    assert f.sigmoid(parse_value("log(2/3)")) == F(2, 5)
    assert f.sigmoid(0) == F(1, 2)
    assert f.sigmoid(-2 * L5) == F(1, 26)
    assert f.softmax([L2, L3, L5 - L5]) == (F(1, 3), F(1, 2), F(1, 6))
    assert f.softmax([F(0), L2 + L3, L3 - L2]) == (F(2, 17), F(12, 17), F(3, 17))
    assert f.softmax([L2, L3, 0]) != (F(1, 3),) * 3
    assert f.negative_log(F(2, 3)) == L3 - L2
    assert f.negative_log(L7 - L7 + F(1, 6)) == L2 + L3
    assert f.negative_log(1) == 0
    assert LatticeFunctions(F(2)).sigmoid(L2) == F(2, 3)  # the old argument is ignored
    for bad in (lambda: f.sigmoid(1), lambda: f.sigmoid(L2 / 2), lambda: f.tanh(L2 / 4),
                lambda: f.tanh(F(1, 2)), lambda: f.softmax([L2, 1]),
                lambda: f.sigmoid(L2 * L3), lambda: f.negative_log(0),
                lambda: f.negative_log(F(-1, 2)), lambda: f.negative_log(L2)):
        with pytest.raises(InexactValue):
            bad()


def test_mixed_base_witness_is_evaluated_exactly() -> None:
    """sigmoid_bce_hard with W2 = ln 3: evaluated exactly (no longer refused), and the
    nonzero output gradients reject it."""
    import json
    from pathlib import Path

    from smtgrad.reference.verify import verify
    from smtgrad.reference.witness import witness_from_json
    from smtgrad.spec import load_spec

    root = Path(__file__).resolve().parent.parent
    spec = load_spec(root / "specs" / "sigmoid_bce_hard.yaml")
    data = json.loads((root / "examples" / "design_hard_label_witness.json").read_text())
    good = verify(spec, witness_from_json(data, spec.network, spec.targets))
    assert good.accepted, good.failures
    bad = verify(spec, witness_from_json({**data, "W2": [["log(3)"]]}, spec.network,
                                         spec.targets))
    assert not bad.accepted
    assert bad.evaluation is not None
    assert isinstance(bad.evaluation.loss, LogNumber)
    assert set(bad.evaluation.loss.primes) >= {2, 3}
    assert any("dL/dW2" in failure and "expected 0" in failure for failure in bad.failures)


# -- factoring ----------------------------------------------------------------------------


def test_factoring_agrees_with_flint() -> None:
    for n in [*range(1, 2000), 2 ** 20 - 3, 2 ** 20 + 7, 3 ** 13, 1000003 * 999983]:
        expected = tuple(sorted((int(p), e) for p, e in flint.fmpz(n).factor())) if n > 1 \
            else ()
        assert lognum._factor(n) == expected, n
    assert lognum._factor(2 ** 128 + 1) == ((59649589127497217, 1),
                                             (5704689200685129054721, 1))
    big = 2 ** 300 * 3 ** 5 * (2 ** 127 - 1)
    assert lognum._factor(big) == ((2, 300), (3, 5), (2 ** 127 - 1, 1))


def _prime_below(n: int) -> int:
    while not flint.fmpz(n).is_prime():
        n -= 1
    return n


def test_hard_factorisations_are_refused() -> None:
    with pytest.raises(InexactValue, match="cannot factor"):
        LogNumber.log(2 ** 256 + 1)  # F8: 257 bits, no factor below 2^32
    semiprime = _prime_below(2 ** 128) * _prime_below(2 ** 127)  # 255 bits
    assert semiprime.bit_length() <= 256
    with pytest.raises(NumberError, match="cannot factor"):
        parse_value(f"log({semiprime})")
