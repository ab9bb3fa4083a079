"""Plots of an answer (``smtgrad solve SPEC --plot FILE.png|svg``), drawn with matplotlib.

* a witness of a network with one input: the data points, the network function over a
  range covering them, the residuals, and each sample's share of every queried gradient
  (a grouped bar chart, from the exact sums of :mod:`smtgrad.answers`);
* two inputs: a heat map of the network's (first) output, with the data points;
* a walk over M (``--minimal`` or a range of M): the verdict per M, from ``Result.attempts``.

Plots are illustrations: the curves are evaluated in floating point and prove nothing
(every claim stays with the exact verifier). matplotlib is an optional extra
(``pip install 'smtgrad[plot]'``) and runs on the Agg backend, without a display; without it
:func:`require_plotting` raises :class:`PlotUnavailable` (exit 2 with an install hint).

Output code: may import :mod:`smtgrad.spec`, :mod:`smtgrad.numbers`, :mod:`smtgrad.reference`,
:mod:`smtgrad.activations` and :mod:`smtgrad.answers`; never a solver or the encoding.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtgrad.errors import InputError
from smtgrad.numbers import InexactValue, SmoothFunctions
from smtgrad.spec import Network, Verdict

if TYPE_CHECKING:
    from smtgrad.answers import Facts
    from smtgrad.engine import Result

__all__ = ["SUFFIXES", "PlotUnavailable", "plot_result", "require_plotting"]

#: The file formats ``--plot`` writes, by suffix.
SUFFIXES = (".png", ".svg")

_VERDICT_COLOURS = {Verdict.SAT: "#2e7d32", Verdict.UNSAT: "#c62828",
                    Verdict.UNKNOWN: "#9e9e9e"}


class PlotUnavailable(InputError):
    """``--plot`` cannot be honoured: matplotlib is missing, or the suffix is not known."""

    label = "cannot plot"


def require_plotting(path: Path) -> None:
    """Fail early (exit 2) when ``path`` cannot be drawn: an unknown suffix or no matplotlib."""
    if path.suffix.lower() not in SUFFIXES:
        raise PlotUnavailable(f"{path}: expected a file name ending in "
                              f"{' or '.join(SUFFIXES)}")
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable("--plot needs matplotlib, an optional extra: "
                              "pip install 'smtgrad[plot]' (or pip install matplotlib)")


class _Floats(SmoothFunctions):
    """Floating-point primitives, for drawing only."""

    def exp(self, x: Any) -> Any:
        return math.exp(float(x))

    def log(self, x: Any) -> Any:
        return math.log(float(x))

    def sigmoid(self, x: Any) -> Any:
        x = float(x)
        return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))

    def tanh(self, x: Any) -> Any:
        return math.tanh(float(x))

    def softmax(self, z: Sequence[Any]) -> tuple[Any, ...]:
        top = max(float(v) for v in z)
        weights = [math.exp(float(v) - top) for v in z]
        total = sum(weights)
        return tuple(w / total for w in weights)

    def normal_cdf(self, x: Any) -> Any:
        return 0.5 * (1 + math.erf(float(x) / math.sqrt(2)))

    def normal_pdf(self, x: Any) -> Any:
        return math.exp(-float(x) ** 2 / 2) / math.sqrt(2 * math.pi)

    def negative_log(self, p: Any) -> Any:
        return -math.log(float(p))


def _float(value: Any) -> float:
    """A number of a witness or an evaluation as a float (midpoint of a box or ball)."""
    from smtgrad.reference.intervals import Enclosure, ball_bounds

    if isinstance(value, Fraction | int):
        return float(value)
    if isinstance(value, Enclosure):
        return float((value.lo + value.hi) / 2)
    try:
        return float(value)
    except (TypeError, ValueError, ArithmeticError):
        pass
    try:
        lo, hi = ball_bounds(getattr(value, "value", value))
    except (TypeError, ValueError, AttributeError, ArithmeticError, InexactValue):
        return math.nan  # drawn as a gap
    return float((lo + hi) / 2)


def _forward(network: Network, weights: list[list[list[float]]], biases: list[list[float]],
             x: Sequence[float]) -> tuple[float, ...]:
    floats = _Floats()
    current: tuple[Any, ...] = tuple(x)
    for layer, weight, bias in zip(network.layers, weights, biases, strict=True):
        u = tuple(sum(w * a for w, a in zip(row, current, strict=True)) + b
                  for row, b in zip(weight, bias, strict=True))
        activation = layer.activation
        if activation.identity:
            current = u
        elif activation.vector:
            current = tuple(activation.vector_value(u, floats))
        else:
            current = tuple(activation.value(value, layer, floats) for value in u)
    return tuple(float(v) for v in current)


def _float_parameters(result: Result) -> tuple[list[list[list[float]]], list[list[float]]]:
    assert result.witness is not None
    parameters = result.witness.parameters
    weights = [[[_float(v) for v in row] for row in matrix] for matrix in parameters.weights]
    biases = [[_float(v) for v in vector] for vector in parameters.biases]
    return weights, biases


def _span(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    margin = max((high - low) * 0.25, 1.0)
    return low - margin, high + margin


def _target(value: Any) -> float:
    return _float(value[0] if isinstance(value, tuple) else value)


def plot_result(result: Result, path: Path) -> None:
    """Draw ``result`` to ``path`` (.png or .svg); see the module documentation."""
    require_plotting(path)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from smtgrad.answers import facts

    panels: list[str] = []
    found: Facts | None = None
    if result.verdict is Verdict.SAT and result.witness is not None \
            and result.evaluation is not None:
        found = facts(result.spec, result.witness, result.evaluation,
                      certified=result.certificate == "enclosure")
        inputs = result.spec.network.inputs
        if inputs in (1, 2):
            panels.append("function" if inputs == 1 else "heatmap")
        panels += ["residuals", "contributions"]
    if len(result.attempts) > 1 or found is None:
        panels.append("attempts")
    columns = 2 if len(panels) == 4 else len(panels)
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(max(5.6 * columns, 7.0), 4.4 * rows),
                                squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=True):
        if panel == "function":
            _function_panel(axis, result)
        elif panel == "heatmap":
            _heatmap_panel(figure, axis, result)
        elif panel == "residuals":
            assert found is not None
            _residual_panel(axis, found)
        elif panel == "contributions":
            assert found is not None
            _contribution_panel(axis, found)
        else:
            _attempts_panel(axis, result)
    verdict = result.verdict.value + (f" at M={result.samples}" if result.samples else "")
    if result.proved:
        verdict += f" (proved for {result.proved})"
    figure.suptitle(f"smtgrad · {result.spec.name}\n{verdict}", fontsize=12)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise PlotUnavailable(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        plt.close(figure)


def _function_panel(axis: Any, result: Result) -> None:
    assert result.witness is not None
    network = result.spec.network
    weights, biases = _float_parameters(result)
    xs = [_float(row[0]) for row in result.witness.inputs]
    ys = [_target(y) for y in result.witness.targets]
    low, high = _span(xs)
    grid = [low + (high - low) * k / 400 for k in range(401)]
    outputs = [_forward(network, weights, biases, [x])[0] for x in grid]
    axis.plot(grid, outputs, color="#1565c0", label="network output ŷ(x)")
    axis.scatter(xs, ys, color="#e65100", zorder=3, label="samples (x, y)")
    predictions = [_float(p[0]) for p in result.evaluation.predictions] \
        if result.evaluation is not None else []
    for m, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if predictions:
            axis.plot([x, x], [y, predictions[m]], color="#e65100", linestyle=":",
                      linewidth=1)
        axis.annotate(f"m={m}", (x, y), textcoords="offset points", xytext=(4, 4),
                      fontsize=8)
    axis.set_xlabel("x")
    axis.set_ylabel("y" if network.outputs == 1 else "y, first output")
    axis.margins(y=0.15)
    axis.set_title("data and network function")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)


def _heatmap_panel(figure: Any, axis: Any, result: Result) -> None:
    assert result.witness is not None
    network = result.spec.network
    weights, biases = _float_parameters(result)
    x0 = [_float(row[0]) for row in result.witness.inputs]
    x1 = [_float(row[1]) for row in result.witness.inputs]
    (a0, b0), (a1, b1) = _span(x0), _span(x1)
    steps = 120
    grid = [[_forward(network, weights, biases,
                      [a0 + (b0 - a0) * i / steps, a1 + (b1 - a1) * j / steps])[0]
             for i in range(steps + 1)] for j in range(steps + 1)]
    image = axis.imshow(grid, origin="lower", extent=(a0, b0, a1, b1), aspect="auto",
                        cmap="viridis")
    figure.colorbar(image, ax=axis, label="ŷ (first output); points: their target y")
    ys = [_target(y) for y in result.witness.targets]
    axis.scatter(x0, x1, c=ys, cmap="viridis", norm=image.norm, edgecolors="white", s=60,
                 zorder=3)
    for m, (u, v) in enumerate(zip(x0, x1, strict=True)):
        axis.annotate(f"m={m}, y={ys[m]:.3g}", (u, v), textcoords="offset points",
                      xytext=(4, 4), fontsize=8, color="white")
    axis.set_xlabel("x[0]")
    axis.set_ylabel("x[1]")
    axis.set_title("network output over the inputs")


def _residual_panel(axis: Any, found: Facts) -> None:
    residuals = found.evaluation.residuals
    samples = len(residuals)
    outputs = len(residuals[0]) if residuals else 0
    width = 0.8 / max(outputs, 1)
    for k in range(outputs):
        values = [_float(row[k]) for row in residuals]
        positions = [m + (k - (outputs - 1) / 2) * width for m in range(samples)]
        axis.bar(positions, values, width=width, label=f"output {k}" if outputs > 1 else None)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(range(samples))
    axis.set_xlabel("sample m")
    axis.set_ylabel("residual r = ŷ − y")
    axis.set_title("residuals")
    if outputs > 1:
        axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)


def _contribution_panel(axis: Any, found: Facts) -> None:
    """Each sample's term factor·δ·a of every queried gradient entry (all entries if none is
    queried), as grouped bars; the bars of one entry add up to its gradient."""
    queried = [line for line in found.lines if line.required] or list(found.lines)
    queried = [line for line in queried if line.deltas][:12]
    if not queried:
        axis.text(0.5, 0.5, "no exact per-sample terms", ha="center", va="center")
        axis.set_axis_off()
        return
    samples = len(queried[0].deltas)
    width = 0.8 / samples
    for m in range(samples):
        values = []
        for line in queried:
            term = line.deltas[m] if line.inputs is None else line.deltas[m] * line.inputs[m]
            values.append(_float(line.factor) * _float(term))
        positions = [k + (m - (samples - 1) / 2) * width for k in range(len(queried))]
        axis.bar(positions, values, width=width, label=f"m={m}")
    labels = []
    for line in queried:
        size = 1
        for n in found.spec.network.parameter_shapes()[line.block]:
            size *= n
        name = line.block if size == 1 else f"{line.block}[{','.join(map(str, line.index))}]"
        required = line.required.split(" (")[0]
        labels.append(f"dL/d{name}\n{required}" if len(queried) <= 4 else
                      f"dL/d{name} {required}")
    axis.set_xticks(range(len(queried)))
    axis.set_xticklabels(labels, fontsize=8, rotation=0 if len(queried) <= 4 else 35,
                         ha="center" if len(queried) <= 4 else "right")
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel("sample's share of the gradient")
    axis.set_title("per-sample terms (bars of an entry sum to it)")
    axis.legend(fontsize=8, ncol=2 if samples > 4 else 1)
    axis.grid(axis="y", alpha=0.3)


def _attempts_panel(axis: Any, result: Result) -> None:
    attempts = result.attempts
    if not attempts:
        axis.text(0.5, 0.5, f"{result.verdict.value}: {result.reason[:60]}", ha="center",
                  va="center", wrap=True)
        axis.set_axis_off()
        return
    ms = [attempt.samples for attempt in attempts]
    seconds = [max(attempt.seconds, 1e-4) for attempt in attempts]
    colours = [_VERDICT_COLOURS[attempt.verdict] for attempt in attempts]
    axis.bar(ms, seconds, color=colours)
    for attempt, height in zip(attempts, seconds, strict=True):
        method = attempt.method if len(attempt.method) <= 30 else attempt.method[:29] + "…"
        axis.annotate(f"{attempt.verdict.value}\n{method}",
                      (attempt.samples, height), textcoords="offset points", xytext=(0, 3),
                      ha="center", fontsize=7)
    axis.set_yscale("log")
    axis.set_xticks(ms)
    axis.set_xlabel("number of samples M")
    axis.set_ylabel("seconds (log scale)")
    axis.set_title("verdict per M")
    axis.margins(y=0.4)
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=verdict.value)
               for verdict, colour in _VERDICT_COLOURS.items()
               if any(a.verdict is verdict for a in attempts)]
    axis.legend(handles=handles, fontsize=8, loc="upper left")
