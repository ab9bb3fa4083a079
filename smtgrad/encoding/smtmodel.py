"""A solver's model of an exported script, read back into a witness.

``smtgrad export`` names the unknowns of the exact encoding after what they are
(:mod:`smtgrad.encoding.builder`): ``W<l>_<j>_<i>`` and ``b<l>_<j>`` the parameters,
``X_<m>_<i>`` the inputs and ``r_<m>_<k>`` the residuals yhat - y (the targets are
y = yhat - r); ``u_<l>_<m>_<j>`` pre-activations exist for every sample. This module
parses the text solvers print after ``(get-model)`` -- z3's ``((define-fun ...) ...)``,
cvc5's ``(model (define-fun ...))`` or a bare list, values such as ``2.0``, ``(- 2)``,
``(/ 1 3)`` and ``(- (/ 1.0 3.0))`` -- and maps the names back to W/b/X/Y entries;
fixed entries come from the spec. The witness then goes to the exact verifier like any
other (``smtgrad check SPEC --smt-model FILE``): nothing read here is trusted.

Only models of the exact encoding (piecewise-linear networks with MSE, what ``export``
writes by default for them) read back: a model of the log-lattice or abstraction
encodings is not a witness of the network.

May import :mod:`smtgrad.spec`, :mod:`smtgrad.numbers`, :mod:`smtgrad.reference` (the
witness type and the reference forward pass, for y = yhat - r); no solver and no pysmt.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from smtgrad.reference.network import Parameters, evaluate
from smtgrad.reference.witness import Witness, WitnessError
from smtgrad.spec import LossKind, Spec, TargetKind

__all__ = ["MAX_MODEL_BYTES", "parse_model", "witness_from_model"]

#: The largest model text accepted (solvers' models of smtgrad's encodings are small).
MAX_MODEL_BYTES = 20_000_000

_TOKEN = re.compile(r"\s+|;[^\n]*|\(|\)|\|[^|]*\||\"(?:[^\"]|\"\")*\"|[^\s()|\";]+")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


def _tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise WitnessError(f"smt model: unexpected character {text[position]!r} at "
                               f"offset {position}")
        token = match.group()
        position = match.end()
        if not token.strip() or token.startswith(";"):
            continue
        tokens.append(token)
    return tokens


def _expressions(text: str) -> list[Any]:
    """The S-expressions of the text (atoms as strings, lists as lists), iteratively."""
    stack: list[list[Any]] = [[]]
    for token in _tokens(text):
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise WitnessError("smt model: unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token[1:-1] if token.startswith("|") else token)
    if len(stack) != 1:
        raise WitnessError("smt model: unbalanced '(' (the model text is cut short)")
    return stack[0]


def _value(term: Any, name: str) -> Fraction | bool:
    """An exact value: a numeral, a decimal, true/false, or (- x), (/ a b), (+ ...), (* ...)."""
    if isinstance(term, str):
        if term in ("true", "false"):
            return term == "true"
        if _NUMBER.fullmatch(term):
            return Fraction(term)
        raise WitnessError(f"smt model: {name} = {term!r} is not a number")
    if not term or not isinstance(term[0], str):
        raise WitnessError(f"smt model: {name}: cannot read the value {_show(term)}")
    head = term[0]
    if head not in ("-", "+", "*", "/"):
        what = "an irrational algebraic number" if head == "root-obj" else \
            "not a rational value"
        raise WitnessError(f"smt model: {name} = {_show(term)} is {what}; smtgrad reads "
                           "rational models only")
    arguments = [_value(item, name) for item in term[1:]]
    numbers = [a for a in arguments if not isinstance(a, bool)]
    if len(numbers) != len(arguments) or not arguments:
        raise WitnessError(f"smt model: {name}: cannot read the value {_show(term)}")
    if head == "-":
        return -numbers[0] if len(numbers) == 1 else numbers[0] - sum(numbers[1:])
    if head == "+":
        return sum(numbers, Fraction(0))
    if head == "*":
        product = Fraction(1)
        for number in numbers:
            product *= number
        return product
    if head == "/" and len(numbers) == 2:
        if numbers[1] == 0:
            raise WitnessError(f"smt model: {name}: division by zero in {_show(term)}")
        return numbers[0] / numbers[1]
    raise WitnessError(f"smt model: {name}: cannot read the value {_show(term)}")


def _show(term: Any) -> str:
    text = term if isinstance(term, str) else "(" + " ".join(_show(t) for t in term) + ")"
    return text if len(text) <= 80 else text[:77] + "..."


def parse_model(text: str) -> dict[str, Fraction | bool]:
    """Every ``(define-fun NAME () SORT VALUE)`` of a solver's model text, by name.

    A solver's answer line before the model (``sat``) is skipped; ``unsat`` or
    ``unknown`` without a model, and anything that is not a rational or Boolean
    constant, is a :class:`WitnessError` (exit 2).
    """
    if len(text) > MAX_MODEL_BYTES:
        raise WitnessError(f"smt model: larger than {MAX_MODEL_BYTES} bytes")
    values: dict[str, Fraction | bool] = {}
    answers: list[str] = []
    stack: list[Any] = list(reversed(_expressions(text)))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            answers.append(item)
            continue
        if item and item[0] == "define-fun":
            if len(item) != 5 or not isinstance(item[1], str) or item[2] != []:
                raise WitnessError(f"smt model: a define-fun that is not a constant: "
                                   f"{_show(item)}")
            values[item[1]] = _value(item[4], item[1])
        elif item and item[0] == "error":
            raise WitnessError(f"smt model: the solver reported an error: {_show(item)}")
        else:
            stack.extend(reversed([part for part in item if not isinstance(part, str)]))
    if not values:
        said = next((a for a in answers if a in ("unsat", "unknown", "sat")), None)
        if said in ("unsat", "unknown"):
            raise WitnessError(f"smt model: the solver answered {said}; there is no model "
                               "to check")
        raise WitnessError("smt model: no (define-fun ...) found; expected the output of "
                           "(get-model)")
    return values


def _samples(spec: Spec, values: dict[str, Fraction | bool]) -> int:
    fixed = spec.fixed_rows
    if fixed is not None:
        return fixed[1]
    seen = [int(match.group(1)) for name in values
            if (match := re.fullmatch(r"u_\d+_(\d+)_\d+", name))]
    if not seen:
        raise WitnessError("smt model: no pre-activation u_<l>_<m>_<j> in the model, so the "
                           "number of samples is unknown; is this a model of `smtgrad "
                           "export`?")
    return max(seen) + 1


def witness_from_model(spec: Spec, values: dict[str, Fraction | bool]) -> Witness:
    """The witness a model of ``smtgrad export SPEC`` (exact encoding) stands for.

    Free entries the model leaves out (a solver may omit unconstrained variables) are 0;
    fixed entries are the spec's. Targets are y = yhat - r with yhat from the reference
    forward pass, or the fixed Y.
    """
    network = spec.network
    if any(layer.activation.smooth for layer in network.layers) or \
            spec.loss.kind is not LossKind.MSE or spec.targets is TargetKind.CLASS:
        raise WitnessError("--smt-model reads models of the exact encoding only "
                           "(piecewise-linear networks with MSE); a model of the log-lattice "
                           "or abstraction encodings is not a witness of the network")
    samples = _samples(spec, values)

    def entry(name: str, index: tuple[int, ...], symbol: str) -> Any:
        fixed = spec.fixed_value(name, index)
        if fixed is not None:
            return fixed
        value = values.get(symbol, Fraction(0))
        if isinstance(value, bool):
            raise WitnessError(f"smt model: {symbol} is a Boolean, expected a real number")
        return value

    blocks: dict[str, Any] = {}
    for name, shape in network.parameter_shapes().items():
        if len(shape) == 2:
            blocks[name] = tuple(tuple(entry(name, (j, i), f"{name}_{j}_{i}")
                                       for i in range(shape[1])) for j in range(shape[0]))
        else:
            blocks[name] = tuple(entry(name, (j,), f"{name}_{j}") for j in range(shape[0]))
    depth = network.depth
    parameters = Parameters(weights=tuple(blocks[f"W{n}"] for n in range(1, depth + 1)),
                            biases=tuple(blocks[f"b{n}"] for n in range(1, depth + 1)))
    inputs = tuple(tuple(entry("X", (m, i), f"X_{m}_{i}") for i in range(network.inputs))
                   for m in range(samples))
    outputs = network.outputs
    zeros = tuple(tuple(Fraction(0) for _ in range(outputs)) for _ in range(samples))
    from smtgrad.numbers.lognum import LatticeFunctions

    try:
        predictions = evaluate(network, spec.loss, spec.conventions, parameters, inputs,
                               zeros, LatticeFunctions(None)).predictions
    except (ArithmeticError, ValueError, TypeError) as error:
        raise WitnessError(f"smt model: cannot evaluate the network: {error}") from None
    targets = []
    for m in range(samples):
        row = []
        for k in range(outputs):
            fixed = spec.fixed_value("Y", (m, k))
            if fixed is not None:
                row.append(fixed)
                continue
            residual = values.get(f"r_{m}_{k}", Fraction(0))
            if isinstance(residual, bool):
                raise WitnessError(f"smt model: r_{m}_{k} is a Boolean, expected a real")
            row.append(predictions[m][k] - residual)
        targets.append(tuple(row))
    return Witness(parameters=parameters, inputs=inputs, targets=tuple(targets))
