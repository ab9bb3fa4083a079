"""Parser and evaluator for the ``assume`` expression language of spec files.

The language is deliberately tiny::

    W1[0,0] != 0
    0 < X[0,0] < X[1,0]
    yhat[2] >= 1/2 and not (b1[0] == 0 or W2[0,0]*2 - 3.5 <= -1)

Grammar, from the loosest binding to the tightest::

    or_expr    := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | comparison
    comparison := arith (('==' | '!=' | '<' | '<=' | '>' | '>=') arith)*
    arith      := term (('+' | '-') term)*
    term       := unary (('*' | '/') unary)*
    unary      := ('-' | '+') unary | power
    power      := atom (('^' | '**') INT)?
    atom       := NUMBER | NAME index? | 'true' | 'false' | '(' or_expr ')'
    index      := '[' (INT | '*') (',' INT)? ']'

A ``*`` as the first index (``X[*,0] >= 0``, ``yhat[*] > 0``) stands for every sample:
the condition holds for each m (:data:`EVERY_SAMPLE`; once M is known,
:func:`for_each_sample` expands it into one condition per sample).

Text from a spec file is untrusted. It is read by the hand-written tokenizer and
recursive-descent parser below and never by any Python parsing facility (no
``eval``, ``exec``, ``compile`` or ``ast``). Every problem -- bad syntax, a type
error, something that looks like a function call or attribute access, input that
would make exact arithmetic explode -- is reported as an :class:`ExprError`.

Numbers are exact: every literal becomes a :class:`fractions.Fraction`. The AST is
made of frozen dataclasses and can be evaluated under any :class:`Algebra`
(exact fractions, SMT terms, ...). Evaluation, :func:`references` and
:func:`to_text` walk the tree iteratively, so they do not depend on Python's
recursion limit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, Protocol, TypeAlias, TypeVar

from smtgrad.errors import InputError

__all__ = [
    "ARITH_OPS",
    "BOOL_OPS",
    "COMPARISON_OPS",
    "EVERY_SAMPLE",
    "MAX_CONSTANT_BITS",
    "MAX_DECIMAL_EXPONENT",
    "MAX_DEGREE",
    "MAX_DEPTH",
    "MAX_INDEX",
    "MAX_INDICES",
    "MAX_INPUT_LENGTH",
    "MAX_NESTING",
    "MAX_NUMBER_LENGTH",
    "MAX_POWER",
    "Algebra",
    "Arith",
    "BinOp",
    "BoolConst",
    "BoolOp",
    "Compare",
    "Cond",
    "ExprError",
    "FractionAlgebra",
    "Neg",
    "Node",
    "Not",
    "Num",
    "Pow",
    "Ref",
    "evaluate_arith",
    "evaluate_condition",
    "for_each_sample",
    "names_every_sample",
    "parse_arith",
    "parse_condition",
    "references",
    "to_text",
]

# ---------------------------------------------------------------------------
# Limits. They keep hostile input from costing unbounded time or memory.
# ---------------------------------------------------------------------------

MAX_INPUT_LENGTH: Final = 10_000
"""Longest accepted expression, in characters."""
MAX_NUMBER_LENGTH: Final = 200
"""Longest accepted number literal, in characters."""
MAX_DECIMAL_EXPONENT: Final = 400
"""Largest accepted absolute value of the ``e`` exponent of a number literal."""
MAX_POWER: Final = 16
"""Largest accepted exponent of ``^`` / ``**``."""
MAX_INDICES: Final = 2
"""Most indices a reference may carry (``W1[0,1]``)."""
MAX_INDEX: Final = 1_000_000_000
"""Largest accepted index value."""
MAX_NESTING: Final = 50
"""Deepest accepted nesting of parentheses."""
MAX_DEPTH: Final = 200
"""Deepest accepted syntax tree (counted in nodes from the root to a leaf)."""
MAX_DEGREE: Final = 64
"""Largest accepted polynomial degree of an arithmetic sub-expression."""
MAX_CONSTANT_BITS: Final = 65_536
"""Upper bound on the estimated size (in bits) of exact constants the expression builds."""

EVERY_SAMPLE: Final = -1
"""The index a ``*`` stands for (``X[*,0]``): every sample. Never an index into an array:
:func:`for_each_sample` replaces it before anything is evaluated."""

ARITH_OPS: Final = ("+", "-", "*", "/")
COMPARISON_OPS: Final = ("==", "!=", "<", "<=", ">", ">=")
BOOL_OPS: Final = ("and", "or")


class ExprError(InputError, ValueError):
    """A syntax or type error in an expression; `column` is the 1-based character position."""

    label = "bad expression"
    message: str
    column: int | None

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        super().__init__(message if column is None else f"column {column}: {message}")

    def __reduce__(self) -> tuple[type[ExprError], tuple[str, int | None]]:
        return (type(self), (self.message, self.column))


# ---------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """An exact numeric constant."""

    value: Fraction


@dataclass(frozen=True)
class Ref:
    """A named quantity, optionally indexed: ``loss``, ``b1[0]``, ``W1[0,1]``."""

    name: str
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class Neg:
    """Arithmetic negation ``-operand``."""

    operand: Arith


@dataclass(frozen=True)
class BinOp:
    """``left op right`` with ``op`` one of ``+ - * /``.

    In parsed trees the right operand of ``/`` never contains a :class:`Ref` and
    its exact value is nonzero (see :meth:`Algebra.div`).
    """

    op: str
    left: Arith
    right: Arith

    def __post_init__(self) -> None:
        if self.op not in ARITH_OPS:
            raise ValueError(f"unknown arithmetic operator {self.op!r}")


@dataclass(frozen=True)
class Pow:
    """``base ^ exponent`` with a non-negative integer exponent."""

    base: Arith
    exponent: int

    def __post_init__(self) -> None:
        if self.exponent < 0:
            raise ValueError("the exponent of Pow must be non-negative")


@dataclass(frozen=True)
class Compare:
    """``left op right`` with ``op`` one of ``== != < <= > >=``."""

    op: str
    left: Arith
    right: Arith

    def __post_init__(self) -> None:
        if self.op not in COMPARISON_OPS:
            raise ValueError(f"unknown comparison operator {self.op!r}")


@dataclass(frozen=True)
class BoolOp:
    """Conjunction (``and``) or disjunction (``or``) of conditions."""

    op: str
    operands: tuple[Cond, ...]

    def __post_init__(self) -> None:
        if self.op not in BOOL_OPS:
            raise ValueError(f"unknown boolean operator {self.op!r}")


@dataclass(frozen=True)
class Not:
    """Logical negation ``not operand``."""

    operand: Cond


@dataclass(frozen=True)
class BoolConst:
    """The literal ``true`` or ``false``."""

    value: bool


Arith: TypeAlias = Num | Ref | Neg | BinOp | Pow
Cond: TypeAlias = Compare | BoolOp | Not | BoolConst
Node: TypeAlias = Arith | Cond

_ARITH_TYPES: Final = (Num, Ref, Neg, BinOp, Pow)
_COND_TYPES: Final = (Compare, BoolOp, Not, BoolConst)


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

_TokenKind: TypeAlias = Literal["num", "name", "kw", "op", "end"]

_DIGITS: Final = frozenset("0123456789")
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_NAME_START: Final = _NAME_CHARS - _DIGITS
_WHITESPACE: Final = frozenset(" \t\r\n")
_KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false"})
# Two-character operators are tried first, so that "**" wins over "*" and "<=" over "<".
_LONG_OPERATORS: Final = ("**", "==", "!=", "<=", ">=")
_SHORT_OPERATORS: Final = ("<", ">", "+", "-", "*", "/", "^", "(", ")", "[", "]", ",")
_OPERATORS: Final = (*_LONG_OPERATORS, *_SHORT_OPERATORS)

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE: Final = re.compile(
    r"(?:(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]*))?|\.(?P<frac2>[0-9]+))"
    r"(?:[eE](?P<exp>[+-]?[0-9]+))?"
)


@dataclass(frozen=True)
class _Token:
    kind: _TokenKind
    text: str
    column: int
    value: Fraction | None = None

    def is_op(self, *texts: str) -> bool:
        return self.kind == "op" and self.text in texts

    def is_kw(self, word: str) -> bool:
        return self.kind == "kw" and self.text == word

    def is_int(self) -> bool:
        """A number literal written with digits only (no point, no exponent)."""
        return self.kind == "num" and all(char in _DIGITS for char in self.text)

    def describe(self) -> str:
        return "end of expression" if self.kind == "end" else repr(self.text)


def _number_value(match: re.Match[str], column: int) -> Fraction:
    integer = match.group("int") or ""
    fraction = match.group("frac") or match.group("frac2") or ""
    exponent_text = match.group("exp")
    exponent = int(exponent_text) if exponent_text else 0
    if abs(exponent) > MAX_DECIMAL_EXPONENT:
        raise ExprError(
            f"the exponent of a number may be at most {MAX_DECIMAL_EXPONENT} in absolute value",
            column,
        )
    mantissa = int(integer + fraction)
    scale = exponent - len(fraction)
    if scale >= 0:
        return Fraction(mantissa * 10**scale)
    return Fraction(mantissa, 10**-scale)


def _bad_character(text: str, index: int, previous: _Token | None) -> ExprError:
    char = text[index]
    column = index + 1
    if char in "'\"":
        return ExprError("strings are not allowed", column)
    if char == ".":
        if previous is not None and (previous.kind == "name" or previous.is_op(")", "]")):
            return ExprError("attribute access is not allowed", column)
        return ExprError("unexpected character '.'", column)
    if char == "=":
        return ExprError("unexpected '='; use '==' to test equality", column)
    if char == "!":
        return ExprError("unexpected '!'; use 'not' for negation", column)
    if char == "&":
        return ExprError("unexpected '&'; use 'and'", column)
    if char == "|":
        return ExprError("unexpected '|'; use 'or'", column)
    return ExprError(f"unexpected character {char!r} (U+{ord(char):04X})", column)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        column = index + 1
        if char in _WHITESPACE:
            index += 1
            continue
        if char in _DIGITS or (char == "." and index + 1 < length and text[index + 1] in _DIGITS):
            match = _NUMBER_RE.match(text, index)
            assert match is not None  # the first character guarantees a match
            end = match.end()
            if end - index > MAX_NUMBER_LENGTH:
                raise ExprError(
                    f"number literal is longer than {MAX_NUMBER_LENGTH} characters", column
                )
            if end < length and (text[end] in _NAME_CHARS or text[end] == "."):
                raise ExprError("malformed number", column)
            value = _number_value(match, column)
            tokens.append(_Token("num", match.group(), column, value))
            index = end
            continue
        if char in _NAME_START:
            match = _NAME_RE.match(text, index)
            assert match is not None  # the first character guarantees a match
            word = match.group()
            tokens.append(_Token("kw" if word in _KEYWORDS else "name", word, column))
            index = match.end()
            continue
        for operator in _OPERATORS:
            if text.startswith(operator, index):
                tokens.append(_Token("op", operator, column))
                index += len(operator)
                break
        else:
            raise _bad_character(text, index, tokens[-1] if tokens else None)
    tokens.append(_Token("end", "", length + 1))
    return tokens


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """A parsed sub-expression with the bookkeeping the parser's limits need."""

    node: Node
    column: int  # where the sub-expression starts
    depth: int = 1  # height of the tree
    degree: int = 0  # polynomial degree (references count 1)
    bits: int = 0  # upper estimate of the bit size of the exact constants involved
    constant: bool = True  # no reference inside


def _arith(item: _Item) -> Arith:
    node = item.node
    if isinstance(node, _COND_TYPES):
        raise ExprError("expected a number, found a condition", item.column)
    return node


def _cond(item: _Item) -> Cond:
    node = item.node
    if isinstance(node, _ARITH_TYPES):
        raise ExprError("expected a condition, found a number", item.column)
    return node


def _no_reference(ref: Ref) -> NoReturn:
    raise AssertionError(f"unexpected reference {ref!r} in a constant expression")


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._position = 0
        self._nesting = 0

    # -- token access -------------------------------------------------------

    def _peek(self) -> _Token:
        return self._tokens[self._position]

    def _next(self) -> _Token:
        token = self._tokens[self._position]
        if token.kind != "end":
            self._position += 1
        return token

    # -- node construction --------------------------------------------------

    @staticmethod
    def _build(
        node: Node,
        column: int,
        children: Sequence[_Item],
        *,
        degree: int = 0,
        bits: int = 0,
        at: int | None = None,
    ) -> _Item:
        where = column if at is None else at
        depth = 1 + max((child.depth for child in children), default=0)
        if depth > MAX_DEPTH:
            raise ExprError("expression is too deeply nested", where)
        if degree > MAX_DEGREE:
            raise ExprError(f"polynomial degree is too high (more than {MAX_DEGREE})", where)
        if bits > MAX_CONSTANT_BITS:
            raise ExprError("constants in the expression grow too large", where)
        constant = all(child.constant for child in children) and not isinstance(node, Ref)
        return _Item(node, column, depth, degree, bits, constant)

    # -- grammar ------------------------------------------------------------

    def parse(self) -> _Item:
        if self._peek().kind == "end":
            raise ExprError("empty expression", None)
        item = self._or()
        token = self._peek()
        if token.kind != "end":
            if token.is_op(")"):
                raise ExprError("unbalanced ')'", token.column)
            if token.is_op("^", "**"):
                raise ExprError("chained exponents need parentheses", token.column)
            raise ExprError(f"unexpected {token.describe()}; expected an operator", token.column)
        return item

    def _or(self) -> _Item:
        return self._bool_chain("or", self._and)

    def _and(self) -> _Item:
        return self._bool_chain("and", self._not)

    def _bool_chain(self, word: str, operand: Callable[[], _Item]) -> _Item:
        first = operand()
        if not self._peek().is_kw(word):
            return first
        items = [first]
        conditions = [_cond(first)]
        while self._peek().is_kw(word):
            self._next()
            item = operand()
            conditions.append(_cond(item))
            items.append(item)
        return self._build(BoolOp(word, tuple(conditions)), first.column, items)

    def _not(self) -> _Item:
        nots: list[_Token] = []
        while self._peek().is_kw("not"):
            nots.append(self._next())
        item = self._comparison()
        for token in reversed(nots):
            item = self._build(Not(_cond(item)), token.column, [item])
        return item

    def _comparison(self) -> _Item:
        first = self._sum()
        if not self._peek().is_op(*COMPARISON_OPS):
            return first
        items = [first]
        operands = [_arith(first)]
        operators: list[_Token] = []
        while self._peek().is_op(*COMPARISON_OPS):
            operators.append(self._next())
            item = self._sum()
            operands.append(_arith(item))
            items.append(item)
        compares: list[Compare] = []
        compare_items: list[_Item] = []
        for k, operator in enumerate(operators):
            compare = Compare(operator.text, operands[k], operands[k + 1])
            compares.append(compare)
            compare_items.append(self._build(compare, items[k].column, [items[k], items[k + 1]]))
        if len(compare_items) == 1:
            return compare_items[0]
        return self._build(BoolOp("and", tuple(compares)), first.column, compare_items)

    def _sum(self) -> _Item:
        item = self._term()
        while self._peek().is_op("+", "-"):
            operator = self._next()
            left = _arith(item)
            right_item = self._term()
            right = _arith(right_item)
            item = self._build(
                BinOp(operator.text, left, right),
                item.column,
                [item, right_item],
                degree=max(item.degree, right_item.degree),
                bits=item.bits + right_item.bits + 1,
                at=operator.column,
            )
        return item

    def _term(self) -> _Item:
        item = self._unary()
        while self._peek().is_op("*", "/"):
            operator = self._next()
            left = _arith(item)
            right_item = self._unary()
            right = _arith(right_item)
            if operator.text == "*":
                item = self._build(
                    BinOp("*", left, right),
                    item.column,
                    [item, right_item],
                    degree=item.degree + right_item.degree,
                    bits=item.bits + right_item.bits,
                    at=operator.column,
                )
                continue
            if not right_item.constant:
                raise ExprError("division only by a nonzero constant is supported", operator.column)
            # The size limits bound this computation, and divisions inside the divisor were
            # checked when they were parsed, so it cannot fail or blow up.
            if _constant_value(right) == 0:
                raise ExprError("division only by a nonzero constant is supported", operator.column)
            item = self._build(
                BinOp("/", left, right),
                item.column,
                [item, right_item],
                degree=item.degree,
                bits=item.bits + right_item.bits,
                at=operator.column,
            )
        return item

    def _unary(self) -> _Item:
        signs: list[_Token] = []
        while self._peek().is_op("+", "-"):
            signs.append(self._next())
        item = self._power()
        for sign in reversed(signs):
            operand = _arith(item)
            if sign.text == "-":
                item = self._build(
                    Neg(operand), sign.column, [item], degree=item.degree, bits=item.bits
                )
            else:
                item = dataclasses.replace(item, column=sign.column)
        return item

    def _power(self) -> _Item:
        item = self._atom()
        if not self._peek().is_op("^", "**"):
            return item
        operator = self._next()
        base = _arith(item)
        token = self._peek()
        if not token.is_int() or int(token.text) > MAX_POWER:
            raise ExprError(
                f"an exponent must be an integer literal from 0 to {MAX_POWER}", token.column
            )
        self._next()
        exponent = int(token.text)
        if self._peek().is_op("^", "**"):
            raise ExprError("chained exponents need parentheses", self._peek().column)
        return self._build(
            Pow(base, exponent),
            item.column,
            [item],
            degree=item.degree * exponent,
            bits=max(item.bits * exponent, 1),
            at=operator.column,
        )

    def _atom(self) -> _Item:
        token = self._peek()
        if token.kind == "num":
            self._next()
            assert token.value is not None
            value = token.value
            bits = max(value.numerator.bit_length(), value.denominator.bit_length(), 1)
            return self._build(Num(value), token.column, [], bits=bits)
        if token.kind == "name":
            return self._reference()
        if token.is_kw("true") or token.is_kw("false"):
            self._next()
            return self._build(BoolConst(token.text == "true"), token.column, [])
        if token.is_op("("):
            self._next()
            self._nesting += 1
            if self._nesting > MAX_NESTING:
                raise ExprError(
                    f"too many nested parentheses (more than {MAX_NESTING})", token.column
                )
            inner = self._or()
            close = self._peek()
            if not close.is_op(")"):
                if close.kind == "end":
                    raise ExprError("unbalanced '(': missing ')'", token.column)
                raise ExprError(f"expected ')' but found {close.describe()}", close.column)
            self._next()
            self._nesting -= 1
            return dataclasses.replace(inner, column=token.column)
        if token.kind == "end":
            raise ExprError("unexpected end of expression", token.column)
        raise ExprError(
            f"expected a number, a name or '(' but found {token.describe()}", token.column
        )

    def _reference(self) -> _Item:
        token = self._next()
        name = token.text
        if name.startswith("_"):
            raise ExprError("names may not start with '_'", token.column)
        if self._peek().is_op("("):
            raise ExprError("function calls are not allowed", token.column)
        indices: list[int] = []
        if self._peek().is_op("["):
            self._next()
            while True:
                index_token = self._peek()
                if not indices and index_token.is_op("*"):
                    self._next()
                    indices.append(EVERY_SAMPLE)  # X[*,0]: every sample
                else:
                    if not index_token.is_int():
                        raise ExprError(
                            "an index must be a non-negative integer literal (or '*' for "
                            "every sample, as the first index)", index_token.column
                        )
                    self._next()
                    if len(indices) == MAX_INDICES:
                        raise ExprError(
                            f"a reference takes at most {MAX_INDICES} indices",
                            index_token.column
                        )
                    index = int(index_token.text)
                    if index > MAX_INDEX:
                        raise ExprError("index is too large", index_token.column)
                    indices.append(index)
                separator = self._next()
                if separator.is_op("]"):
                    break
                if not separator.is_op(","):
                    raise ExprError(
                        f"expected ',' or ']' but found {separator.describe()}", separator.column
                    )
            if self._peek().is_op("("):
                raise ExprError("function calls are not allowed", token.column)
        return self._build(Ref(name, tuple(indices)), token.column, [], degree=1)


def _parse(text: str) -> _Item:
    if not isinstance(text, str):
        raise ExprError(f"an expression must be a string, not {type(text).__name__}")
    if len(text) > MAX_INPUT_LENGTH:
        raise ExprError(
            f"expression is too long ({len(text)} characters; the limit is {MAX_INPUT_LENGTH})"
        )
    tokens = _tokenize(text)
    try:
        return _Parser(tokens).parse()
    except RecursionError:  # only when called with an almost exhausted stack
        raise ExprError("expression is too deeply nested") from None


def parse_condition(text: str) -> Cond:
    """Parse a boolean ``assume`` expression such as ``"0 < X[0,0] < X[1,0]"``."""
    item = _parse(text)
    node = item.node
    if isinstance(node, _ARITH_TYPES):
        raise ExprError("expected a condition such as 'x > 0', found a number", item.column)
    return node


def parse_arith(text: str) -> Arith:
    """Parse an arithmetic expression such as ``"W1[0,0]*2 - 3.5"``."""
    item = _parse(text)
    node = item.node
    if isinstance(node, _COND_TYPES):
        raise ExprError("expected a number, found a condition", item.column)
    return node


# ---------------------------------------------------------------------------
# Tree walking
# ---------------------------------------------------------------------------


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Neg, Not)):
        return (node.operand,)
    if isinstance(node, (BinOp, Compare)):
        return (node.left, node.right)
    if isinstance(node, Pow):
        return (node.base,)
    if isinstance(node, BoolOp):
        return node.operands
    return ()


def _postorder(root: Node) -> Iterator[Node]:
    """Every node of the tree, children (left to right) before their parent."""
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            yield node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))


def references(node: Node) -> frozenset[Ref]:
    """Every :class:`Ref` in the tree."""
    return frozenset(item for item in _postorder(node) if isinstance(item, Ref))


def names_every_sample(node: Node) -> bool:
    """Whether the tree has a reference with ``*`` as its sample index (``X[*,0]``)."""
    return any(ref.indices[:1] == (EVERY_SAMPLE,) for ref in references(node))


def _with_sample(node: Node, sample: int) -> Node:
    """A copy of the tree with every ``*`` sample index replaced by ``sample``."""
    built: list[Any] = []  # rebuilt nodes, children before their parent
    for item in _postorder(node):
        count = len(_children(item))
        children: list[Any] = built[len(built) - count:] if count else []
        if count:
            del built[len(built) - count:]
        if isinstance(item, Ref):
            if item.indices[:1] == (EVERY_SAMPLE,):
                item = Ref(item.name, (sample, *item.indices[1:]))
        elif isinstance(item, (Neg, Not)):
            item = dataclasses.replace(item, operand=children[0])
        elif isinstance(item, (BinOp, Compare)):
            item = dataclasses.replace(item, left=children[0], right=children[1])
        elif isinstance(item, Pow):
            item = dataclasses.replace(item, base=children[0])
        elif isinstance(item, BoolOp):
            item = dataclasses.replace(item, operands=tuple(children))
        built.append(item)
    result: Node = built[0]
    return result


def for_each_sample(node: Cond, samples: int) -> tuple[Cond, ...]:
    """The condition for each sample m = 0..samples-1 (``*`` replaced by m); the condition
    itself when it names no ``*``."""
    if not names_every_sample(node):
        return (node,)
    conditions = []
    for m in range(samples):
        condition = _with_sample(node, m)
        assert isinstance(condition, _COND_TYPES)
        conditions.append(condition)
    return tuple(conditions)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

T = TypeVar("T")
B = TypeVar("B")


class Algebra(Protocol[T, B]):
    """What an expression is evaluated into: numbers of type T and booleans of type B."""

    def const(self, value: Fraction) -> T: ...

    def add(self, a: T, b: T) -> T: ...

    def sub(self, a: T, b: T) -> T: ...

    def mul(self, a: T, b: T) -> T: ...

    def div(self, a: T, b: T) -> T:
        """``a / b``.

        When the divisor contains no reference (always so in parsed trees), it is
        computed exactly and ``b`` is ``const(c)`` for its value ``c``, which in
        parsed trees is nonzero.
        """
        ...

    def neg(self, a: T) -> T: ...

    def compare(self, op: str, a: T, b: T) -> B: ...

    def conj(self, items: Sequence[B]) -> B: ...

    def disj(self, items: Sequence[B]) -> B: ...

    def negate(self, a: B) -> B: ...

    def boolean(self, value: bool) -> B: ...


def _evaluate(
    root: Node, resolve: Callable[[Ref], T], algebra: Algebra[T, B], *, fold_divisors: bool
) -> tuple[list[T], list[B]]:
    """Evaluate bottom-up with explicit stacks (no recursion).

    With ``fold_divisors``, a reference-free divisor is computed exactly and handed to
    ``algebra.div`` as ``algebra.const(value)`` instead of being evaluated in the algebra.
    """
    numbers: list[T] = []
    booleans: list[B] = []
    # (node, children already done, exact value of a folded divisor)
    stack: list[tuple[Node, bool, Fraction | None]] = [(root, False, None)]
    while stack:
        node, expanded, divisor = stack.pop()
        if not expanded:
            children = _children(node)
            if (
                fold_divisors
                and isinstance(node, BinOp)
                and node.op == "/"
                and not references(node.right)
            ):
                divisor = _constant_value(node.right)
                children = (node.left,)
            stack.append((node, True, divisor))
            stack.extend((child, False, None) for child in reversed(children))
            continue
        if isinstance(node, Num):
            numbers.append(algebra.const(node.value))
        elif isinstance(node, Ref):
            numbers.append(resolve(node))
        elif isinstance(node, Neg):
            numbers.append(algebra.neg(numbers.pop()))
        elif isinstance(node, BinOp):
            right = numbers.pop() if divisor is None else algebra.const(divisor)
            left = numbers.pop()
            if node.op == "+":
                numbers.append(algebra.add(left, right))
            elif node.op == "-":
                numbers.append(algebra.sub(left, right))
            elif node.op == "*":
                numbers.append(algebra.mul(left, right))
            else:
                numbers.append(algebra.div(left, right))
        elif isinstance(node, Pow):
            base = numbers.pop()
            if node.exponent == 0:
                result = algebra.const(Fraction(1))
            else:
                result = base
                for _ in range(node.exponent - 1):
                    result = algebra.mul(result, base)
            numbers.append(result)
        elif isinstance(node, Compare):
            right = numbers.pop()
            left = numbers.pop()
            booleans.append(algebra.compare(node.op, left, right))
        elif isinstance(node, BoolOp):
            count = len(node.operands)
            items = booleans[len(booleans) - count :]
            del booleans[len(booleans) - count :]
            if node.op == "and":
                booleans.append(algebra.conj(items))
            else:
                booleans.append(algebra.disj(items))
        elif isinstance(node, Not):
            booleans.append(algebra.negate(booleans.pop()))
        else:
            booleans.append(algebra.boolean(node.value))
    return numbers, booleans


def _constant_value(node: Arith) -> Fraction:
    """The exact value of a reference-free arithmetic expression."""
    numbers, _ = _evaluate(node, _no_reference, FractionAlgebra(), fold_divisors=False)
    return numbers[0]


def evaluate_arith(node: Arith, resolve: Callable[[Ref], T], algebra: Algebra[T, B]) -> T:
    """Evaluate an arithmetic expression; ``resolve`` gives the value of each reference."""
    numbers, booleans = _evaluate(node, resolve, algebra, fold_divisors=True)
    if len(numbers) != 1 or booleans:
        raise TypeError(f"not an arithmetic expression: {node!r}")
    return numbers[0]


def evaluate_condition(node: Cond, resolve: Callable[[Ref], T], algebra: Algebra[T, B]) -> B:
    """Evaluate a condition; ``resolve`` gives the value of each reference."""
    numbers, booleans = _evaluate(node, resolve, algebra, fold_divisors=True)
    if len(booleans) != 1 or numbers:
        raise TypeError(f"not a condition: {node!r}")
    return booleans[0]


class FractionAlgebra:
    """Exact evaluation with :class:`fractions.Fraction` numbers and ``bool`` results."""

    def const(self, value: Fraction) -> Fraction:
        return value

    def add(self, a: Fraction, b: Fraction) -> Fraction:
        return a + b

    def sub(self, a: Fraction, b: Fraction) -> Fraction:
        return a - b

    def mul(self, a: Fraction, b: Fraction) -> Fraction:
        return a * b

    def div(self, a: Fraction | int, b: Fraction | int) -> Fraction:
        numerator = Fraction(a) if isinstance(a, int) else a  # int / int would be a float
        return numerator / b

    def neg(self, a: Fraction) -> Fraction:
        return -a

    def compare(self, op: str, a: Fraction, b: Fraction) -> bool:
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        raise ValueError(f"unknown comparison operator {op!r}")

    def conj(self, items: Sequence[bool]) -> bool:
        return all(items)

    def disj(self, items: Sequence[bool]) -> bool:
        return any(items)

    def negate(self, a: bool) -> bool:
        return not a

    def boolean(self, value: bool) -> bool:
        return value


if TYPE_CHECKING:
    _fraction_algebra_check: Algebra[Fraction, bool] = FractionAlgebra()


# ---------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------

# Binding strength of each construct, loosest first.
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY, _POW, _ATOM = range(1, 10)
_SHORT_LITERAL: Final = 24


def _plain_decimal(digits: str, exponent: int) -> str:
    """``int(digits) * 10**exponent`` written without an exponent."""
    if exponent >= 0:
        return digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return f"{digits[:point]}.{digits[point:]}"
    return "0." + "0" * -point + digits


def _decimal_literal(value: Fraction) -> str | None:
    """The shortest valid literal for a non-negative terminating decimal, else None."""
    numerator, denominator = value.numerator, value.denominator
    if numerator < 0:
        return None
    twos = (denominator & -denominator).bit_length() - 1
    rest = denominator >> twos
    fives = 0
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest != 1:
        return None
    if numerator == 0:
        return "0"
    scale = max(twos, fives)
    mantissa = numerator * 2 ** (scale - twos) * 5 ** (scale - fives)  # value * 10**scale
    text = str(mantissa)
    digits = text.rstrip("0")
    exponent = len(text) - len(digits) - scale  # value == int(digits) * 10**exponent
    plain = _plain_decimal(digits, exponent)
    if len(plain) <= _SHORT_LITERAL:
        return plain
    # Otherwise write digits * 10**(exponent - shift) plainly, followed by "e{shift}", with
    # the shift that gives the shortest text (lengths computed without building strings).
    count = len(digits)

    def length(shift: int) -> int:
        rest = exponent - shift
        body = count + rest if rest >= 0 else (count + 1 if rest > -count else 2 - rest)
        return body + (0 if shift == 0 else 1 + len(str(shift)))

    shift = min(range(-MAX_DECIMAL_EXPONENT, MAX_DECIMAL_EXPONENT + 1), key=length)
    best = _plain_decimal(digits, exponent - shift) + ("" if shift == 0 else f"e{shift}")
    if len(best) > MAX_NUMBER_LENGTH and best.startswith("0."):
        best = best[1:]
    return best


def _number_text(value: Fraction) -> tuple[str, int]:
    literal = _decimal_literal(abs(value))
    if literal is not None:
        return (literal, _ATOM) if value >= 0 else (f"(-{literal})", _ATOM)
    magnitude = abs(value)
    numerator = _decimal_literal(Fraction(magnitude.numerator))
    denominator = _decimal_literal(Fraction(magnitude.denominator))
    sign = "-" if value < 0 else ""
    return f"({sign}{numerator}/{denominator})", _ATOM


def _wrap(item: tuple[str, int], parenthesize: bool) -> str:
    return f"({item[0]})" if parenthesize else item[0]


def to_text(node: Node) -> str:
    """Print an expression so that parsing the text gives back the same tree.

    Parentheses are used only where precedence needs them, and a chained comparison
    comes out as its conjunction (``0 < x and x < y``). The round trip holds for every
    tree produced by the parser, provided the printed text stays within
    :data:`MAX_INPUT_LENGTH`. Hand-built trees print as an equivalent expression but
    may not come back identical: ``Num(1/3)`` prints as ``(1/3)``, which parses as a
    division, and a number beyond the literal limits has no valid spelling at all.
    """
    stack: list[tuple[str, int]] = []
    for item in _postorder(node):
        if isinstance(item, Num):
            stack.append(_number_text(item.value))
        elif isinstance(item, Ref):
            index = f"[{','.join('*' if i == EVERY_SAMPLE else str(i) for i in item.indices)}]" \
                if item.indices else ""
            stack.append((item.name + index, _ATOM))
        elif isinstance(item, Neg):
            operand = stack.pop()
            stack.append(("-" + _wrap(operand, operand[1] < _UNARY), _UNARY))
        elif isinstance(item, BinOp):
            right = stack.pop()
            left = stack.pop()
            strength = _ADD if item.op in ("+", "-") else _MUL
            left_text = _wrap(left, left[1] < strength)
            right_text = _wrap(right, right[1] <= strength)
            text = f"{left_text} {item.op} {right_text}"
            stack.append((text, strength))
        elif isinstance(item, Pow):
            base = stack.pop()
            stack.append((f"{_wrap(base, base[1] < _ATOM)}^{item.exponent}", _POW))
        elif isinstance(item, Compare):
            right = stack.pop()
            left = stack.pop()
            text = f"{_wrap(left, left[1] <= _CMP)} {item.op} {_wrap(right, right[1] <= _CMP)}"
            stack.append((text, _CMP))
        elif isinstance(item, BoolOp):
            count = len(item.operands)
            operands = stack[len(stack) - count :]
            del stack[len(stack) - count :]
            strength = _AND if item.op == "and" else _OR
            if count == 0:
                stack.append(("true" if item.op == "and" else "false", _ATOM))
            elif count == 1:
                stack.append(operands[0])
            else:
                joined = f" {item.op} ".join(_wrap(o, o[1] <= strength) for o in operands)
                stack.append((joined, strength))
        elif isinstance(item, Not):
            operand = stack.pop()
            stack.append(("not " + _wrap(operand, operand[1] < _NOT), _NOT))
        else:
            stack.append(("true" if item.value else "false", _ATOM))
    return stack[0][0]
