"""The rank criterion: a fast, sat-only path for free-residual queries.

With parameters and inputs fixed, every gradient is linear in the residuals
r = yhat - y: dL/dtheta = sum over (m, k) of r[m,k] * phi[m,k], where phi[m,k] is
the gradient produced by a unit residual on sample m, output k. "Zero blocks
vanish, each nonzero block does not" then has a solution iff some vector of
the null space of the zero rows is not annihilated by each nonzero block,
which exact linear algebra decides. This module draws small rational
parameters and inputs (respecting fixed values and genericity), decides the
residuals exactly, and hands a candidate witness back for verification.

It never proves unsat: a failed search only means "try the solver".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from math import gcd, lcm
from operator import mul
from typing import Any

from smtgrad.methods.base import Draws, Effort
from smtgrad.numbers import integral_as_int, rational_fractions
from smtgrad.reference.network import (
    RATIONAL,
    InexactValue,
    Parameters,
    activation_derivative,
    activation_value,
    affine,
    kink_points,
)
from smtgrad.reference.witness import Witness
from smtgrad.spec import Conventions, Layer, LossKind, Network, Spec, TargetKind, entries


def applicable(spec: Spec) -> bool:
    """The rank criterion applies to MSE with free real targets and piecewise-linear units."""
    return (
        spec.loss.kind is LossKind.MSE
        and spec.targets is TargetKind.REAL
        and "Y" not in spec.fixed
        and all(layer.activation.piecewise_linear for layer in spec.network.layers)
    )


Number = int | Fraction

#: Draws with integer parameters before half-integers are allowed too.
INTEGER_DRAWS = 10

#: The first draw that may be degenerate (zero weights, repeated inputs), for non-generic specs.
DEGENERATE_FROM = 20

#: Input redraws per parameter draw until the first layer straddles its kinks.
STRADDLE_TRIES = 8


@dataclass(frozen=True)
class _Plan:
    """Where each queried gradient entry goes in a feature vector.

    Slots ``0 .. zero - 1`` hold the entries the query asks to be zero; each
    nonzero block owns a further range of slots. ``by_layer`` lists, per layer,
    the entries backpropagation fills in: (slot, bias?, row, column).
    """

    slots: int
    zero: int
    groups: tuple[range, ...]
    by_layer: dict[int, tuple[tuple[int, bool, int, int], ...]]


def _plan(spec: Spec) -> _Plan:
    shapes = spec.network.parameter_shapes()
    by_layer: dict[int, list[tuple[int, bool, int, int]]] = {}
    slot = 0

    def place(block: str, indices: Sequence[tuple[int, ...]]) -> range:
        nonlocal slot
        first = slot
        layer_entries = by_layer.setdefault(int(block[1:]), [])
        is_bias = block[0] == "b"
        for index in indices:
            layer_entries.append((slot, is_bias, index[0], 0 if is_bias else index[1]))
            slot += 1
        return range(first, slot)

    for target in spec.query.zero:
        place(target.block, target.indices(shapes))
    zero = slot
    groups = tuple(place(target.block, target.indices(shapes)) for target in spec.query.nonzero)
    return _Plan(slot, zero, groups,
                 {layer: tuple(items) for layer, items in by_layer.items()})


class _OutOfTime(Exception):
    """The deadline passed in the middle of a draw."""


class _Sampler:
    """Draws small rational parameters and inputs, honouring fixed values.

    Values are ints where integral (exact, and much faster than Fractions);
    :func:`_exact_parameters` turns them into Fractions for the witness.
    """

    def __init__(self, spec: Spec, samples: int, seed: int,
                 deadline: float | None = None) -> None:
        self.spec = spec
        self.samples = samples
        self.random = random.Random(seed)
        self._bits = self.random.getrandbits
        self.shapes = spec.network.parameter_shapes()
        self.deadline = deadline
        #: Whether structured draws apply (free inputs, rational fixed values): once per search.
        self.structurable = _structurable(spec)

    def on_time(self, step: int) -> None:
        """Raise :class:`_OutOfTime` past the deadline (checked every 256 steps: one draw
        at M = 10,000 makes thousands of forward passes)."""
        if step % 256 == 0 and self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OutOfTime

    def randint(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]: ``random.randint``'s rejection sampling over
        getrandbits, written out (the same draws, without four Python-level calls)."""
        width = high - low + 1
        bits = width.bit_length()
        drawn = self._bits(bits)
        while drawn >= width:
            drawn = self._bits(bits)
        return low + drawn

    def choice(self, options: tuple[int, ...]) -> int:
        """``random.choice`` written out like :meth:`randint` (the same draws)."""
        return options[self.randint(0, len(options) - 1)]

    def number(self, magnitude: int, nonzero: bool, halves: bool) -> Number:
        """A small integer, or with ``halves`` sometimes a half-integer."""
        while True:
            numerator = self.randint(-magnitude, magnitude)
            denominator = self.choice((1, 1, 1, 2)) if halves else 1
            value: Number = numerator if denominator == 1 else integral_as_int(
                Fraction(numerator, denominator))
            if value != 0 or not nonzero:
                return value

    def integers(self, count: int, magnitude: int, nonzero: bool) -> list[int]:
        """``count`` draws of :meth:`number` without halves: the same draws, written out
        (this is the hot path of every rank search)."""
        span = 2 * magnitude + 1
        bits = span.bit_length()
        draw = self._bits
        values = []
        for _ in range(count):
            drawn = draw(bits)
            while drawn >= span or (nonzero and drawn == magnitude):  # out of range, or 0
                drawn = draw(bits)
            values.append(drawn - magnitude)
        return values

    def parameters(self, magnitude: int, halves: bool, zeros: bool = False) -> Parameters:
        """Small parameters; weights are nonzero unless ``zeros`` (a degenerate draw)."""
        weights, biases = [], []
        fixed = self.spec.fixed
        for name, shape in self.shapes.items():
            is_weight = name[0] == "W"
            nonzero = is_weight and not zeros
            values: Sequence[Number]
            if halves or name in fixed:
                values = [self._value(name, index, magnitude, nonzero, halves)
                          for index in entries(shape)]
            else:
                values = self.integers(shape[0] * (shape[1] if is_weight else 1), magnitude,
                                       nonzero)
            if is_weight:
                columns = shape[1]
                weights.append(tuple([tuple(values[j * columns:(j + 1) * columns])
                                      for j in range(shape[0])]))
            else:
                biases.append(tuple(values))
        return Parameters(tuple(weights), tuple(biases))

    def _value(self, name: str, index: tuple[int, ...], magnitude: int,
               nonzero: bool, halves: bool) -> Number:
        fixed = self.spec.fixed_value(name, index) if name in self.spec.fixed else None
        if fixed is None:
            return self.number(magnitude, nonzero, halves)
        value: Number = integral_as_int(fixed)
        return value

    def inputs(self, magnitude: int, avoid: Callable[[tuple[Number, ...]], bool] | None,
               repeats: bool = False) -> tuple[tuple[Number, ...], ...]:
        """Distinct input rows; a row on a kink (``avoid``) is redrawn, not the whole batch."""
        spec = self.spec
        width = spec.network.inputs
        rows: list[tuple[Number, ...]] = []
        seen: set[tuple[Number, ...]] = set()
        spread = max(magnitude, self.samples)
        free = "X" not in spec.fixed
        for m in range(self.samples):
            self.on_time(m)
            row: tuple[Number, ...] = ()
            for tries in range(60):
                denominator = 1 if tries < 5 else self.choice((3, 5, 7))
                if free and denominator == 1:  # the common case
                    row = tuple(self.integers(width, spread, nonzero=False))
                else:
                    row = tuple([self._input((m, i), spread, denominator)
                                 for i in range(width)])
                if (repeats or row not in seen) and (avoid is None or not avoid(row)):
                    break
            seen.add(row)
            rows.append(row)
        return tuple(rows)

    def _input(self, index: tuple[int, ...], spread: int, denominator: int) -> Number:
        fixed = self.spec.fixed_value("X", index) if "X" in self.spec.fixed else None
        if fixed is not None:
            exact: Number = integral_as_int(Fraction(fixed))
            return exact
        numerator = self.randint(-spread * denominator, spread * denominator)
        value: Number = numerator if denominator == 1 else integral_as_int(Fraction(numerator,
                                                                           denominator))
        return value

    def structured(self, magnitude: int, attempt: int
                   ) -> tuple[Parameters, tuple[tuple[Number, ...], ...]]:
        """Parameters and inputs that are generic by construction (free inputs only).

        Inputs are distinct rows of even integers; weights are nonzero. Each layer has
        a few prototype units; every unit is a positive multiple of one (the same kink,
        the same derivative pattern, a proportional feature: the zero rows keep a low
        rank, which is what a witness needs once M exceeds the number of queried
        entries). A prototype's bias is chosen after its pre-activations w . h_m are
        known: its kink falls in a gap between two consecutive values (``lo + 1`` when
        the gap is at least 2, which even inputs guarantee in the first layer, else the
        midpoint), or every sample lies on its steepest outer piece. No sample is then
        on a kink. The upper layers follow a profile (by ``attempt``): every sample on
        their steepest piece (the upper net is affine on the data, so the first layer's
        features have room), their kinks among the samples too, or a mix.
        """
        spec = self.spec
        network = spec.network
        spread = max(magnitude, self.samples)
        rows: list[tuple[Number, ...]] = []
        seen: set[tuple[Number, ...]] = set()
        while len(rows) < self.samples:
            row = tuple([2 * value for value in
                         self.integers(network.inputs, spread, nonzero=False)])
            if row not in seen:
                seen.add(row)
                rows.append(row)
        profile = (attempt // 2) % 3  # attempts 1, 3, 5: profiles 0, 1, 2
        current: Sequence[tuple[Any, ...]] = rows
        weights: list[tuple[tuple[Number, ...], ...]] = []
        biases: list[tuple[Number, ...]] = []
        for index, layer in enumerate(network.layers):
            output = index == network.depth - 1
            between = not output and (index == 0 or profile == 1 or
                                      (profile == 2 and self.randint(0, 1) == 1))
            weight, bias = self._structured_layer(index, layer, current, magnitude, between,
                                                  attempt)
            weights.append(weight)
            biases.append(bias)
            current = [tuple([activation_value(layer, u, RATIONAL) for u in
                              affine(weight, bias, h)]) for h in current]
        return Parameters(tuple(weights), tuple(biases)), tuple(rows)

    def _structured_layer(self, index: int, layer: Layer, below: Sequence[tuple[Any, ...]],
                          magnitude: int, between: bool, attempt: int
                          ) -> tuple[tuple[tuple[Number, ...], ...], tuple[Number, ...]]:
        spec = self.spec
        weight_name, bias_name = f"W{index + 1}", f"b{index + 1}"
        fan_in = len(below[0])
        units = layer.units
        kinks = kink_points(layer)
        if weight_name in spec.fixed or bias_name in spec.fixed or not kinks:
            prototypes = units  # fixed entries (or no kink): every unit drawn on its own
        else:
            choices = sorted({1, 2, units, max(1, self.samples // 4),
                              max(1, self.samples // 8)} & set(range(1, units + 1)))
            prototypes = choices[(attempt // 2) % len(choices)]
        drawn: list[tuple[tuple[Number, ...], Number]] = []
        for j in range(prototypes):
            row = tuple([self._value(weight_name, (j, i), magnitude, True, False)
                         for i in range(fan_in)])
            if bias_name in spec.fixed and spec.fixed_value(bias_name, (j,)) is not None:
                bias = self._value(bias_name, (j,), magnitude, False, False)
            elif not kinks:
                bias = self.number(magnitude, False, False)
            else:
                values = sorted({sum(map(mul, row, h)) for h in below})
                scale, bias = self._placed_bias(layer, kinks, values, between)
                if scale != 1:
                    row = tuple([integral_as_int(Fraction(scale * w)) for w in row])
            drawn.append((row, bias))
        weight, biases = [], []
        for j in range(units):
            if j < prototypes:
                row, bias = drawn[j]
            else:  # a positive multiple (or a copy): the same kink, the same pattern
                row, bias = drawn[self.randint(0, prototypes - 1)]
                # A kink at 0 is scale-invariant; others (hardtanh's +-1) only copied.
                scale = self.randint(1, 3) if not any(kinks) else 1
                row, bias = tuple([scale * w for w in row]), scale * bias
            weight.append(row)
            biases.append(bias)
        return tuple(weight), tuple(biases)

    def _placed_bias(self, layer: Layer, kinks: tuple[int, ...], values: list[Any],
                     between: bool) -> tuple[Number, Number]:
        """A (scale, bias) for a unit whose pre-activations w . h_m take ``values``: its
        kink in a gap of the values (``between``), or every value on the steepest piece
        (outside the kinks; between them, scaled into it, for hardtanh-like units). No
        value ever lands on a kink."""
        side = _steepest_side(layer, self.spec.conventions, kinks)
        if between and len(kinks) == 2 and len(values) >= 3:
            # Two kinks (hardtanh): each in its own gap, so the middle piece holds a run
            # of samples (one kink placed alone leaves the middle piece nearly empty).
            first = self.randint(0, len(values) - 3)
            second = self.randint(first + 1, len(values) - 2)
            low = Fraction(values[first] + values[first + 1], 2)
            high = Fraction(values[second] + values[second + 1], 2)
            width = Fraction(kinks[1] - kinks[0]) / (high - low)
            return integral_as_int(width), integral_as_int(kinks[0] - width * low)
        if between and len(values) >= 2:
            gap = self.randint(0, len(values) - 2)
            low, high = values[gap], values[gap + 1]
            point = low + 1 if high - low >= 2 else Fraction(low + high, 2)
            bias = kinks[self.randint(0, len(kinks) - 1)] - point
            if all(value + bias not in kinks for value in values):
                placed: Number = integral_as_int(Fraction(bias))
                return 1, placed
        if side == 0 and len(kinks) >= 2:
            # Both outer pieces flat: map [min, max] strictly inside (k_0, k_1).
            width = Fraction(kinks[1] - kinks[0], values[-1] - values[0] + 1)
            shift = kinks[0] + width * (Fraction(1, 2) - values[0])
            return integral_as_int(width), integral_as_int(shift)
        outside = max(kinks) + 1 - values[0] if side >= 0 else min(kinks) - 1 - values[-1]
        result: Number = integral_as_int(Fraction(outside))
        return 1, result


def _steepest_side(layer: Layer, conventions: Conventions, kinks: tuple[int, ...]) -> int:
    """+1 when the piece above every kink is the steeper outer piece (ReLU), -1 when the
    one below is, 0 when both are flat (hardtanh)."""
    high, low = max(kinks) + 1, min(kinks) - 1
    above = abs(activation_derivative(layer, high, high, conventions))
    below = abs(activation_derivative(layer, low, low, conventions))
    if above == below == 0:
        return 0
    return 1 if above >= below else -1


def solve_linear(rows: list[list[Fraction]], rhs: list[Fraction], columns: int
                  ) -> tuple[list[Fraction], list[list[Fraction]]] | None:
    """Solve rows @ x = rhs exactly: a particular solution and a null-space basis, or None.

    Exact Gauss-Jordan elimination over Q, written out (rather than sympy's
    DomainMatrix) because importing sympy costs 0.7 s of start-up and these
    systems have at most a few dozen rows.
    """
    matrix = [[*row, value] for row, value in zip(rows, rhs, strict=True)]
    pivots: list[int] = []
    rank = 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(matrix)) if matrix[r][column] != 0), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        lead = matrix[rank][column]
        matrix[rank] = [value / lead for value in matrix[rank]]
        for r in range(len(matrix)):
            if r != rank and matrix[r][column] != 0:
                factor = matrix[r][column]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[rank],
                                                            strict=True)]
        pivots.append(column)
        rank += 1
    if any(row[columns] != 0 for row in matrix[rank:]):
        return None
    particular = [Fraction(0)] * columns
    for r, column in enumerate(pivots):
        particular[column] = matrix[r][columns]
    basis = []
    for free in (c for c in range(columns) if c not in pivots):
        vector = [Fraction(0)] * columns
        vector[free] = Fraction(1)
        for r, column in enumerate(pivots):
            vector[column] = -matrix[r][free]
        basis.append(vector)
    return particular, basis


_INT_TYPE = {int}


def _rational_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows over Q whose rational null space is that of ``rows``.

    Entries may be closed forms in logarithms of primes (fixed values such as
    ``log(2)``). A rational vector v annihilates such a row iff it annihilates the
    row of each monomial's coefficients: the monomials (1, ln 2, ln 2 ln 3, ...) are
    distinct basis elements of the polynomial ring, and v's entries are rational, so
    the row's combination is symbolically zero exactly when every coefficient is.
    (Symbolic zero is zero; this never needs the independence of the logarithms.)
    """
    result: list[list[Any]] = []
    for row in rows:
        if all(type(value) in _RATIONAL for value in row):
            result.append(list(row))
            continue
        monomials = sorted({monomial for value in row if type(value) not in _RATIONAL
                            for monomial in value.terms} | {()})
        for monomial in monomials:
            result.append([value if type(value) in _RATIONAL else
                           value.terms.get(monomial, Fraction(0))
                           for value in row] if monomial == () else
                          [Fraction(0) if type(value) in _RATIONAL else
                           value.terms.get(monomial, Fraction(0)) for value in row])
    return result


_RATIONAL = {int, Fraction}


def _nullspace(rows: Sequence[Sequence[Any]], columns: int) -> list[list[Any]]:
    """A basis of the rational {v : rows . v = 0} (integral vectors when every entry is an
    int); entries may be closed forms (see :func:`_rational_rows`)."""
    if set(map(type, chain.from_iterable(rows))) <= _INT_TYPE:
        if len(rows) * columns > FLINT_ENTRIES:
            return _flint_nullspace(rows, columns)
        return _integer_nullspace(rows, columns)
    rows = _rational_rows(rows)
    solved = solve_linear([[Fraction(value) for value in row] for row in rows],
                          [Fraction(0)] * len(rows), columns)
    assert solved is not None  # a homogeneous system always has the zero solution
    return solved[1]


#: Integer systems with more entries than this go to python-flint's fmpz_mat (16x faster
#: at 40 x 64, measured); smaller ones stay in Python, which is as fast there (8 us for the
#: seed's 2 x 4) and does not pay flint's 56 ms import on the seed's path.
FLINT_ENTRIES = 256


def _flint_nullspace(rows: Sequence[Sequence[int]], columns: int) -> list[list[int]]:
    """The integer null space by python-flint (exact, fraction-free), primitive vectors."""
    import flint

    kernel, nullity = flint.fmpz_mat([list(row) for row in rows]).nullspace()
    basis = []
    for k in range(nullity):
        vector = [int(kernel[i, k]) for i in range(columns)]
        common = gcd(*vector)
        basis.append([value // common for value in vector] if common > 1 else vector)
    return basis


def _integer_rref(rows: Sequence[Sequence[int]], columns: int
                  ) -> tuple[list[list[int]], list[int]]:
    """Fraction-free Gauss-Jordan elimination over the integers: rows whose pivot
    entries are nonzero and whose other pivot columns are zero, and the pivot columns."""
    matrix = [list(row) for row in rows]
    pivots: list[int] = []
    rank = 0
    for column in range(columns):
        for pivot in range(rank, len(matrix)):
            if matrix[pivot][column] != 0:
                break
        else:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        lead_row = matrix[rank]
        lead = lead_row[column]
        for r in range(len(matrix)):
            factor = matrix[r][column]
            if r != rank and factor != 0:
                row = [lead * a - factor * b for a, b in zip(matrix[r], lead_row, strict=True)]
                common = gcd(*row)
                matrix[r] = [value // common for value in row] if common > 1 else row
        pivots.append(column)
        rank += 1
    return matrix[:rank], pivots


def _integer_nullspace(rows: Sequence[Sequence[int]], columns: int) -> list[list[int]]:
    """The same null space as :func:`solve_linear`, computed with Python ints (several
    times faster than Fractions on small systems), primitive vectors."""
    kernel = _Kernel.of(rows, columns)  # small systems: the exact echelon form
    return [vector for free in kernel.free
            if (vector := kernel.vector({free: 1})) is not None]


#: A prime below 2^63 for nmod_mat: ranks and pivots modulo it equal the rational ones
#: unless it divides a minor (every vector is checked exactly, so a bad prime only costs
#: a fallback to the exact echelon form).
_PRIME = 2**61 - 1


@dataclass(frozen=True)
class _Kernel:
    """The rational null space of an integer matrix A, held through an invertible
    pivot block: rows R (independent rows of A), pivot columns P with R_P invertible,
    and ``mix`` / ``scale`` with mix = scale * R_P^-1 (integral).

    A null vector is fixed by its values c on the free (non-pivot) columns:
    x_F = scale * c, x_P = -mix (R_F c). Building vectors this way never lists a basis,
    which at M = 10,000 samples would be M - rank vectors of length M (10^8 entries).
    ``checks`` are rows of A left out of R as dependent (found modulo a prime); every
    vector is checked against them exactly, and None returned if one fails.
    """

    columns: int
    pivots: tuple[int, ...]
    rows: tuple[Sequence[int], ...]
    mix: tuple[tuple[int, ...], ...]
    scale: int
    free: tuple[int, ...]
    checks: tuple[Sequence[int], ...] = ()

    @staticmethod
    def of(rows: Sequence[Sequence[int]], columns: int, modular: bool = True) -> _Kernel:
        if modular and len(rows) * columns > FLINT_ENTRIES:
            kernel = _Kernel._modular(rows, columns)
            if kernel is not None:
                return kernel
        matrix, pivots = _integer_rref(rows, columns)
        # The echelon rows are diagonal on P: mix = diag(L / lead), scale = L.
        leads = [row[pivot] for row, pivot in zip(matrix, pivots, strict=True)]
        scale = lcm(*leads) if leads else 1
        mix = tuple(tuple(scale // lead if i == j else 0 for j in range(len(leads)))
                    for i, lead in enumerate(leads))
        taken = set(pivots)
        return _Kernel(columns, tuple(pivots), tuple(matrix), mix, scale,
                       tuple(c for c in range(columns) if c not in taken))

    @staticmethod
    def _modular(rows: Sequence[Sequence[int]], columns: int) -> _Kernel | None:
        """Independent rows and pivot columns from rank computations modulo a prime
        (python-flint nmod_mat, fast at 153 x 10,000), the pivot block inverted exactly
        (fmpz_mat); None if the block is singular over Q (then the exact echelon form)."""
        import flint

        residues = [[value % _PRIME for value in row] for row in rows]
        transposed, _ = flint.nmod_mat([list(column) for column in zip(*residues, strict=True)],
                                       _PRIME).rref()
        independent = _pivot_columns(transposed, len(rows))
        chosen = [residues[i] for i in independent]
        reduced, _ = flint.nmod_mat(chosen, _PRIME).rref() if chosen else (None, 0)
        pivots = _pivot_columns(reduced, columns) if reduced is not None else []
        if len(pivots) != len(independent):
            return None
        basis = [rows[i] for i in independent]
        free = tuple(c for c in range(columns) if c not in set(pivots))
        if not basis:
            return _Kernel(columns, (), (), (), 1, free, tuple(rows))
        block = flint.fmpz_mat([[row[c] for c in pivots] for row in basis])
        determinant = int(block.det())
        if determinant == 0:
            return None
        inverse = block.inv()
        size = len(pivots)
        mix = tuple(tuple(int(inverse[i, j] * determinant) for j in range(size))
                    for i in range(size))
        others = set(independent)
        return _Kernel(columns, tuple(pivots), tuple(basis), mix, determinant, free,
                       tuple(row for i, row in enumerate(rows) if i not in others))

    def vector(self, values: dict[int, int]) -> list[int] | None:
        """The primitive integer null vector with these (relative) free-column values, or
        None if a dependent row (:attr:`checks`) refutes it."""
        vector = [0] * self.columns
        for column, value in values.items():
            vector[column] = value * self.scale
        products = []
        for row in self.rows:
            total = 0
            for column, value in values.items():
                entry = row[column]
                if entry:
                    total += entry * value
            products.append(total)
        for pivot, weights in zip(self.pivots, self.mix, strict=True):
            vector[pivot] = -sum(map(mul, weights, products))
        support = [*self.pivots, *values]
        for row in self.checks:
            if sum(row[c] * vector[c] for c in support) != 0:
                return None
        common = gcd(*vector)
        return [value // common for value in vector] if common > 1 else vector

    def draw(self, sampler: _Sampler, trial: int) -> list[int] | None:
        """Null vector number ``trial``: supported on 1, 2, 4 or 8 free columns first
        (small numbers, most residuals zero), then on every free column."""
        dimension = len(self.free)
        size = min(dimension, (1, 2, 4, 8)[trial] if trial < 4 else dimension)
        chosen: dict[int, int] = {}
        while len(chosen) < size:
            column = self.free[sampler.randint(0, dimension - 1)]
            if column not in chosen:
                chosen[column] = sampler.choice((-3, -2, -1, 1, 2, 3))
        return self.vector(chosen)


def _pivot_columns(reduced: Any, columns: int) -> list[int]:
    """The leading column of each nonzero row of a reduced echelon nmod_mat."""
    pivots: list[int] = []
    for r in range(reduced.nrows()):
        lead = next((c for c in range(pivots[-1] + 1 if pivots else 0, columns)
                     if int(reduced[r, c]) != 0), None)
        if lead is None:
            break
        pivots.append(lead)
    return pivots


def _one_log_nullspace(rows: Sequence[Sequence[Any]], columns: int) -> list[list[Any]]:
    """Null-space vectors with entries in Q[ln p], when the rows live in Q[ln p] for one
    prime p and have no rational null vector (fixed values such as ``log(2)``).

    With t = ln p transcendental, Q[t] is a polynomial ring and exact linear algebra over
    its field of fractions Q(t) is sound: a vector of polynomials in t annihilates the
    rows as polynomials, hence at t = ln p. Denominators are cleared, so every entry is
    a polynomial in ln p (a :class:`~smtgrad.numbers.lognum.LogNumber`). Empty when the rows mix
    primes or hold only rationals.
    """
    from smtgrad.numbers.lognum import LogNumber

    primes = {prime for row in rows for value in row if type(value) not in _RATIONAL
              for prime in value.primes}
    if len(primes) != 1:
        return []
    (prime,) = primes
    import sympy  # lazily: only specs with closed-form fixed values come here
    from sympy.polys.matrices import DomainMatrix

    t = sympy.Symbol("t")
    field = sympy.QQ.frac_field(t)

    def polynomial(value: Any) -> Any:
        if type(value) in _RATIONAL:
            return field.from_sympy(sympy.Rational(value.numerator, value.denominator)
                                    if isinstance(value, Fraction) else sympy.Integer(value))
        expression = sympy.Integer(0)
        for monomial, coefficient in value.terms.items():
            power = monomial[0][1] if monomial else 0
            expression += sympy.Rational(coefficient.numerator, coefficient.denominator) \
                * t ** power
        return field.from_sympy(expression)

    matrix = DomainMatrix([[polynomial(v) for v in row] for row in rows],
                          (len(rows), columns), field)
    result = []
    for vector in matrix.nullspace().to_Matrix().tolist():
        common = sympy.lcm([sympy.fraction(sympy.together(v))[1] for v in vector])
        entries = []
        for v in vector:
            poly = sympy.Poly(sympy.cancel(v * common), t)
            terms: dict[Any, Fraction] = {
                (((prime, int(power[0])),) if power[0] else ()): Fraction(int(c.p), int(c.q))
                for power, c in poly.terms()}
            entries.append(LogNumber.from_terms(terms) if any(terms) else
                           terms.get((), Fraction(0)))
        result.append(entries)
    return result


def _integral(vector: list[Any]) -> list[Any]:
    """The vector scaled by the common denominator of its entries (ints stay ints)."""
    if not all(type(v) in _RATIONAL for v in vector):
        return vector  # closed forms: already denominator-free polynomials
    scale = lcm(*(v.denominator for v in vector)) if vector else 1
    return [v * scale for v in vector] if scale != 1 else vector


def _exact_parameters(params: Parameters) -> Parameters:
    """Parameters with every value a Fraction (as witnesses hold them)."""
    return Parameters(
        weights=tuple([tuple([rational_fractions(row) for row in block])
                       for block in params.weights]),
        biases=tuple([rational_fractions(block) for block in params.biases]),
    )


@dataclass(frozen=True)
class _Pass:
    """One sample's forward pass: pre-activations and activations of every layer."""

    inputs: tuple[Any, ...]
    pre: tuple[tuple[Any, ...], ...]
    post: tuple[tuple[Any, ...], ...]

    def on_kink(self, network: Network) -> bool:
        return any(value == point
                   for layer, values in zip(network.layers, self.pre, strict=True)
                   for point in kink_points(layer) for value in values)


def _forward(network: Network, params: Parameters, row: tuple[Any, ...]) -> _Pass:
    pre, post = [], []
    current = inputs = row  # the sampler's rows hold ints where integral
    for layer, weight, bias in zip(network.layers, params.weights, params.biases,
                                   strict=True):
        u = affine(weight, bias, current)
        current = u if layer.activation.identity else tuple(
            [activation_value(layer, value, RATIONAL) for value in u])
        pre.append(u)
        post.append(current)
    return _Pass(inputs, tuple(pre), tuple(post))


def _features(spec: Spec, params: Parameters, forward: _Pass, output: int, plan: _Plan
              ) -> list[Any]:
    """The queried gradient entries of sample ``forward`` for a unit residual on ``output``,
    in the plan's slots.

    This is backpropagation of delta = e_output * act'(z_L) (the MSE gradient with
    loss factor 1, positive factors dropped), entry by entry.
    """
    network, conventions = spec.network, spec.conventions
    layers = network.layers
    last = layers[-1]
    delta: list[Any] = [0] * network.outputs
    delta[output] = 1 if last.activation.identity else integral_as_int(
        activation_derivative(last, forward.pre[-1][output], forward.post[-1][output],
                              conventions))
    result: list[Any] = [0] * plan.slots
    by_layer = plan.by_layer
    for index in range(network.depth, 0, -1):
        below = forward.inputs if index == 1 else forward.post[index - 2]
        for slot, is_bias, row, column in by_layer.get(index, ()):
            result[slot] = delta[row] if is_bias else delta[row] * below[column]
        if index == 1:
            break
        weight = params.weights[index - 1]
        layer = layers[index - 2]
        pre, post = forward.pre[index - 2], forward.post[index - 2]
        linear = layer.activation.identity
        below_delta = []
        for i in range(layer.units):
            total = 0
            for j, d in enumerate(delta):
                total = total + weight[j][i] * d
            below_delta.append(total if linear else total * integral_as_int(
                activation_derivative(layer, pre[i], post[i], conventions)))
        delta = below_delta
    return result


def _straddles(spec: Spec, params: Parameters, inputs: Sequence[tuple[Number, ...]]) -> bool:
    """Whether some first-layer unit straddles its kinks, as witnesses usually need.

    A unit whose samples all share one derivative contributes a constant column
    to the lower-layer gradients, which zero output-layer gradients then
    annihilate; so does one lone sample on the steepest piece. Draws where some
    unit sees two derivatives, with two or more samples on its steepest piece,
    succeed more often (measured: about 1.5x fewer draws on one-hidden-layer
    nets). A heuristic for choosing draws only: it never decides a verdict.
    """
    layer = spec.network.layers[0]
    if not kink_points(layer):
        return True
    for weights, bias in zip(params.weights[0], params.biases[0], strict=True):
        groups: dict[Any, int] = {}
        for row in inputs:
            u = bias
            for w, x in zip(weights, row, strict=True):
                u = u + w * x
            # A piecewise-linear derivative reads only u (the activation's value is unused).
            slope = activation_derivative(layer, u, u, spec.conventions)
            groups[slope] = groups.get(slope, 0) + 1
        steepest = max(groups, key=abs)
        if len(groups) >= 2 and groups[steepest] >= 2:
            return True
    return False


def _residual_witness(spec: Spec, plan: _Plan, sampler: _Sampler, plain: Parameters,
                      inputs: tuple[tuple[Any, ...], ...], runs: Sequence[_Pass],
                      accept: Callable[[Witness], bool] | None) -> Witness | None:
    """Parameters and inputs fixed: solve the residuals exactly; the first accepted witness."""
    network = spec.network
    outputs = network.outputs
    samples = len(inputs)
    # A column per (sample m, output k), m-major.
    features = [_features(spec, plain, run, k, plan) for run in runs for k in range(outputs)]
    rows = list(zip(*features, strict=True))  # a row per slot, an entry per column
    count = len(features)
    zero_rows: Sequence[Sequence[Any]] = rows[:plan.zero]
    kernel = None
    basis: list[list[Any]] = []
    kinds = set(map(type, chain.from_iterable(zero_rows)))
    if kinds <= _RATIONAL:
        if not kinds <= _INT_TYPE:  # rows scaled to integers: the same null space
            zero_rows = [[int(v * scale) for v in row] for row in zero_rows
                         for scale in (lcm(*(Fraction(v).denominator for v in row)),)]
        kernel = _Kernel.of(zero_rows, count)
        if not kernel.free:
            return None
    else:
        basis = _nullspace(zero_rows, count) or _one_log_nullspace(zero_rows, count)
        if not basis:
            return None
    # With a one-dimensional null space every residual is a multiple of one vector.
    single = len(kernel.free) == 1 if kernel is not None else len(basis) == 1
    for trial in range(1 if single else 6):
        if kernel is not None:
            drawn = kernel.draw(sampler, trial)
            if drawn is None:  # a dependent row refutes it: an unlucky prime
                kernel = _Kernel.of(zero_rows, count, modular=False)
                continue
            residual = drawn
        elif trial == 0 and len(basis) == 1:
            residual = _integral(basis[0])
        elif not all(type(v) in _RATIONAL for v in basis[0]):
            weights = [sampler.randint(-3, 3) for _ in basis]
            residual = [sum((w * vector[c] for w, vector in zip(weights, basis,
                                                                 strict=True)), start=0)
                        for c in range(count)]
        else:
            weights = [sampler.randint(-3, 3) for _ in basis]
            residual = _integral([sum(w * vector[c] for w, vector in zip(weights, basis,
                                                                         strict=True))
                                  for c in range(count)])
        try:
            if not all(any(sum(map(mul, rows[slot], residual)) != 0 for slot in group)
                       for group in plan.groups):
                continue
        except InexactValue:  # a closed form whose zero-ness cannot be decided
            continue
        targets = tuple([
            rational_fractions([runs[m].post[-1][k] - residual[m * outputs + k]
                                for k in range(outputs)])
            for m in range(samples)])
        witness = Witness(parameters=_exact_parameters(plain),
                          inputs=tuple([rational_fractions(row) for row in inputs]),
                          targets=targets)
        if accept is None or accept(witness):
            return witness
    return None


def complete(spec: Spec, parameters: Parameters, inputs: tuple[tuple[Any, ...], ...],
             accept: Callable[[Witness], bool] | None = None, seed: int = 0) -> Witness | None:
    """The rank criterion at one given point: parameters and inputs as given (e.g. read
    from a solver's model of an over-approximation), residuals solved exactly."""
    if not applicable(spec):
        return None
    runs = [_forward(spec.network, parameters, row) for row in inputs]
    return _residual_witness(spec, _plan(spec), _Sampler(spec, len(inputs), seed), parameters,
                             inputs, runs, accept)


def search(spec: Spec, samples: int, deadline: float | None, attempts: int = 200,
           seed: int = 0, accept: Callable[[Witness], bool] | None = None, first: int = 0,
           effort: Effort | None = None) -> Witness | None:
    """Look for a witness at M = ``samples`` by the rank criterion; None if none was found.

    ``accept`` is the caller's verifier; the first candidate it accepts is returned.
    Each draw costs one forward pass per sample and one backward pass per
    (sample, output): the gradient is a sum of per-sample terms, so the column of
    sample m, output k is the gradient of the one-sample batch {x_m} with residual
    e_k (up to the positive loss factor). Integral values are computed as ints.
    """
    if not applicable(spec):
        return None
    network = spec.network
    plan = _plan(spec)
    # Draws first .. first + attempts - 1 of the sequence; a later round (first > 0) has
    # its own random stream, so the rounds never repeat a draw.
    sampler = _Sampler(spec, samples, seed + first, deadline)
    with Draws("rank criterion", attempts, effort, deadline, first) as draws:
        try:
            for attempt in draws:
                witness = _draw(spec, network, plan, sampler, attempt, accept)
                if witness is not None:
                    return witness
        except _OutOfTime:
            pass
    return None


def _structurable(spec: Spec) -> bool:
    """Structured draws need free inputs and rational fixed values (they order and
    compare pre-activations)."""
    if "X" in spec.fixed:
        return False
    stack: list[Any] = list(spec.fixed.values())
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif item is not None and type(item) not in _RATIONAL:
            return False
    return True


def _draw(spec: Spec, network: Network, plan: _Plan, sampler: _Sampler, attempt: int,
          accept: Callable[[Witness], bool] | None) -> Witness | None:
    """Draw number ``attempt``: parameters and inputs, then the residuals solved exactly."""
    magnitude = 2 + attempt // 20
    # Integers first (pure int arithmetic, several times faster), then half-integers.
    # Without `generic`, every third draw from DEGENERATE_FROM on may hold zero weights
    # and repeated inputs: such points are witnesses too, and some specs have no other.
    degenerate = not spec.generic and attempt >= DEGENERATE_FROM and attempt % 3 == 2
    # Structured draws on odd attempts: draw 0 stays the plain random one that small
    # specs have always been answered with (their witnesses do not change). Past 256
    # samples every draw is structured: a plain draw there costs seconds (kink
    # avoidance row by row) and the structured ones are what answers.
    if ((attempt % 2 == 1 or sampler.samples > 256) and not degenerate
            and sampler.structurable):
        plain, inputs = sampler.structured(magnitude, attempt)
        runs = [_forward(network, plain, row) for row in inputs]
        sampler.on_time(0)
        return _residual_witness(spec, plan, sampler, plain, inputs, runs, accept)
    plain = sampler.parameters(magnitude, halves=attempt >= INTEGER_DRAWS,
                               zeros=degenerate)
    passes: dict[tuple[Number, ...], _Pass] = {}  # the forward passes `avoid` made
    avoid = None
    if spec.generic:
        def avoid(row: tuple[Number, ...], plain: Parameters = plain,
                  passes: dict[tuple[Number, ...], _Pass] = passes) -> bool:
            passes[row] = run = _forward(network, plain, row)
            return run.on_kink(network)

    inputs = sampler.inputs(magnitude, avoid, degenerate)
    for _ in range(STRADDLE_TRIES):
        if _straddles(spec, plain, inputs):
            break
        inputs = sampler.inputs(magnitude, avoid, degenerate)
    runs = [passes.get(row) or _forward(network, plain, row) for row in inputs]
    return _residual_witness(spec, plan, sampler, plain, inputs, runs, accept)
