"""Stationary points on fixed data, pattern by pattern (one hidden layer, MSE).

The landscape question: X and Y are fixed, the parameters are free (or the output
layer W2, b2 fixed, as when it is not trained), and every free parameter's gradient
must be exactly zero (optionally with conditions on the loss and the predictions, and
``minimum: local``). A fixed W2 fixes each unit's outgoing sign (its magnitude is
divided out of the unit's function); a fixed b2 is subtracted from the targets and
drops the constant column. For a hidden layer of a positively
homogeneous piecewise-linear activation (relu, leaky_relu, abs, linear) and one
linear output it is decided exactly, without handing the phase disjunction to a
solver:

1. **Normalise.** (v, w, b) -> (v/|v|, |v| w, |v| b) keeps the network function, the
   loss and every zero gradient (dL/dw scales by 1/|v|, dL/dv by |v|): every live unit
   has outgoing weight v = +1 or -1. A unit with v = 0, or whose derivative vector u
   over the samples is 0, contributes nothing; such "dead" units are always
   stationary when parked at (w, b) = (0, -1) or (0, 1): their outgoing gradient is
   act(b) * sum_m r_m = 0, because dL/db2 = 0 says sum_m r_m = 0.
2. **Patterns.** The data fix which sign vectors sigma_m = sign(w.x_m + b) a unit can
   have (1-D inputs: a threshold between or on sorted inputs, O(M) of them; d-D: the
   cells of the arrangement, enumerated by exact LP feasibility). On a pattern,
   act(z) = z * u with u_m = act'(z_m) fixed (the convention at kinks).
3. **Least squares.** With every live unit's W1 and b1 gradients zero and dL/db2 = 0,
   the residual r is orthogonal to V = span{1, u_i, x_j * u_i : live i}, and the
   prediction f lies in V: f = P_V y, so the loss on a set U of live derivative
   vectors is ||y - P_V y||^2 (exact, from a Gram matrix computed once). Conditions on
   the loss and the predictions prune U before anything else; Euler's identity makes
   the W2 gradient of a live unit zero too (dL/dv = (w.dL/dw + b dL/db) / v).
4. **Realisation.** f = c + sum_i v_i (w_i.x + b_i) * u_i with every unit's strict
   signs is an exact linear feasibility problem (z3's QF_LRA simplex). Two live units
   with the same sign vector and sign add up within the same convex cone, so each
   (sigma, v) is used at most once per derivative vector.

Unsat means every set U of at most ``units`` live derivative vectors was refuted;
the reason says how many, and by what. May import the spec, the reference code and
the backends (the LP); never the engine.
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.methods.base import Budget, Method, Outcome, Problem, Proves
from smtgrad.methods.rank import solve_linear
from smtgrad.numbers.expr import (
    BinOp,
    BoolConst,
    BoolOp,
    Compare,
    Neg,
    Not,
    Num,
    Pow,
    Ref,
    references,
)
from smtgrad.reference.landscape import Classification, classify
from smtgrad.reference.network import Parameters, evaluate, loss_normaliser
from smtgrad.reference.witness import Witness
from smtgrad.spec import Layer, LossKind, Minimum, Spec, Verdict, entries, normalize_ref

SignVector = tuple[int, ...]
Slopes = tuple[Fraction, ...]


class BackendsDisagree(Exception):
    """z3 found an LP infeasible that cvc5 found feasible (``--cross-check``)."""


class NotApplicable(Exception):
    """The spec is outside the family this method decides (the message says why)."""


@dataclass(frozen=True)
class Unit:
    """One live hidden unit of a realisation: its sign vector and outgoing sign."""

    signs: SignVector
    sign: int  # +1 or -1


@dataclass(frozen=True)
class Landscape:
    """A fixed-data stationary-point problem in the family of this module."""

    spec: Spec
    inputs: tuple[tuple[Fraction, ...], ...]
    targets: tuple[Fraction, ...]
    hidden: Layer
    kink_one: bool
    factor: Fraction  # the loss is factor * sum of squared residuals
    #: A fixed output bias b2 (None: free, and its gradient is queried zero).
    offset: Fraction | None = None
    #: A fixed output layer W2 (None: free, normalised to +-1 / 0 per unit).
    outgoing: tuple[Fraction, ...] | None = None

    @property
    def samples(self) -> int:
        return len(self.inputs)

    @property
    def fitted_targets(self) -> tuple[Fraction, ...]:
        """What the hidden units must fit: y, or y - b2 with a fixed output bias."""
        if self.offset is None:
            return self.targets
        return tuple(t - self.offset for t in self.targets)


@dataclass
class PatternReport:
    """One set of live derivative vectors: its least-squares loss and what became of it."""

    live: tuple[Slopes, ...]
    loss: Fraction
    predictions: tuple[Fraction, ...] | None = None
    status: str = "pruned"  # pruned | infeasible | stationary
    witness: Witness | None = None
    classification: Classification | None = None
    units: tuple[Unit, ...] = ()
    #: ``minimum: local``: a stationary point of this set may be a local minimum that
    #: no certificate decided (False: certified, or every stationary point refuted).
    open: bool = False


@dataclass
class Tally:
    """How far an enumeration got."""

    total: int = 0
    examined: int = 0
    pruned: int = 0
    infeasible: int = 0
    stationary: int = 0
    linear_problems: int = 0
    complete: bool = False


# ----------------------------------------------------------------------------------------
# The family


def landscape_problem(spec: Spec) -> Landscape:
    """The spec as a :class:`Landscape`, or :class:`NotApplicable` saying why not."""
    network = spec.network
    if network.depth != 2 or network.outputs != 1:
        raise NotApplicable("one hidden layer and one output are needed")
    hidden, output = network.layers
    if not hidden.activation.positively_homogeneous or not output.activation.identity:
        raise NotApplicable("a positively homogeneous hidden activation (relu, leaky_relu, "
                            "abs, linear) and a linear output are needed")
    if spec.loss.kind is not LossKind.MSE:
        raise NotApplicable("the loss must be MSE")
    if set(spec.fixed) - {"X", "Y", "W2", "b2"}:
        raise NotApplicable("fixed first-layer parameters break the normalisation of the "
                            "hidden units")
    if "X" not in spec.fixed or "Y" not in spec.fixed:
        raise NotApplicable("X and Y must both be fixed")
    if spec.query.nonzero:
        raise NotApplicable("every gradient must be zero (a stationary-point query)")
    shapes = network.parameter_shapes()
    fixed_blocks: dict[str, tuple[Fraction, ...]] = {}
    for block in ("W2", "b2"):
        if block not in spec.fixed:
            continue
        values = [spec.fixed_value(block, index) for index in entries(shapes[block])]
        if not all(isinstance(v, Fraction | int) and not isinstance(v, bool) for v in values):
            raise NotApplicable(f"a fixed {block} must be fixed entirely, to rationals")
        fixed_blocks[block] = tuple(Fraction(v) for v in values)
    named = {(t.block, index) for t in spec.query.zero for index in t.indices(shapes)}
    if any((block, index) not in named for block, shape in shapes.items()
           if block not in fixed_blocks for index in entries(shape)):
        raise NotApplicable("every free parameter's gradient must be queried zero")
    for assumption in _assumptions(spec):
        for ref in references(assumption.condition):
            if ref.name not in ("loss", "yhat", "X", "Y"):
                raise NotApplicable(f"assume {assumption.text!r} names {ref.name}: only the "
                                    "loss, predictions and data are invariant under the "
                                    "normalisation")
    rows = spec.fixed["X"]
    labels = spec.fixed["Y"]
    samples = len(rows)
    inputs, targets = [], []
    for m in range(samples):
        row = rows[m]
        target = labels[m]
        values = [*row, *(target if isinstance(target, tuple) else (target,))]
        if not all(isinstance(v, Fraction | int) and not isinstance(v, bool) for v in values):
            raise NotApplicable("X and Y must be fixed to rational numbers")
        inputs.append(tuple(Fraction(v) for v in row))
        targets.append(Fraction(target[0] if isinstance(target, tuple) else target))
    factor = loss_normaliser(spec.loss, samples, 1)
    offset = fixed_blocks["b2"][0] if "b2" in fixed_blocks else None
    return Landscape(spec, tuple(inputs), tuple(targets), hidden,
                     spec.conventions.relu_grad_at_zero == 1, factor, offset,
                     fixed_blocks.get("W2"))


# ----------------------------------------------------------------------------------------
# Sign vectors a unit can take on the data


def sign_vectors(problem: Landscape, deadline: float | None = None) -> list[SignVector]:
    """Every sign vector (sign(w.x_m + b))_m over (w, b), without duplicates."""
    if problem.spec.network.inputs == 1:
        return _sign_vectors_1d([x[0] for x in problem.inputs])
    return _sign_vectors_by_lp(problem.inputs, deadline)


def _sign_vectors_1d(xs: Sequence[Fraction]) -> list[SignVector]:
    def sign(value: Fraction) -> int:
        return (value > 0) - (value < 0)

    points = sorted(set(xs))
    thresholds: list[Fraction] = [points[0] - 1, points[-1] + 1, *points]
    thresholds += [(a + b) / 2 for a, b in itertools.pairwise(points)]
    result: dict[SignVector, None] = {}
    for direction in (1, -1):
        for t in thresholds:
            result[tuple(sign(direction * (x - t)) for x in xs)] = None
    result[tuple(0 for _ in xs)] = None  # w = 0, b = 0
    return list(result)


def _sign_vectors_by_lp(inputs: Sequence[tuple[Fraction, ...]],
                        deadline: float | None) -> list[SignVector]:
    """Cells of the arrangement {w.x_m + b = 0}: depth-first over the distinct rows, a
    child kept when an exact LP finds (w, b) with the signs so far (one incremental
    solver; the child with the sign of the parent's point needs no LP)."""
    from smtgrad.backends.linear import Affine, IncrementalFeasibility

    distinct = list(dict.fromkeys(inputs))
    width = len(distinct[0])
    system = IncrementalFeasibility(width + 1)
    found: list[tuple[int, ...]] = []
    forms = [Affine((*((k, row[k]) for k in range(width)), (width, Fraction(1))))
             for row in distinct]

    def extend(prefix: tuple[int, ...], point: list[Fraction]) -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeoutError
        if len(prefix) == len(distinct):
            found.append(prefix)
            return
        row = distinct[len(prefix)]
        value = sum((point[k] * row[k] for k in range(width)), point[width])
        free = (value > 0) - (value < 0)
        for sign in (free, *(s for s in (1, -1, 0) if s != free)):
            system.push(forms[len(prefix)], sign)
            try:
                solution = point if sign == free else system.point()
                if solution is not None:
                    extend((*prefix, sign), solution)
            finally:
                system.pop()

    extend((), [Fraction(0)] * (width + 1))
    position = {row: k for k, row in enumerate(distinct)}
    return list(dict.fromkeys(tuple(cell[position[row]] for row in inputs) for cell in found))


def slopes(problem: Landscape, signs: SignVector) -> Slopes:
    """u_m = act'(z_m) on a sign vector (the convention at kinks)."""
    by_sign = {s: _slope_at(problem, Fraction(s)) for s in set(signs)}
    return tuple(by_sign[s] for s in signs)


# ----------------------------------------------------------------------------------------
# Least squares on a set of live derivative vectors (a Gram matrix computed once)


#: Below this many sets of live units, Fractions beat importing python-flint (~60 ms).
FLINT_FROM = 2000


class _Projector:
    """P_V y for V = span{1, u, x_j * u : u in U}, from one Gram matrix of every column.

    The normal equations G s = A^T y are consistent; any solution s gives the
    projection A s, and the squared residual ||y||^2 - s . A^T y (as G s = A^T y).
    """

    def __init__(self, problem: Landscape, vectors: Sequence[Slopes], sets: int) -> None:
        self.problem = problem
        width = problem.spec.network.inputs
        columns: list[tuple[Fraction, ...]] = [tuple(Fraction(1) for _ in problem.inputs)]
        #: Columns of each derivative vector, by its position in ``vectors`` (tuples of
        #: Fractions hash slowly: this runs once per set of live units).
        self.column_of: list[list[int]] = []
        for u in vectors:
            indices = [len(columns)]
            columns.append(u)
            for j in range(width):
                indices.append(len(columns))
                columns.append(tuple(um * x[j] for um, x in zip(u, problem.inputs,
                                                                strict=True)))
            self.column_of.append(indices)
        self.columns = columns
        # Each column as integers over one denominator: Gram entries are int dot products
        # (Fraction arithmetic here cost more than the whole enumeration of small rows),
        # computed when a set of live units first needs them.
        self.integer_columns: list[list[int]] = []
        self.scales: list[int] = []
        for column in (*columns, problem.fitted_targets):
            scale = math.lcm(*(value.denominator for value in column))
            self.integer_columns.append([int(value * scale) for value in column])
            self.scales.append(scale)
        self.target_index = len(columns)
        self._gram: dict[tuple[int, int], Fraction] = {}
        self.norm = self.gram(self.target_index, self.target_index)
        self.flint: Any = None
        if sets >= FLINT_FROM:
            import flint

            self.flint = flint
        self._flint_gram: dict[tuple[int, int], Any] = {}

    def gram(self, i: int, j: int) -> Fraction:
        """<column i, column j> (the targets are column ``target_index``)."""
        key = (i, j) if i <= j else (j, i)
        value = self._gram.get(key)
        if value is None:
            a, b = self.integer_columns[i], self.integer_columns[j]
            value = Fraction(sum(map(operator.mul, a, b)), self.scales[i] * self.scales[j])
            self._gram[key] = value
        return value

    def flint_gram(self, i: int, j: int) -> Any:
        key = (i, j) if i <= j else (j, i)
        value = self._flint_gram.get(key)
        if value is None:
            exact = self.gram(i, j)
            value = self.flint.fmpq(exact.numerator, exact.denominator)
            self._flint_gram[key] = value
        return value

    def solve(self, live: Sequence[int]) -> tuple[Fraction, dict[int, Any]]:
        """(sum of squared residuals of the fit, coefficients per column) for the
        derivative vectors at positions ``live``."""
        chosen = [0] if self.problem.offset is None else []  # a fixed b2: no constant
        for position in live:
            chosen += self.column_of[position]
        if not chosen:
            return self.norm, {}
        if self.flint is not None:
            return self._flint_solve(chosen)
        # The normal equations [G | A^T y] over Fractions, free variables 0 (always solvable).
        target = self.target_index
        solved = solve_linear([[self.gram(i, j) for j in chosen] for i in chosen],
                              [self.gram(i, target) for i in chosen], len(chosen))
        assert solved is not None
        coefficients = {chosen[column]: value for column, value in enumerate(solved[0])
                        if value != 0}
        explained = sum((value * self.gram(k, target) for k, value in coefficients.items()),
                        Fraction(0))
        return self.norm - explained, coefficients

    def _flint_solve(self, chosen: list[int]) -> tuple[Fraction, dict[int, Any]]:
        size = len(chosen)
        gram, target = self.flint_gram, self.target_index
        entries: list[Any] = []
        for i in chosen:
            entries += [gram(i, j) for j in chosen]
            entries.append(gram(i, target))
        reduced, rank = self.flint.fmpq_mat(size, size + 1, entries).rref()
        coefficients: dict[int, Any] = {}
        explained = self.flint.fmpq(0)
        for row in range(rank):
            for column in range(size):
                if reduced[row, column] != 0:
                    value = reduced[row, size]
                    coefficients[chosen[column]] = value
                    explained += value * gram(chosen[column], target)
                    break
        return self.norm - Fraction(int(explained.p), int(explained.q)), coefficients

    def predictions(self, coefficients: dict[int, Any]) -> tuple[Fraction, ...]:
        samples = len(self.problem.inputs)
        exact = {k: c if isinstance(c, Fraction) else Fraction(int(c.p), int(c.q))
                 for k, c in coefficients.items()}
        return tuple(sum((c * self.columns[k][m] for k, c in exact.items()),
                         Fraction(0)) for m in range(samples))


# ----------------------------------------------------------------------------------------
# Conditions on the loss and the predictions


def _assumptions(spec: Spec) -> tuple[Any, ...]:
    """The spec's assumptions at its M (per-sample ``*`` forms expanded)."""
    return spec.assumptions_at(spec.samples.min) if spec.samples.min == spec.samples.max \
        else spec.assume


def _compile(node: Any) -> Any:
    """A condition or term as a closure over a resolver (evaluated once per set of live
    units: walking the tree each time cost a quarter of the enumeration). Division's
    right side is a nonzero constant in parsed trees (numbers.expr)."""
    if isinstance(node, Num):
        value = node.value
        return lambda resolve: value
    if isinstance(node, Ref):
        return lambda resolve: resolve(node)
    if isinstance(node, Neg):
        inner = _compile(node.operand)
        return lambda resolve: -inner(resolve)
    if isinstance(node, BinOp | Compare):
        left, right = _compile(node.left), _compile(node.right)
        operation = _OPERATIONS[node.op]
        return lambda resolve: operation(left(resolve), right(resolve))
    if isinstance(node, Pow):
        base, exponent = _compile(node.base), node.exponent
        return lambda resolve: base(resolve) ** exponent
    if isinstance(node, BoolOp):
        parts = [_compile(operand) for operand in node.operands]
        if node.op == "and":
            return lambda resolve: all(part(resolve) for part in parts)
        return lambda resolve: any(part(resolve) for part in parts)
    if isinstance(node, Not):
        inner = _compile(node.operand)
        return lambda resolve: not inner(resolve)
    if isinstance(node, BoolConst):
        truth = node.value
        return lambda resolve: truth
    raise TypeError(f"cannot compile {node!r}")


_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "/": lambda a, b: Fraction(a) / b,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


Condition = Callable[[Callable[[Any], Fraction]], Any]


def _conditions_hold(problem: Landscape, conditions: Sequence[Condition], loss: Fraction,
                     predictions: tuple[Fraction, ...] | None) -> bool | None:
    """Every compiled ``assume`` at this loss (and predictions); None when predictions
    are needed."""

    def resolve(raw: Any) -> Fraction:
        ref = normalize_ref(raw)
        indices: tuple[int, ...] = tuple(ref.indices)
        if ref.name == "loss":
            return loss
        if ref.name == "yhat":
            if predictions is None:
                raise LookupError
            return predictions[indices[0]] + (problem.offset or 0)
        if ref.name == "X":
            return problem.inputs[indices[0]][indices[1]]
        return problem.targets[indices[0]]

    for condition in conditions:
        try:
            if not condition(resolve):
                return False
        except LookupError:
            return None
    return True


# ----------------------------------------------------------------------------------------
# Realisation: an exact LP per choice of (sign vector, sign) per derivative vector


def _allocations(live: Sequence[Slopes], variants: dict[Slopes, list[SignVector]],
                 units: int, problem: Landscape | None = None) -> Iterator[tuple[Unit, ...]]:
    """Per derivative vector, a nonempty set of (sign vector, sign); at most ``units``
    units in all (a fixed output layer: at most its positive and negative units, see
    :func:`_fits_outgoing`); allocations with no sample on a kink first, fewest units
    first."""
    options: list[list[tuple[Unit, ...]]] = []
    for u in live:
        single = [Unit(signs, sign) for signs in variants[u] for sign in (1, -1)]
        choices = [combo for size in range(1, min(len(single), units) + 1)
                   for combo in itertools.combinations(single, size)]
        options.append(choices)
    found = []
    for combination in itertools.product(*options):
        allocation = tuple(unit for group in combination for unit in group)
        if len(allocation) <= units and (problem is None or problem.outgoing is None
                                         or _fits_outgoing(problem, allocation)):
            found.append(allocation)
    # Kink-free allocations first (only they can be certified minima), fewest units first.
    found.sort(key=lambda units_: (any(0 in unit.signs for unit in units_), len(units_)))
    yield from found


def _slope_at(problem: Landscape, z: Fraction) -> Fraction:
    layer = problem.hidden
    return Fraction(layer.activation.derivative(
        z, layer.activation.value(z, layer, None), layer,  # type: ignore[arg-type]
        problem.kink_one, None))  # type: ignore[arg-type]


def _off_bias(problem: Landscape) -> Fraction | None:
    """A bias b such that the unit (w, b) = (0, b) has act' = 0 on every sample, so it
    contributes nothing and has zero gradients whatever its outgoing weight: -1 when
    act'(-1) = 0 (relu), else 0 when the kink convention gives act'(0) = 0 (every sample
    on the kink); None when neither (leaky_relu, abs or linear with convention 1)."""
    if _slope_at(problem, Fraction(-1)) == 0:
        return Fraction(-1)
    if _slope_at(problem, Fraction(0)) == 0:
        return Fraction(0)
    return None


def _parks_off(problem: Landscape) -> bool:
    """Whether a unit at (0, -1) has act' = 0 on every sample (relu): dead units parked
    there keep the pattern-convexity certificate available."""
    return _slope_at(problem, Fraction(-1)) == 0


def _fits_outgoing(problem: Landscape, allocation: Sequence[Unit]) -> bool:
    """A fixed output layer with p positive and q negative weights realises an allocation
    with a <= p positive and b <= q negative units when the spare units can be absorbed:
    a spare unit shares the function of a unit of its sign (z = z/n + ... + z/n: the sum
    of functions with one sign vector has that sign vector), or sits where it contributes
    nothing (:func:`_off_bias`)."""
    assert problem.outgoing is not None
    for sign in (1, -1):
        have = sum(1 for unit in allocation if unit.sign == sign)
        want = sum(1 for v in problem.outgoing if v * sign > 0)
        if have > want or (have < want and have == 0 and _off_bias(problem) is None):
            return False
    return True


def _realise(problem: Landscape, allocation: Sequence[Unit],
             predictions: tuple[Fraction, ...], backend: str = "z3") -> list[Fraction] | None:
    """(c, w_1, b_1, ...) realising the predictions with the allocation's strict signs."""
    if not allocation:  # the constant fit: c = f_m for every m (c = 0 with a fixed b2)
        constant = predictions[0] if problem.offset is None else Fraction(0)
        return [constant] if all(f == constant for f in predictions) else None
    from smtgrad.backends.linear import Affine, feasible_point

    width = problem.spec.network.inputs
    stride = width + 1
    equal: list[Affine] = []
    positive: list[Affine] = []
    unit_slopes = [slopes(problem, unit.signs) for unit in allocation]
    for m, (x, f) in enumerate(zip(problem.inputs, predictions, strict=True)):
        coefficients: list[tuple[int, Fraction]] = [(0, Fraction(1))]
        for position, unit in enumerate(allocation):
            u = unit_slopes[position][m]
            base = 1 + position * stride
            if u:
                coefficients += [(base + j, unit.sign * u * x[j]) for j in range(width)]
                coefficients.append((base + width, unit.sign * u))
        equal.append(Affine(tuple(coefficients), -f))
        for position, unit in enumerate(allocation):
            base = 1 + position * stride
            form = (*tuple((base + j, x[j]) for j in range(width)), (base + width, Fraction(1)))
            s = unit.signs[m]
            if s == 0:
                equal.append(Affine(form))
            else:
                positive.append(Affine(tuple((k, s * c) for k, c in form)))
    if problem.offset is not None:  # the fixed b2 is already taken out of the targets
        equal.append(Affine(((0, Fraction(1)),)))
    return feasible_point(1 + len(allocation) * stride, equal, positive, backend=backend)


def _relaxation_feasible(problem: Landscape, live: Sequence[Slopes],
                         variants: dict[Slopes, list[SignVector]],
                         predictions: tuple[Fraction, ...], tally: Tally,
                         cross_check: bool) -> bool:
    """One LP for every allocation of a set of live derivative vectors at once.

    The relaxation has a unit for every (sign vector, sign) of every derivative vector,
    and no unit budget. It contains every allocation: units an allocation leaves out
    come in +/- pairs with equal (w, b), which cancel; a unit used with one sign gets
    the pair (z + w, w), and a sum of two functions with sign vector sigma has sign
    vector sigma. So an infeasible relaxation refutes every allocation.
    """
    relaxed = [Unit(signs, sign) for u in live for signs in variants[u] for sign in (1, -1)]
    tally.linear_problems += 1
    if _realise(problem, relaxed, predictions) is not None:
        return True
    if cross_check and _realise(problem, relaxed, predictions, "cvc5") is not None:
        raise BackendsDisagree("relaxation of " + describe_units(problem, relaxed))
    return False


def _witness(problem: Landscape, allocation: Sequence[Unit], point: list[Fraction]
             ) -> Witness:
    """The network: the allocation's units, then dead units parked off the data (with a
    fixed output layer: each unit's function divided by its |v|, spare units sharing the
    function of a unit of their sign or parked at (0, -1))."""
    width = problem.spec.network.inputs
    stride = width + 1
    layer = problem.hidden
    functions = [(unit.sign, point[1 + k * stride: 1 + k * stride + width],
                  point[1 + k * stride + width]) for k, unit in enumerate(allocation)]
    zero_row = tuple(Fraction(0) for _ in range(width))
    # A dead unit at (0, -1) when act'(-1) = 0 (relu: it never reaches the loss, which
    # keeps the pattern-convexity certificate available); else at (0, 1), which is
    # stationary because sum_m r_m = 0 (dL/db2 = 0), or at (0, 0) (act(0) = 0) when b2
    # is fixed and that sum need not vanish.
    parked = Fraction(-1) if _parks_off(problem) else (
        Fraction(1) if problem.offset is None else Fraction(0))
    rows: list[tuple[Fraction, ...]] = []
    biases: list[Fraction] = []
    outgoing: list[Fraction] = []
    if problem.outgoing is None:
        for sign, w, b in functions:
            rows.append(tuple(w))
            biases.append(b)
            outgoing.append(Fraction(sign))
        while len(rows) < layer.units:
            rows.append(zero_row)
            biases.append(parked)
            outgoing.append(Fraction(0))
    else:
        outgoing = list(problem.outgoing)
        rows = [zero_row] * layer.units
        biases = [parked] * layer.units
        for sign in (1, -1):
            mine = [f for f in functions if f[0] == sign]
            slots = [i for i, v in enumerate(outgoing) if v * sign > 0]
            # the last function of this sign is shared by the spare slots
            shares = [1] * len(mine)
            if mine:
                shares[-1] = len(slots) - len(mine) + 1
            slot = iter(slots)
            for (_, w, b), share in zip(mine, shares, strict=True):
                for _ in range(share):
                    i = next(slot)
                    scale = 1 / (abs(outgoing[i]) * share)
                    rows[i] = tuple(value * scale for value in w)
                    biases[i] = b * scale
            off = _off_bias(problem)
            for i in slot:  # no function of this sign: parked where it contributes nothing
                assert off is not None  # _fits_outgoing admitted the allocation
                rows[i], biases[i] = zero_row, off
    output_bias = point[0] if problem.offset is None else problem.offset
    parameters = Parameters((tuple(rows), ((tuple(outgoing)),)),
                            (tuple(biases), (output_bias,)))
    return Witness(parameters, problem.inputs, tuple((t,) for t in problem.targets))


# ----------------------------------------------------------------------------------------
# The enumeration


def enumerate_patterns(problem: Landscape, deadline: float | None, tally: Tally,
                       limit: int | None = None, prefer_minimum: bool = False,
                       cross_check: bool = False) -> Iterator[PatternReport]:
    """Every set of at most ``units`` live derivative vectors, fewest first, with its
    least-squares loss and (when the conditions hold) its first realisation; with
    ``prefer_minimum`` (always with ``minimum: local``), the first realisation that is
    a certified local minimum if there is one."""
    units = problem.hidden.units
    generic = problem.spec.generic
    variants: dict[Slopes, list[SignVector]] = {}
    for signs in sign_vectors(problem, deadline):
        if generic and 0 in signs:
            continue
        u = slopes(problem, signs)
        if any(u):
            variants.setdefault(u, []).append(signs)
    vectors = list(variants)
    tally.total = sum(math.comb(len(vectors), size) for size in range(units + 1))
    projector = _Projector(problem, vectors, tally.total)
    conditions = [_compile(a.condition) for a in _assumptions(problem.spec)]
    kinked = bool(problem.hidden.activation.kinks(problem.hidden))  # linear: no kink
    minimum = prefer_minimum or problem.spec.query.minimum is Minimum.LOCAL
    for size in range(units + 1):
        for positions in itertools.combinations(range(len(vectors)), size):
            live = tuple(vectors[position] for position in positions)
            if deadline is not None and time.perf_counter() > deadline:
                return
            if limit is not None and tally.stationary >= limit:
                return
            tally.examined += 1
            squares, coefficients = projector.solve(positions)
            loss = problem.factor * squares
            report = PatternReport(live, loss)
            holds = _conditions_hold(problem, conditions, loss, None)
            if holds is False:
                tally.pruned += 1
                yield report
                continue
            report.predictions = projector.predictions(coefficients)
            if holds is None and not _conditions_hold(problem, conditions, loss,
                                                      report.predictions):
                tally.pruned += 1
                yield report
                continue
            report.status = "infeasible"
            if live and not _relaxation_feasible(problem, live, variants, report.predictions,
                                                 tally, cross_check):
                tally.infeasible += 1
                yield report
                continue
            for allocation in _allocations(live, variants, units, problem):
                kinks = kinked and any(0 in unit.signs for unit in allocation)
                if kinks and report.status == "stationary" and report.open:
                    # An undecided kink-free stationary point of this pattern exists;
                    # points on a kink are never certified, so none of them can do
                    # better. (If every kink-free one was refuted, a feasible kink
                    # allocation still leaves the pattern open: keep looking.)
                    break
                tally.linear_problems += 1
                point = _realise(problem, allocation, report.predictions)
                if point is None:
                    if cross_check and _realise(problem, allocation, report.predictions,
                                                "cvc5") is not None:
                        raise BackendsDisagree(describe_units(problem, allocation))
                    continue
                witness = _witness(problem, allocation, point)
                report.status, report.witness, report.units = "stationary", witness, allocation
                report.classification = _classification(problem, witness)
                certified = (report.classification is not None
                             and report.classification.kind.is_minimum)
                if minimum:
                    report.open = report.open or (not certified and (
                        kinks or not _dead_units_refute(problem, allocation,
                                                        report.predictions)))
                if not minimum or kinks or certified:
                    break
            if report.status == "stationary":
                tally.stationary += 1
            else:
                tally.infeasible += 1
            yield report
    tally.complete = True


def _dead_units_refute(problem: Landscape, allocation: Sequence[Unit],
                       predictions: tuple[Fraction, ...]) -> bool:
    """No point realising this allocation (kink-free) is a local minimum.

    Every such point has ``units - len(allocation)`` further units that do not reach the
    fit: outgoing weight 0, or derivative vector 0. Take one with v = 0 and derivative
    vector u != 0, no sample on its kink, and P r != 0, P the projection onto span{u,
    x_j u}, r the residual (the same at every point of the allocation: f = P_V y).
    Along v = t, (w, b) += t s with (s.x_m) u_m = -lambda (P r)_m, the loss changes by
    t^2 (||z u||^2 - 2 lambda ||P r||^2) + O(t^3) (its first-order term is the zero
    gradient): negative for a large lambda, so the point is not a local minimum. This
    refutes the allocation when no sign vector sigma is "allowed" for such a unit:
    allowed are a sample on the kink (not decided here), u(sigma) = 0 (relu: the unit
    reaches nothing), or P r = 0. Free output layers only.
    """
    if problem.outgoing is not None or len(allocation) >= problem.hidden.units:
        return False
    residual = [f - t for f, t in zip(predictions, problem.fitted_targets, strict=True)]
    width = problem.spec.network.inputs
    kinked = bool(problem.hidden.activation.kinks(problem.hidden))  # linear: none
    for signs in sign_vectors(problem):
        if kinked and 0 in signs:
            return False
        u = slopes(problem, signs)
        if not any(u):
            return False
        if all(sum((r * um * x[j] for r, um, x in zip(residual, u, problem.inputs,
                                                     strict=True)), Fraction(0)) == 0
               for j in range(width)) and \
                sum((r * um for r, um in zip(residual, u, strict=True)), Fraction(0)) == 0:
            return False
    return True


def _classification(problem: Landscape, witness: Witness) -> Classification | None:
    spec = problem.spec
    evaluation = evaluate(spec.network, spec.loss, spec.conventions, witness.parameters,
                          witness.inputs, witness.targets)
    return classify(spec, witness, evaluation)


def describe_units(problem: Landscape, units: Sequence[Unit]) -> str:
    """The live units of a realisation, as the samples each one is active on."""
    if not units:
        return "no live unit (constant fit)"
    parts = []
    for unit in units:
        active = [str(m) for m, s in enumerate(unit.signs) if s > 0]
        kinks = [str(m) for m, s in enumerate(unit.signs) if s == 0]
        text = f"{'+' if unit.sign > 0 else '-'}unit on {{{','.join(active)}}}"
        if kinks:
            text += f" kink {{{','.join(kinks)}}}"
        parts.append(text)
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------
# The method


class FixedDataPatterns(Method):
    """Exact stationary points of fixed data for one-hidden-layer homogeneous nets."""

    name = "fixed-data activation patterns"
    proves = Proves.BOTH

    def applies(self, problem: Problem) -> bool:
        try:
            landscape_problem(problem.spec)
        except NotApplicable:
            return False
        return True

    def run(self, problem: Problem, budget: Budget) -> Outcome | None:
        # Complete and deterministic: it enumerates until done or until the deadline.
        context = problem.context
        landscape = landscape_problem(problem.spec)
        start = time.perf_counter()
        deadline = context.deadline
        tally = Tally()
        uncertified = 0
        solver = "exact least squares + z3 QF_LRA"
        last_report = start
        cross_check = context.options.cross_check
        if cross_check:
            solver += " (infeasible LPs confirmed by cvc5)"
        try:
            for report in enumerate_patterns(landscape, deadline, tally,
                                             cross_check=cross_check):
                if context.reporting and time.perf_counter() - last_report > 1:
                    last_report = time.perf_counter()
                    context.progress(f"  patterns: {tally.examined} of {tally.total} sets of "
                                     f"live units examined, {tally.linear_problems} LPs")
                if report.status != "stationary" or report.witness is None:
                    continue
                outcome = context.judged(problem.spec, report.witness, self.name, solver)
                if outcome.verdict is Verdict.SAT:
                    return outcome
                if report.open or problem.spec.query.minimum is None:
                    uncertified += 1
        except TimeoutError:
            pass
        except BackendsDisagree as error:
            return Outcome(Verdict.UNKNOWN, self.name, solver, reason=(
                f"z3 and cvc5 disagree on the exact LP of the pattern {error}"))
        if not tally.complete:
            return Outcome(Verdict.UNKNOWN, self.name, solver, reason=(
                f"patterns: {tally.examined} of {tally.total} sets of live units examined "
                f"before the deadline ({tally.pruned} pruned by the loss or predictions, "
                f"{tally.infeasible} not realisable, {tally.stationary} stationary)"))
        if uncertified:
            return Outcome(Verdict.UNKNOWN, self.name, solver, reason=(
                f"{tally.stationary} of {tally.total} sets of live units have stationary "
                "points, none of them certified a local minimum"))
        saddles = (f"; the {tally.stationary} sets with stationary points have none that is "
                   "a local minimum (a unit with outgoing weight 0 gives a descent "
                   "direction at every one of them)" if tally.stationary else "")
        return Outcome(Verdict.UNSAT, self.name, solver, reason=(
            f"every activation pattern refuted{saddles}: {tally.total} sets of at most "
            f"{landscape.hidden.units} live units over {len(set(landscape.inputs))} "
            f"distinct inputs; {tally.pruned} by the exact least-squares loss or "
            f"predictions, {tally.infeasible} by exact linear feasibility "
            f"({tally.linear_problems} LPs)"))



__all__ = ["FixedDataPatterns", "Landscape", "NotApplicable", "PatternReport", "Tally",
           "describe_units", "enumerate_patterns", "landscape_problem", "sign_vectors"]
