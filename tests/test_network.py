"""Differential tests of smtgrad.reference.network.evaluate.

The loss of a random small network is built as a sympy expression of one
symbol per weight and bias (relu, leaky_relu, abs and hardtanh as sympy
functions whose values and derivatives are checked against sympy's own
Piecewise/Max definitions), differentiated symbolically, and evaluated at
rational points away from the kinks: the gradients must equal smtgrad's
exactly. Kinks are then tested
one by one against the documented conventions (PyTorch's by default), and
against PyTorch autograd itself when torch is installed.
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import pytest
import sympy

from smtgrad import activations
from smtgrad.reference.network import Parameters, evaluate
from smtgrad.spec import (
    Activation,
    Conventions,
    Layer,
    Loss,
    LossKind,
    Network,
    Reduction,
)

F = Fraction
SEEDS = 16  # random networks in the sympy differential test
PIECEWISE = [activations.LINEAR, activations.RELU, activations.LEAKY_RELU, activations.ABS,
             activations.HARDTANH]


class Kink(ValueError):
    """A derivative asked for exactly at a kink (the test keeps away from them)."""


class Step(sympy.Function):
    """relu'(u): 1 for u > 0, 0 for u < 0 (undefined at 0)."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Rational:
            if u == 0:
                raise Kink("relu'(0)")
            return sympy.Integer(1 if u > 0 else 0)
        return None


class Relu(sympy.Function):
    """relu(u) = Piecewise((u, u > 0), (0, True)); derivative Step(u)."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Rational:
            return u if u > 0 else sympy.Integer(0)
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return Step(self.args[0])


class LeakyStep(sympy.Function):
    """leaky_relu'(u, s): 1 for u > 0, s for u < 0 (undefined at 0)."""

    @classmethod
    def eval(cls, u: Any, s: Any) -> Any:
        if u.is_Rational:
            if u == 0:
                raise Kink("leaky_relu'(0)")
            return sympy.Integer(1) if u > 0 else s
        return None


class Leaky(sympy.Function):
    """leaky_relu(u, s) = Piecewise((u, u > 0), (s*u, True)); derivative LeakyStep."""

    @classmethod
    def eval(cls, u: Any, s: Any) -> Any:
        if u.is_Rational:
            return u if u > 0 else s * u
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        assert argindex == 1
        return LeakyStep(*self.args)


class Sign(sympy.Function):
    """abs'(u): 1 for u > 0, -1 for u < 0 (undefined at 0)."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Rational:
            if u == 0:
                raise Kink("abs'(0)")
            return sympy.Integer(1 if u > 0 else -1)
        return None


class Absolute(sympy.Function):
    """abs(u) = Piecewise((u, u >= 0), (-u, True)); derivative Sign(u)."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Rational:
            return u if u >= 0 else -u
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return Sign(self.args[0])


class Inside(sympy.Function):
    """hardtanh'(u): 1 for |u| < 1, 0 for |u| > 1 (undefined at +-1)."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Rational:
            if u in (1, -1):
                raise Kink("hardtanh'(+-1)")
            return sympy.Integer(1 if -1 < u < 1 else 0)
        return None


class Hardtanh(sympy.Function):
    """hardtanh(u) = Piecewise((-1, u < -1), (1, u > 1), (u, True)); derivative Inside(u)."""

    @classmethod
    def eval(cls, u: Any) -> Any:
        if u.is_Rational:
            return sympy.Integer(-1) if u < -1 else sympy.Integer(1) if u > 1 else u
        return None

    def fdiff(self, argindex: int = 1) -> Any:
        return Inside(self.args[0])


def sym_activation(layer: Layer, u: Any) -> Any:
    """The activation as a sympy function: symbolic in the chain rule, exact on numbers."""
    act = layer.activation
    if act is activations.LINEAR:
        return u
    if act is activations.RELU:
        return Relu(u)
    if act is activations.LEAKY_RELU:
        return Leaky(u, q(layer.slope))
    if act is activations.ABS:
        return Absolute(u)
    if act is activations.HARDTANH:
        return Hardtanh(u)
    raise ValueError(act)


@pytest.mark.parametrize("activation", [a for a in PIECEWISE if a is not activations.LINEAR])
def test_sym_activation_is_piecewise_as_documented(activation: Activation) -> None:
    """The test's own functions agree with sympy's Piecewise/Max: values and derivatives."""
    u = sympy.Symbol("u", real=True)
    slope = sympy.Rational(1, 10)
    definition = {
        activations.RELU: sympy.Max(0, u),
        activations.LEAKY_RELU: sympy.Piecewise((u, u > 0), (slope * u, True)),
        activations.ABS: sympy.Piecewise((u, u >= 0), (-u, True)),
        activations.HARDTANH: sympy.Piecewise((-1, u < -1), (1, u > 1), (u, True)),
    }[activation]
    layer = Layer(1, activation, F(1, 10))
    theta = sympy.Symbol("theta", real=True)
    mine = sym_activation(layer, 3 * theta - 1)
    derivative = sympy.diff(mine, theta)
    expected_derivative = sympy.diff(definition.subs(u, 3 * theta - 1), theta)
    kinks = 0
    for value in [sympy.Rational(k, 3) for k in range(-9, 10)]:
        assert sym_activation(layer, value) == definition.subs(u, value)
        assert mine.subs(theta, value) == definition.subs(u, 3 * value - 1)
        if 3 * value - 1 in kinks_of(activation):
            kinks += 1
            with pytest.raises(Kink):
                derivative.subs(theta, value)
        else:
            assert derivative.subs(theta, value) == expected_derivative.subs(theta, value)
    assert kinks == len(kinks_of(activation))


def kinks_of(act: Activation) -> tuple[int, ...]:
    return {activations.RELU: (0,), activations.LEAKY_RELU: (0,), activations.ABS: (0,),
            activations.HARDTANH: (-1, 1)}.get(act, ())


def q(value: Fraction) -> sympy.Rational:
    return sympy.Rational(value.numerator, value.denominator)


def random_case(rng: random.Random) -> dict[str, Any]:
    inputs = rng.randint(1, 2)
    hidden = [Layer(rng.randint(1, 3), rng.choice(PIECEWISE), F(rng.choice([1, 1, 2, 3]),
                                                                  rng.choice([10, 5, 4])))
              for _ in range(rng.randint(1, 2))]
    output = Layer(rng.randint(1, 2), rng.choice([activations.LINEAR] * 3 + PIECEWISE))
    network = Network(inputs, (*hidden, output))
    loss = Loss(LossKind.MSE, rng.choice([Reduction.MEAN, Reduction.SUM]),
                rng.choice([F(1), F(1, 2), F(3)]))
    samples = rng.randint(1, 4)
    return {"network": network, "loss": loss, "samples": samples}


def draw(rng: random.Random) -> Fraction:
    return F(rng.randint(-9, 9), rng.choice([1, 2, 3, 4, 7]))


def parameter_names(network: Network) -> list[str]:
    names = []
    for name, shape in network.parameter_shapes().items():
        if len(shape) == 2:
            names += [f"{name}[{j},{i}]" for j in range(shape[0]) for i in range(shape[1])]
        else:
            names += [f"{name}[{j}]" for j in range(shape[0])]
    return names


def sym_loss(network: Network, loss: Loss, xs: list[list[Fraction]],
             ys: list[list[Fraction]]) -> tuple[Any, dict[str, Any], list[tuple[Any, Any]]]:
    """The batch loss as a sympy expression of one symbol per weight and bias."""
    symbols = {name: sympy.Symbol(name.replace("[", "_").replace(",", "_").rstrip("]"),
                                  real=True) for name in parameter_names(network)}
    total = sympy.Integer(0)
    pre_activations: list[tuple[Activation, Any]] = []  # to stay off the kinks
    for x, y in zip(xs, ys, strict=True):
        a = [q(v) for v in x]
        for li, layer in enumerate(network.layers, start=1):
            u = [sum((symbols[f"W{li}[{j},{i}]"] * a[i] for i in range(len(a))),
                     sympy.Integer(0)) + symbols[f"b{li}[{j}]"] for j in range(layer.units)]
            pre_activations += [(layer.activation, uj) for uj in u]
            a = [sym_activation(layer, uj) for uj in u]
        total += sum(((aj - q(yj)) ** 2 for aj, yj in zip(a, y, strict=True)), sympy.Integer(0))
    outputs = network.outputs
    if loss.reduction is Reduction.MEAN:
        factor = q(loss.scale) / (len(xs) * outputs)
    else:
        factor = q(loss.scale)
    return factor * total, symbols, pre_activations


@pytest.mark.parametrize("seed", range(SEEDS))
def test_gradients_match_sympy(seed: int) -> None:
    rng = random.Random(seed)
    case = random_case(rng)
    network, loss, samples = case["network"], case["loss"], case["samples"]
    xs = [[draw(rng) for _ in range(network.inputs)] for _ in range(samples)]
    ys = [[draw(rng) for _ in range(network.outputs)] for _ in range(samples)]
    expression, symbols, pre = sym_loss(network, loss, xs, ys)
    # A rational point whose pre-activations all stay off the kinks.
    for _ in range(200):
        values = {name: draw(rng) for name in symbols}
        point = {symbols[name]: q(value) for name, value in values.items()}
        if all(u.xreplace(point) not in kinks_of(act) for act, u in pre):
            break
    else:
        pytest.fail("no point off the kinks")
    shapes = network.parameter_shapes()

    def block(name: str) -> Any:
        shape = shapes[name]
        if len(shape) == 2:
            return tuple(tuple(values[f"{name}[{j},{i}]"] for i in range(shape[1]))
                         for j in range(shape[0]))
        return tuple(values[f"{name}[{j}]"] for j in range(shape[0]))

    depth = network.depth
    params = Parameters(tuple(block(f"W{li}") for li in range(1, depth + 1)),
                        tuple(block(f"b{li}") for li in range(1, depth + 1)))
    result = evaluate(network, loss, Conventions(), params, [tuple(x) for x in xs],
                      [tuple(y) for y in ys])
    assert result.kinks == ()
    assert q(F(result.loss)) == expression.xreplace(point)
    for name, symbol in symbols.items():
        derivative = sympy.diff(expression, symbol).xreplace(point)
        block_name, index = name.split("[")
        indices = tuple(int(v) for v in index.rstrip("]").split(","))
        mine: Any = result.gradients[block_name]
        for position in indices:
            mine = mine[position]
        assert type(mine) is Fraction
        assert derivative.is_Rational, (name, derivative)
        assert q(mine) == derivative, (name, mine, derivative)


@pytest.mark.parametrize("seed", range(10))
def test_integral_values_come_back_as_fractions(seed: int) -> None:
    """evaluate computes integral values as ints; the Evaluation must hold Fractions only
    (an int there would turn a later ``a / b`` into a float)."""
    rng = random.Random(seed)
    case = random_case(rng)
    network, loss, samples = case["network"], case["loss"], case["samples"]
    shapes = network.parameter_shapes()

    def integral(shape: tuple[int, ...]) -> Any:
        if len(shape) == 1:
            return tuple(F(rng.randint(-3, 3)) for _ in range(shape[0]))
        return tuple(integral(shape[1:]) for _ in range(shape[0]))

    params = Parameters(tuple(integral(shapes[f"W{li}"]) for li in range(1, network.depth + 1)),
                        tuple(integral(shapes[f"b{li}"]) for li in range(1, network.depth + 1)))
    result = evaluate(network, loss, Conventions(), params,
                      integral((samples, network.inputs)), integral((samples, network.outputs)))
    found: list[Any] = [result.loss]
    stack: list[Any] = [result.pre_activations, result.activations, result.predictions,
                        result.residuals, *result.gradients.values()]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        else:
            found.append(item)
    assert found and all(type(value) is Fraction for value in found), {type(v) for v in found}


def test_random_cases_cover_every_activation() -> None:
    seen = set()
    for seed in range(SEEDS):
        case = random_case(random.Random(seed))
        seen.update(layer.activation for layer in case["network"].layers)
        assert 2 <= case["network"].depth <= 3
    assert seen == set(PIECEWISE)


# ----------------------------------------------------------------------------------------
# Kinks and conventions.

TENTH = F(1, 10)


def kink_gradient(activation: Activation, u: Fraction, convention: int,
                  slope: Fraction = TENTH) -> Any:
    """dL/db1 for one sample with pre-activation u, W2 = 1 and residual 1 (M = 1, mean MSE)."""
    network = Network(1, (Layer(1, activation, slope), Layer(1, activations.LINEAR)))
    params = Parameters(weights=(((F(1),),), ((F(1),),)), biases=((u,), (F(0),)))
    # x = 0, so u = b1; yhat = g(u); y = yhat - 1 so that r = 1.
    probe = evaluate(network, Loss(), Conventions(convention), params, [(F(0),)], [(F(0),)])
    yhat = probe.predictions[0][0]
    result = evaluate(network, Loss(), Conventions(convention), params, [(F(0),)],
                      [(yhat - 1,)])
    assert result.residuals == ((F(1),),)
    return result


@pytest.mark.parametrize(("activation", "u", "default", "one"), [
    (activations.RELU, F(0), F(0), F(1)),
    (activations.LEAKY_RELU, F(0), F(1, 10), F(1)),
    (activations.ABS, F(0), F(0), F(1)),
    (activations.HARDTANH, F(1), F(0), F(1)),
    (activations.HARDTANH, F(-1), F(0), F(1)),
])
def test_derivative_at_kink(activation: Activation, u: Fraction, default: Fraction,
                            one: Fraction) -> None:
    # dL/db1 = (2/M) * r * W2 * g'(u) = 2 g'(u).
    zero_convention = kink_gradient(activation, u, 0)
    one_convention = kink_gradient(activation, u, 1)
    assert zero_convention.gradients["b1"] == (2 * default,)
    assert one_convention.gradients["b1"] == (2 * one,)
    # The value at the kink does not depend on the convention, and the kink is reported.
    assert zero_convention.predictions == one_convention.predictions
    assert len(zero_convention.kinks) == 1
    kink = zero_convention.kinks[0]
    assert (kink.layer, kink.sample, kink.unit, kink.point) == (1, 0, 0, u)


@pytest.mark.parametrize(("activation", "u", "slope"), [
    (activations.RELU, F(1, 3), F(1)), (activations.RELU, F(-1, 3), F(0)),
    (activations.LEAKY_RELU, F(-1, 3), F(1, 10)), (activations.LEAKY_RELU, F(2), F(1)),
    (activations.ABS, F(-1, 3), F(-1)), (activations.ABS, F(1, 3), F(1)),
    (activations.HARDTANH, F(3, 2), F(0)), (activations.HARDTANH, F(-3, 2), F(0)),
    (activations.HARDTANH, F(1, 2), F(1)), (activations.LINEAR, F(0), F(1)),
])
def test_derivative_off_kink_ignores_convention(activation: Activation, u: Fraction,
                                                slope: Fraction) -> None:
    for convention in (0, 1):
        result = kink_gradient(activation, u, convention)
        assert result.gradients["b1"] == (2 * slope,)
        assert result.kinks == ()


def test_leaky_slope_is_used() -> None:
    assert kink_gradient(activations.LEAKY_RELU, F(0), 0, F(3, 7)).gradients["b1"] == (F(6, 7),)
    assert kink_gradient(activations.LEAKY_RELU, F(-2), 1, F(3, 7)).gradients["b1"] == (
        F(6, 7),)


def test_seed_kink_convention_changes_the_answer() -> None:
    """specs/kink_convention.yaml: sample 0 on the kink, only it has a residual."""
    network = Network(1, (Layer(1, activations.RELU), Layer(1, activations.LINEAR)))
    params = Parameters(weights=(((F(1),),), ((F(1, 2),),)), biases=((F(0),), (F(-2),)))
    xs, ys = [(F(0),), (F(-1),)], [(F(-3),), (F(-2),)]
    zero = evaluate(network, Loss(), Conventions(0), params, xs, ys)
    one = evaluate(network, Loss(), Conventions(1), params, xs, ys)
    assert zero.gradients["b1"] == (F(0),)
    assert one.gradients["b1"] == (F(1, 2),)  # (2/2) * 1 * (1/2) * 1
    assert zero.gradients["W2"] == one.gradients["W2"] == ((F(0),),)


def test_loss_scale_and_reduction() -> None:
    network = Network(1, (Layer(1, activations.LINEAR),))
    params = Parameters(weights=(((F(2),),),), biases=((F(0),),))
    xs, ys = [(F(1),), (F(2),)], [(F(0),), (F(0),)]
    mean = evaluate(network, Loss(), Conventions(), params, xs, ys)
    total = evaluate(network, Loss(reduction=Reduction.SUM), Conventions(), params, xs, ys)
    half = evaluate(network, Loss(reduction=Reduction.SUM, scale=F(1, 2)), Conventions(),
                    params, xs, ys)
    assert (mean.loss, total.loss, half.loss) == (F(10), F(20), F(10))
    assert mean.gradients["W1"] == ((F(10),),)  # (2/2) * (2*1 + 4*2)
    assert total.gradients["W1"] == ((F(20),),)
    assert half.gradients["W1"] == ((F(10),),)


# ----------------------------------------------------------------------------------------
# PyTorch autograd: the default convention is PyTorch's, at and off the kinks.


@pytest.mark.parametrize("seed", range(6))
def test_matches_torch_autograd(seed: int) -> None:
    torch = pytest.importorskip("torch")
    functions = {activations.LINEAR: lambda t: t, activations.RELU: torch.relu,
                 activations.ABS: torch.abs, activations.HARDTANH: torch.nn.functional.hardtanh}
    rng = random.Random(1000 + seed)
    case = random_case(rng)
    network, loss, samples = case["network"], case["loss"], case["samples"]

    def torch_act(layer: Layer, t: Any) -> Any:
        if layer.activation is activations.LEAKY_RELU:
            return torch.nn.functional.leaky_relu(t, float(layer.slope))
        return functions[layer.activation](t)

    # Small integers put many pre-activations exactly on kinks: PyTorch's rules apply.
    def small() -> Fraction:
        return F(rng.randint(-2, 2))

    shapes = network.parameter_shapes()
    values = {name: [[small() for _ in range(s[1])] for _ in range(s[0])] if len(s) == 2
              else [small() for _ in range(s[0])] for name, s in shapes.items()}
    xs = [[small() for _ in range(network.inputs)] for _ in range(samples)]
    ys = [[small() for _ in range(network.outputs)] for _ in range(samples)]
    tensors = {name: torch.tensor([[float(v) for v in row] for row in value] if
                                  isinstance(value[0], list) else [float(v) for v in value],
                                  dtype=torch.float64, requires_grad=True)
               for name, value in values.items()}
    a = torch.tensor([[float(v) for v in row] for row in xs], dtype=torch.float64)
    for li, layer in enumerate(network.layers, start=1):
        a = torch_act(layer, a @ tensors[f"W{li}"].T + tensors[f"b{li}"])
    target = torch.tensor([[float(v) for v in row] for row in ys], dtype=torch.float64)
    value = torch.nn.functional.mse_loss(a, target, reduction=loss.reduction.value)
    (value * float(loss.scale)).backward()

    depth = network.depth
    params = Parameters(
        tuple(tuple(tuple(row) for row in values[f"W{li}"]) for li in range(1, depth + 1)),
        tuple(tuple(values[f"b{li}"]) for li in range(1, depth + 1)))
    result = evaluate(network, loss, Conventions(), params, [tuple(x) for x in xs],
                      [tuple(y) for y in ys])
    assert float(result.loss) == pytest.approx(value.item() * float(loss.scale), abs=1e-12)
    for name, tensor in tensors.items():
        expected = tensor.grad.tolist()
        mine = result.gradients[name]
        flat_expected = [v for row in expected for v in row] if isinstance(expected[0], list) \
            else expected
        flat_mine = [v for row in mine for v in row] if isinstance(mine[0], tuple) else list(mine)
        assert [float(v) for v in flat_mine] == pytest.approx(flat_expected, abs=1e-12), name


@pytest.mark.parametrize(("activation", "u"), [
    (activations.RELU, F(0)), (activations.LEAKY_RELU, F(0)), (activations.ABS, F(0)),
    (activations.HARDTANH, F(1)), (activations.HARDTANH, F(-1)),
])
def test_default_kink_convention_is_pytorchs(activation: Activation, u: Fraction) -> None:
    torch = pytest.importorskip("torch")
    functions = {
        activations.RELU: torch.relu, activations.ABS: torch.abs,
        activations.HARDTANH: torch.nn.functional.hardtanh,
        activations.LEAKY_RELU: lambda t: torch.nn.functional.leaky_relu(t, 0.1),
    }
    b1 = torch.tensor([float(u)], dtype=torch.float64, requires_grad=True)
    yhat = functions[activation](b1)  # W1 x = 0, W2 = 1, b2 = 0
    ((yhat - (yhat.detach() - 1)) ** 2).mean().backward()  # residual 1
    assert b1.grad is not None
    assert float(kink_gradient(activation, u, 0).gradients["b1"][0]) == b1.grad.item()
