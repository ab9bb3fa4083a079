"""Which linear piece a piecewise-linear unit is in, when fixed values or assumptions
settle it (light: the spec and the expression language only, no pysmt).

A unit's pre-activation at sample m is ``u = sum_i W_l[j,i] h[l-1,m,i] + b_l[j]``. It is
*settled* in a piece of its activation when every candidate puts u inside that piece's
region, for one of two reasons:

* **fixed values**: the row W_l[j,:] and b_l[j] are fixed and either the row is zero
  (u = b_l[j] at every sample, any layer) or l = 1 and the sample's inputs are fixed
  (u is a known number);
* **assumptions** (layer 1): an ``assume`` condition, or one conjunct of it, is a
  comparison ``P op Q`` whose difference P - Q is, as a polynomial in the spec's
  references (fixed rationals substituted), ``alpha * u + beta`` with rationals
  alpha != 0 and beta. Then the comparison is ``u op' -beta/alpha`` (op' flipped when
  alpha < 0), an interval for u; the intervals of all such conjuncts intersect.

A unit is settled in a piece when that interval lies inside the piece's region. The
pieces partition the real line, so a settled unit has exactly one possible piece: the
encoder may drop its phase variable (:mod:`smtgrad.encoding.builder`), and the
structural lemmas may use its derivative (:mod:`smtgrad.methods.lemmas`). Nothing
here guesses: a condition of another shape (a disjunction, a product of unknowns, a
``!=``) settles nothing.

:func:`settled_every_m` asks the same of a *generic* sample (``X[*]``): only
conditions that hold at every sample and every M are used (those with ``*`` and those
naming no sample), so what it settles is settled at every M.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.activations import Piece
from smtgrad.numbers.expr import (
    EVERY_SAMPLE,
    BoolOp,
    Compare,
    Cond,
    Not,
    Ref,
    evaluate_arith,
    references,
)
from smtgrad.spec import Layer, Spec, normalize_ref

#: A monomial: sorted (name, indices) factors, with repeats for powers.
Monomial = tuple[tuple[str, tuple[int, ...]], ...]
Poly = dict[Monomial, Fraction]

#: (layer, sample, unit) -> index of the piece (in ``layer.activation.pieces``); layers
#: are 1-based.
Settled = dict[tuple[int, int, int], int]


@dataclass(frozen=True)
class Interval:
    """lower (<|<=) u (<|<=) upper; None: unbounded."""

    lower: Fraction | None = None
    lower_strict: bool = False
    upper: Fraction | None = None
    upper_strict: bool = False

    def meet(self, other: Interval) -> Interval:
        lower, lower_strict = self.lower, self.lower_strict
        if other.lower is not None and (lower is None or other.lower > lower or (
                other.lower == lower and other.lower_strict)):
            lower, lower_strict = other.lower, other.lower_strict
        upper, upper_strict = self.upper, self.upper_strict
        if other.upper is not None and (upper is None or other.upper < upper or (
                other.upper == upper and other.upper_strict)):
            upper, upper_strict = other.upper, other.upper_strict
        return Interval(lower, lower_strict, upper, upper_strict)

    def inside(self, piece: Piece) -> bool:
        """Whether every u of this interval lies in ``piece``'s region."""
        if piece.lower is not None:
            if self.lower is None or self.lower < piece.lower:
                return False
            if self.lower == piece.lower and piece.lower_strict and not self.lower_strict:
                return False
        if piece.upper is not None:
            if self.upper is None or self.upper > piece.upper:
                return False
            if self.upper == piece.upper and piece.upper_strict and not self.upper_strict:
                return False
        return True


def piece_of(interval: Interval, table: Sequence[Piece]) -> int | None:
    """The one piece whose region contains ``interval``, if any."""
    for index, piece in enumerate(table):
        if interval.inside(piece):
            return index
    return None


# -- polynomials over the spec's references ---------------------------------------------


def _const(value: Fraction) -> Poly:
    return {(): value} if value != 0 else {}


def _add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = dict(a)
    for key, value in b.items():
        total = out.get(key, Fraction(0)) + sign * value
        if total:
            out[key] = total
        else:
            out.pop(key, None)
    return out


def _mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for ka, va in a.items():
        for kb, vb in b.items():
            key = tuple(sorted(ka + kb))
            total = out.get(key, Fraction(0)) + va * vb
            if total:
                out[key] = total
            else:
                out.pop(key, None)
    return out


def _scale(a: Poly, factor: Fraction) -> Poly:
    return {key: value * factor for key, value in a.items()} if factor else {}


class _PolyAlgebra:
    """Arithmetic into polynomials; a condition into its comparison atoms (a conjunction
    of ``(op, P - Q)``), or None when it is not a conjunction of comparisons."""

    def const(self, value: Fraction) -> Poly:
        return _const(value)

    def add(self, a: Poly, b: Poly) -> Poly:
        return _add(a, b)

    def sub(self, a: Poly, b: Poly) -> Poly:
        return _add(a, b, -1)

    def mul(self, a: Poly, b: Poly) -> Poly:
        return _mul(a, b)

    def div(self, a: Poly, b: Poly) -> Poly:
        return _scale(a, 1 / b.get((), Fraction(0)))

    def neg(self, a: Poly) -> Poly:
        return _scale(a, Fraction(-1))

    def compare(self, op: str, a: Poly, b: Poly) -> list[tuple[str, Poly]] | None:
        return None if op == "!=" else [(op, _add(a, b, -1))]

    def conj(self, items: Sequence[list[tuple[str, Poly]] | None]
             ) -> list[tuple[str, Poly]] | None:
        atoms: list[tuple[str, Poly]] = []
        for item in items:
            if item is not None:  # an unusable conjunct only weakens the conjunction
                atoms.extend(item)
        return atoms

    def disj(self, items: Sequence[Any]) -> None:
        return None

    def negate(self, a: Any) -> None:
        return None

    def boolean(self, value: bool) -> None:
        return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _atoms(condition: Cond, resolve: Callable[[Ref], Poly]) -> list[tuple[str, Poly]]:
    """The comparison atoms of a condition's top-level conjunction."""
    algebra = _PolyAlgebra()
    found: list[tuple[str, Poly]] = []
    stack: list[Cond] = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, BoolOp) and node.op == "and":
            stack.extend(node.operands)
        elif isinstance(node, Compare) and node.op != "!=":
            # A chain a < b < c is parsed as a conjunction; a single comparison here.
            left = evaluate_arith(node.left, resolve, algebra)
            right = evaluate_arith(node.right, resolve, algebra)
            found.append((node.op, _add(left, right, -1)))
        elif isinstance(node, Not):
            continue
    return found


def _interval(op: str, atom: Poly, unit: Poly) -> Interval | None:
    """The interval for u that ``atom op 0`` states, when atom = alpha * u + beta."""
    moving = {key: value for key, value in unit.items() if key}
    if not moving:
        return None
    key = next(iter(moving))
    atom_moving = {k: v for k, v in atom.items() if k}
    if key not in atom_moving or atom_moving.keys() != moving.keys():
        return None
    alpha = atom_moving[key] / moving[key]
    if any(atom_moving[k] != alpha * v for k, v in moving.items()):
        return None
    beta = atom.get((), Fraction(0)) - alpha * unit.get((), Fraction(0))
    bound = -beta / alpha
    if alpha < 0:
        op = _FLIP[op]
    if op == "==":
        return Interval(bound, False, bound, False)
    if op in (">", ">="):
        return Interval(lower=bound, lower_strict=op == ">")
    return Interval(upper=bound, upper_strict=op == "<")


# -- the analysis -----------------------------------------------------------------------


def _resolver(spec: Spec) -> Callable[[Ref], Poly]:
    def resolve(ref: Ref) -> Poly:
        ref = normalize_ref(ref)
        generic = ref.name in ("X", "Y", "yhat") and ref.indices[0] == EVERY_SAMPLE
        if ref.name != "loss" and not generic:
            value = spec.fixed_value(ref.name, ref.indices)
            if isinstance(value, Fraction | int):  # closed forms stay unknowns
                return _const(Fraction(value))
        return {((ref.name, ref.indices),): Fraction(1)}

    return resolve


def _unit_poly(spec: Spec, layer: int, unit: int, sample: int,
               resolve: Callable[[Ref], Poly]) -> Poly | None:
    """u of (layer, unit) at ``sample`` as a polynomial (layer 1: over W1, b1 and X), or
    None where it is not expressible (a hidden value below)."""
    shapes = spec.network.parameter_shapes()
    width = shapes[f"W{layer}"][1]
    row = [resolve(Ref(f"W{layer}", (unit, i))) for i in range(width)]
    bias = resolve(Ref(f"b{layer}", (unit,)))
    if all(not entry for entry in row):
        return bias
    if layer != 1:
        return None
    total = bias
    for i, weight in enumerate(row):
        total = _add(total, _mul(weight, resolve(Ref("X", (sample, i)))))
    return total


def _settle(spec: Spec, samples: Sequence[int], conditions: Sequence[tuple[int | None, Cond]]
            ) -> Iterator[tuple[int, int, int, int]]:
    """(layer, sample, unit, piece) for every settled unit at the given samples.

    ``conditions`` pairs each condition with the one sample it names (None: it names
    none or several; its conjuncts are tried at every sample)."""
    if not spec.assume and not any(name.startswith(("W", "b")) for name in spec.fixed):
        return  # nothing can settle a unit of more than one piece (cheap at large M)
    kink_one = spec.conventions.relu_grad_at_zero == 1
    resolve = _resolver(spec)
    atoms: dict[int | None, list[tuple[str, Poly]]] = {}  # by sample (None: every sample)
    for sample, condition in conditions:
        atoms.setdefault(sample, []).extend(_atoms(condition, resolve))
    mentioned = {factor for conjunction in atoms.values() for _, atom in conjunction
                 for monomial in atom for factor in monomial}
    for index, layer in enumerate(spec.network.layers[:-1], start=1):
        if not layer.activation.piecewise_linear:
            continue
        table = layer.activation.pieces(layer, kink_one)
        width = spec.network.parameter_shapes()[f"W{index}"][1]
        for unit in range(layer.units):
            row = [(f"W{index}", (unit, i)) for i in range(width)] + [(f"b{index}", (unit,))]
            fixed = all(spec.fixed_value(name, position) is not None for name, position in row)
            if len(table) > 1 and not fixed and not mentioned.intersection(row):
                continue  # no condition names this unit's parameters: nothing settles it
            for sample in samples:
                found = _settled_unit(spec, index, unit, sample, table, atoms, resolve)
                if found is not None:
                    yield index, sample, unit, found


def _settled_unit(spec: Spec, layer: int, unit: int, sample: int, table: Sequence[Piece],
                  atoms: dict[int | None, list[tuple[str, Poly]]],
                  resolve: Callable[[Ref], Poly]) -> int | None:
    if len(table) == 1:
        return 0
    poly = _unit_poly(spec, layer, unit, sample, resolve)
    if poly is None:
        return None
    if all(not key for key in poly):  # a known number
        value = poly.get((), Fraction(0))
        return piece_of(Interval(value, False, value, False), table)
    interval = Interval()
    for op, atom in (*atoms.get(None, ()), *(atoms.get(sample, ()) if sample is not None
                                             else ())):
        bound = _interval(op, atom, poly)
        if bound is not None:
            interval = interval.meet(bound)
    return piece_of(interval, table)


def _sample_of(condition: Cond) -> int | None:
    named = {normalize_ref(ref).indices[0] for ref in references(condition)
             if ref.name in ("X", "Y", "yhat") and ref.indices}
    return next(iter(named)) if len(named) == 1 else None


def settled(spec: Spec, samples: int) -> Settled:
    """Every unit settled at M = ``samples`` (module docstring), by fixed values and the
    assumptions expanded at that M."""
    # Every conjunct of an assumption is a true fact, so any could be used at any sample;
    # one about a single sample can only settle that sample (it names no other X).
    conditions = [(_sample_of(assumption.condition), assumption.condition)
                  for assumption in spec.assumptions_at(samples)]
    return {(layer, sample, unit): piece for layer, sample, unit, piece in
            _settle(spec, range(samples), conditions)}


def settled_every_m(spec: Spec) -> dict[tuple[int, int], int]:
    """(layer, unit) -> piece for units settled at a generic sample: at every M and every
    sample (module docstring)."""
    conditions: list[tuple[int | None, Cond]] = []
    for assumption in spec.assume:
        condition = assumption.condition
        specific = any(ref.name in ("X", "Y", "yhat") and ref.indices
                       and ref.indices[0] != EVERY_SAMPLE for ref in references(condition))
        if not specific:
            conditions.append((None, condition))
    # The generic sample's inputs X[*, i] are unknowns (never fixed data).
    return {(layer, unit): piece for layer, _, unit, piece in
            _settle(spec, (EVERY_SAMPLE,), conditions)}


def derivative_slopes(layer: Layer, kink_one: bool) -> tuple[Fraction, ...]:
    """The derivative of each piece of a piecewise-linear layer (in table order)."""
    return tuple(piece.slope_of_derivative for piece in layer.activation.pieces(layer, kink_one))


__all__ = ["Interval", "Settled", "derivative_slopes", "piece_of", "settled",
           "settled_every_m"]
