"""Autograd replay: the witness rebuilt in PyTorch, its gradients beside the exact ones.

:func:`replay` runs the model of :func:`smtgrad.interop.torch_export.to_torch` on X, Y
with the spec's loss, in float32 and in float64, calls ``backward()``, and lines up every
gradient entry (and the loss) with smtgrad's exact value; :meth:`Replay.render` prints
the table, with the absolute difference, and says how far rounding moves each exact zero.

Where torch cannot mirror the exact computation it says so: a sample on a kink under
``relu_grad_at_zero: 1`` (torch's derivatives at kinks are convention 0), a pre-activation
that rounding moves off its kink, and witness values that are enclosures (replayed at
their midpoints).

May import torch (required here), rich (for the table), :mod:`smtgrad.interop`,
:mod:`smtgrad.spec` and :mod:`smtgrad.reference`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from smtgrad.interop import require

require("torch", "--replay torch")
import torch  # noqa: E402

from smtgrad.interop.torch_export import loss_function, to_torch  # noqa: E402
from smtgrad.interop.values import NoFloat, exact_text, is_enclosure, to_float  # noqa: E402
from smtgrad.reference.network import Kink, entry_at  # noqa: E402
from smtgrad.reference.witness import Witness  # noqa: E402
from smtgrad.spec import Spec, entries  # noqa: E402

#: torch's derivative at each kink of a piecewise activation (smtgrad's convention 0).
_TORCH_AT_KINK = {"relu": "0", "leaky_relu": "slope", "abs": "0", "hardtanh": "0"}


@dataclass(frozen=True)
class Row:
    """One gradient entry (or the loss): exact value and autograd's in both precisions."""

    name: str
    exact: Any  # the exact value, or None when it is not known
    float64: float
    float32: float
    required: str = ""

    @property
    def exact_float(self) -> float | None:
        if self.exact is None:
            return None
        try:
            return to_float(self.exact)
        except NoFloat:
            return None

    @property
    def exact_zero(self) -> bool:
        return self.exact_float == 0 and not is_enclosure(self.exact)

    def difference(self, value: float) -> float | None:
        """|autograd - exact| (the exact value rounded to float64 first)."""
        exact = self.exact_float
        return None if exact is None else abs(value - exact)


@dataclass(frozen=True)
class Replay:
    """The replay's rows (every gradient entry, then the loss) and its remarks."""

    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    torch_version: str

    def row(self, name: str) -> Row:
        """The row of an entry (``"W1[0,0]"``) or of ``"loss"``."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def largest_zero_shift(self, precision: str) -> float:
        """The largest |autograd| over the gradient entries that are exactly 0."""
        shifts = [abs(getattr(row, precision)) for row in self.rows
                  if row.name != "loss" and row.exact_zero]
        return max(shifts, default=0.0)

    def render(self) -> str:
        """The table and the remarks as text."""
        from rich.console import Console
        from rich.table import Table

        buffer = io.StringIO()
        console = Console(file=buffer, width=130, force_terminal=False, color_system=None,
                          highlight=False, soft_wrap=True, markup=False)
        table = Table(title=f"Autograd replay (PyTorch {self.torch_version}): exact values "
                            "beside float64 and float32 autograd", title_justify="left",
                      show_edge=False)
        for column in ("entry", "exact", "float64", "|Δ64|", "float32", "|Δ32|", "required"):
            table.add_column(column, justify="left" if column in ("entry", "exact", "required")
                             else "right")
        for row in self.rows:
            d64, d32 = row.difference(row.float64), row.difference(row.float32)
            table.add_row(row.name, _short(row.exact), f"{row.float64:.17g}", _gap(d64),
                          f"{row.float32:.9g}", _gap(d32), row.required)
        console.print(table)
        zeros = [row for row in self.rows if row.name != "loss" and row.exact_zero]
        if zeros:
            console.print(f"exact zeros ({len(zeros)}): rounding moves them to at most "
                          f"{self.largest_zero_shift('float64'):.2e} in float64 and "
                          f"{self.largest_zero_shift('float32'):.2e} in float32")
        for note in self.notes:
            console.print(f"note: {note}")
        return buffer.getvalue()


def _short(value: Any) -> str:
    if value is None:
        return "n/a"
    if is_enclosure(value):
        try:
            return f"≈{to_float(value):.15g} (box)"
        except NoFloat:
            return str(value)[:30]
    text = exact_text(value)
    if len(text) <= 24:
        return text
    try:
        return f"≈{to_float(value):.15g}"
    except NoFloat:
        return text[:24] + "…"


def _gap(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1e}"


def _required(spec: Spec) -> dict[tuple[str, tuple[int, ...]], str]:
    shapes = spec.network.parameter_shapes()
    marks: dict[tuple[str, tuple[int, ...]], str] = {}
    for target in spec.query.nonzero:
        for index in target.indices(shapes):
            marks[(target.block, index)] = "≠ 0" if target.index is not None else \
                f"{target.block} ≠ 0"
    for target in spec.query.zero:
        for index in target.indices(shapes):
            marks[(target.block, index)] = "= 0"
    return marks


def _autograd(spec: Spec, witness: Witness, dtype: torch.dtype
              ) -> tuple[dict[str, Any], float, list[Any]]:
    """Gradients (name -> tensor), loss and each layer's pre-activations, in ``dtype``."""
    model, inputs, targets = to_torch(spec, witness, dtype)
    pre: list[Any] = []
    current = inputs
    for position, module in enumerate(model):
        current = module(current)
        if position % 2 == 0:
            pre.append(current.detach())
    loss = loss_function(spec)(current, targets)
    loss.backward()  # type: ignore[no-untyped-call,unused-ignore]
    gradients: dict[str, Any] = {}
    for index in range(spec.network.depth):
        linear = model[2 * index]
        gradients[f"W{index + 1}"] = linear.weight.grad
        gradients[f"b{index + 1}"] = linear.bias.grad
    return gradients, float(loss.item()), pre


def _kink_notes(spec: Spec, kinks: Sequence[Kink], pre: dict[str, list[Any]]) -> list[str]:
    notes = []
    convention = spec.conventions.relu_grad_at_zero
    for kink in kinks:
        layer = spec.network.layers[kink.layer - 1]
        name = layer.activation.name
        point = exact_text(kink.point)
        torch_value = _TORCH_AT_KINK.get(name, "?")
        if torch_value == "slope":
            torch_value = exact_text(layer.slope)
        where = (f"sample {kink.sample} sits on the kink of layer {kink.layer} unit {kink.unit} "
                 f"({name} at {point})")
        if convention == 1:
            notes.append(f"{where}: the spec's relu_grad_at_zero: 1 takes the derivative 1 "
                         f"there, torch takes {torch_value} and has no way to mirror this "
                         "convention, so autograd's gradients through this sample differ")
        else:
            notes.append(f"{where}: torch's derivative there is {torch_value}, the spec's "
                         "convention (relu_grad_at_zero: 0)")
        for precision, layers in pre.items():
            value = float(layers[kink.layer - 1][kink.sample, kink.unit].item())
            if value != to_float(kink.point):
                notes.append(f"in {precision} that pre-activation rounds to {value:.3e}, off "
                             "the kink: torch takes the derivative of the side it lands on")
    return notes


def _values(witness: Witness) -> list[Any]:
    """Every number of the witness: parameters, inputs and targets."""
    stack: list[Any] = [*witness.parameters.weights, *witness.parameters.biases,
                        *witness.inputs, *witness.targets]
    values = []
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        else:
            values.append(item)
    return values


def replay(spec: Spec, witness: Witness, gradients: dict[str, Any] | None, loss: Any = None,
           kinks: Sequence[Kink] = ()) -> Replay:
    """Autograd on the witness in float32 and float64, beside the exact ``gradients``
    (block name -> nested tuples, as :attr:`smtgrad.engine.Result.gradients`) and
    ``loss``; ``kinks`` are the exact pass's samples on kinks."""
    results = {"float64": _autograd(spec, witness, torch.float64),
               "float32": _autograd(spec, witness, torch.float32)}
    marks = _required(spec)
    rows: list[Row] = []
    for name, shape in spec.network.parameter_shapes().items():
        for index in entries(shape):
            exact = None if gradients is None or name not in gradients else \
                entry_at(gradients[name], index)
            values = {precision: float(result[0][name][index].item())
                      for precision, result in results.items()}
            rows.append(Row(f"{name}[{','.join(map(str, index))}]", exact, values["float64"],
                            values["float32"], marks.get((name, index), "")))
    rows.append(Row("loss", loss, results["float64"][1], results["float32"][1]))
    notes = _kink_notes(spec, kinks, {precision: result[2]
                                      for precision, result in results.items()})
    if any(is_enclosure(value) for value in _values(witness)):
        notes.append("the witness has enclosures (certified boxes); torch replays their "
                     "midpoints, so gradients that are exactly 0 at the certified point are "
                     "about the box width times the Jacobian away from 0 there, below float "
                     "resolution")
    return Replay(tuple(rows), tuple(notes), str(torch.__version__))
