"""Exact closed-form numbers: the polynomial ring Q[ln 2, ln 3, ln 5, ...].

A :class:`LogNumber` is a polynomial with rational coefficients in the natural
logarithms of the PRIMES, stored as ``{monomial: Fraction}``; a monomial is a
sorted tuple of ``(prime, exponent)`` pairs and ``()`` is the constant term.
The logarithm of any positive rational is a linear form in these variables
(``ln(3/2) = ln 3 - ln 2``, ``ln 6 = ln 2 + ln 3``), so values written with
mixed bases share one normal form. This is what the log-lattice witnesses of
DESIGN section 2 compute with: sigmoid(x) = e/(1 + e) is rational whenever
e = exp(x) is, which holds exactly when x = sum q_p ln p with integers q_p.

Soundness (how zero, nonzero and signs are decided; nothing is a float guess):

* Zero. If every coefficient is zero the value is 0 (it is the zero
  polynomial). This is the only way a value is ever declared zero.
* Nonzero. A value that is not symbolically zero is declared nonzero only
  when one of these proofs applies:

  (a) it is rational (only the constant term) and that rational is nonzero;
  (b) only one prime p occurs: ln p is transcendental (if ln p = a were
      algebraic, a != 0, then p = e^a would be transcendental by
      Lindemann-Weierstrass), so no nonzero polynomial in ln p vanishes;
  (c) the total degree is <= 1, i.e. the value is c + sum q_p ln p with some
      q_p != 0. Take D > 0 with every D*q_p an integer. If c = 0, a zero value
      would give prod p^(D q_p) = 1, impossible by unique factorisation. If
      c != 0, a zero value would make e^(-D c) = prod p^(D q_p) rational,
      although e^r is transcendental for every rational r != 0 (Lindemann);
  (d) a rigorous ball (python-flint ``arb``) containing the value excludes 0,
      tried at 128, 256, ... bits up to :data:`_MAX_PRECISION`.

  Otherwise (degree >= 2 in several primes, and every ball up to the cap
  contains 0) the question is refused with :class:`InexactValue`: that such a
  polynomial is nonzero would follow from the algebraic independence of the
  logarithms of primes, which is Schanuel's conjecture, not a theorem.
* Sign. Exact for rationals, and for linear forms without constant term
  (compare prod p^(D q_p) with 1 in integers). Otherwise the sign is that of
  an arb ball that excludes 0, at increasing precision; if no ball up to the
  cap excludes 0, :class:`InexactValue` is raised.
* Equality and order (``==``, ``!=``, ``<``, ... against ints, Fractions and
  LogNumbers) and ``bool`` go through the rules above: ``x == 0`` is True only
  for a symbolically zero difference, so equal values have equal normal forms
  and ``__hash__`` (a rational value hashes as its Fraction) is consistent.

Every numeric decision uses arb balls (rigorous). mpmath intervals are not used:
``mpmath.iv.exp`` is not rigorous (mpmath issue #1181). python-flint is imported
only when a value must be factored (beyond small integers) or evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from smtgrad.numbers import NumberError, format_exact, parse_exact
from smtgrad.numbers.rational import (
    InexactValue,
    SmoothFunctions,
    Vector,
)
from smtgrad.numbers.rational import (
    exact_scalar as _scalar,
)
from smtgrad.numbers.rational import (
    flint_module as _flint,
)

if TYPE_CHECKING:
    import flint

#: A product of powers of logarithms of primes: sorted ``(prime, exponent)`` pairs.
Monomial = tuple[tuple[int, int], ...]
Terms = dict[Monomial, Fraction]

#: Highest arb working precision (bits) tried before a question is refused.
_MAX_PRECISION = 20_000
#: First arb working precision (bits); doubled up to the cap.
_START_PRECISION = 128
#: Composites above this many bits are split only by trial division up to 2^32; a
#: cofactor that stays composite and above this size is refused (InexactValue), since a
#: 200-bit semiprime already takes flint about 3 s.
_MAX_FACTOR_BITS = 200
#: Integers below this are factored by trial division (no flint import needed).
_TRIAL_LIMIT = 1 << 20
#: Exact integer power products above this many bits are not built.
_MAX_EXACT_BITS = 100_000
#: Most terms a parsed value (or an intermediate of parsing) may have.
_MAX_PARSED_TERMS = 4096
_MAX_TEXT = 2000

_ZERO = Fraction(0)
_ONE = Fraction(1)


# -- factoring ----------------------------------------------------------------------------


def _trial_factor(n: int) -> list[tuple[int, int]]:
    factors = []
    d = 2
    while d * d <= n:
        if n % d == 0:
            e = 0
            while n % d == 0:
                n //= d
                e += 1
            factors.append((d, e))
        d += 1 if d == 2 else 2
    if n > 1:
        factors.append((n, 1))
    return factors


@lru_cache(maxsize=4096)
def _factor(n: int) -> tuple[tuple[int, int], ...]:
    """The prime factorisation of an integer n >= 1, primes increasing."""
    if n < _TRIAL_LIMIT:
        return tuple(_trial_factor(n))
    flint = _flint()
    found: dict[int, int] = {}
    pending: list[tuple[Any, int]] = [(flint.fmpz(n), 1)]
    while pending:
        number, multiplicity = pending.pop()
        if number == 1:
            continue
        if number.is_prime():  # a proven primality test
            key = int(number)
            found[key] = found.get(key, 0) + multiplicity
            continue
        bits = int(number).bit_length()
        parts = number.factor() if bits <= _MAX_FACTOR_BITS else \
            number.factor_smooth(bits=32, proved=1)
        if len(parts) == 1 and parts[0][1] == 1 and parts[0][0] == number:
            raise InexactValue(f"cannot factor the {bits}-bit integer {int(number)} (no "
                               f"prime factor below 2^32, and above {_MAX_FACTOR_BITS} bits)")
        pending.extend((factor, multiplicity * exponent) for factor, exponent in parts)
    return tuple(sorted(found.items()))


# -- arithmetic on term dictionaries --------------------------------------------------------


def _monomial_product(a: Monomial, b: Monomial) -> Monomial:
    if not a:
        return b
    if not b:
        return a
    powers = dict(a)
    for prime, exponent in b:
        powers[prime] = powers.get(prime, 0) + exponent
    return tuple(sorted(powers.items()))


def _monomial_degree(monomial: Monomial) -> int:
    return sum(exponent for _, exponent in monomial)


def _new(terms: Terms) -> LogNumber:
    """A LogNumber from a term dictionary without zero coefficients (not copied)."""
    number = object.__new__(LogNumber)
    number._terms = terms
    return number


def _constant(value: Fraction) -> LogNumber:
    return _new({(): value} if value else {})


def _integer_power_product(powers: Mapping[int, int]) -> Fraction:
    """prod p^e over integer exponents, exactly."""
    numerator, denominator = 1, 1
    for prime, exponent in powers.items():
        if exponent > 0:
            numerator *= prime ** exponent
        elif exponent < 0:
            denominator *= prime ** -exponent
    return Fraction(numerator, denominator)


def _power_bits(powers: Mapping[int, int]) -> int:
    """About the bit length of prod p^|e|."""
    return sum(abs(e) * prime.bit_length() for prime, e in powers.items())


class LogNumber:
    """An element of Q[ln 2, ln 3, ln 5, ...]: exact, with zero, nonzero and sign decided
    soundly (see the module docstring).

    ``LogNumber(coefficients, base)`` is sum_i c_i ln(base)^i for a rational base > 0,
    base != 1 (kept for compatibility); :meth:`from_terms` and :meth:`log` build the
    general values. Instances are immutable.
    """

    __slots__ = ("_terms",)

    _terms: Terms

    def __init__(self, coefficients: Iterable[Fraction | int], base: Fraction | int) -> None:
        log = LogNumber.log(base)
        if not log._terms:
            raise NumberError("the log base must be a positive rational other than 1")
        total = _new({})
        power = _constant(_ONE)
        for c in coefficients:
            total = total + power * Fraction(c)
            power = power * log
        self._terms = total._terms

    # -- construction -----------------------------------------------------------------------

    @staticmethod
    def from_terms(mapping: Mapping[Sequence[tuple[Fraction | int, int]], Fraction | int]
                   ) -> LogNumber:
        """sum over the mapping of coefficient * prod ln(base)^exponent.

        A monomial is a sequence of ``(base, exponent)`` pairs with rational bases > 0 and
        integer exponents >= 0 (normally primes, as in :attr:`terms`); ``()`` is 1.
        """
        total = _new({})
        for monomial, coefficient in mapping.items():
            term = _constant(Fraction(coefficient))
            for base, exponent in monomial:
                if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 0:
                    raise NumberError(f"a monomial exponent must be an integer >= 0, "
                                      f"found {exponent!r}")
                term = term * LogNumber.log(base) ** exponent
            total = total + term
        return total

    @staticmethod
    def log(value: Fraction | int | LogNumber) -> LogNumber:
        """ln(value) for a rational value > 0, as a linear form in logarithms of primes."""
        rational = _scalar(value)
        if rational is None:
            if isinstance(value, LogNumber) and value.rational() is not None:
                rational = value.rational()
            else:
                raise NumberError(f"log of {value!r}: expected a positive rational")
        assert rational is not None
        if rational <= 0:
            raise NumberError(f"log({format_exact(rational)}) is undefined: the argument "
                              f"must be positive")
        return _log(rational)

    log_base = log  # compatibility: L = ln(base)

    # -- structure --------------------------------------------------------------------------

    @property
    def terms(self) -> dict[Monomial, Fraction]:
        """A copy of the normal form {monomial: nonzero coefficient}."""
        return dict(self._terms)

    @property
    def degree(self) -> int:
        """Total degree; 0 for a nonzero rational, -1 for zero."""
        return max((_monomial_degree(m) for m in self._terms), default=-1)

    @property
    def primes(self) -> tuple[int, ...]:
        """The primes whose logarithms occur, increasing."""
        return tuple(sorted({prime for m in self._terms for prime, _ in m}))

    def rational(self) -> Fraction | None:
        """The value when it is rational (no logarithm occurs), else None."""
        terms = self._terms
        if not terms:
            return _ZERO
        if len(terms) == 1 and () in terms:
            return terms[()]
        return None

    def linear_form(self) -> dict[int, Fraction] | None:
        """{prime: q} when the value is exactly sum q_p ln p (degree <= 1, no constant
        term); {} for zero; None otherwise."""
        form: dict[int, Fraction] = {}
        for monomial, c in self._terms.items():
            if len(monomial) != 1 or monomial[0][1] != 1:
                return None
            form[monomial[0][0]] = c
        return form

    def coefficient_of(self, base: Fraction | int) -> Fraction | None:
        """k when the value is exactly k*ln(base) (0 counts, with k = 0), else None.

        Exact: logarithms of primes are linearly independent over Q (proof (c)).
        """
        if not self._terms:
            return _ZERO
        form = self.linear_form()
        if form is None:
            return None
        unit = LogNumber.log(base).linear_form()
        if not unit or set(unit) != set(form):
            return None
        prime = next(iter(unit))
        k = form[prime] / unit[prime]
        if all(form[p] == k * q for p, q in unit.items()):
            return k
        return None

    # -- arithmetic -------------------------------------------------------------------------

    def _add_scalar(self, value: Fraction) -> LogNumber:
        if not value:
            return self
        terms = dict(self._terms)
        total = terms.get((), _ZERO) + value
        if total:
            terms[()] = total
        else:
            del terms[()]
        return _new(terms)

    def _scaled(self, factor: Fraction) -> LogNumber:
        if not factor:
            return _new({})
        if factor == 1:
            return self
        return _new({m: c * factor for m, c in self._terms.items()})

    def __add__(self, other: object) -> LogNumber:
        if isinstance(other, LogNumber):
            big, small = self._terms, other._terms
            if len(small) > len(big):
                big, small = small, big
            terms = dict(big)
            for m, c in small.items():
                total = terms.get(m, _ZERO) + c
                if total:
                    terms[m] = total
                else:
                    del terms[m]
            return _new(terms)
        value = _scalar(other)
        if value is None:
            return NotImplemented
        return self._add_scalar(value)

    __radd__ = __add__

    def __neg__(self) -> LogNumber:
        return _new({m: -c for m, c in self._terms.items()})

    def __pos__(self) -> LogNumber:
        return self

    def __sub__(self, other: object) -> LogNumber:
        if isinstance(other, LogNumber):
            return self + (-other)
        value = _scalar(other)
        if value is None:
            return NotImplemented
        return self._add_scalar(-value)

    def __rsub__(self, other: object) -> LogNumber:
        value = _scalar(other)
        if value is None:
            return NotImplemented
        return (-self)._add_scalar(value)

    def __mul__(self, other: object) -> LogNumber:
        if isinstance(other, LogNumber):
            left, right = self._terms, other._terms
            if not left or not right:
                return _new({})
            if len(right) == 1 and () in right:
                return self._scaled(right[()])
            if len(left) == 1 and () in left:
                return other._scaled(left[()])
            terms: Terms = {}
            for m1, c1 in left.items():
                for m2, c2 in right.items():
                    m = _monomial_product(m1, m2)
                    terms[m] = terms.get(m, _ZERO) + c1 * c2
            return _new({m: c for m, c in terms.items() if c})
        value = _scalar(other)
        if value is None:
            return NotImplemented
        return self._scaled(value)

    __rmul__ = __mul__

    def __pow__(self, exponent: int) -> LogNumber:
        if isinstance(exponent, bool) or not isinstance(exponent, int):
            return NotImplemented
        if exponent < 0:
            rational = self.rational()
            if rational is None:
                raise InexactValue(f"a negative power of the transcendental {self}")
            return _constant(rational ** exponent)  # ZeroDivisionError for 0
        result = _constant(_ONE)
        square = self
        while exponent:
            if exponent & 1:
                result = result * square
            exponent >>= 1
            if exponent:
                square = square * square
        return result

    def _divisor(self, other: object) -> Fraction | None:
        value = _scalar(other)
        if value is None and isinstance(other, LogNumber):
            value = other.rational()
            if value is None:
                raise InexactValue(f"division by the transcendental {other}")
        if value == 0:
            raise ZeroDivisionError("division by zero")
        return value

    def __truediv__(self, other: object) -> LogNumber:
        divisor = self._divisor(other)
        if divisor is None:
            return NotImplemented
        return self._scaled(1 / divisor)

    def __rtruediv__(self, other: object) -> LogNumber:
        value = _scalar(other)
        if value is None:
            return NotImplemented
        divisor = self._divisor(self)
        assert divisor is not None
        return _constant(value / divisor)

    # -- decisions --------------------------------------------------------------------------

    def _proven_nonzero(self) -> bool:
        """Proofs (a)-(c) of the module docstring (for a symbolically nonzero value)."""
        return bool(self._terms) and (len(self.primes) <= 1 or self.degree <= 1)

    def _linear_sign(self) -> int | None:
        """The exact sign of a linear form sum q_p ln p (no constant term), else None."""
        form = self.linear_form()
        if not form:
            return None
        from math import lcm

        common = lcm(*(q.denominator for q in form.values()))
        powers = {p: int(q * common) for p, q in form.items()}
        if _power_bits(powers) > _MAX_EXACT_BITS:
            return None
        product = _integer_power_product(powers)
        return (product > 1) - (product < 1)

    def _arb_sign(self) -> int | None:
        """The sign of the first arb ball that excludes 0, up to the cap; else None."""
        flint = _flint()
        cap = _MAX_PRECISION
        precision = min(_START_PRECISION, cap)
        while True:
            with flint.ctx.workprec(precision):
                ball = self.to_arb()
                if ball > 0:
                    return 1
                if ball < 0:
                    return -1
            if precision >= cap:
                return None
            precision = min(2 * precision, cap)

    def is_zero(self) -> bool:
        """True iff the value is 0; InexactValue when that cannot be decided soundly."""
        if not self._terms:
            return True
        if self._proven_nonzero() or self._arb_sign() is not None:
            return False
        raise InexactValue(f"cannot decide whether {self} is zero (a polynomial of degree "
                           f"{self.degree} in several logarithms; no {_MAX_PRECISION}-bit "
                           f"ball excludes 0)")

    def sign(self) -> int:
        """-1, 0 or 1, soundly; InexactValue when it cannot be decided."""
        if not self._terms:
            return 0
        rational = self.rational()
        if rational is not None:
            return (rational > 0) - (rational < 0)
        exact = self._linear_sign()
        if exact is not None:
            return exact
        sign = self._arb_sign()
        if sign is not None:
            return sign
        if self._proven_nonzero():
            raise InexactValue(f"cannot decide the sign of the nonzero {self} with "
                               f"{_MAX_PRECISION}-bit balls")
        raise InexactValue(f"cannot decide whether {self} is zero (a polynomial of degree "
                           f"{self.degree} in several logarithms; no {_MAX_PRECISION}-bit "
                           f"ball excludes 0)")

    def to_arb(self) -> flint.arb:
        """A rigorous arb ball containing the value, at the current flint precision."""
        lib = _flint()
        logs = {p: lib.arb(p).log() for p in self.primes}
        total = lib.arb(0)
        for monomial, c in self._terms.items():
            term = lib.arb(lib.fmpq(c.numerator, c.denominator))
            for prime, exponent in monomial:
                factor = logs[prime]  # ln p >= ln 2 > 0: powers by products, never **
                for _ in range(exponent):
                    term = term * factor
            total = total + term
        ball: flint.arb = total
        return ball

    def _difference(self, other: object) -> LogNumber | None:
        if isinstance(other, LogNumber):
            return self - other
        value = _scalar(other)
        return None if value is None else self._add_scalar(-value)

    def __eq__(self, other: object) -> bool:
        difference = self._difference(other)
        if difference is None:
            return NotImplemented
        return difference.is_zero()

    def __ne__(self, other: object) -> bool:
        difference = self._difference(other)
        if difference is None:
            return NotImplemented
        return not difference.is_zero()

    def __lt__(self, other: object) -> bool:
        difference = self._difference(other)
        return NotImplemented if difference is None else difference.sign() < 0

    def __le__(self, other: object) -> bool:
        difference = self._difference(other)
        return NotImplemented if difference is None else difference.sign() <= 0

    def __gt__(self, other: object) -> bool:
        difference = self._difference(other)
        return NotImplemented if difference is None else difference.sign() > 0

    def __ge__(self, other: object) -> bool:
        difference = self._difference(other)
        return NotImplemented if difference is None else difference.sign() >= 0

    def __hash__(self) -> int:
        rational = self.rational()
        if rational is not None:
            return hash(rational)
        return hash(frozenset(self._terms.items()))

    def __bool__(self) -> bool:
        return not self.is_zero()

    def __float__(self) -> float:
        rational = self.rational()
        if rational is not None:
            return float(rational)
        flint = _flint()
        with flint.ctx.workprec(128):
            return float(self.to_arb())

    # -- text -------------------------------------------------------------------------------

    def __str__(self) -> str:
        """Sympy-parsable text, e.g. ``3*log(2)/2 + log(3)**2 - 1/2``."""
        rational = self.rational()
        if rational is not None:
            return format_exact(rational)
        order = sorted((m for m in self._terms if m), key=lambda m: (_monomial_degree(m), m))
        terms = []
        for monomial in order:
            c = self._terms[monomial]
            factor = "*".join(f"log({p})" if e == 1 else f"log({p})**{e}" for p, e in monomial)
            numerator, denominator = c.numerator, c.denominator
            text = factor if abs(numerator) == 1 else f"{abs(numerator)}*{factor}"
            if denominator != 1:
                text = f"{text}/{denominator}"
            terms.append(f"-{text}" if numerator < 0 else text)
        if () in self._terms:
            terms.append(format_exact(self._terms[()]))
        result = terms[0]
        for term in terms[1:]:
            result += f" - {term[1:]}" if term.startswith("-") else f" + {term}"
        return result

    def __repr__(self) -> str:
        return f"LogNumber({str(self)!r})"


@lru_cache(maxsize=4096)
def _log(value: Fraction) -> LogNumber:
    """ln(value) for a rational value > 0 (cached; LogNumbers are immutable)."""
    form: dict[int, int] = {}
    for prime, exponent in _factor(value.numerator):
        form[prime] = exponent
    for prime, exponent in _factor(value.denominator):
        form[prime] = form.get(prime, 0) - exponent
    return _new({((prime, 1),): Fraction(e) for prime, e in sorted(form.items()) if e})


def LogSum(constant: Fraction | int, terms: Mapping[Fraction, Fraction | int]) -> LogNumber:
    """constant + sum q * ln(p) over rationals p > 0 (compatibility factory)."""
    total = _constant(Fraction(constant))
    for p, q in terms.items():
        total = total + LogNumber.log(p) * Fraction(q)
    return total


def exact_exp(x: object) -> Fraction | None:
    """exp(x) when it is known to be rational, else None.

    exp(x) is rational for x = 0 and for x = sum q_p ln p with integers q_p (it is then
    prod p^q_p). For other rationals or linear forms it is irrational (Lindemann; unique
    factorisation for non-integer q_p); for degree >= 2 it is not known, so None as well.
    InexactValue when the rational would have more than ``_MAX_EXACT_BITS`` bits.
    """
    value = _scalar(x)
    if value is not None:
        return _ONE if value == 0 else None
    if not isinstance(x, LogNumber):
        return None
    form = x.linear_form()
    if form is None:
        return None
    if any(q.denominator != 1 for q in form.values()):
        return None
    powers = {p: q.numerator for p, q in form.items()}
    if _power_bits(powers) > _MAX_EXACT_BITS:
        raise InexactValue(f"exp({x}) is rational but has more than {_MAX_EXACT_BITS} bits")
    return _integer_power_product(powers)


class LatticeFunctions(SmoothFunctions):
    """Exact sigmoid, tanh, softmax and -log wherever the result is exact.

    sigmoid(x) = e/(1 + e) and softmax weights exp(z_k - z_0) need exp of the argument
    rational (:func:`exact_exp`); tanh(x) = (t - 1)/(t + 1) needs only t = exp(2x)
    rational, so tanh((1/2) ln 3) = 1/2. Anything else raises InexactValue.
    """

    def __init__(self, base: Fraction | None = None) -> None:
        self.base = base  # ignored: every log base is supported

    @staticmethod
    def _exp(x: Any, what: str) -> Fraction:
        value = exact_exp(x)
        if value is None:
            raise InexactValue(f"{what} is not exact: exp({x}) is not rational")
        return value

    def sigmoid(self, x: Any) -> Any:
        e = self._exp(x, f"sigmoid({x})")
        return e / (1 + e)

    def tanh(self, x: Any) -> Any:
        t = self._exp(2 * x, f"tanh({x})")
        return (t - 1) / (t + 1)

    def softmax(self, z: Sequence[Any]) -> Vector:
        weights = [self._exp(item - z[0], "softmax") for item in z]
        total = sum(weights, start=_ZERO)
        return tuple(w / total for w in weights)

    def negative_log(self, p: Any) -> Any:
        return -self.log(p)

    def exp(self, x: Any) -> Any:
        return self._exp(x, f"exp({x})")

    def log(self, x: Any) -> Any:
        """ln of a positive rational: a closed form in logarithms of primes."""
        value = x.rational() if isinstance(x, LogNumber) else _scalar(x)
        if value is None or value <= 0:
            raise InexactValue(f"log({x}) is outside the exact number types")
        return LogNumber.log(value)


# -- parsing ------------------------------------------------------------------------------

_LOG = re.compile(r"\blog\s*\(([^()]*)\)")
_PLACEHOLDER = "logarg"


class _LogAlgebra:
    """Arithmetic of parsed values over LogNumber (conditions are not values)."""

    def const(self, value: Fraction) -> LogNumber:
        return _constant(value)

    def add(self, a: LogNumber, b: LogNumber) -> LogNumber:
        return a + b

    def sub(self, a: LogNumber, b: LogNumber) -> LogNumber:
        return a - b

    def mul(self, a: LogNumber, b: LogNumber) -> LogNumber:
        if len(a._terms) * len(b._terms) > _MAX_PARSED_TERMS:
            raise NumberError(f"the value has too many terms (more than {_MAX_PARSED_TERMS})")
        return a * b

    def div(self, a: LogNumber, b: LogNumber) -> LogNumber:
        return a / b

    def neg(self, a: LogNumber) -> LogNumber:
        return -a

    def compare(self, op: str, a: LogNumber, b: LogNumber) -> bool:
        raise NumberError("a value cannot contain a comparison")

    def conj(self, items: Sequence[bool]) -> bool:
        raise NumberError("a value cannot contain a condition")

    def disj(self, items: Sequence[bool]) -> bool:
        raise NumberError("a value cannot contain a condition")

    def negate(self, a: bool) -> bool:
        raise NumberError("a value cannot contain a condition")

    def boolean(self, value: bool) -> bool:
        raise NumberError("a value cannot contain a condition")


def parse_value(raw: object) -> Fraction | LogNumber:
    """An exact number, or a polynomial in logarithms such as ``"3*log(2)/2 - log(1/3)"``.

    Every ``log(beta)`` (beta a positive rational: 2, 1/2, 3/2, 0.5, ...) becomes a
    name; the text is read by the assume-language parser (never by eval): + - *,
    division by nonzero constants, integer powers ``**``/``^``. Rational results are
    returned as Fractions. Errors are NumberErrors.
    """
    if isinstance(raw, LogNumber):
        rational = raw.rational()
        return raw if rational is None else rational
    if not isinstance(raw, str) or "log" not in raw:
        return parse_exact(raw)
    from smtgrad.numbers.expr import ExprError, Ref, evaluate_arith, parse_arith

    shown = raw[:60]
    if len(raw) > _MAX_TEXT:
        raise NumberError(f"value text is longer than {_MAX_TEXT} characters")
    if "log" in _LOG.sub("", raw):
        raise NumberError(f"cannot read {shown!r}: expected log(beta) with a positive "
                          f"rational beta such as log(2) or log(3/2)")
    names: dict[Fraction, str] = {}
    logs: dict[str, LogNumber] = {}

    def replace(match: re.Match[str]) -> str:
        argument = match.group(1).strip()
        try:
            beta = parse_exact(argument)
        except NumberError as error:
            raise NumberError(f"cannot read {shown!r}: log({argument}): {error}") from None
        if beta <= 0:
            raise NumberError(f"cannot read {shown!r}: log({argument}) is undefined "
                              f"(the argument must be positive)")
        if beta not in names:
            name = f"{_PLACEHOLDER}{len(names)}"
            names[beta] = name
            try:
                logs[name] = LogNumber.log(beta)
            except InexactValue as error:
                raise NumberError(f"cannot read {shown!r}: {error}") from None
        return f" {names[beta]} "

    text = _LOG.sub(replace, raw)
    try:
        tree = parse_arith(text)
    except ExprError as error:
        raise NumberError(f"cannot read {shown!r}: {error.message}") from None

    def resolve(ref: Ref) -> LogNumber:
        if ref.indices or ref.name not in logs:
            raise NumberError(f"cannot read {shown!r}: unexpected name {ref.name!r}")
        return logs[ref.name]

    try:
        value = evaluate_arith(tree, resolve, _LogAlgebra())
    except (TypeError, ZeroDivisionError, InexactValue) as error:
        raise NumberError(f"cannot read {shown!r}: {error}") from None
    rational = value.rational()
    return value if rational is None else rational


def lattice_base(values: Iterable[Any]) -> Fraction | None:
    """Compatibility: the prime p when every non-rational LogNumber among ``values`` is a
    polynomial in ln p alone; None otherwise (mixed bases are fine everywhere now)."""
    primes: set[int] = set()
    for value in values:
        if isinstance(value, LogNumber):
            primes.update(value.primes)
    return Fraction(primes.pop()) if len(primes) == 1 else None
