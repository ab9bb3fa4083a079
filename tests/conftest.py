"""Shared fixtures of the core test suite.

Besides paths and small factories, this file holds :class:`Reference`, an
independent re-implementation of the forward pass, the losses and
backpropagation, written from the mathematics (DESIGN section 2) and not from
:mod:`smtgrad.reference.network`. It runs over three number "kits": exact Fractions,
exact sympy numbers (for log-lattice witnesses such as ``3*log(2)``) and
mpmath at 80 significant digits. Tests use it to re-check witnesses that
smtgrad reports, without trusting smtgrad's own arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import pytest
import sympy

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SEED_SPEC = SPECS / "relu_mse.yaml"

#: The accepted answer's hand-found witness for specs/relu_mse.yaml (DESIGN section 1).
HAND_WITNESS_JSON: dict[str, Any] = {
    "W1": [["1"]], "b1": ["-1"], "W2": [["1"]], "b2": ["-1"],
    "X": [["0"], ["2"], ["3"]], "Y": [["-2"], ["2"], ["0"]],
}

DIGITS = 80

def network_yaml(*layers: str, inputs: int = 1) -> str:
    """The ``network:`` block of a spec; each layer as "units activation[ key=value]"
    (``"1 relu"``, ``"1 leaky_relu slope=1/10"``), in flow style as the specs write it."""
    rows = []
    for layer in layers:
        units, activation, *options = layer.split()
        extra = "".join(f", {key}: {value}" for key, value in
                        (option.split("=") for option in options))
        rows.append(f"    - {{units: {units}, activation: {activation}{extra}}}\n")
    return f"network:\n  inputs: {inputs}\n  layers:\n{''.join(rows)}"


#: The seed question as inline YAML: a 1-1-1 network (relu hidden unit, linear output),
#: MSE, 3 samples: dL/dW2 = dL/db2 = 0 while dL/dW1, dL/db1 != 0 (the fixture
#: ``seed_spec_text``). Tests derive variants with ``str.replace`` or by appending keys.
SEED_SPEC_TEXT = """\
name: seed
""" + network_yaml("1 relu", "1 linear") + """loss: mse
samples: 3
query:
  zero: [W2, b2]
  nonzero: [W1, b1]
"""

def one_hidden(activation: str = "relu", *, units: int = 1, samples: int | None = 3,
               query: str = "{zero: [W2, b2], nonzero: [W1, b1]}", extra: str = "") -> str:
    """Spec text for a 1-``units``-1 network (``activation`` hidden, linear output), MSE:
    the family most tests vary. ``samples`` None leaves M to fixed rows; ``extra`` is
    appended (fixed values, assumptions, targets)."""
    text = SEED_SPEC_TEXT.replace("name: seed\n", "").replace(
        "{units: 1, activation: relu}", f"{{units: {units}, activation: {activation}}}")
    text = text.replace("samples: 3\n", "" if samples is None else f"samples: {samples}\n")
    head = text[:text.index("query:")]
    return f"{head}query: {query}\n{extra}"


#: A large query (2 inputs, relu 6 / abs 6 / linear 1 units, 20 fixed targets) that is far
#: from answered within the short timeouts tests give it (the fixture ``hard_spec_text``).
HARD_SPEC_TEXT = """\
name: hard
""" + network_yaml("6 relu", "6 abs", "1 linear", inputs=2) + """loss: mse
fixed:
  Y: [1, -2, 3, 5, -1, 2, 7, 4, -3, 0, 6, 1, -5, 2, 3, 8, -1, 4, 2, -2]
query:
  zero: [W3, b3, W2, b2]
  nonzero: [W1]
assume: ["loss > 0"]
"""


# ----------------------------------------------------------------------------------------
# Options and markers.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (solver runs of 10 s and more)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a solver run of 10 s or more (needs --runslow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow solver run; use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ----------------------------------------------------------------------------------------
# Small factories.


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write spec text (or bytes) to a file under tmp_path and return its path."""
    counter = iter(range(10**6))

    def write(content: str | bytes, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec_{next(counter)}.yaml")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[..., Path]:
    """Write a JSON document to a file under tmp_path and return its path."""
    counter = iter(range(10**6))

    def write(data: Any, name: str | None = None) -> Path:
        path = tmp_path / (name or f"data_{next(counter)}.json")
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write


@pytest.fixture
def runner() -> Any:
    """typer's CliRunner (stderr mixed into ``output``)."""
    from typer.testing import CliRunner

    return CliRunner()


def invoke(runner: Any, *args: str) -> Any:
    """Run ``smtgrad ARGS`` through typer's CliRunner. Every outcome must be an exit code:
    nothing escapes as an exception or a traceback."""
    from smtgrad.cli import app

    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception), result.output)
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="session")
def seed_spec_text() -> str:
    """SEED_SPEC_TEXT: the seed question as inline YAML."""
    return SEED_SPEC_TEXT


@pytest.fixture(scope="session")
def hard_spec_text() -> str:
    """HARD_SPEC_TEXT: a spec that provokes timeouts."""
    return HARD_SPEC_TEXT


@pytest.fixture(scope="session")
def solved() -> Callable[..., Any]:
    """Solve a spec once per session (same options -> same cached Result)."""
    from smtgrad.engine import SolveOptions, solve
    from smtgrad.spec import load_spec

    cache: dict[tuple[Any, ...], Any] = {}

    def run(path: str | Path, **options: Any) -> Any:
        key = (str(path), tuple(sorted(options.items())))
        if key not in cache:
            options.setdefault("timeout", 60)
            cache[key] = solve(load_spec(path), SolveOptions(**options))
        return cache[key]

    return run


# ----------------------------------------------------------------------------------------
# The independent reference computation.


class FractionKit:
    """Exact rationals; no exp/log (piecewise-linear networks with MSE only)."""

    name = "fractions"

    def const(self, value: Fraction | int) -> Any:
        return Fraction(value)

    def sign(self, value: Any) -> int:
        return (value > 0) - (value < 0)

    def exp(self, value: Any) -> Any:
        raise ValueError("exp is not rational")

    def log(self, value: Any) -> Any:
        raise ValueError("log is not rational")

    def erf(self, value: Any) -> Any:
        raise ValueError("erf is not rational")

    def sqrt(self, value: Any) -> Any:
        raise ValueError("sqrt is not rational")

    def pi(self) -> Any:
        raise ValueError("pi is not rational")

    def is_zero(self, value: Any) -> bool:
        return value == 0


class SympyKit:
    """Exact sympy numbers: rationals and polynomials in log(beta), exp folded exactly."""

    name = "sympy"

    def const(self, value: Fraction | int) -> Any:
        value = Fraction(value)
        return sympy.Rational(value.numerator, value.denominator)

    def sign(self, value: Any) -> int:
        value = sympy.expand(value)
        if value == 0:
            return 0
        number = sympy.N(value, 120)
        if abs(number) < sympy.Float(10) ** -100:
            raise AssertionError(f"cannot decide the sign of {value}")
        return 1 if number > 0 else -1

    def exp(self, value: Any) -> Any:
        return sympy.exp(sympy.expand(value))

    def log(self, value: Any) -> Any:
        return sympy.log(value)

    def erf(self, value: Any) -> Any:
        return sympy.erf(value)

    def sqrt(self, value: Any) -> Any:
        return sympy.sqrt(value)

    def pi(self) -> Any:
        return sympy.pi

    def is_zero(self, value: Any) -> bool:
        # expand() decides polynomials in log p; a value that is clearly nonzero at
        # 120 digits is not zero; only the rest pays for simplify(), which can take
        # minutes on large closed forms (2^40 * log 2 residuals).
        expanded = sympy.expand(value)
        if expanded == 0:
            return True
        if abs(sympy.N(expanded, 120)) > sympy.Float(10) ** -100:
            return False
        return bool(sympy.expand(sympy.simplify(expanded)) == 0)


class MpmathKit:
    """mpmath floats at DIGITS significant digits; |x| < 10^-(DIGITS-20) counts as 0."""

    name = "mpmath"

    def __init__(self) -> None:
        self.ctx = mpmath.mp.clone()
        self.ctx.dps = DIGITS
        self.eps = self.ctx.mpf(10) ** -(DIGITS - 20)

    def const(self, value: Any) -> Any:
        if isinstance(value, Fraction | int):
            value = Fraction(value)
            return self.ctx.mpf(value.numerator) / value.denominator
        return self.ctx.mpf(value)

    def sign(self, value: Any) -> int:
        if abs(value) < self.eps:
            return 0
        return 1 if value > 0 else -1

    def exp(self, value: Any) -> Any:
        return self.ctx.exp(value)

    def log(self, value: Any) -> Any:
        return self.ctx.log(value)

    def erf(self, value: Any) -> Any:
        return self.ctx.erf(value)

    def sqrt(self, value: Any) -> Any:
        return self.ctx.sqrt(value)

    def pi(self) -> Any:
        return +self.ctx.pi

    def is_zero(self, value: Any) -> bool:
        return abs(value) < self.eps


@dataclass
class RefEvaluation:
    predictions: list[list[Any]]
    residuals: list[list[Any]]
    loss: Any
    gradients: dict[str, Any]  # W_l: list of rows, b_l: list
    pre: list[list[list[Any]]]  # [layer][sample][unit]
    kinks: list[tuple[int, int, int]]  # (layer, sample, unit), layers from 1


class Reference:
    """Forward pass, loss and gradients from first principles.

    Conventions at kinks (DESIGN section 2 and the spec key
    ``conventions.relu_grad_at_zero``): with 0 (PyTorch) relu'(0) = 0,
    leaky_relu'(0) = slope, abs'(0) = 0, hardtanh'(+-1) = 0; with 1 the slope
    of the right (inner, for hardtanh) linear piece, i.e. 1.
    """

    def __init__(self, kit: Any) -> None:
        self.kit = kit

    def unit(self, activation: str, slope: Any, u: Any, at_kink_one: bool) -> tuple[Any, Any,
                                                                                       bool]:
        """(value, derivative, on_kink) of one unit."""
        k = self.kit
        one, zero = k.const(1), k.const(0)
        if activation == "linear":
            return u, one, False
        if activation in ("relu", "leaky_relu", "abs"):
            s = k.sign(u)
            low_slope = {"relu": zero, "leaky_relu": k.const(slope), "abs": -one}[activation]
            if s > 0:
                return u, one, False
            if s < 0:
                return low_slope * u, low_slope, False
            kink_slope = one if at_kink_one else (k.const(slope) if activation == "leaky_relu"
                                                  else zero)
            return zero * u, kink_slope, True
        if activation == "hardtanh":
            above, below = k.sign(u - one), k.sign(u + one)
            if above > 0:
                return one, zero, False
            if below < 0:
                return -one, zero, False
            if above == 0 or below == 0:
                return u, (one if at_kink_one else zero), True
            return u, one, False
        if activation == "sigmoid":
            value = one / (one + k.exp(-u))
            return value, value * (one - value), False
        if activation == "tanh":
            e = k.exp(2 * u)
            value = (e - one) / (e + one)
            return value, one - value * value, False
        if activation == "softplus":
            return k.log(one + k.exp(u)), one / (one + k.exp(-u)), False
        if activation == "elu":
            if k.sign(u) > 0:
                return u, one, False
            return k.exp(u) - one, k.exp(u), False
        if activation == "silu":
            s = one / (one + k.exp(-u))
            return u * s, s + u * s * (one - s), False
        if activation == "gelu":
            cdf = (one + k.erf(u / k.sqrt(k.const(2)))) / 2
            pdf = k.exp(-u * u / 2) / k.sqrt(2 * k.pi())
            return u * cdf, cdf + u * pdf, False
        raise ValueError(f"unknown activation {activation}")

    def evaluate(self, spec: Any, weights: Sequence[Any], biases: Sequence[Any],
                 inputs: Sequence[Sequence[Any]], targets: Sequence[Any]) -> RefEvaluation:
        """Everything for one batch; ``targets`` are rows, or class indices for softmax."""
        k = self.kit
        layers = spec.network.layers
        conv_one = spec.conventions.relu_grad_at_zero == 1
        samples = len(inputs)
        outputs = layers[-1].units
        loss_kind = spec.loss.kind.value
        if spec.loss.reduction.value == "sum":
            factor = k.const(spec.loss.scale)
        elif loss_kind == "cross_entropy":
            factor = k.const(spec.loss.scale / samples)
        else:
            factor = k.const(spec.loss.scale / (samples * outputs))

        pre: list[list[list[Any]]] = [[] for _ in layers]
        post: list[list[list[Any]]] = [[] for _ in layers]
        slopes: list[list[list[Any]]] = [[] for _ in layers]
        kinks = []
        for m in range(samples):
            a = list(inputs[m])
            for li, layer in enumerate(layers):
                w, b = weights[li], biases[li]
                u = [sum((w[j][i] * a[i] for i in range(len(a))), k.const(0)) + b[j]
                     for j in range(layer.units)]
                act = layer.activation.name
                if act == "softmax":
                    exps = [k.exp(uj) for uj in u]
                    total = sum(exps, k.const(0))
                    a = [e / total for e in exps]
                    d: list[Any] = [None] * len(u)
                else:
                    a, d = [], []
                    for j, uj in enumerate(u):
                        value, slope, kink = self.unit(act, layer.slope, uj, conv_one)
                        a.append(value)
                        d.append(slope)
                        if kink:
                            kinks.append((li + 1, m, j))
                pre[li].append(u)
                post[li].append(a)
                slopes[li].append(d)

        predictions = post[-1]
        rows = []
        for m in range(samples):
            if loss_kind == "cross_entropy":
                rows.append([k.const(1 if int(targets[m]) == c else 0) for c in range(outputs)])
            else:
                rows.append(list(targets[m]))
        residuals = [[p - t for p, t in zip(predictions[m], rows[m], strict=True)]
                     for m in range(samples)]

        total = k.const(0)
        deltas = []
        for m in range(samples):
            p, t, r = predictions[m], rows[m], residuals[m]
            if loss_kind == "mse":
                total += sum((x * x for x in r), k.const(0))
                deltas.append([2 * factor * r[j] * slopes[-1][m][j] for j in range(outputs)])
            elif loss_kind == "bce":
                for pj, tj in zip(p, t, strict=True):
                    if not k.is_zero(tj):
                        total -= tj * k.log(pj)
                    if not k.is_zero(k.const(1) - tj):
                        total -= (k.const(1) - tj) * k.log(k.const(1) - pj)
                deltas.append([factor * rj for rj in r])
            else:
                total -= k.log(p[int(targets[m])])
                deltas.append([factor * rj for rj in r])
        loss = factor * total

        gradients: dict[str, Any] = {}
        for li in range(len(layers) - 1, -1, -1):
            below = [list(x) for x in inputs] if li == 0 else post[li - 1]
            units = layers[li].units
            width = len(below[0])
            gradients[f"W{li + 1}"] = [
                [sum((deltas[m][j] * below[m][i] for m in range(samples)), k.const(0))
                 for i in range(width)] for j in range(units)]
            gradients[f"b{li + 1}"] = [sum((deltas[m][j] for m in range(samples)), k.const(0))
                                       for j in range(units)]
            if li == 0:
                break
            w = weights[li]
            deltas = [[sum((w[j][i] * deltas[m][j] for j in range(units)), k.const(0))
                       * slopes[li - 1][m][i] for i in range(width)] for m in range(samples)]
        return RefEvaluation(predictions, residuals, loss, gradients, pre, kinks)

    def loss_only(self, spec: Any, weights: Sequence[Any], biases: Sequence[Any],
                  inputs: Sequence[Sequence[Any]], targets: Sequence[Any]) -> Any:
        return self.evaluate(spec, weights, biases, inputs, targets).loss


def entries_of(shape: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Row-major indices of a 1-d or 2-d shape."""
    if len(shape) == 1:
        for j in range(shape[0]):
            yield (j,)
    else:
        for j in range(shape[0]):
            for i in range(shape[1]):
                yield (j, i)


def pick(array: Any, index: tuple[int, ...]) -> Any:
    for position in index:
        array = array[position]
    return array


def query_failures(spec: Any, gradients: dict[str, Any], is_zero: Callable[[Any], bool]
                   ) -> list[str]:
    """Which query requirements a set of gradients breaks (independent of the verifier)."""
    shapes = spec.network.parameter_shapes()
    failures = []
    for target in spec.query.zero:
        indices = [target.index] if target.index is not None else list(entries_of(
            shapes[target.block]))
        for index in indices:
            if not is_zero(pick(gradients[target.block], index)):
                failures.append(f"d{target.block}{list(index)} != 0")
    for target in spec.query.nonzero:
        indices = [target.index] if target.index is not None else list(entries_of(
            shapes[target.block]))
        if all(is_zero(pick(gradients[target.block], index)) for index in indices):
            failures.append(f"d{target} == 0")
    return failures


def parse_number(text: str, kit: Any) -> Any:
    """A number string of the JSON contract as a kit number ("[lo, hi]" -> (lo, hi) Fractions)."""
    text = text.strip()
    if text.startswith("["):
        lo, hi = (Fraction(part.strip()) for part in text[1:-1].split(","))
        return (lo, hi)
    value = sympy.sympify(text, rational=True)
    if isinstance(kit, FractionKit):
        if not isinstance(value, sympy.Rational):
            raise ValueError(f"{text!r} is not rational")
        return Fraction(int(value.p), int(value.q))
    if isinstance(kit, SympyKit):
        return value
    return kit.ctx.mpf(str(sympy.N(value, DIGITS + 10)))


def parse_array(raw: Any, kit: Any) -> Any:
    if isinstance(raw, list):
        return [parse_array(item, kit) for item in raw]
    return parse_number(raw, kit)


KITS = {"fractions": FractionKit, "sympy": SympyKit, "mpmath": MpmathKit}


class Toolbox:
    """What the ``ref`` fixture hands to tests."""

    hand_witness_json = HAND_WITNESS_JSON
    seed_spec = SEED_SPEC
    specs = SPECS
    digits = DIGITS

    @staticmethod
    def kit(name: str) -> Any:
        return KITS[name]()

    @staticmethod
    def make(kit: str | Any) -> Reference:
        return Reference(KITS[kit]() if isinstance(kit, str) else kit)

    entries = staticmethod(entries_of)
    pick = staticmethod(pick)
    query_failures = staticmethod(query_failures)
    parse_number = staticmethod(parse_number)
    parse_array = staticmethod(parse_array)


@pytest.fixture(scope="session")
def ref() -> type[Toolbox]:
    """The independent reference computation and its helpers."""
    return Toolbox
