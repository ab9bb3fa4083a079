"""Witnesses: all parameters, inputs and targets, with exact values; JSON in and out."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.errors import InputError
from smtgrad.numbers import NumberError, format_exact
from smtgrad.numbers.lognum import parse_value
from smtgrad.reference.intervals import parse_enclosure
from smtgrad.reference.network import InexactValue, Parameters, Vector
from smtgrad.spec import Network, Spec, TargetKind, entries


class WitnessError(InputError, ValueError):
    """A witness file that does not fit the spec (missing block, wrong shape, bad number)."""

    label = "bad witness"


@dataclass(frozen=True)
class Witness:
    """A complete assignment: parameters, inputs X (M rows) and targets Y (M rows)."""

    parameters: Parameters
    inputs: tuple[Vector, ...]
    targets: tuple[Any, ...]  # vectors, or class indices for class targets

    @property
    def samples(self) -> int:
        return len(self.inputs)

    def block(self, name: str) -> tuple[Any, ...]:
        if name == "X":
            return self.inputs
        if name == "Y":
            return self.targets
        return self.parameters.block(name)


def to_json(value: Any) -> Any:
    """Nested tuples of exact numbers -> nested lists of exact strings."""
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if isinstance(value, Fraction | int):
        return format_exact(value)
    return str(value)


def witness_to_json(witness: Witness, network: Network) -> dict[str, Any]:
    """The contract's ``witness`` object: W1, b1, ..., X, Y as exact strings."""
    data: dict[str, Any] = {}
    for name in network.parameter_shapes():
        data[name] = to_json(witness.parameters.block(name))
    data["X"] = to_json(witness.inputs)
    data["Y"] = to_json(witness.targets)
    return data


def _array(raw: Any, key: str, shape: tuple[int, ...]) -> Any:
    if not shape:
        if isinstance(raw, list | dict) or raw is None:
            raise WitnessError(f"{key}: expected a number, found {type(raw).__name__}")
        text = getattr(raw, "text", None)  # a YAML number the loader refused to convert
        if isinstance(text, str):
            what = "too large" if len(text) > 100 else "not a finite exact number"
            raise WitnessError(f"{key}: the number {text[:20]!r}... is {what}")
        try:
            if isinstance(raw, str) and raw.strip().startswith("["):
                enclosure = parse_enclosure(raw)
                if enclosure is None:
                    raise NumberError(f"expected an enclosure \"[lo, hi]\", found {raw[:60]!r}")
                return enclosure
            return parse_value(raw if not isinstance(raw, float) else repr(raw))
        except (NumberError, InexactValue) as error:
            raise WitnessError(f"{key}: {error}") from None
    if not isinstance(raw, list) or len(raw) != shape[0]:
        found = f"{len(raw)} entries" if isinstance(raw, list) else type(raw).__name__
        raise WitnessError(f"{key}: expected {shape[0]} entries (shape "
                           f"{'x'.join(map(str, shape))}), found {found}")
    return tuple(_array(item, f"{key}[{index}]", shape[1:]) for index, item in enumerate(raw))


def witness_from_json(data: Any, network: Network, targets: TargetKind) -> Witness:
    """Read a witness: a result JSON (with a ``witness`` key) or a bare witness mapping.

    JSON floats are accepted as their shortest decimal text (``0.1`` is 1/10).
    """
    if isinstance(data, dict) and "witness" in data:
        data = data["witness"]
    if not isinstance(data, dict):
        raise WitnessError("expected a mapping with W1, b1, ..., X and Y")
    shapes = network.parameter_shapes()
    if "X" not in data:
        raise WitnessError("X: missing (the inputs, one row per sample)")
    raw_x = data["X"]
    if not isinstance(raw_x, list) or not raw_x:
        raise WitnessError("X: expected a non-empty list of rows")
    samples = len(raw_x)
    if network.inputs == 1 and not any(isinstance(item, list) for item in raw_x):
        raw_x = [[item] for item in raw_x]
    unknown = set(data) - set(shapes) - {"X", "Y"}
    if unknown:
        raise WitnessError(f"{sorted(unknown)[0]}: unknown block; expected "
                           f"{', '.join([*shapes, 'X', 'Y'])}")
    blocks: dict[str, Any] = {}
    for name, shape in shapes.items():
        if name not in data:
            raise WitnessError(f"{name}: missing")
        blocks[name] = _array(data[name], name, shape)
    inputs = _array(raw_x, "X", (samples, network.inputs))
    if "Y" not in data:
        raise WitnessError("Y: missing (the targets, one row per sample)")
    raw_y = data["Y"]
    if targets is TargetKind.CLASS:
        labels = _array(raw_y, "Y", (samples,))
        for index, label in enumerate(labels):
            if label.denominator != 1 or not 0 <= label < network.outputs:
                raise WitnessError(f"Y[{index}]: expected a class index 0..{network.outputs - 1}")
        outputs: tuple[Any, ...] = labels
    else:
        if network.outputs == 1 and isinstance(raw_y, list) and \
                not any(isinstance(item, list) for item in raw_y):
            raw_y = [[item] for item in raw_y]
        outputs = _array(raw_y, "Y", (samples, network.outputs))
    depth = network.depth
    parameters = Parameters(
        weights=tuple(blocks[f"W{index}"] for index in range(1, depth + 1)),
        biases=tuple(blocks[f"b{index}"] for index in range(1, depth + 1)),
    )
    return Witness(parameters=parameters, inputs=inputs, targets=outputs)


def fixed_witness(spec: Spec, samples: int) -> Witness | None:
    """The one candidate of a fully fixed spec: every parameter, input and target fixed.

    None when any entry is left free (then there is a search to do).
    """
    network = spec.network
    blocks: dict[str, Any] = {}
    for name, shape in network.parameter_shapes().items():
        values = [spec.fixed_value(name, index) for index in entries(shape)]
        if any(value is None for value in values):
            return None
        blocks[name] = (tuple(values) if len(shape) == 1 else
                        tuple(tuple(values[j * shape[1]:(j + 1) * shape[1]])
                              for j in range(shape[0])))
    inputs = []
    targets: list[Any] = []
    for m in range(samples):
        row = tuple(spec.fixed_value("X", (m, i)) for i in range(network.inputs))
        if any(value is None for value in row):
            return None
        inputs.append(row)
        if spec.targets is TargetKind.CLASS:
            label = spec.fixed_value("Y", (m,))
            if label is None:
                return None
            targets.append(label)
        else:
            outputs = tuple(spec.fixed_value("Y", (m, k)) for k in range(network.outputs))
            if any(value is None for value in outputs):
                return None
            targets.append(outputs)
    depth = network.depth
    parameters = Parameters(weights=tuple(blocks[f"W{i}"] for i in range(1, depth + 1)),
                            biases=tuple(blocks[f"b{i}"] for i in range(1, depth + 1)))
    return Witness(parameters=parameters, inputs=tuple(inputs), targets=tuple(targets))
