"""Smooth networks at research size (issue 14): the top-layer solve, exact lattice sites
and residuals, the Krawczyk test with identically-zero equations, and the table rows."""

from __future__ import annotations

import dataclasses
import math
import random
from fractions import Fraction
from pathlib import Path

import mpmath
import pytest

from smtgrad import api
from smtgrad.engine import SolveOptions, solve
from smtgrad.methods import concretize
from smtgrad.reference.intervals import Enclosure, krawczyk
from smtgrad.reference.verify import Status, verify
from smtgrad.reference.witness import Witness
from smtgrad.spec import LossKind, Verdict, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent


def spec_text(layers: str, loss: str, targets: str, samples: str, inputs: int = 1,
              extra: str = "") -> str:
    return (f"network: {{inputs: {inputs}, layers: [{layers}]}}\nloss: {loss}\n"
            f"targets: {targets}\nsamples: {samples}\n"
            f"query: {{zero: [W2, b2], nonzero: [W1, b1]}}\n{extra}")


RELU_SIGMOID = "{units: 1, activation: relu}, {units: 1, activation: sigmoid}"
SOFTMAX_HIDDEN = "{units: 2, activation: relu}, {units: 3, activation: softmax}"

#: The rows of the issue's table: (YAML, --minimal, M of the answer, certificate).
ROWS = {
    "hard --minimal": (spec_text(RELU_SIGMOID, "bce", "binary", "{min: 1, max: 10}"), True,
                       3, "enclosure"),
    "hard M=10": (spec_text(RELU_SIGMOID, "bce", "binary", "10"), False, 10, "exact"),
    "tanh 2-3-1": (spec_text("{units: 3, activation: tanh}, {units: 1, activation: linear}",
                             "mse", "real", "4", inputs=2), False, 4, "exact"),
    "tanh 2-3-1 generic": (spec_text(
        "{units: 3, activation: tanh}, {units: 1, activation: linear}", "mse", "real", "4",
        inputs=2, extra="generic: true\n"), False, 4, "exact"),
    "sigmoid-sigmoid": (spec_text(
        "{units: 1, activation: sigmoid}, {units: 1, activation: sigmoid}", "bce", "binary",
        "3"), False, 3, "enclosure"),
    "softmax M=10": (spec_text(SOFTMAX_HIDDEN, "cross_entropy", "class", "10"), False, 10,
                     "enclosure"),
}


def recheck_80(spec_yaml: str, witness: Witness) -> tuple[float, float]:
    """An independent 80-digit pass (mpmath, our own backprop) at the box midpoints: the
    largest zero-queried and the smallest nonzero-queried block magnitude."""
    mp = mpmath.mp
    mp.dps = 80
    spec = parse_spec(spec_yaml)

    def value(v: object) -> mpmath.mpf:
        if isinstance(v, Enclosure):
            return (mp.mpf(v.lo.numerator) / v.lo.denominator
                    + mp.mpf(v.hi.numerator) / v.hi.denominator) / 2
        if isinstance(v, Fraction | int):
            return mp.mpf(Fraction(v).numerator) / Fraction(v).denominator
        import sympy  # a closed form such as "3*log(2)/2", read independently

        return mp.mpf(str(sympy.sympify(str(v)).evalf(100)))

    layers = spec.network.layers
    W = [[[value(v) for v in row] for row in m] for m in witness.parameters.weights]
    b = [[value(v) for v in vec] for vec in witness.parameters.biases]
    grads = {f"W{i + 1}": [[mp.mpf(0)] * len(W[i][0]) for _ in W[i]] for i in range(len(W))}
    grads.update({f"b{i + 1}": [mp.mpf(0)] * len(b[i]) for i in range(len(b))})
    for m, x in enumerate(witness.inputs):
        values, slopes = [[value(v) for v in x]], []
        for i, layer in enumerate(layers):
            u = [sum((W[i][j][k] * values[-1][k] for k in range(len(values[-1]))), b[i][j])
                 for j in range(len(b[i]))]
            name = layer.activation.name
            if name == "softmax":
                e = [mp.exp(v) for v in u]
                values.append([v / sum(e) for v in e])
                slopes.append(None)
            elif name == "relu":
                values.append([v if v > 0 else mp.mpf(0) for v in u])
                slopes.append([1 if v > 0 else 0 for v in u])
            elif name == "sigmoid":
                s = [1 / (1 + mp.exp(-v)) for v in u]
                values.append(s)
                slopes.append([v * (1 - v) for v in s])
            elif name == "tanh":
                t = [mp.tanh(v) for v in u]
                values.append(t)
                slopes.append([1 - v * v for v in t])
            else:
                values.append(u)
                slopes.append([1] * len(u))
        out = values[-1]
        y = witness.targets[m]
        if spec.loss.kind is LossKind.CROSS_ENTROPY:
            delta = [out[k] - (1 if k == int(y) else 0) for k in range(len(out))]
        elif spec.loss.kind is LossKind.BCE:
            delta = [out[k] - value(y[k]) for k in range(len(out))]
        else:
            delta = [2 * (out[k] - value(y[k])) * slopes[-1][k] for k in range(len(out))]
        for i in range(len(layers) - 1, -1, -1):
            for j in range(len(delta)):
                grads[f"b{i + 1}"][j] += delta[j]
                for k in range(len(values[i])):
                    grads[f"W{i + 1}"][j][k] += delta[j] * values[i][k]
            if i:
                delta = [sum(W[i][j][k] * delta[j] for j in range(len(delta)))
                         * slopes[i - 1][k] for k in range(len(values[i]))]

    def size(name: str) -> list[mpmath.mpf]:
        block = grads[name]
        return [abs(v) for row in block for v in (row if isinstance(row, list) else [row])]

    zero = max(max(size(t.block)) for t in spec.query.zero)
    nonzero = min(max(size(t.block)) for t in spec.query.nonzero)
    return float(zero), float(nonzero)


@pytest.mark.parametrize("row", list(ROWS))
def test_table_rows_have_verified_witnesses(row: str) -> None:
    text, minimal, samples, certificate = ROWS[row]
    spec = parse_spec(text)
    result = solve(spec, SolveOptions(minimal=minimal, timeout=60))
    assert result.verdict is Verdict.SAT
    assert result.samples == samples
    assert result.certificate == certificate
    # Generous bound (shared, loaded machines); the budgets are draws, not seconds.
    assert result.seconds < 10
    assert result.witness is not None
    assert api.check(text, result.witness).holds is True
    zero, nonzero = recheck_80(text, result.witness)
    assert zero < 1e-25 and nonzero > 1e-12
    if minimal:
        assert [(a.samples, a.verdict) for a in result.attempts][:2] == [
            (1, Verdict.UNSAT), (2, Verdict.UNSAT)]


def test_softmax_hidden_layer_minimal_m_with_proofs_below() -> None:
    spec = load_spec(ROOT / "specs" / "softmax_hidden_ce.yaml")
    result = solve(spec, SolveOptions(minimal=True, timeout=120))
    assert result.verdict is Verdict.SAT and result.samples == 4
    assert [(a.samples, a.verdict) for a in result.attempts] == [
        (1, Verdict.UNSAT), (2, Verdict.UNSAT), (3, Verdict.UNSAT), (4, Verdict.SAT)]


def test_tanh_output_plus_minus_one_targets() -> None:
    spec = load_spec(ROOT / "specs" / "tanh_output_pm1.yaml")
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT and result.witness is not None
    assert [row[0] for row in result.witness.targets] == [1, -1, 1, -1, 1, -1]


def test_same_spec_same_witness() -> None:
    """Budgets are draws with fixed seeds: two solves give the same witness."""
    text = ROWS["softmax M=10"][0]
    first = solve(parse_spec(text), SolveOptions(timeout=60))
    second = solve(parse_spec(text), SolveOptions(timeout=60))
    assert first.witness == second.witness


def test_exact_lattice_sites_witness_is_exact_and_a_mutation_is_refuted() -> None:
    text = ROWS["hard M=10"][0]
    spec = parse_spec(text).with_samples(10)
    point = next(p for p in concretize.lattice_sites(spec, 10, Fraction(2)) if p is not None)
    witness = Witness(point.parameters, point.inputs, point.targets)
    assert verify(spec, witness).status is Status.HOLDS
    # Flip one label: the output layer's gradient is no longer zero (exactly refuted).
    flipped = list(witness.targets)
    flipped[0] = (1 - flipped[0][0],)
    assert verify(spec, dataclasses.replace(witness, targets=tuple(flipped))).status is \
        Status.FAILS


def test_lattice_residuals_give_exact_soft_labels() -> None:
    spec = parse_spec(spec_text(RELU_SIGMOID, "bce", "unit_interval", "5")).with_samples(5)
    point = next(p for p in concretize.lattice_residuals(spec, 5, Fraction(2))
                 if p is not None)
    assert all(isinstance(y, Fraction) and 0 <= y <= 1 for row in point.targets for y in row)
    witness = Witness(point.parameters, point.inputs, point.targets)
    assert verify(spec, witness).status is Status.HOLDS


@pytest.mark.parametrize("kind", [(LossKind.BCE, "sigmoid"), (LossKind.CROSS_ENTROPY,
                                                               "softmax"),
                                  (LossKind.MSE, "tanh"), (LossKind.MSE, "sigmoid"),
                                  (LossKind.MSE, "linear")])
def test_top_layer_derivatives_match_finite_differences(kind: tuple[LossKind, str]) -> None:
    """dL/dz and its Jacobian in the Newton solve agree with central differences of the
    loss itself (written independently here), on random points: a wrong formula fails."""
    rng = random.Random(7)
    classes = 3 if kind[1] == "softmax" else 2

    def loss(z: list[float], y: object) -> float:
        if kind[0] is LossKind.CROSS_ENTROPY:
            return -z[int(y)] + math.log(sum(math.exp(v) for v in z))  # type: ignore[arg-type]
        total = 0.0
        for v, t in zip(z, y, strict=True):  # type: ignore[call-overload]
            h = {"sigmoid": 1 / (1 + math.exp(-v)), "tanh": math.tanh(v), "linear": v}[kind[1]]
            total += (-(t * math.log(h) + (1 - t) * math.log(1 - h)) if kind[0] is LossKind.BCE
                      else (h - t) ** 2 / 2)
        return total

    for _ in range(20):
        z = [rng.uniform(-2, 2) for _ in range(classes)]
        y: object = (rng.randrange(classes) if kind[0] is LossKind.CROSS_ENTROPY
                     else [rng.uniform(0.1, 0.9) for _ in range(classes)])
        delta, jac = concretize._delta(kind, z, y)
        h = 1e-5
        for k in range(classes):
            up, down = list(z), list(z)
            up[k] += h
            down[k] -= h
            numeric = (loss(up, y) - loss(down, y)) / (2 * h)
            assert delta[k] == pytest.approx(numeric, rel=1e-5, abs=1e-7)
            d_up = concretize._delta(kind, up, y)[0]
            d_down = concretize._delta(kind, down, y)[0]
            for j in range(classes):
                assert jac[j][k] == pytest.approx((d_up[j] - d_down[j]) / (2 * h), rel=1e-4,
                                                  abs=1e-6)


def _softmax_dead_unit_witness() -> tuple[object, Witness]:
    spec = load_spec(ROOT / "specs" / "softmax_hidden_ce.yaml").with_samples(4)
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT and result.witness is not None
    return spec, result.witness


def test_krawczyk_drops_only_equations_that_are_exactly_zero_on_the_box() -> None:
    spec, witness = _softmax_dead_unit_witness()
    enclosed = [(name, index) for name in ("W2", "b2")
                for index, value in _entries(witness.parameters.block(name))
                if isinstance(value, Enclosure)]
    assert enclosed, "the softmax witness should be an enclosure"
    from smtgrad.reference.intervals import Point

    point = Point(witness.parameters, witness.inputs, witness.targets)
    box = [_at(witness.parameters.block(c[0]), c[1]) for c in enclosed]
    assert krawczyk(spec, point, enclosed, box)[0]  # type: ignore[arg-type]
    # Shift one box off the root: the test must fail (no zero inside).
    shifted = list(box)
    width = shifted[0].hi - shifted[0].lo
    shifted[0] = Enclosure(shifted[0].lo + 1000 * width, shifted[0].hi + 1000 * width)
    assert not krawczyk(spec, point, enclosed, shifted)[0]  # type: ignore[arg-type]
    # One unknown fewer: the square system is gone, the test refuses.
    assert not krawczyk(spec, point, enclosed[1:], box[1:])[0]  # type: ignore[arg-type]


def _entries(block: tuple) -> list[tuple[tuple[int, ...], object]]:
    if block and isinstance(block[0], tuple):
        return [((j, i), v) for j, row in enumerate(block) for i, v in enumerate(row)]
    return [((j,), v) for j, v in enumerate(block)]


def _at(block: tuple, index: tuple[int, ...]) -> Enclosure:
    value = block
    for position in index:
        value = value[position]
    assert isinstance(value, Enclosure)
    return value


def test_a_live_equation_is_never_dropped() -> None:
    """Dropping is only for exact zeros: a witness whose hidden unit is alive on one
    sample keeps that unit's equations (shifting its output weight breaks the test)."""
    spec, witness = _softmax_dead_unit_witness()
    evaluation = verify(spec, witness).evaluation
    assert evaluation is not None
    hidden = evaluation.activations[0]
    alive = [j for j in range(2) if any(row[j] != 0 for row in hidden)]
    assert alive
    from smtgrad.reference.intervals import Point

    point = Point(witness.parameters, witness.inputs, witness.targets)
    enclosed = [(name, index) for name in ("W2", "b2")
                for index, value in _entries(witness.parameters.block(name))
                if isinstance(value, Enclosure)]
    box = [_at(witness.parameters.block(c[0]), c[1]) for c in enclosed]
    j = alive[0]
    position = next(n for n, c in enumerate(enclosed) if c[0] == "W2" and c[1][1] == j)
    moved = list(box)
    moved[position] = Enclosure(box[position].lo + Fraction(1, 100),
                                box[position].hi + Fraction(1, 100))
    assert not krawczyk(spec, point, enclosed, moved)[0]  # type: ignore[arg-type]


def test_copied_hidden_units_share_their_equations_exactly() -> None:
    """Two sigmoid hidden units with the same incoming row: the output weight of the copy
    has its original's equation (dropped from the square system); a copy that differs in
    the last digit is no copy, and the test then refuses the non-square system."""
    text = spec_text("{units: 2, activation: sigmoid}, {units: 1, activation: sigmoid}",
                     "bce", "binary", "3")
    spec = parse_spec(text)
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT and result.witness is not None
    witness = result.witness
    rows = [(*witness.parameters.weights[0][j], witness.parameters.biases[0][j])
            for j in range(2)]
    assert rows[0] == rows[1]
    from smtgrad.reference.intervals import Point

    enclosed = [(name, index) for name in ("W2", "b2")
                for index, value in _entries(witness.parameters.block(name))
                if isinstance(value, Enclosure)]
    box = [_at(witness.parameters.block(c[0]), c[1]) for c in enclosed]
    point = Point(witness.parameters, witness.inputs, witness.targets)
    assert krawczyk(spec, point, enclosed, box)[0]
    weights = witness.parameters.weights
    nudged = ((weights[0][0], (weights[0][1][0] + Fraction(1, 10**30),)), *weights[1:])
    moved = dataclasses.replace(point, parameters=dataclasses.replace(
        point.parameters, weights=nudged))
    assert not krawczyk(spec, moved, enclosed, box)[0]


# -- abstraction facts, against rigorous balls ---------------------------------------------


def _balls() -> tuple[object, object]:
    import flint

    return flint, flint.arb


@pytest.mark.parametrize(("name", "lipschitz"), [("sigmoid", Fraction(1, 4)),
                                                 ("tanh", Fraction(1))])
def test_secant_slopes_are_bounded_by_the_lipschitz_constant(name: str,
                                                             lipschitz: Fraction) -> None:
    """The abstraction's fact f(v) - f(w) <= L (v - w) for v >= w, at 400 random pairs and
    around 0 (where the slope is largest), decided by arb balls; L a little smaller fails."""
    flint, arb = _balls()
    rng = random.Random(11)

    def f(x: Fraction) -> object:
        ball = arb(x.numerator) / x.denominator
        return 1 / (1 + (-ball).exp()) if name == "sigmoid" else ball.tanh()

    pairs = [(Fraction(rng.randint(-400, 400), 37), Fraction(rng.randint(-400, 400), 41))
             for _ in range(400)]
    pairs += [(Fraction(1, 10**k), Fraction(-1, 10**k)) for k in range(1, 6)]
    smaller = lipschitz * Fraction(99, 100)
    broken = False
    with flint.ctx.workprec(200):
        for v, w in pairs:
            v, w = max(v, w), min(v, w)
            gap = arb(v.numerator) / v.denominator - arb(w.numerator) / w.denominator
            rise = f(v) - f(w)
            assert rise <= arb(lipschitz.numerator) / lipschitz.denominator * gap or v == w
            broken |= bool(rise > arb(smaller.numerator) / smaller.denominator * gap)
    assert broken  # the bound is tight: the test can fail


def test_softmax_is_a_monotone_map() -> None:
    """(softmax(z) - softmax(w)) . (z - w) >= 0 (softmax is the gradient of the convex
    log-sum-exp), at 300 random pairs of logit vectors, by arb balls; the reversed
    inequality fails somewhere (the test can fail)."""
    flint, arb = _balls()
    rng = random.Random(5)

    def softmax(z: list[object]) -> list[object]:
        exps = [v.exp() for v in z]  # type: ignore[attr-defined]
        total = sum(exps[1:], exps[0])
        return [e / total for e in exps]

    strictly = 0
    with flint.ctx.workprec(200):
        for _ in range(300):
            classes = rng.choice((2, 3, 4))
            z = [arb(rng.randint(-60, 60)) / 7 for _ in range(classes)]
            w = [arb(rng.randint(-60, 60)) / 11 for _ in range(classes)]
            p, q = softmax(z), softmax(w)
            inner = sum(((a - b) * (c - d) for a, b, c, d in zip(p, q, z, w, strict=True)),
                        arb(0))
            assert inner >= 0
            strictly += bool(inner > 0)
    assert strictly > 250


def test_strong_softmax_abstraction_admits_a_true_witness() -> None:
    """The strong abstraction (with the monotone-map facts between samples), every
    parameter, input and label pinned to an exact witness of specs/softmax_stationary.yaml:
    still satisfiable (a false fact would cut the true softmax values off)."""
    from pysmt.shortcuts import And, Equals, Real

    from smtgrad.backends import SolverStatus, get_backend
    from smtgrad.encoding.builder import encode
    from smtgrad.encoding.environment import private_environment
    from smtgrad.encoding.modes import Mode, ModeKind

    spec = load_spec(ROOT / "specs" / "softmax_stationary.yaml")
    result = solve(spec, SolveOptions(timeout=60))
    assert result.verdict is Verdict.SAT and result.witness is not None
    witness = result.witness
    with private_environment():
        encoding = encode(spec, 3, Mode(ModeKind.ABSTRACT, strong=True))
        pins = []
        for name in spec.network.parameter_shapes():
            for term, value in zip(_flat(encoding.parameters[name]),
                                   _flat(witness.parameters.block(name)), strict=True):
                if isinstance(value, Fraction | int) and not isinstance(term, Fraction | int):
                    pins.append(Equals(term, Real(Fraction(value))))
        answer = get_backend("z3").solve(And([encoding.formula(), *pins]), 60)
    assert answer.status is SolverStatus.SAT


def _flat(array: object) -> list[object]:
    if isinstance(array, tuple | list):
        return [item for part in array for item in _flat(part)]
    return [array]
