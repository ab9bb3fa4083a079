"""The YAML spec: loading, validation, and the frozen data model.

A spec names a network, a loss, a number of samples M, a target kind, a query
on gradients, optional fixed values, assumptions and conventions. Every
malformed input raises :class:`SpecError` naming the file, the key and what
was expected; nothing in a spec is ever executed.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from smtgrad import activations
from smtgrad.activations import Activation as Activation
from smtgrad.errors import InputError
from smtgrad.numbers import NumberError, parse_exact
from smtgrad.numbers.expr import (
    EVERY_SAMPLE,
    Cond,
    ExprError,
    Ref,
    for_each_sample,
    parse_condition,
    references,
)

MAX_SPEC_BYTES = 1_000_000
MAX_LAYERS = 8
MAX_UNITS = 64
MAX_SAMPLES = 10_000
#: The largest M x (number of parameters) accepted: the rank criterion holds one
#: gradient entry per (sample, queried parameter) several times over (about 75 bytes a
#: cell, measured: 1-64-64-1 at M = 10,000, 43M cells, peaked at 3.2 GB), so this keeps
#: a solve under 2 GB of memory (1-64-64-64-1 at M = 1000, 8.5M cells: 0.8 GB).
MAX_PROBLEM_SIZE = 12_000_000


def size_refusal(network: Network, samples: int) -> str | None:
    """Why M samples of ``network`` are too large to solve in 2 GB, or None."""
    parameters = network.parameter_count()
    if samples * parameters <= MAX_PROBLEM_SIZE:
        return None
    most = MAX_PROBLEM_SIZE // parameters
    return (f"M = {samples:,} samples x {parameters:,} parameters = {samples * parameters:,} "
            f"exceeds {MAX_PROBLEM_SIZE:,}, the size smtgrad keeps under 2 GB of memory; "
            f"this network allows at most M = {most:,}")


class SpecError(InputError):
    """A spec that cannot be used: which file, which key, what was expected."""

    label = "bad spec"

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {expected}")


class LossKind(Enum):
    """Batch loss."""

    MSE = "mse"
    BCE = "bce"
    CROSS_ENTROPY = "cross_entropy"


class Reduction(Enum):
    """How per-element losses are combined (as in PyTorch)."""

    MEAN = "mean"
    SUM = "sum"


class TargetKind(Enum):
    """What values the targets Y may take."""

    REAL = "real"
    UNIT_INTERVAL = "unit_interval"
    BINARY = "binary"
    CLASS = "class"


class Verdict(Enum):
    """The three answers smtgrad gives."""

    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Layer:
    """An affine layer of ``units`` outputs followed by ``activation``."""

    units: int
    activation: Activation  # one of smtgrad.activations.REGISTRY
    slope: Fraction = Fraction(1, 100)


@dataclass(frozen=True)
class Network:
    """A multilayer perceptron: input dimension and layers (the last is the output)."""

    inputs: int
    layers: tuple[Layer, ...]

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    @property
    def depth(self) -> int:
        return len(self.layers)

    def parameter_count(self) -> int:
        """The number of weights and biases."""
        return sum(math.prod(shape) for shape in self.parameter_shapes().values())

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of W1, b1, ..., WL, bL (W_l is units x previous, as torch.nn.Linear).

        A fresh dict each call; the shapes are computed once per network.
        """
        items = self.__dict__.get("_shape_items")
        if items is None:
            shapes: list[tuple[str, tuple[int, ...]]] = []
            previous = self.inputs
            for index, layer in enumerate(self.layers, start=1):
                shapes.append((f"W{index}", (layer.units, previous)))
                shapes.append((f"b{index}", (layer.units,)))
                previous = layer.units
            items = tuple(shapes)
            object.__setattr__(self, "_shape_items", items)  # a cache, not a field
        return dict(items)


@dataclass(frozen=True)
class Loss:
    """Loss kind, reduction and a positive scale factor."""

    kind: LossKind = LossKind.MSE
    reduction: Reduction = Reduction.MEAN
    scale: Fraction = Fraction(1)


@dataclass(frozen=True)
class SampleRange:
    """The number of samples M, or a range of M searched in increasing order."""

    min: int
    max: int

    def values(self) -> range:
        return range(self.min, self.max + 1)


@dataclass(frozen=True)
class Target:
    """A gradient block (``W1``) or a single entry of it (``W1[0,1]``)."""

    block: str
    index: tuple[int, ...] | None = None

    def __str__(self) -> str:
        if self.index is None:
            return self.block
        return f"{self.block}[{','.join(map(str, self.index))}]"

    def indices(self, shapes: Mapping[str, tuple[int, ...]]) -> Sequence[tuple[int, ...]]:
        """The index tuples this target names: its one entry, or every entry of its block
        (``shapes`` as :meth:`Network.parameter_shapes` gives them)."""
        return (self.index,) if self.index is not None else entries(shapes[self.block])


class Minimum(Enum):
    """``query.minimum``: the witness must also be a local minimum of the loss."""

    LOCAL = "local"


@dataclass(frozen=True)
class Query:
    """Gradients that must be exactly zero, blocks that must have a nonzero entry, and
    (``minimum``) whether the point must be a certified local minimum of the loss."""

    zero: tuple[Target, ...] = ()
    nonzero: tuple[Target, ...] = ()
    minimum: Minimum | None = None


@dataclass(frozen=True)
class Assumption:
    """One ``assume`` condition with its source text."""

    text: str
    condition: Cond


@dataclass(frozen=True)
class Conventions:
    """Derivative conventions at kinks (0 is PyTorch's choice)."""

    relu_grad_at_zero: int = 0


@dataclass(frozen=True)
class Expectation:
    """The verdict a spec's author expects (used by tests and shown by ``solve``)."""

    verdict: Verdict
    samples: int | None = None
    proved: str | None = None


#: A fixed array: nested tuples of exact values, ``None`` where the entry is left free.
FixedArray = tuple[Any, ...]


@dataclass(frozen=True)
class Spec:
    """A validated spec."""

    source: str
    name: str
    network: Network
    loss: Loss
    samples: SampleRange
    targets: TargetKind
    query: Query
    fixed: Mapping[str, FixedArray] = field(default_factory=dict)
    assume: tuple[Assumption, ...] = ()
    conventions: Conventions = Conventions()
    generic: bool = False
    description: str = ""
    expect: Expectation | None = None

    def fixed_value(self, name: str, index: tuple[int, ...]) -> Any:
        """The fixed value of one entry (``X`` and ``Y`` rows are samples), if any.

        A Fraction, or for parameters possibly an exact log-lattice number.
        """
        array = self.fixed.get(name)
        if array is None:
            return None
        item: Any = array
        for position in index:
            if not isinstance(item, tuple) or position >= len(item):
                return None
            item = item[position]
        return None if isinstance(item, tuple) else item

    @property
    def fixed_rows(self) -> tuple[str, int] | None:
        """``(name, rows)`` when fixed ``X`` or ``Y`` rows define M (DESIGN: fixed data and the
        sample count), else None."""
        for name in ("X", "Y"):
            if name in self.fixed:
                return name, len(self.fixed[name])
        return None

    def named_samples(self) -> dict[int, str]:
        """Every sample index that an assumption names (``X[2]``, ``yhat[2,0]``), with the
        text of the first assumption that names it."""
        named: dict[int, str] = {}
        for assumption in self.assume:
            for ref in references(assumption.condition):
                if ref.name in ("X", "Y", "yhat") and ref.indices and \
                        ref.indices[0] != EVERY_SAMPLE:
                    named.setdefault(ref.indices[0], assumption.text)
        return named

    def assumptions_at(self, samples: int) -> tuple[Assumption, ...]:
        """The assumptions at M = ``samples``: one named ``*`` (``X[*,0] >= 0``: for every
        sample) becomes one assumption per sample m, with the text ``X[*,0] >= 0 (m=2)``."""
        expanded: list[Assumption] = []
        for assumption in self.assume:
            conditions = for_each_sample(assumption.condition, samples)
            if len(conditions) == 1 and conditions[0] is assumption.condition:
                expanded.append(assumption)
                continue
            expanded.extend(Assumption(text=f"{assumption.text} (m={m})", condition=condition)
                            for m, condition in enumerate(conditions))
        return tuple(expanded)

    @property
    def least_samples(self) -> int:
        """The smallest M in which every sample named in ``assume`` exists (1 if none is)."""
        named = self.named_samples()
        return 1 + max(named) if named else 1

    def with_samples(self, samples: int) -> Spec:
        """The same spec at one fixed M."""
        return Spec(
            source=self.source,
            name=self.name,
            network=self.network,
            loss=self.loss,
            samples=SampleRange(samples, samples),
            targets=self.targets,
            query=self.query,
            fixed=self.fixed,
            assume=self.assume,
            conventions=self.conventions,
            generic=self.generic,
            description=self.description,
            expect=self.expect,
        )


def sample_plan(spec: Spec, samples: int | None, minimal: bool
                ) -> tuple[SampleRange, tuple[str, ...]]:
    """The values of M to solve, in order, and notes saying how they were chosen.

    DESIGN, "fixed data and the sample count": fixed X or Y rows define M, so a
    ``--samples`` that disagrees is an input error (:class:`SpecError`, exit 2) and
    ``--minimal`` solves that one M. A walk over M starts at the smallest M in which
    every sample named in ``assume`` exists; an explicit M below it is an input error.
    """
    notes: list[str] = []
    fixed = spec.fixed_rows
    least = spec.least_samples
    named = spec.named_samples()
    why_least = f"assume {named[least - 1]!r} names sample {least - 1}" if named else ""
    if samples is not None:
        if fixed is not None and samples != fixed[1]:
            raise SpecError(spec.source, "--samples", (
                f"--samples {samples} disagrees with the spec: fixed {fixed[0]} has {fixed[1]} "
                f"rows, and fixed rows define M = {fixed[1]}"))
        if samples < least:
            raise SpecError(spec.source, "--samples", (
                f"--samples {samples} is too small: {why_least}, so M must be at least "
                f"{least}"))
        if (refusal := size_refusal(spec.network, samples)) is not None:
            raise SpecError(spec.source, "--samples", refusal)
        low, high = (1 if minimal else samples), samples
    elif minimal and spec.samples.min == spec.samples.max:
        low, high = 1, spec.samples.max
    else:
        low, high = spec.samples.min, spec.samples.max
    if fixed is not None:
        if minimal:
            notes.append(f"--minimal solves only M={fixed[1]}: fixed {fixed[0]} has {fixed[1]} "
                         "rows, and fixed rows define M")
        return SampleRange(fixed[1], fixed[1]), tuple(notes)
    if least > low:
        if minimal or low < high:
            notes.append(f"the walk over M starts at M={least}: {why_least}, which exists "
                         f"only from M={least} on")
        low = least
    return SampleRange(low, high), tuple(notes)


# ----------------------------------------------------------------------------------------
# YAML loading with exact numbers and duplicate-key detection.


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader that keeps YAML floats exact and refuses duplicate keys."""


def _construct_exact_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = str(loader.construct_scalar(node))
    cleaned = text.replace("_", "")
    if cleaned.lower().lstrip("+-") in {".inf", ".nan"}:
        return _NonFinite(text)
    try:
        return parse_exact(cleaned)
    except NumberError:
        return _NonFinite(text)


def _construct_bounded_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = str(loader.construct_scalar(node))
    if len(text.replace("_", "")) > 100:
        return _NonFinite(text)  # reported at its key; converting it could take seconds
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


def _construct_checked_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> object:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain scalars", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


class _NonFinite:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_exact_float)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _construct_bounded_int)
_ExactLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_checked_mapping
)


def load_spec(path: str | Path) -> Spec:
    """Read, parse and validate a spec file."""
    source = str(path)
    file = Path(path)
    if not file.exists():
        raise SpecError(source, "", "file not found")
    if file.is_dir():
        raise SpecError(source, "", "expected a YAML file, found a directory")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise SpecError(source, "", f"cannot read the file ({error.strerror})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(source, "", f"spec is larger than {MAX_SPEC_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(source, "", "expected UTF-8 YAML text, found binary data") from None
    return parse_spec(text, source)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with exact numbers; errors become SpecError."""
    if "\x00" in text:
        raise SpecError(source, "", "expected YAML text, found NUL bytes (binary data)")
    try:
        return yaml.load(text, Loader=_ExactLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(source, "", f"invalid YAML: {where}{problem}") from None
    except (ValueError, RecursionError) as error:
        raise SpecError(source, "", f"invalid YAML: {error}") from None


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Parse and validate spec text."""
    return _Validator(source).spec(parse_yaml(text, source))


# ----------------------------------------------------------------------------------------
# Validation.

_TOP_KEYS = {
    "name",
    "description",
    "network",
    "loss",
    "samples",
    "targets",
    "query",
    "fixed",
    "assume",
    "conventions",
    "generic",
    "expect",
}
_TARGET_RE = re.compile(r"^\s*([A-Za-z]\w*)\s*(?:\[\s*(\d+)\s*(?:,\s*(\d+)\s*)?\])?\s*$")


def _type_name(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int | Fraction):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str) -> SpecError:
        return SpecError(self.source, key, expected)

    def mapping(self, value: object, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, found {_type_name(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"keys must be text, found {_type_name(name)}")
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                raise self.fail(where, f"unknown key; expected one of {', '.join(sorted(allowed))}")
        return value

    def integer(self, value: object, key: str, low: int, high: int) -> int:
        if isinstance(value, _NonFinite):
            raise self.fail(key, f"expected a whole number from {low} to {high}, found "
                                 f"{value.text[:20]!r}...")
        if isinstance(value, bool) or not isinstance(value, int | Fraction):
            raise self.fail(key, f"expected a whole number from {low} to {high}, "
                                 f"found {_type_name(value)}")
        if isinstance(value, Fraction):
            if value.denominator != 1:
                raise self.fail(key, f"expected a whole number, found {value}")
            value = value.numerator
        if not low <= value <= high:
            shown = value if abs(value) < 10**12 else "a huge number"
            raise self.fail(key, f"expected a whole number from {low} to {high}, found {shown}")
        return value

    def number(self, value: object, key: str) -> Fraction:
        if isinstance(value, _NonFinite):
            if len(value.text) > 100:
                raise self.fail(key, f"number too large ({len(value.text)} characters); "
                                     "expected at most 77 digits")
            raise self.fail(key, f"expected a finite exact number, found {value.text[:40]!r}")
        try:
            return parse_exact(value)
        except NumberError as error:
            raise self.fail(key, str(error)) from None

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, found {_type_name(value)}")
        return value

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected text, found {_type_name(value)}")
        return value

    def choice(self, value: object, key: str, enum: type[Enum]) -> Any:
        options = [member.value for member in enum]
        if not isinstance(value, str) or value not in options:
            raise self.fail(key, f"expected one of {', '.join(options)}, found {_type_name(value)}")
        return enum(value)

    # -- sections ------------------------------------------------------------------------

    def spec(self, data: object) -> Spec:
        if data is None:
            raise self.fail("", "the spec is empty; expected a mapping with network, loss, "
                                "samples and query")
        top = self.mapping(data, "", _TOP_KEYS)
        for required in ("network", "query"):
            if required not in top:
                raise self.fail(required, "required key is missing")
        name = self.text(top.get("name", Path(self.source).stem), "name")
        description = self.text(top.get("description", ""), "description")
        network = self.network(top["network"])
        loss = self.loss(top.get("loss", "mse"))
        # Without `targets`, each loss takes the kind it needs: bce probabilities in
        # [0, 1], cross-entropy class labels, mse real numbers.
        default_targets = {LossKind.BCE: "unit_interval",
                           LossKind.CROSS_ENTROPY: "class"}.get(loss.kind, "real")
        targets = self.choice(top.get("targets", default_targets), "targets", TargetKind)
        self.check_compatible(network, loss, targets)
        fixed_raw = top.get("fixed", {})
        fixed_rows = self.fixed_rows(fixed_raw)
        samples = self.samples(top.get("samples"), fixed_rows)
        if (refusal := size_refusal(network, samples.max)) is not None:
            raise self.fail("samples", refusal)
        fixed = self.fixed(fixed_raw, network, samples, targets)
        query = self.query(top["query"], network)
        assume = self.assume(top.get("assume", []), network, samples)
        conventions = self.conventions(top.get("conventions", {}))
        generic = self.boolean(top.get("generic", False), "generic")
        expect = self.expect(top["expect"]) if "expect" in top else None
        return Spec(
            source=self.source,
            name=name,
            network=network,
            loss=loss,
            samples=samples,
            targets=targets,
            query=query,
            fixed=fixed,
            assume=assume,
            conventions=conventions,
            generic=generic,
            description=description,
            expect=expect,
        )

    def network(self, value: object) -> Network:
        net = self.mapping(value, "network", {"inputs", "layers"})
        if "inputs" not in net:
            raise self.fail("network.inputs", "required key is missing (the input dimension)")
        if "layers" not in net:
            raise self.fail("network.layers", "required key is missing (a list of layers)")
        inputs = self.integer(net["inputs"], "network.inputs", 1, MAX_UNITS)
        raw_layers = net["layers"]
        if not isinstance(raw_layers, list) or not raw_layers:
            raise self.fail("network.layers", f"expected a non-empty list of layers, found "
                                              f"{_type_name(raw_layers)}")
        if len(raw_layers) > MAX_LAYERS:
            raise self.fail("network.layers", f"at most {MAX_LAYERS} layers are supported")
        layers = []
        for position, raw in enumerate(raw_layers):
            key = f"network.layers[{position}]"
            layer = self.mapping(raw, key, {"units", "activation", "slope"})
            if "units" not in layer:
                raise self.fail(f"{key}.units", "required key is missing")
            units = self.integer(layer["units"], f"{key}.units", 1, MAX_UNITS)
            raw_activation = layer.get("activation", "linear")
            if not isinstance(raw_activation, str) or raw_activation not in activations.REGISTRY:
                raise self.fail(f"{key}.activation", f"expected one of "
                                f"{', '.join(activations.NAMES)}, found "
                                f"{_type_name(raw_activation)}")
            activation = activations.get(raw_activation)
            slope = Fraction(1, 100)
            if "slope" in layer:
                if not activation.takes_slope:
                    raise self.fail(f"{key}.slope", "slope applies only to leaky_relu")
                slope = self.number(layer["slope"], f"{key}.slope")
            last = position == len(raw_layers) - 1
            if activation.vector and not last:
                raise self.fail(f"{key}.activation", f"{activation.name} is supported on the "
                                                     "output layer only")
            layers.append(Layer(units=units, activation=activation, slope=slope))
        return Network(inputs=inputs, layers=tuple(layers))

    def loss(self, value: object) -> Loss:
        if isinstance(value, str):
            return Loss(kind=self.choice(value, "loss", LossKind))
        loss = self.mapping(value, "loss", {"kind", "reduction", "scale"})
        kind = self.choice(loss.get("kind", "mse"), "loss.kind", LossKind)
        reduction = self.choice(loss.get("reduction", "mean"), "loss.reduction", Reduction)
        scale = self.number(loss.get("scale", 1), "loss.scale")
        if scale <= 0:
            raise self.fail("loss.scale", f"expected a positive number, found {scale}")
        return Loss(kind=kind, reduction=reduction, scale=scale)

    def check_compatible(self, network: Network, loss: Loss, targets: TargetKind) -> None:
        output = network.layers[-1].activation
        if loss.kind is LossKind.BCE and output is not activations.SIGMOID:
            raise self.fail("loss", "bce needs a sigmoid output layer")
        if loss.kind is LossKind.CROSS_ENTROPY and output is not activations.SOFTMAX:
            raise self.fail("loss", "cross_entropy needs a softmax output layer")
        if output is activations.SOFTMAX and loss.kind is not LossKind.CROSS_ENTROPY:
            raise self.fail("loss", "a softmax output layer goes with cross_entropy")
        if loss.kind is LossKind.CROSS_ENTROPY and targets is not TargetKind.CLASS:
            raise self.fail("targets", "cross_entropy takes class targets (targets: class)")
        if targets is TargetKind.CLASS and loss.kind is not LossKind.CROSS_ENTROPY:
            raise self.fail("targets", "class targets go with loss cross_entropy")
        if loss.kind is LossKind.BCE and targets is TargetKind.REAL:
            raise self.fail("targets", "bce takes targets unit_interval or binary")

    def fixed_rows(self, value: object) -> int | None:
        if not isinstance(value, dict):
            return None
        rows = [len(value[name]) for name in ("X", "Y") if isinstance(value.get(name), list)]
        return rows[0] if rows else None

    def samples(self, value: object, fixed_rows: int | None) -> SampleRange:
        if value is None:
            if fixed_rows is None:
                raise self.fail("samples", "required key is missing (a number M, or "
                                           "{min: 1, max: 8})")
            count = self.integer(fixed_rows, "samples", 1, MAX_SAMPLES)
            return SampleRange(count, count)
        if isinstance(value, dict):
            bounds = self.mapping(value, "samples", {"min", "max"})
            if "max" not in bounds:
                raise self.fail("samples.max", "required key is missing")
            low = self.integer(bounds.get("min", 1), "samples.min", 1, MAX_SAMPLES)
            high = self.integer(bounds["max"], "samples.max", 1, MAX_SAMPLES)
            if high < low:
                raise self.fail("samples", f"empty range: min {low} is larger than max {high}")
            result = SampleRange(low, high)
        else:
            count = self.integer(value, "samples", 1, MAX_SAMPLES)
            result = SampleRange(count, count)
        if fixed_rows is not None and not result.min == result.max == fixed_rows:
            raise self.fail("samples", f"fixed X/Y have {fixed_rows} rows, so samples must be "
                                       f"{fixed_rows}")
        return result

    def fixed(self, value: object, network: Network, samples: SampleRange,
              targets: TargetKind) -> dict[str, FixedArray]:
        shapes: dict[str, tuple[int, ...]] = dict(network.parameter_shapes())
        rows = samples.max
        shapes["X"] = (rows, network.inputs)
        shapes["Y"] = (rows,) if targets is TargetKind.CLASS else (rows, network.outputs)
        fixed = self.mapping(value, "fixed", set(shapes))
        result: dict[str, FixedArray] = {}
        for name, raw in fixed.items():
            shape = shapes[name]
            # Vectors of one column may be written flat: X: [0, 2, 3].
            if name in ("X", "Y") and len(shape) == 2 and shape[1] == 1 and isinstance(raw, list) \
                    and raw and not any(isinstance(item, list) for item in raw):
                raw = [[item] for item in raw]
            array = self.array(raw, f"fixed.{name}", shape, allow_logs=name not in ("X", "Y"))
            if name == "Y" and targets is TargetKind.CLASS:
                self.check_classes(array, network.outputs)
            result[name] = array
        return result

    def check_classes(self, array: FixedArray, classes: int) -> None:
        for row, item in enumerate(array):
            if item is not None and (item.denominator != 1 or not 0 <= item < classes):
                raise self.fail(f"fixed.Y[{row}]", f"expected a class index 0..{classes - 1}, "
                                                   f"found {item}")

    def array(self, raw: object, key: str, shape: tuple[int, ...],
              allow_logs: bool = False) -> FixedArray:
        if len(shape) == 0:
            if raw is None:
                return None  # type: ignore[return-value]
            if allow_logs and isinstance(raw, str) and "log" in raw:
                from smtgrad.numbers.lognum import parse_value

                try:
                    return parse_value(raw)  # type: ignore[return-value]
                except (NumberError, ValueError) as error:
                    raise self.fail(key, str(error)) from None
            return self.number(raw, key)  # type: ignore[return-value]
        if not isinstance(raw, list):
            raise self.fail(key, f"expected a list of {shape[0]} "
                                 f"{'rows' if len(shape) > 1 else 'numbers'} (shape "
                                 f"{'x'.join(map(str, shape))}), found {_type_name(raw)}")
        if len(raw) != shape[0]:
            raise self.fail(key, f"expected {shape[0]} entries (shape "
                                 f"{'x'.join(map(str, shape))}), found {len(raw)}")
        return tuple(self.array(item, f"{key}[{index}]", shape[1:], allow_logs)
                     for index, item in enumerate(raw))

    def target(self, raw: object, key: str, network: Network) -> Target:
        text = self.text(raw, key)
        match = _TARGET_RE.match(text)
        shapes = network.parameter_shapes()
        if not match:
            raise self.fail(key, f"expected a parameter block such as W1 or an entry such as "
                                 f"W1[0,1], found {text[:40]!r}")
        block, first, second = match.groups()
        if block not in shapes:
            raise self.fail(key, f"unknown parameter {block!r}; this network has "
                                 f"{', '.join(shapes)}")
        if first is None:
            return Target(block)
        index = (int(first),) if second is None else (int(first), int(second))
        self.check_index(key, block, index, shapes[block])
        return Target(block, index)

    def check_index(self, key: str, name: str, index: tuple[int, ...],
                    shape: tuple[int, ...]) -> None:
        if len(index) != len(shape) or any(i >= n for i, n in zip(index, shape, strict=True)):
            raise self.fail(key, f"{name}{list(index)} is out of range: {name} has shape "
                                 f"{'x'.join(map(str, shape))}")

    def query(self, value: object, network: Network) -> Query:
        query = self.mapping(value, "query", {"zero", "nonzero", "minimum"})
        parts: dict[str, tuple[Target, ...]] = {}
        for part in ("zero", "nonzero"):
            raw = query.get(part, [])
            if isinstance(raw, str):
                raw = [raw]
            if not isinstance(raw, list):
                raise self.fail(f"query.{part}", f"expected a list of blocks or entries, found "
                                                 f"{_type_name(raw)}")
            parts[part] = tuple(self.target(item, f"query.{part}[{index}]", network)
                                for index, item in enumerate(raw))
        minimum = None
        if "minimum" in query:
            minimum = self.choice(query["minimum"], "query.minimum", Minimum)
            shapes = network.parameter_shapes()
            if parts["nonzero"]:
                raise self.fail("query.nonzero", "no nonzero gradient with minimum: local (a "
                                                 "local minimum asks for a stationary point)")
            if not parts["zero"]:  # a local minimum is stationary: every gradient is zero
                parts["zero"] = tuple(Target(block) for block in shapes)
            named = {(t.block, index) for t in parts["zero"] for index in t.indices(shapes)}
            missing = [block for block, shape in shapes.items()
                       if any((block, index) not in named for index in entries(shape))]
            if missing:
                raise self.fail("query.zero", "every parameter block with minimum: local (a "
                                              "local minimum is a stationary point); missing "
                                              + ", ".join(missing))
        return Query(zero=parts["zero"], nonzero=parts["nonzero"], minimum=minimum)

    def assume(self, value: object, network: Network, samples: SampleRange
               ) -> tuple[Assumption, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail("assume", f"expected a list of conditions, found {_type_name(value)}")
        result = []
        for position, raw in enumerate(value):
            key = f"assume[{position}]"
            text = self.text(raw, key)
            try:
                condition = parse_condition(text)
            except ExprError as error:
                raise self.fail(key, f"{error} in {text[:80]!r}") from None
            for ref in references(condition):
                self.check_reference(key, ref, network, samples)
            result.append(Assumption(text=text, condition=condition))
        return tuple(result)

    def check_reference(self, key: str, ref: Ref, network: Network,
                        samples: SampleRange) -> None:
        shapes = network.parameter_shapes()
        if EVERY_SAMPLE in ref.indices and ref.name not in ("X", "Y", "yhat"):
            raise self.fail(key, f"{ref.name}: '*' (every sample) is a sample index, for X, Y "
                                 "and yhat only")
        if ref.name in shapes:
            self.check_index(key, ref.name, ref.indices, shapes[ref.name])
            return
        if ref.name == "loss":
            if ref.indices:
                raise self.fail(key, "loss takes no index")
            return
        widths = {"X": network.inputs, "Y": network.outputs, "yhat": network.outputs}
        if ref.name not in widths:
            raise self.fail(key, f"unknown name {ref.name!r}; expected parameters "
                                 f"({', '.join(shapes)}), X, Y, yhat or loss")
        width = widths[ref.name]
        index = ref.indices
        if len(index) == 1 and (width == 1 or ref.name == "Y"):
            index = (index[0], 0)
        if len(index) != 2:
            raise self.fail(key, f"{ref.name} needs [sample, column] indices")
        if index[0] == EVERY_SAMPLE:  # X[*,0]: for every sample
            pass
        elif index[0] >= samples.max:
            raise self.fail(key, f"{ref.name}{list(ref.indices)} refers to sample {index[0]}, "
                                 f"but M is at most {samples.max} (samples are numbered from 0)")
        if ref.name != "Y" and index[1] >= width:
            raise self.fail(key, f"{ref.name}{list(ref.indices)}: column {index[1]} is out of "
                                 f"range (width {width})")

    def conventions(self, value: object) -> Conventions:
        conventions = self.mapping(value, "conventions", {"relu_grad_at_zero"})
        grad = self.integer(conventions.get("relu_grad_at_zero", 0),
                            "conventions.relu_grad_at_zero", 0, 1)
        return Conventions(relu_grad_at_zero=grad)

    def expect(self, value: object) -> Expectation:
        if isinstance(value, str):
            value = {"verdict": value}
        expect = self.mapping(value, "expect", {"verdict", "samples", "proved"})
        if "verdict" not in expect:
            raise self.fail("expect.verdict", "required key is missing")
        verdict = self.choice(expect["verdict"], "expect.verdict", Verdict)
        samples = None
        if "samples" in expect:
            samples = self.integer(expect["samples"], "expect.samples", 1, MAX_SAMPLES)
        proved = self.text(expect["proved"], "expect.proved") if "proved" in expect else None
        return Expectation(verdict=verdict, samples=samples, proved=proved)


def normalize_ref(ref: Ref) -> Ref:
    """Give data references their full [sample, column] index (``X[2]`` -> ``X[2,0]``)."""
    if ref.name in ("X", "Y", "yhat") and len(ref.indices) == 1:
        return Ref(ref.name, (ref.indices[0], 0))
    return ref


def entries(shape: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """All index tuples of an array shape, in row-major order."""
    return _entries(tuple(shape))


@functools.cache
def _entries(shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    result: list[tuple[int, ...]] = [()]
    for size in shape:
        result = [(*index, position) for index in result for position in range(size)]
    return tuple(result)
