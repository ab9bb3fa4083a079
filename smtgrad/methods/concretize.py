"""Partial concretisation for smooth networks: fix the lower layers, solve the top layer.

With every layer below the output and the inputs fixed to small lattice-compatible
values, the hidden activations are rational constants, the output logits are
linear in the unknown top-layer coefficients, and the lattice encoding becomes
almost linear: Z3 answers each draw in a fraction of a second. Many cheap draws
find witnesses that the fully symbolic lattice encoding reaches only slowly.
Sat-only: a failed draw proves nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.numbers.lognum import LogNumber
from smtgrad.reference.intervals import Coordinate, Enclosure, Point, equations
from smtgrad.reference.network import Evaluation, InexactValue, Parameters, entry_at, evaluate
from smtgrad.spec import LossKind, Spec, TargetKind


def draws(spec: Spec, samples: int, base: Fraction, seed: int = 0) -> Iterator[Spec]:
    """Specs equal to ``spec`` with the lower layers and X fixed to random small values."""
    rng = random.Random(seed)
    network = spec.network
    shapes = network.parameter_shapes()
    attempt = 0
    while True:
        attempt += 1
        magnitude = 1 + attempt // 10
        fixed: dict[str, Any] = dict(spec.fixed)
        for index, layer in enumerate(network.layers[:-1], start=1):
            scaled = layer.activation.smooth
            for name in (f"W{index}", f"b{index}"):
                fixed[name] = _draw(spec, name, shapes[name], rng, magnitude, scaled, base)
        if "X" not in spec.fixed or any(v is None for row in spec.fixed["X"] for v in row):
            pool = list(range(-2 * max(magnitude, samples), 2 * max(magnitude, samples) + 1))
            rows = []
            for m in range(samples):
                row = []
                for i in range(network.inputs):
                    known = spec.fixed_value("X", (m, i))
                    row.append(known if known is not None else Fraction(rng.choice(pool)))
                rows.append(tuple(row))
            fixed["X"] = tuple(rows)
        yield dataclasses.replace(spec, fixed=fixed)


def _draw(spec: Spec, name: str, shape: tuple[int, ...], rng: random.Random, magnitude: int,
          scaled: bool, base: Fraction) -> Any:
    def value(index: tuple[int, ...]) -> Any:
        known = spec.fixed_value(name, index)
        if known is not None:
            return known
        number = Fraction(rng.randint(-magnitude, magnitude))
        if name.startswith("W") and number == 0:
            number = Fraction(rng.choice((-1, 1)))
        return LogNumber((0, number), base) if scaled and number != 0 else number

    if len(shape) == 1:
        return tuple(value((j,)) for j in range(shape[0]))
    return tuple(tuple(value((j, i)) for i in range(shape[1])) for j in range(shape[0]))


# ----------------------------------------------------------------------------------------
# The top-layer solve (continuation's first stage): with the lower layers and inputs fixed
# by a draw, the output layer's zero-gradient equations are a small square system in the
# output layer's own entries. With sigmoid + BCE or softmax + cross-entropy it is the
# gradient of a convex function (a logistic regression on the hidden features), so damped
# Newton from zero finds its unique root whenever one exists; with MSE and a linear output
# it is linear and solved exactly. Numerics here are floats and never trusted: a root goes
# to the Krawczyk test (``newton.certify``) or, when exact, straight to the verifier.


class FloatContext:
    """The scalar context of :class:`~smtgrad.reference.intervals.Dual` over Python floats
    (search numerics only: features of a draw, never a certificate)."""

    @staticmethod
    def mpf(value: Any) -> float:
        return float(value)

    @staticmethod
    def exp(value: Any) -> float:
        return math.exp(value)

    @staticmethod
    def log(value: Any) -> float:
        return math.log(value)

    @staticmethod
    def ncdf(value: Any) -> float:
        return 0.5 * (1 + math.erf(value / math.sqrt(2)))

    @staticmethod
    def npdf(value: Any) -> float:
        return math.exp(-value * value / 2) / math.sqrt(2 * math.pi)


#: The (loss, output activation) pairs the top-layer solve knows dL/dz and its Jacobian of.
TOP_KINDS = {(LossKind.BCE, "sigmoid"), (LossKind.CROSS_ENTROPY, "softmax"),
             (LossKind.MSE, "linear"), (LossKind.MSE, "tanh"), (LossKind.MSE, "sigmoid")}


def top_unknowns(spec: Spec) -> list[Coordinate] | None:
    """The output layer's entries solved for (those of the zero-gradient equations), or None
    when the top-layer solve does not apply: an equation outside the output layer, a fixed
    entry among them, or a loss/output pair it does not know."""
    network = spec.network
    last = network.depth
    output = network.layers[-1].activation.name
    if (spec.loss.kind, output) not in TOP_KINDS or last < 2:
        return None
    system = equations(spec)
    if not system:
        return None
    for name, index in system:
        if name not in (f"W{last}", f"b{last}") or spec.fixed_value(name, index) is not None:
            return None
    return list(system)


def _delta(kind: tuple[LossKind, str], z: list[float], y: Any
           ) -> tuple[list[float], list[list[float]]]:
    """dL/dz of one sample (up to the loss's constant factor) and its Jacobian in z."""
    loss, output = kind
    size = len(z)
    if loss is LossKind.CROSS_ENTROPY:
        top = max(z)
        exps = [math.exp(v - top) for v in z]
        total = sum(exps)
        p = [e / total for e in exps]
        label = int(y)
        delta = [p[k] - (1.0 if k == label else 0.0) for k in range(size)]
        return delta, [[(p[k] if k == m else 0.0) - p[k] * p[m] for m in range(size)]
                       for k in range(size)]
    delta, diagonal = [], []
    for v, t in zip(z, y, strict=True):
        if output == "linear":
            delta.append(v - t)
            diagonal.append(1.0)
            continue
        h = 1 / (1 + math.exp(-v)) if output == "sigmoid" else math.tanh(v)
        slope = h * (1 - h) if output == "sigmoid" else 1 - h * h
        if loss is LossKind.BCE:
            delta.append(h - t)
            diagonal.append(slope)
            continue
        curve = slope * (1 - 2 * h) if output == "sigmoid" else -2 * h * slope
        delta.append((h - t) * slope)
        diagonal.append(slope * slope + (h - t) * curve)
    return delta, [[diagonal[k] if k == m else 0.0 for m in range(size)] for k in range(size)]


def _solve_dense(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting (small dense float systems)."""
    n = len(rhs)
    a = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    for column in range(n):
        pivot = max(range(column, n), key=lambda r: abs(a[r][column]))
        if abs(a[pivot][column]) < 1e-300:
            return None
        a[column], a[pivot] = a[pivot], a[column]
        lead = a[column]
        for r in range(column + 1, n):
            factor = a[r][column] / lead[column]
            if factor:
                row = a[r]
                for c in range(column, n + 1):
                    row[c] -= factor * lead[c]
    solution = [0.0] * n
    for r in range(n - 1, -1, -1):
        total = a[r][n] - sum(a[r][c] * solution[c] for c in range(r + 1, n))
        solution[r] = total / a[r][r]
    return solution


def solve_top(kind: tuple[LossKind, str], features: list[list[float]], targets: Sequence[Any],
              theta: list[list[float]], unknowns: Sequence[tuple[int, int]],
              iterations: int = 60) -> list[list[float]] | None:
    """Damped Newton (Levenberg-Marquardt) on the output layer's zero-gradient equations.

    ``features`` (M x H) are the last hidden layer's values, ``theta`` (K x (H + 1)) the
    output layer [W | b] with its known entries, ``unknowns`` the (row, column) positions
    solved for (as many as equations, the same positions). Returns theta at a root, or
    None (no convergence: for logistic losses, separable data has no finite root).
    """
    extended = [[*row, 1.0] for row in features]
    n = len(unknowns)

    def system(values: list[list[float]]) -> tuple[list[float], list[list[float]]] | None:
        f = [0.0] * n
        jac = [[0.0] * n for _ in range(n)]
        try:
            for x, y in zip(extended, targets, strict=True):
                z = [sum(w * v for w, v in zip(row, x, strict=True)) for row in values]
                delta, dz = _delta(kind, z, y)
                for r, (k, i) in enumerate(unknowns):
                    f[r] += delta[k] * x[i]
                    row = jac[r]
                    for c, (q, j) in enumerate(unknowns):
                        row[c] += dz[k][q] * x[i] * x[j]
        except (OverflowError, ValueError):
            return None
        return f, jac

    current = system(theta)
    if current is None:
        return None
    f, jacobian = current
    norm = max(abs(v) for v in f)
    damping = 1e-9
    for _ in range(iterations):
        if norm < 1e-14:
            return theta
        step = _solve_dense([[v + (damping if r == c else 0.0) for c, v in enumerate(row)]
                             for r, row in enumerate(jacobian)], f)
        if step is None:
            return None
        factor = 1.0
        for _ in range(30):
            trial = [list(row) for row in theta]
            for (k, j), s in zip(unknowns, step, strict=True):
                trial[k][j] -= factor * s
            if max(abs(trial[k][j]) for k, j in unknowns) > 60:
                factor /= 2
                continue
            attempt = system(trial)
            if attempt is not None and max(abs(v) for v in attempt[0]) < norm:
                theta, (f, jacobian) = trial, attempt
                norm = max(abs(v) for v in f)
                damping = max(damping / 10, 1e-12)
                break
            factor /= 2
        else:
            damping *= 100
            if damping > 1e6:
                return None
    return theta if norm < 1e-14 else None


def _float(value: Any) -> float:
    from smtgrad.reference.intervals import Dual

    return float(value.value) if isinstance(value, Dual) else float(value)


def float_evaluation(spec: Spec, point: Point) -> Evaluation:
    """The network at a point in floats (search numerics: entries are float duals or
    exact numbers; read them with :func:`_float`)."""
    from smtgrad.reference.intervals import DualFunctions, _point_in

    ctx = FloatContext()
    lifted = _point_in(ctx, spec, point)
    return evaluate(spec.network, spec.loss, spec.conventions, lifted.parameters,
                    lifted.inputs, lifted.targets, DualFunctions(ctx))


def float_features(spec: Spec, point: Point) -> list[list[float]]:
    """The last hidden layer's values of every sample (floats) at a point."""
    hidden = float_evaluation(spec, point).computed_activations[-2]
    return [[_float(v) for v in row] for row in hidden]


def plausible(spec: Spec, point: Point) -> bool:
    """Numerically (floats): every block the query wants nonzero is clearly nonzero."""
    try:
        gradients = float_evaluation(spec, point).gradients
    except (InexactValue, ZeroDivisionError, OverflowError, ValueError):
        return False
    shapes = spec.network.parameter_shapes()
    for target in spec.query.nonzero:
        block = gradients[target.block]
        if max(abs(_float(entry_at(block, index))) for index in target.indices(shapes)) < 1e-9:
            return False
    return True


@dataclass(frozen=True)
class TopCandidate:
    """A draw with its output layer solved: exact (``box`` None: every value is exact) or
    to be certified (``box``: float values of ``unknowns`` near a root)."""

    point: Point
    unknowns: tuple[Coordinate, ...]
    values: tuple[float, ...]
    exact: bool


def _targets(spec: Spec, features: list[list[float]], rng: random.Random, alternate: bool
             ) -> tuple[Any, ...]:
    """Targets of a draw, fixed ones kept. Free labels (binary, class) either random or,
    when ``alternate``, cycling along the samples sorted by a random projection of their
    hidden features: data a logistic top layer cannot separate, so that its loss has a
    finite minimiser (a root of the output layer's zero-gradient equations)."""
    outputs = spec.network.outputs
    samples = len(features)
    order = list(range(samples))
    if alternate:
        direction = [rng.gauss(0, 1) for _ in features[0]] if features and features[0] else []
        order.sort(key=lambda m: sum(d * v for d, v in zip(direction, features[m],
                                                             strict=True)))
    rank = {m: position for position, m in enumerate(order)}
    offset = rng.randrange(max(outputs, 2))

    def free_label(m: int, classes: int) -> Fraction:
        if alternate:
            return Fraction((rank[m] + offset) % classes)
        return Fraction(rng.randrange(classes))

    if spec.targets is TargetKind.CLASS:
        return tuple(spec.fixed_value("Y", (m,)) if spec.fixed_value("Y", (m,)) is not None
                     else free_label(m, outputs) for m in range(samples))

    def label(m: int, k: int) -> Fraction:
        known = spec.fixed_value("Y", (m, k))
        if known is not None:
            return Fraction(known)
        if spec.targets is TargetKind.BINARY:
            return free_label(m, 2)
        if spec.targets is TargetKind.UNIT_INTERVAL:
            return Fraction(rng.randint(1, 7), 8)
        return Fraction(rng.randint(-8, 8), 4)

    return tuple(tuple(label(m, k) for k in range(outputs)) for m in range(samples))


def top_candidates(spec: Spec, samples: int, base: Fraction, seed: int = 0
                   ) -> Iterator[TopCandidate | None]:
    """One item per draw (None: the draw's top layer has no root): lower layers and inputs
    from :func:`draws`, targets drawn, then the output layer solved (:func:`solve_top`)."""
    unknowns = top_unknowns(spec)
    if unknowns is None:
        return
    network = spec.network
    last = network.depth
    kind = (spec.loss.kind, network.layers[-1].activation.name)
    hidden = network.layers[-2].units
    rng = random.Random(seed + 1)
    positions = [(index[0], index[1] if name.startswith("W") else hidden)
                 for name, index in unknowns]
    for number, candidate in enumerate(draws(spec, samples, base, seed)):
        weights = [candidate.fixed[f"W{i}"] for i in range(1, last)]
        biases = [candidate.fixed[f"b{i}"] for i in range(1, last)]
        keep = max(1, samples - 2)
        if hidden + 1 >= samples and hidden > keep and number % 4 >= 2:
            # As many features as samples: the least-squares residuals of the top layer
            # vanish unless the features are dependent, so copy some hidden units.
            weights[-1] = _copied_rows(spec, f"W{last - 1}", weights[-1], keep)
            biases[-1] = _copied_rows(spec, f"b{last - 1}", biases[-1], keep)

        def top(name: str, index: tuple[int, ...]) -> Any:
            known = spec.fixed_value(name, index)
            if known is not None:
                return known
            if (name, index) in unknowns:
                return Fraction(0)
            return Fraction(rng.choice((-2, -1, 1, 2)))

        shape = network.parameter_shapes()[f"W{last}"]
        weights.append(tuple(tuple(top(f"W{last}", (k, j)) for j in range(shape[1]))
                             for k in range(shape[0])))
        biases.append(tuple(top(f"b{last}", (k,)) for k in range(shape[0])))
        placeholder = (tuple(Fraction(0) for _ in range(samples))
                       if spec.targets is TargetKind.CLASS else
                       tuple(tuple(Fraction(0) for _ in range(network.outputs))
                             for _ in range(samples)))
        inputs = candidate.fixed["X"]
        small = number % 4 >= 2 and not spec.generic
        if small:
            # Inputs from a small pool: repeated hidden features with different labels
            # overlap, which a logistic top layer needs for a finite minimiser.
            inputs = tuple(tuple(Fraction(rng.randint(-3, 3)) if spec.fixed_value(
                "X", (m, i)) is None else spec.fixed_value("X", (m, i))
                for i in range(network.inputs)) for m in range(samples))
        point = Point(Parameters(tuple(weights), tuple(biases)), inputs, placeholder)
        try:
            features = float_features(spec, point)
        except (InexactValue, ZeroDivisionError, OverflowError, ValueError):
            yield None
            continue
        targets = _targets(spec, features, rng, alternate=small or number % 2 == 0)
        point = dataclasses.replace(point, targets=targets)
        theta = [[float(v) for v in row] + [float(b)]
                 for row, b in zip(weights[-1], biases[-1], strict=True)]
        y = ([float(v) for v in targets] if spec.targets is TargetKind.CLASS
             else [[float(v) for v in row] for row in targets])
        # A hidden unit that is exactly 0 on every sample (a dead ReLU) makes its output
        # weights' equations 0 = 0: they leave the system, the weights get the value 1.
        dead = {j for j in range(hidden) if all(row[j] == 0 for row in features)}
        # A copied hidden unit (the same incoming row as an earlier one) has its
        # original's equations (intervals._copied_equations): out of the system too.
        rows = [(*weights[last - 2][j], biases[last - 2][j]) for j in range(hidden)]
        dead |= {j for j in range(hidden) if rows[j] in rows[:j]}
        live = [c for c, (_, j) in zip(unknowns, positions, strict=True) if j not in dead]
        live_positions = [(k, j) for k, j in positions if j not in dead]
        if dead:
            point = point.with_values({c: Fraction(1) for c, (_, j) in
                                       zip(unknowns, positions, strict=True) if j in dead})
            theta = [[float(v) for v in row] + [float(b)] for row, b in zip(
                point.parameters.weights[-1], point.parameters.biases[-1], strict=True)]
        if not live:
            yield None
            continue
        solved = solve_top(kind, features, y, theta, live_positions)
        if solved is None:
            yield None
            continue
        values = tuple(solved[k][j] for k, j in live_positions)
        exact = (_exact_linear_top(spec, point, live, live_positions) if kind[1] == "linear"
                 else None)
        solved_point = exact or point.with_values({c: Fraction(v) for c, v in
                                                   zip(live, values, strict=True)})
        if not plausible(spec, solved_point):
            yield None
        elif exact is not None:
            yield TopCandidate(exact, tuple(live), values, True)
        else:
            yield TopCandidate(point, tuple(live), values, False)


def _copied_rows(spec: Spec, name: str, rows: tuple[Any, ...], keep: int) -> tuple[Any, ...]:
    """Rows ``j >= keep`` replaced by row ``j mod keep`` (fixed entries kept)."""
    result = []
    for j, row in enumerate(rows):
        source = rows[j % keep] if j >= keep else row
        if isinstance(row, tuple):
            result.append(tuple(value if spec.fixed_value(name, (j, i)) is None else known
                                for i, (value, known) in enumerate(zip(source, row,
                                                                       strict=True))))
        else:
            result.append(source if spec.fixed_value(name, (j,)) is None else row)
    return tuple(result)


def _exact_linear_top(spec: Spec, point: Point, unknowns: Sequence[Coordinate],
                      positions: Sequence[tuple[int, int]]) -> Point | None:
    """MSE with a linear output: the output layer's zero gradients are the least-squares
    normal equations, solved exactly over Q when the hidden values are rational."""
    from smtgrad.methods.rank import solve_linear
    from smtgrad.numbers.lognum import LatticeFunctions

    network = spec.network
    try:
        evaluation = evaluate(network, spec.loss, spec.conventions, point.parameters,
                              point.inputs, point.targets, LatticeFunctions(None))
        hidden = [[Fraction(v) for v in row] for row in evaluation.computed_activations[-2]]
    except (InexactValue, TypeError, ValueError, ZeroDivisionError):
        return None
    theta = [[Fraction(v) for v in row] + [Fraction(b)] for row, b in
             zip(point.parameters.weights[-1], point.parameters.biases[-1], strict=True)]
    extended = [[*row, Fraction(1)] for row in hidden]
    targets = [[Fraction(v) for v in row] for row in point.targets]
    column = {position: n for n, position in enumerate(positions)}
    size = len(positions)
    matrix = [[Fraction(0)] * size for _ in range(size)]
    rhs = [Fraction(0)] * size
    for row, (k, i) in enumerate(positions):
        for x, y in zip(extended, targets, strict=True):
            known = -y[k]
            for j, value in enumerate(x):
                if (k, j) in column:
                    matrix[row][column[(k, j)]] += x[i] * value
                else:
                    known += theta[k][j] * value
            rhs[row] -= known * x[i]
    solved = solve_linear(matrix, rhs, size)
    if solved is None:
        return None
    particular, basis = solved
    for vector in basis:  # a singular system: move off the zeros a particular solution has
        particular = [p + v for p, v in zip(particular, vector, strict=True)]
    return point.with_values(dict(zip(unknowns, particular, strict=True)))


def certify(spec: Spec, point: Point, unknowns: Sequence[Coordinate], values: Sequence[float],
            steps: int = 6) -> tuple[Enclosure, ...] | None:
    """A box around a float root that the Krawczyk test certifies, or None.

    The root is first polished by Newton steps on the midpoints of arb balls at 256 bits
    (search numerics: only :func:`~smtgrad.reference.intervals.krawczyk` certifies).
    """
    import flint

    from smtgrad.reference.intervals import (
        ArbContext,
        _ball_point,
        _copied_equations,
        _exact_fraction,
        _exact_zero,
        _round,
        _system,
        krawczyk,
    )

    ctx = ArbContext()
    current = [Fraction(v) for v in values]
    with flint.ctx.workprec(256):
        lifted = _ball_point(ctx, spec, point)
        kept: list[int] | None = None
        for _ in range(steps):
            try:
                f_values, jacobian, _ = _system(spec, lifted, unknowns, ctx,
                                                [ctx.rational(v) for v in current])
                if kept is None:  # equations exactly 0 here (dead units) or copied drop out
                    copies = _copied_equations(spec, point, unknowns)
                    kept = [i for i, v in enumerate(f_values)
                            if i not in copies and not _exact_zero(v, jacobian[i])]
                f_values = [f_values[i] for i in kept]
                jacobian = [jacobian[i] for i in kept]
                f = flint.arb_mat([[ctx.mpf(v).mid()] for v in f_values])
                j = flint.arb_mat([[ctx.mpf(v).mid() for v in row] for row in jacobian])
                step = j.solve(f)
            except (ZeroDivisionError, InexactValue, ValueError):
                return None
            change = [_exact_fraction(step[k, 0].mid()) for k in range(len(current))]
            current = [c - d for c, d in zip(current, change, strict=True)]
            scale = max(Fraction(1), *(abs(c) for c in current))
            if scale > 1000:  # diverged (an ill-conditioned root): no box here
                return None
            if max(abs(d) for d in change) < scale / 10**60:
                break
    for width in (Fraction(1, 10**30), Fraction(1, 10**20), Fraction(1, 10**12)):
        box = []
        for value in current:
            centre = _round(value, down=True)
            radius = width * max(Fraction(1), abs(centre))
            box.append(Enclosure(_round(centre - radius, True), _round(centre + radius, False)))
        ok, _ = krawczyk(spec, point, unknowns, box)
        if ok:
            return tuple(box)
    return None


# ----------------------------------------------------------------------------------------
# Exact lattice witnesses for fixed-label outputs (hard labels, classes, fixed targets):
# a few input sites, the output layer on the log lattice (every logit k*ln(beta), or
# (k/2)*ln(beta) for tanh), so that each (site, label) pair adds an exact rational vector
# to the output layer's gradient; the multiplicities of the pairs then solve a small
# linear system A n = b over the non-negative integers (sum of counts = M, or the counts
# of each fixed label). Witnesses with repeated inputs, so never for ``generic``.


def _pair_vector(spec: Spec, parameters: Parameters, x: tuple[Any, ...], label: Any,
                 unknowns: Sequence[Coordinate]) -> tuple[list[Any], list[list[Any]]] | None:
    """One sample's gradient, exactly: the zero-queried output-layer entries, and the
    entries of each block the query wants nonzero."""
    shapes = spec.network.parameter_shapes()
    try:
        evaluation = evaluate(spec.network, spec.loss, spec.conventions, parameters, (x,),
                              (label,), _lattice())
        gradients = evaluation.gradients
        zero = [Fraction(entry_at(gradients[name], index)) for name, index in unknowns]
    except (InexactValue, TypeError, ValueError, ZeroDivisionError):
        return None
    nonzero = [[entry_at(gradients[target.block], index) for index in target.indices(shapes)]
               for target in spec.query.nonzero]
    return zero, nonzero


def _labels(spec: Spec, samples: int) -> tuple[list[Any], dict[Any, int] | None] | None:
    """The labels a site may take, and their required counts (fixed Y) or None (free)."""
    outputs = spec.network.outputs
    if spec.targets is TargetKind.CLASS:
        if "Y" not in spec.fixed:
            return [Fraction(k) for k in range(outputs)], None
        fixed = [spec.fixed_value("Y", (m,)) for m in range(samples)]
    else:
        if "Y" not in spec.fixed:
            if spec.targets is not TargetKind.BINARY:
                return None
            choices = list(itertools.product((Fraction(0), Fraction(1)), repeat=outputs))
            return [tuple(c) for c in choices], None
        fixed = [tuple(spec.fixed_value("Y", (m, k)) for k in range(outputs))
                 for m in range(samples)]
    if any(v is None or (isinstance(v, tuple) and None in v) for v in fixed):
        return None
    counts: dict[Any, int] = {}
    for value in fixed:
        counts[value] = counts.get(value, 0) + 1
    return list(counts), counts


def _rays(columns: list[list[Fraction]], limit: int) -> list[list[int]]:
    """Primitive non-negative integer vectors n, each on a minimal set of columns, with
    sum_j n_j columns[j] = 0 (at most ``limit`` column subsets per size, fixed order)."""
    from smtgrad.methods.rank import solve_linear

    rows = len(columns[0]) if columns else 0
    width = len(columns)
    rays: list[list[int]] = []
    for size in range(2, min(width, rows + 1) + 1):
        for subset in itertools.islice(itertools.combinations(range(width), size), limit):
            matrix = [[columns[j][r] for j in subset] for r in range(rows)]
            # A positive combination needs both signs (or none) in every equation.
            if any((min(row) >= 0 and max(row) > 0) or (max(row) <= 0 and min(row) < 0)
                   for row in matrix):
                continue
            solved = solve_linear(matrix, [Fraction(0)] * rows, size)
            if solved is None or len(solved[1]) != 1:
                continue
            vector = solved[1][0]
            if all(v <= 0 for v in vector):
                vector = [-v for v in vector]
            if not all(v > 0 for v in vector):
                continue
            denominator = math.lcm(*(v.denominator for v in vector))
            integers = [int(v * denominator) for v in vector]
            divisor = math.gcd(*integers)
            ray = [0] * width
            for j, v in zip(subset, integers, strict=True):
                ray[j] = v // divisor
            if ray not in rays:
                rays.append(ray)
    return rays


def _counts(columns: list[list[Fraction]], total: int, limit: int,
            accept: Callable[[list[int]], bool]) -> list[int] | None:
    """Non-negative integer multiplicities n with sum_j n_j columns[j] = 0 and sum n = total
    that ``accept`` takes: a combination of the rays of :func:`_rays` (each tried as the
    one that must be there, the others filling up to ``total``)."""
    rays = [ray for ray in _rays(columns, limit) if sum(ray) <= total]
    if not rays:
        return None
    sizes = [sum(ray) for ray in rays]
    for first, ray in enumerate(rays):
        # Fill the rest with multiples of rays: reachable totals by dynamic programming.
        rest = total - sizes[first]
        reach: dict[int, list[int]] = {0: []}
        for value in range(1, rest + 1):
            for index, size in enumerate(sizes):
                if size <= value and value - size in reach:
                    reach[value] = [*reach[value - size], index]
                    break
        if rest not in reach:
            continue
        counts = list(ray)
        for index in reach[rest]:
            counts = [c + r for c, r in zip(counts, rays[index], strict=True)]
        if accept(counts):
            return counts
    return None


def lattice_sites(spec: Spec, samples: int, base: Fraction, seed: int = 0
                  ) -> Iterator[Point | None]:
    """Exact candidates (one item per draw, None for a miss): sites and labels with
    multiplicities that zero the output layer's gradient exactly on the log lattice."""
    unknowns = top_unknowns(spec)
    labels = _labels(spec, samples)
    network = spec.network
    if (unknowns is None or labels is None or spec.generic or "X" in spec.fixed
            or network.layers[-1].activation.identity):
        return
    choices, required = labels
    last = network.depth
    rng = random.Random(seed + 2)
    shape = network.parameter_shapes()[f"W{last}"]
    for number, candidate in enumerate(draws(spec, samples, base, seed + 3)):
        sites_wanted = 3 + number % max(2, len(unknowns) - 1)
        rows = list(dict.fromkeys(
            tuple(Fraction(rng.randint(-3, 3)) for _ in range(network.inputs))
            for _ in range(sites_wanted)))
        weights = [candidate.fixed[f"W{i}"] for i in range(1, last)]
        biases = [candidate.fixed[f"b{i}"] for i in range(1, last)]
        placeholder = Parameters((*weights, tuple((Fraction(0),) * shape[1]
                                                  for _ in range(shape[0]))),
                                 (*biases, (Fraction(0),) * shape[0]))
        try:
            features = [[Fraction(v) for v in evaluate(
                network, spec.loss, spec.conventions, placeholder, (x,),
                ((Fraction(0),) if spec.targets is TargetKind.CLASS
                 else ((Fraction(0),) * network.outputs,)),
                _lattice()).computed_activations[-2][0]] for x in rows]
        except (InexactValue, TypeError, ValueError, ZeroDivisionError):
            yield None
            continue
        top = _lattice_top(spec, features, base, rng)
        if top is None:
            yield None
            continue
        top_weights, top_biases = top
        parameters = Parameters((*weights, top_weights), (*biases, top_biases))
        pairs = [(x, label) for x in rows for label in choices]
        vectors = [_pair_vector(spec, parameters, x, label, unknowns) for x, label in pairs]
        if any(v is None for v in vectors):
            yield None
            continue
        columns = [v[0] for v in vectors if v is not None]
        lower = [v[1] for v in vectors if v is not None]
        if required is not None:  # each fixed label's count: sum over its pairs
            order = list(required)
            total = samples

        def alive(counts: list[int], lower: list[list[list[Any]]] = lower) -> bool:
            """Every block the query wants nonzero has a nonzero entry (exactly)."""
            for block in range(len(spec.query.nonzero)):
                entries = zip(*(lower[j][block] for j in range(len(counts)) if counts[j]),
                              strict=True)
                weighted = [sum((c * v for c, v in zip(
                    (n for n in counts if n), entry, strict=True)), start=Fraction(0))
                    for entry in entries]
                if all(_is_zero(v) for v in weighted):
                    return False
            return True

        if required is not None:
            # Fixed labels: the counts of each label are given; as homogeneous equations,
            # count_y * (sum of all n) - total * (sum of the n of label y) = 0.
            columns = [[*v, *(Fraction(required[y] - (total if label == y else 0))
                              for y in order)]
                       for v, (_, label) in zip(columns, pairs, strict=True)]
        counts = _counts(columns, samples, 60, alive)
        if counts is None:
            yield None
            continue
        inputs: list[tuple[Any, ...]] = []
        targets: list[Any] = []
        if required is None:
            for (x, label), count in zip(pairs, counts, strict=True):
                inputs += [x] * count
                targets += [label] * count
        else:
            pools: dict[Any, list[tuple[Any, ...]]] = {}
            for (x, label), count in zip(pairs, counts, strict=True):
                pools.setdefault(label, []).extend([x] * count)
            fixed_labels = [spec.fixed_value("Y", (m,)) if spec.targets is TargetKind.CLASS
                            else tuple(spec.fixed_value("Y", (m, k))
                                       for k in range(network.outputs))
                            for m in range(samples)]
            for label in fixed_labels:
                inputs.append(pools[label].pop())
                targets.append(label)
        yield Point(parameters, tuple(inputs), tuple(targets))


def _is_zero(value: Any) -> bool:
    """Exactly zero (a Fraction or a closed form; an undecidable value counts as zero)."""
    try:
        return bool(value == 0)
    except (InexactValue, TypeError):
        return True


def _lattice() -> Any:
    from smtgrad.numbers.lognum import LatticeFunctions

    return LatticeFunctions(None)


def _lattice_top(spec: Spec, features: list[list[Fraction]], base: Fraction,
                 rng: random.Random) -> tuple[Any, Any] | None:
    """Output weights and biases q * ln(beta) (fixed entries kept) with every logit of the
    given hidden features on the lattice (k, or k/2 for tanh) within 4 steps of 0."""
    network = spec.network
    last = network.depth
    shape = network.parameter_shapes()[f"W{last}"]
    scale = [math.lcm(*(f[j].denominator for f in features)) for j in range(shape[1])]
    if max(scale, default=1) > 12:
        return None
    unit = Fraction(1, 2) if network.layers[-1].activation.name == "tanh" else Fraction(1)

    def multiplier(name: str, index: tuple[int, ...], factor: int) -> Any:
        known = spec.fixed_value(name, index)
        if known is not None:
            return known
        k = rng.choice((-3, -2, -1, 1, 2, 3)) if name.startswith("W") else rng.randint(-3, 3)
        return k * factor * unit

    for _ in range(20):
        q_weights = [[multiplier(f"W{last}", (k, j), scale[j]) for j in range(shape[1])]
                     for k in range(shape[0])]
        q_biases = [multiplier(f"b{last}", (k,), 1) for k in range(shape[0])]
        if all(isinstance(v, Fraction | int) for row in q_weights for v in row) and all(
                isinstance(v, Fraction | int) for v in q_biases) and all(
                abs(sum((w * a for w, a in zip(row, f, strict=True)), start=b)) <= 4
                for f in features for row, b in zip(q_weights, q_biases, strict=True)):
            weights = tuple(tuple(LogNumber((0, q), base) if q else Fraction(0) for q in row)
                            for row in q_weights)
            biases = tuple(LogNumber((0, q), base) if q else Fraction(0) for q in q_biases)
            return weights, biases
    return None


def lattice_residuals(spec: Spec, samples: int, base: Fraction, seed: int = 0
                      ) -> Iterator[Point | None]:
    """Exact candidates for free targets (real, or unit-interval soft labels) and a smooth
    output: the output layer on the log lattice makes every prediction rational, each
    sample's gradient is linear in its residual, and a residual vector in the null space
    of the zero-queried entries (the rank criterion) gives the targets, scaled into their
    domain. One item per draw (None for a miss)."""
    from smtgrad.methods.rank import solve_linear

    unknowns = top_unknowns(spec)
    network = spec.network
    if (unknowns is None or "Y" in spec.fixed or network.layers[-1].activation.identity
            or spec.targets not in (TargetKind.REAL, TargetKind.UNIT_INTERVAL)
            or network.layers[-1].activation.vector):
        return
    last = network.depth
    outputs = network.outputs
    shapes = network.parameter_shapes()
    rng = random.Random(seed + 4)
    zeros = tuple((Fraction(0),) * outputs for _ in range(samples))
    for candidate in draws(spec, samples, base, seed + 5):
        inputs = candidate.fixed["X"]
        weights = [candidate.fixed[f"W{i}"] for i in range(1, last)]
        biases = [candidate.fixed[f"b{i}"] for i in range(1, last)]
        shape = shapes[f"W{last}"]
        placeholder = Parameters((*weights, tuple((Fraction(0),) * shape[1]
                                                  for _ in range(shape[0]))),
                                 (*biases, (Fraction(0),) * shape[0]))
        try:
            hidden = evaluate(network, spec.loss, spec.conventions, placeholder, inputs, zeros,
                              _lattice()).computed_activations[-2]
            features = [[Fraction(v) for v in row] for row in hidden]
        except (InexactValue, TypeError, ValueError, ZeroDivisionError):
            yield None
            continue
        top = _lattice_top(spec, features, base, rng)
        if top is None:
            yield None
            continue
        parameters = Parameters((*weights, top[0]), (*biases, top[1]))
        try:
            predictions = [[Fraction(v) for v in row] for row in evaluate(
                network, spec.loss, spec.conventions, parameters, inputs, zeros,
                _lattice()).predictions]
        except (InexactValue, TypeError, ValueError, ZeroDivisionError):
            yield None
            continue
        # Each (sample, output) residual of 1: its gradient, exactly.
        columns, lower = [], []
        for m in range(samples):
            for k in range(outputs):
                target = tuple(p - (1 if j == k else 0) for j, p in enumerate(predictions[m]))
                vector = _pair_vector(spec, parameters, inputs[m], target, unknowns)
                if vector is None:
                    break
                columns.append(vector[0])
                lower.append(vector[1])
            else:
                continue
            break
        else:
            rows = [[columns[c][r] for c in range(len(columns))] for r in range(len(unknowns))]
            solved = solve_linear(rows, [Fraction(0)] * len(unknowns), len(columns))
            if solved is None or not solved[1]:
                yield None
                continue
            residual = [Fraction(0)] * len(columns)
            for basis in solved[1]:
                weight = Fraction(rng.randint(1, 3))
                residual = [r + weight * v for r, v in zip(residual, basis, strict=True)]
            alive = all(any(not _is_zero(sum((r * lower[c][block][e]
                                              for c, r in enumerate(residual) if r),
                                             start=Fraction(0)))
                            for e in range(len(lower[0][block])))
                        for block in range(len(spec.query.nonzero)))
            if not alive:
                yield None
                continue
            point = _targets_from(spec, parameters, inputs, predictions, residual)
            yield point
            continue
        yield None


def _targets_from(spec: Spec, parameters: Parameters, inputs: tuple[Any, ...],
                  predictions: list[list[Fraction]], residual: list[Fraction]) -> Point | None:
    """Targets y = yhat - t * r (the residuals scaled by t = 2^-k into the target domain).

    The per-sample gradients were computed for a residual of 1 through the loss's own
    dL/dz, which is linear in y for MSE and BCE, so y = yhat - t * r has gradient t times
    the combination: zero stays zero, nonzero stays nonzero."""
    outputs = spec.network.outputs
    scale = Fraction(1)
    for _ in range(40):
        targets = tuple(tuple(predictions[m][k] - scale * residual[m * outputs + k]
                              for k in range(outputs)) for m in range(len(inputs)))
        if spec.targets is TargetKind.REAL or all(0 <= y <= 1 for row in targets for y in row):
            return Point(parameters, inputs, targets)
        scale /= 2
    return None
