"""Exact numbers of the log lattice: Q[ln(beta)] and sums of logarithms of rationals.

DESIGN section 2, "log-lattice witnesses": if every sigmoid/tanh/softmax
pre-activation is an integer multiple of L = ln(beta) for a rational beta > 1,
then sigmoid(k L) = beta^k / (1 + beta^k) is rational, and every parameter,
activation and gradient is a polynomial in L with rational coefficients.
L is transcendental (Lindemann), so such a polynomial is zero iff all its
coefficients are zero: zero / nonzero is decided exactly, never by a float
tolerance. Signs of nonzero values are decided by rigorous interval
evaluation (mpmath's ``iv`` context) at increasing precision, which
terminates because the value is provably nonzero.

Cross-entropy losses are sums ``c + sum q_i ln(p_i)`` with rationals c, q_i,
p_i (:class:`LogSum`); their sign is also decided exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import total_ordering
from math import lcm
from typing import Any

from smtgrad.network import InexactValue, SmoothFunctions, Vector
from smtgrad.numbers import NumberError, format_exact, parse_exact

_MAX_PRECISION = 20_000


def _interval_sign(evaluate: Any, what: str) -> int:
    """Sign of a nonzero real given by ``evaluate(iv_context)`` -> interval."""
    import mpmath  # lazily: 40 ms of start-up that exact runs never need

    precision = 128
    context = mpmath.iv
    saved = context.prec
    try:
        while precision <= _MAX_PRECISION:
            context.prec = precision
            value = evaluate(context)
            if value.a > 0:
                return 1
            if value.b < 0:
                return -1
            precision *= 4
    finally:
        context.prec = saved
    raise InexactValue(f"cannot decide the sign of {what}")


def _iv_rational(iv: Any, value: Fraction) -> Any:
    return iv.mpf(value.numerator) / iv.mpf(value.denominator)


def rational_power(base: Fraction, exponent: Fraction) -> Fraction | None:
    """base**exponent when it is rational (integer exponents always are), else None."""
    if exponent.denominator == 1:
        return base ** exponent.numerator
    root = exponent.denominator
    parts = []
    for part in (base.numerator, base.denominator):
        candidate = round(part ** (1 / root))
        found = None
        for guess in (candidate - 1, candidate, candidate + 1):
            if guess > 0 and guess ** root == part:
                found = guess
        if found is None:
            return None
        parts.append(found)
    return Fraction(parts[0], parts[1]) ** exponent.numerator


@total_ordering
class LogNumber:
    """An element sum_i c_i L^i of Q[L], L = ln(base), base a rational > 1."""

    __slots__ = ("base", "coefficients")

    def __init__(self, coefficients: Iterable[Fraction | int], base: Fraction) -> None:
        items = [Fraction(c) for c in coefficients]
        while items and items[-1] == 0:
            items.pop()
        self.coefficients: tuple[Fraction, ...] = tuple(items)
        self.base = Fraction(base)

    @staticmethod
    def log_base(base: Fraction) -> LogNumber:
        """L itself."""
        return LogNumber((0, 1), base)

    # -- structure ------------------------------------------------------------------------

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    def rational(self) -> Fraction | None:
        """The value when it is rational (degree <= 0), else None."""
        if self.degree <= 0:
            return self.coefficients[0] if self.coefficients else Fraction(0)
        return None

    def lattice_multiple(self) -> Fraction | None:
        """k when the value is exactly k*L (or 0), else None."""
        if not self.coefficients:
            return Fraction(0)
        if self.degree == 1 and self.coefficients[0] == 0:
            return self.coefficients[1]
        return None

    def _coerce(self, other: object) -> LogNumber | None:
        if isinstance(other, LogNumber):
            if other.base != self.base and other.degree > 0 and self.degree > 0:
                raise InexactValue(f"logarithms of different bases {self.base} and "
                                   f"{other.base} cannot be combined exactly")
            return other if other.degree > 0 or self.degree <= 0 else LogNumber(
                other.coefficients, self.base)
        if isinstance(other, Fraction | int) and not isinstance(other, bool):
            return LogNumber((Fraction(other),), self.base)
        return None

    def _base_with(self, other: LogNumber) -> Fraction:
        return self.base if self.degree > 0 else other.base

    # -- arithmetic -----------------------------------------------------------------------

    def __add__(self, other: object) -> LogNumber:
        right = self._coerce(other)
        if right is None:
            return NotImplemented
        size = max(len(self.coefficients), len(right.coefficients))
        left_c = self.coefficients + (Fraction(0),) * (size - len(self.coefficients))
        right_c = right.coefficients + (Fraction(0),) * (size - len(right.coefficients))
        return LogNumber((a + b for a, b in zip(left_c, right_c, strict=True)),
                         self._base_with(right))

    __radd__ = __add__

    def __neg__(self) -> LogNumber:
        return LogNumber((-c for c in self.coefficients), self.base)

    def __pos__(self) -> LogNumber:
        return self

    def __sub__(self, other: object) -> LogNumber:
        right = self._coerce(other)
        if right is None:
            return NotImplemented
        return self + (-right)

    def __rsub__(self, other: object) -> LogNumber:
        left = self._coerce(other)
        if left is None:
            return NotImplemented
        return left + (-self)

    def __mul__(self, other: object) -> LogNumber:
        right = self._coerce(other)
        if right is None:
            return NotImplemented
        if not self.coefficients or not right.coefficients:
            return LogNumber((), self._base_with(right))
        product = [Fraction(0)] * (len(self.coefficients) + len(right.coefficients) - 1)
        for i, a in enumerate(self.coefficients):
            for j, b in enumerate(right.coefficients):
                product[i + j] += a * b
        return LogNumber(product, self._base_with(right))

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> LogNumber:
        right = self._coerce(other)
        if right is None:
            return NotImplemented
        divisor = right.rational()
        if divisor is None:
            raise InexactValue(f"division by the transcendental {right}")
        if divisor == 0:
            raise ZeroDivisionError("division by zero")
        return LogNumber((c / divisor for c in self.coefficients), self.base)

    def __rtruediv__(self, other: object) -> LogNumber:
        left = self._coerce(other)
        if left is None:
            return NotImplemented
        return left / self

    # -- comparisons ----------------------------------------------------------------------

    def sign(self) -> int:
        """-1, 0 or 1, exactly."""
        if not self.coefficients:
            return 0
        constant = self.rational()
        if constant is not None:
            return (constant > 0) - (constant < 0)
        coefficients, base = self.coefficients, self.base

        def evaluate(iv: Any) -> Any:
            log = iv.log(_iv_rational(iv, base))
            total = iv.mpf(0)
            for c in reversed(coefficients):
                total = total * log + _iv_rational(iv, c)
            return total

        return _interval_sign(evaluate, str(self))

    def __eq__(self, other: object) -> bool:
        right = self._coerce(other) if not isinstance(other, LogSum) else None
        if right is None:
            return NotImplemented
        return (self - right).sign() == 0

    def __lt__(self, other: object) -> bool:
        right = self._coerce(other)
        if right is None:
            return NotImplemented
        return (self - right).sign() < 0

    def __hash__(self) -> int:
        constant = self.rational()
        if constant is not None:
            return hash(constant)
        return hash((self.coefficients, self.base))

    def __bool__(self) -> bool:
        return bool(self.coefficients)

    def __float__(self) -> float:
        import mpmath

        log = mpmath.log(mpmath.mpf(self.base.numerator) / self.base.denominator)
        return float(sum(mpmath.mpf(c.numerator) / c.denominator * log ** i
                         for i, c in enumerate(self.coefficients)))

    # -- text -----------------------------------------------------------------------------

    def __str__(self) -> str:
        if self.degree <= 0:
            return format_exact(self.rational() or 0)
        log = f"log({format_exact(self.base)})"
        terms = []
        for power, c in enumerate(self.coefficients):
            if c == 0:
                continue
            factor = "" if power == 0 else (log if power == 1 else f"{log}**{power}")
            if not factor:
                terms.append(format_exact(c))
                continue
            numerator, denominator = c.numerator, c.denominator
            text = factor if abs(numerator) == 1 else f"{abs(numerator)}*{factor}"
            if denominator != 1:
                text = f"{text}/{denominator}"
            terms.append(f"-{text}" if numerator < 0 else text)
        result = terms[0]
        for term in terms[1:]:
            result += f" - {term[1:]}" if term.startswith("-") else f" + {term}"
        return result

    def __repr__(self) -> str:
        return f"LogNumber({str(self)!r})"


class LogSum:
    """A real ``constant + sum q_i * ln(p_i)`` with rational constant, q_i and p_i > 0."""

    __slots__ = ("constant", "terms")

    def __init__(self, constant: Fraction, terms: dict[Fraction, Fraction]) -> None:
        self.constant = Fraction(constant)
        # Normal form: logarithms of primes (linearly independent over Q).
        from sympy import factorint  # lazily: sympy costs 0.7 s of start-up

        primes: dict[Fraction, Fraction] = {}
        for p, q in terms.items():
            if q == 0 or p == 1:
                continue
            for sign, number in ((1, p.numerator), (-1, p.denominator)):
                for prime, exponent in factorint(number).items():
                    key = Fraction(prime)
                    primes[key] = primes.get(key, Fraction(0)) + sign * exponent * q
        self.terms = {p: q for p, q in sorted(primes.items()) if q != 0}

    @staticmethod
    def coerce(value: object) -> LogSum | None:
        if isinstance(value, LogSum):
            return value
        if isinstance(value, LogNumber):
            rational = value.rational()
            if rational is not None:
                return LogSum(rational, {})
            k = value.lattice_multiple()
            if k is not None:
                return LogSum(Fraction(0), {value.base: k})
            return None
        if isinstance(value, Fraction | int) and not isinstance(value, bool):
            return LogSum(Fraction(value), {})
        return None

    def __add__(self, other: object) -> LogSum:
        right = LogSum.coerce(other)
        if right is None:
            return NotImplemented
        terms = dict(self.terms)
        for p, q in right.terms.items():
            terms[p] = terms.get(p, Fraction(0)) + q
        return LogSum(self.constant + right.constant, terms)

    __radd__ = __add__

    def __neg__(self) -> LogSum:
        return LogSum(-self.constant, {p: -q for p, q in self.terms.items()})

    def __sub__(self, other: object) -> LogSum:
        right = LogSum.coerce(other)
        if right is None:
            return NotImplemented
        return self + (-right)

    def __rsub__(self, other: object) -> LogSum:
        left = LogSum.coerce(other)
        if left is None:
            return NotImplemented
        return left + (-self)

    def _scalar(self, other: object) -> Fraction | None:
        if isinstance(other, Fraction | int) and not isinstance(other, bool):
            return Fraction(other)
        if isinstance(other, LogNumber):
            return other.rational()
        return None

    def __mul__(self, other: object) -> LogSum:
        factor = self._scalar(other)
        if factor is None:
            if isinstance(other, LogNumber | LogSum):
                raise InexactValue("a product of logarithms is outside the exact number types")
            return NotImplemented
        return LogSum(self.constant * factor, {p: q * factor for p, q in self.terms.items()})

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> LogSum:
        factor = self._scalar(other)
        if factor is None:
            return NotImplemented
        return self * (1 / factor)

    def sign(self) -> int:
        """-1, 0 or 1, exactly (Lindemann: a nonzero rational is never a sum of logs)."""
        if not self.terms:
            return (self.constant > 0) - (self.constant < 0)
        if self.constant == 0:
            # sum q_i ln p_i = ln prod p_i^(q_i): compare prod p_i^(D q_i) with 1.
            common = lcm(*(q.denominator for q in self.terms.values()))
            product = Fraction(1)
            for p, q in self.terms.items():
                product *= p ** int(q * common)
            return (product > 1) - (product < 1)
        constant, terms = self.constant, self.terms

        def evaluate(iv: Any) -> Any:
            total = _iv_rational(iv, constant)
            for p, q in terms.items():
                total = total + _iv_rational(iv, q) * iv.log(_iv_rational(iv, p))
            return total

        return _interval_sign(evaluate, str(self))

    def _compare(self, other: object) -> int | None:
        right = LogSum.coerce(other)
        if right is None:
            return None
        return (self - right).sign()

    def __eq__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result == 0

    def __lt__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result < 0

    def __le__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result <= 0

    def __gt__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result > 0

    def __ge__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result >= 0

    def __hash__(self) -> int:
        return hash((self.constant, tuple(sorted(self.terms.items()))))

    def __float__(self) -> float:
        import math

        return float(self.constant) + sum(float(q) * math.log(float(p))
                                          for p, q in self.terms.items())

    def __str__(self) -> str:
        parts = []
        for p, q in sorted(self.terms.items()):
            log = f"log({format_exact(p)})"
            numerator, denominator = q.numerator, q.denominator
            text = log if abs(numerator) == 1 else f"{abs(numerator)}*{log}"
            if denominator != 1:
                text = f"{text}/{denominator}"
            parts.append(f"-{text}" if numerator < 0 else text)
        if self.constant != 0 or not parts:
            parts.append(format_exact(self.constant))
        result = parts[0]
        for part in parts[1:]:
            result += f" - {part[1:]}" if part.startswith("-") else f" + {part}"
        return result

    def __repr__(self) -> str:
        return f"LogSum({str(self)!r})"


class LatticeFunctions(SmoothFunctions):
    """Exact sigmoid, tanh and softmax at integer multiples of ln(base) (or anywhere exact)."""

    def __init__(self, base: Fraction | None) -> None:
        self.base = base

    def _exp(self, x: Any) -> Fraction:
        """exp(x) when it is rational: x = 0, or x = q*ln(base) with base^q rational."""
        if isinstance(x, LogNumber):
            k = x.lattice_multiple()
            if k is not None:
                if k == 0:
                    return Fraction(1)
                value = rational_power(x.base, k)
                if value is not None:
                    return value
        elif x == 0:
            return Fraction(1)
        raise InexactValue(f"exp({x}) is not rational")

    def sigmoid(self, x: Any) -> Any:
        t = self._exp(x)
        return t / (1 + t)

    def tanh(self, x: Any) -> Any:
        t = self._exp(x) ** 2
        return (t - 1) / (t + 1)

    def softmax(self, z: Sequence[Any]) -> Vector:
        weights = [self._exp(item - z[0]) for item in z]
        total = sum(weights, start=Fraction(0))
        return tuple(w / total for w in weights)

    def negative_log(self, p: Any) -> Any:
        value = p.rational() if isinstance(p, LogNumber) else p
        if not isinstance(value, Fraction | int) or value <= 0:
            raise InexactValue(f"-log({p}) is outside the exact number types")
        return LogSum(Fraction(0), {Fraction(value): Fraction(-1)})


_LOG = re.compile(r"log\(\s*([0-9]+(?:\s*/\s*[0-9]+)?)\s*\)")


def parse_value(raw: object) -> Fraction | LogNumber:
    """An exact number, or a polynomial in log(beta) such as ``"3*log(2)/2"``.

    The text is read by the assume-language parser (never by eval), with every
    ``log(beta)`` replaced by the name ``L``; one base per value.
    """
    if not isinstance(raw, str) or "log" not in raw:
        return parse_exact(raw)
    from smtgrad.expr import ExprError, FractionAlgebra, Ref, evaluate_arith, parse_arith

    bases = {parse_exact(match.group(1)) for match in _LOG.finditer(raw)}
    if len(bases) != 1:
        raise NumberError(f"expected a polynomial in one log(beta), found {raw[:60]!r}")
    (base,) = bases
    if base <= 0 or base == 1:
        raise NumberError(f"log base must be a positive rational other than 1, found {base}")
    text = _LOG.sub(" L ", raw)
    try:
        tree = parse_arith(text)
    except ExprError as error:
        raise NumberError(f"cannot read {raw[:60]!r}: {error}") from None

    def resolve(ref: Ref) -> Any:
        if ref.name != "L" or ref.indices:
            raise NumberError(f"unexpected name {ref.name!r} in {raw[:60]!r}")
        return LogNumber.log_base(base)

    value = evaluate_arith(tree, resolve, FractionAlgebra())
    if isinstance(value, LogNumber):
        return value
    return Fraction(value)


def lattice_base(values: Iterable[Any]) -> Fraction | None:
    """The common log base of the LogNumbers among ``values`` (None when all rational)."""
    bases = {v.base for v in values if isinstance(v, LogNumber) and v.degree > 0}
    if len(bases) > 1:
        raise NumberError(f"values use different log bases {sorted(bases)}")
    return bases.pop() if bases else None
