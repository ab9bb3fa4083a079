"""Answers ready to post: a solve result or a checked witness as Markdown or LaTeX.

Written the way the seed question's accepted answer was written by hand: the
network, the witness, the forward pass per sample (pre-activations, activations,
prediction, residual), the backpropagated deltas, every gradient as its sum over
the samples with the exact values filled in (``dL/db2 = (2/3)·((-1) + (-3) + 4) = 0``)
and the loss; for unsat the proof's argument in words (which lemma, or which solver
refuted which encoding at which M); for unknown the reason.

Each sample's share of every gradient is recomputed here with the trusted reference
pass (:func:`smtgrad.reference.network.evaluate` on a one-sample batch with the
loss summed), so every number written out is exact, and the sums are checked
against the batch's gradients before they are printed.

Output code: may import :mod:`smtgrad.spec`, :mod:`smtgrad.numbers`,
:mod:`smtgrad.reference` and :mod:`smtgrad.report` (and the :class:`Result` type of the
engine); never a solver, the encoding or the methods. Every function returns a string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from smtgrad import __version__
from smtgrad.numbers import InexactValue, format_exact
from smtgrad.reference.network import Evaluation, Parameters, entry_at, evaluate, loss_normaliser
from smtgrad.reference.verify import Status, Verification
from smtgrad.reference.witness import Witness
from smtgrad.spec import (
    Loss,
    LossKind,
    Reduction,
    SampleRange,
    Spec,
    TargetKind,
    Verdict,
    entries,
)

if TYPE_CHECKING:
    from smtgrad.engine import Result

__all__ = ["Facts", "check_latex", "check_markdown", "facts", "result_latex",
           "result_markdown"]


# ----------------------------------------------------------------------------------------
# What an answer says, independent of the markup.


@dataclass(frozen=True)
class GradientLine:
    """One gradient entry written out: ``factor · Σ_m delta_m [· a_m]``, and its value."""

    block: str
    index: tuple[int, ...]
    factor: Fraction
    deltas: tuple[Any, ...]  # per sample
    inputs: tuple[Any, ...] | None  # per sample, None for a bias
    value: Any  # the batch gradient entry (from the verifier's evaluation)
    required: str  # "= 0", "≠ 0" (part of a block that needs a nonzero entry) or ""
    certified_zero: bool = False  # exactly 0 by the enclosure's Krawczyk certificate


@dataclass(frozen=True)
class Facts:
    """Everything an answer shows about one witness, as exact values."""

    spec: Spec
    witness: Witness
    evaluation: Evaluation
    factor: Fraction  # every gradient is factor · Σ_m (the sample's term)
    deltas: tuple[tuple[tuple[Any, ...], ...], ...] | None  # [layer][sample][unit]
    lines: tuple[GradientLine, ...]


def _gradient_factor(spec: Spec, samples: int) -> Fraction:
    """The factor in front of every gradient sum (the 2 of the square included for MSE)."""
    factor = loss_normaliser(spec.loss, samples, spec.network.outputs)
    return 2 * factor if spec.loss.kind is LossKind.MSE else factor


def _one_sample(spec: Spec, witness: Witness, m: int) -> Evaluation | None:
    """The reference pass on sample m alone, its loss summed with scale 1."""
    from smtgrad.numbers.lognum import LatticeFunctions
    from smtgrad.reference.intervals import Enclosure, interval_evaluation

    loss = Loss(spec.loss.kind, Reduction.SUM, Fraction(1))
    single = dataclasses.replace(spec, loss=loss, samples=SampleRange(1, 1))
    sample = Witness(witness.parameters, (witness.inputs[m],), (witness.targets[m],))
    values = [*_flat(witness.parameters.weights), *_flat(witness.parameters.biases),
              *_flat(sample.inputs), *_flat(sample.targets)]
    if not any(isinstance(value, Enclosure) for value in values):
        try:
            return evaluate(spec.network, loss, spec.conventions, sample.parameters,
                            sample.inputs, sample.targets, LatticeFunctions(None))
        except InexactValue:
            pass
        try:
            from smtgrad.numbers.expnum import ExpFunctions

            return evaluate(spec.network, loss, spec.conventions, sample.parameters,
                            sample.inputs, sample.targets, ExpFunctions())
        except InexactValue:
            pass
    try:
        return interval_evaluation(single, sample)
    except (InexactValue, ValueError, ZeroDivisionError):
        return None


def _flat(array: Any) -> list[Any]:
    if isinstance(array, tuple | list):
        return [item for part in array for item in _flat(part)]
    return [array]


def _exact(value: Any) -> bool:
    from smtgrad.reference.intervals import Dual, Enclosure

    return not isinstance(value, Dual | Enclosure) and type(value).__name__ != "arb"


def _requirements(spec: Spec) -> dict[tuple[str, tuple[int, ...]], str]:
    shapes = spec.network.parameter_shapes()
    required: dict[tuple[str, tuple[int, ...]], str] = {}
    for target in spec.query.nonzero:
        for index in target.indices(shapes):
            required[(target.block, index)] = "≠ 0" if target.index is not None or \
                len(target.indices(shapes)) == 1 else f"≠ 0 (some entry of {target.block})"
    for target in spec.query.zero:
        for index in target.indices(shapes):
            required[(target.block, index)] = "= 0"
    return required


def facts(spec: Spec, witness: Witness, evaluation: Evaluation,
          certified: bool = False) -> Facts:
    """Per-sample deltas and the written-out gradient sums of a witness.

    ``certified``: the witness is an enclosure whose Krawczyk certificate proves the
    zero-query entries exactly 0.
    """
    samples = witness.samples
    factor = _gradient_factor(spec, samples)
    halve = spec.loss.kind is LossKind.MSE
    network = spec.network
    singles = [_one_sample(spec, witness, m) for m in range(samples)]
    deltas: tuple[tuple[tuple[Any, ...], ...], ...] | None = None
    if all(single is not None for single in singles):
        with _precision(singles):
            deltas = tuple(
                tuple(tuple((value / 2 if halve else value)
                            for value in single.gradients[f"b{layer}"])  # type: ignore[union-attr]
                      for single in singles)
                for layer in range(1, network.depth + 1))
    required = _requirements(spec)
    zero_entries = {key for key, text in required.items() if text == "= 0"}
    lines = []
    for name, shape in network.parameter_shapes().items():
        layer = int(name[1:])
        for index in entries(shape):
            value = entry_at(evaluation.gradients[name], index)
            per_sample: tuple[Any, ...] = ()
            inputs: tuple[Any, ...] | None = None
            if deltas is not None:
                j = index[0]
                per_sample = tuple(deltas[layer - 1][m][j] for m in range(samples))
                if name[0] == "W":
                    i = index[1]
                    below = witness.inputs if layer == 1 else \
                        evaluation.activations[layer - 2]
                    inputs = tuple(below[m][i] for m in range(samples))
            lines.append(GradientLine(name, index, factor, per_sample, inputs, value,
                                      required.get((name, index), ""),
                                      certified and (name, index) in zero_entries))
    if deltas is not None and not _sums_agree(lines):
        deltas = None
        lines = [dataclasses.replace(line, deltas=(), inputs=None) for line in lines]
    return Facts(spec, witness, evaluation, factor, deltas, tuple(lines))


def _precision(singles: Sequence[Evaluation | None]) -> contextlib.AbstractContextManager[Any]:
    """Ball arithmetic on the per-sample passes at the precision they were computed with
    (outside it arb works at 53 bits, which would widen every ball to about 1e-16)."""
    values = [v for single in singles if single is not None
              for block in single.gradients.values() for v in _flat(block)]
    if all(_exact(value) for value in values):
        return contextlib.nullcontext()
    import flint

    return flint.ctx.workprec(256)


def _sums_agree(lines: Sequence[GradientLine]) -> bool:
    """Every exact sum equals the batch gradient (a safeguard: it always should)."""
    for line in lines:
        if not (_exact(line.value) and all(map(_exact, line.deltas))):
            continue
        terms = line.deltas if line.inputs is None else \
            [d * a for d, a in zip(line.deltas, line.inputs, strict=True)]
        total: Any = 0
        for term in terms:
            total = total + term
        try:
            if line.factor * total != line.value:
                return False
        except (InexactValue, TypeError):
            return False
    return True


# ----------------------------------------------------------------------------------------
# Markup: one writer per format, the content is written once (``_Answer``).


class _Writer:
    """Structure and notation of one output format."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    # structure
    def heading(self, text: str) -> None:
        raise NotImplementedError

    def para(self, text: str) -> None:
        raise NotImplementedError

    def items(self, lines: Sequence[str]) -> None:
        raise NotImplementedError

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        raise NotImplementedError

    def equations(self, lines: Sequence[str]) -> None:
        raise NotImplementedError

    def text(self, text: str) -> str:
        """Plain words (escaped for the format)."""
        raise NotImplementedError

    def math(self, formula: str) -> str:
        """An inline formula."""
        raise NotImplementedError

    def strong(self, text: str) -> str:
        raise NotImplementedError

    def code(self, text: str) -> str:
        raise NotImplementedError

    # notation
    def number(self, value: Any) -> str:
        raise NotImplementedError

    def factor(self, value: Any) -> str:
        """A number as a factor of a product (parenthesised unless a plain natural)."""
        raise NotImplementedError

    def vector(self, values: Sequence[Any]) -> str:
        if len(values) == 1:
            return self.number(values[0])
        return "(" + ", ".join(self.number(v) for v in values) + ")"

    def name(self, block: str, index: tuple[int, ...] = (), shape_size: int = 2) -> str:
        raise NotImplementedError

    def grad(self, block: str, index: tuple[int, ...], size: int) -> str:
        raise NotImplementedError

    def sample(self, symbol: str, layer: int | None, m: str, unit: str | None) -> str:
        """A per-sample quantity: ``δ2[m]`` / ``\\delta^{(2)}_{m}``."""
        raise NotImplementedError

    times = "·"
    neq = "≠"
    sum_m = "Σ_m "
    yhat = "ŷ"
    delta = "δ"
    approx = "≈"

    def power(self, base: str, exponent: int) -> str:
        return f"{base}^{exponent}"

    def function(self, name: str) -> str:
        """An activation's name in a formula."""
        return name

    def render(self) -> str:
        return "\n".join(self.parts).rstrip("\n") + "\n"


class _Markdown(_Writer):
    """GitHub / Stack Exchange Markdown; formulas as plain Unicode in code spans."""

    def heading(self, text: str) -> None:
        self.parts.append(f"### {text}\n")

    def para(self, text: str) -> None:
        self.parts.append(text + "\n")

    def items(self, lines: Sequence[str]) -> None:
        self.parts.append("\n".join(f"- {line}" for line in lines) + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        out = ["| " + " | ".join(header) + " |",
               "|" + "|".join("---:" if k else "---" for k in range(len(header))) + "|"]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                for row in rows]
        self.parts.append("\n".join(out) + "\n")

    def equations(self, lines: Sequence[str]) -> None:
        self.parts.append("```text\n" + "\n".join(lines) + "\n```\n")

    def text(self, text: str) -> str:
        return text

    def math(self, formula: str) -> str:
        return f"`{formula}`"

    def strong(self, text: str) -> str:
        return f"**{text}**"

    def code(self, text: str) -> str:
        return f"`{text}`"

    def number(self, value: Any) -> str:
        return _plain_number(value)

    def factor(self, value: Any) -> str:
        text = self.number(value)
        return text if text.isdigit() else f"({text})"

    def name(self, block: str, index: tuple[int, ...] = (), shape_size: int = 2) -> str:
        if not index or shape_size == 1:
            return block
        return f"{block}[{','.join(map(str, index))}]"

    def grad(self, block: str, index: tuple[int, ...], size: int) -> str:
        return f"dL/d{self.name(block, index, size)}"

    def sample(self, symbol: str, layer: int | None, m: str, unit: str | None) -> str:
        inside = m if unit is None else f"{m},{unit}"
        return f"{symbol}{'' if layer is None else layer}[{inside}]"


class _Latex(_Writer):
    """A LaTeX fragment for amsmath (``\\usepackage{amsmath}``)."""

    times = r"\cdot "
    neq = r"\neq"
    sum_m = r"\sum_{m} "
    yhat = r"\hat{y}"
    delta = r"\delta"
    approx = r"\approx "

    def heading(self, text: str) -> None:
        self.parts.append(f"\\subsection*{{{text}}}\n")

    def para(self, text: str) -> None:
        self.parts.append(text + "\n")

    def items(self, lines: Sequence[str]) -> None:
        body = "\n".join(f"  \\item {line}" for line in lines)
        self.parts.append(f"\\begin{{itemize}}\n{body}\n\\end{{itemize}}\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        spec = "l" + "r" * (len(header) - 1)
        out = [f"\\begin{{tabular}}{{{spec}}}", r"\hline",
               " & ".join(header) + r" \\", r"\hline"]
        out += [" & ".join(row) + r" \\" for row in rows]
        out += [r"\hline", r"\end{tabular}"]
        self.parts.append("\\begin{center}\n" + "\n".join(out) + "\n\\end{center}\n")

    def equations(self, lines: Sequence[str]) -> None:
        body = " \\\\\n".join(f"  {line}" for line in lines)
        self.parts.append(f"\\begin{{align*}}\n{body}\n\\end{{align*}}\n")

    def text(self, text: str) -> str:
        return _latex_escape(text)

    def math(self, formula: str) -> str:
        return f"${formula}$"

    def strong(self, text: str) -> str:
        return f"\\textbf{{{text}}}"

    def code(self, text: str) -> str:
        return f"\\texttt{{{_latex_escape(text)}}}"

    def number(self, value: Any) -> str:
        return _latex_number(value)

    def factor(self, value: Any) -> str:
        text = self.number(value)
        return text if text.isdigit() else f"\\left({text}\\right)"

    def name(self, block: str, index: tuple[int, ...] = (), shape_size: int = 2) -> str:
        base = f"{block[0]}_{{{block[1:]}}}" if block[0] in "Wb" and block[1:].isdigit() \
            else block
        if not index or shape_size == 1:
            return base
        return f"({base})_{{{','.join(map(str, index))}}}"

    def grad(self, block: str, index: tuple[int, ...], size: int) -> str:
        return f"\\frac{{\\partial L}}{{\\partial {self.name(block, index, size)}}}"

    def sample(self, symbol: str, layer: int | None, m: str, unit: str | None) -> str:
        latex = {"δ": r"\delta", "ŷ": r"\hat{y}"}.get(symbol, symbol)
        top = "" if layer is None else f"^{{({layer})}}"
        inside = m if unit is None else f"{m},{unit}"
        return f"{latex}{top}_{{{inside}}}"

    def power(self, base: str, exponent: int) -> str:
        return f"{base}^{{{exponent}}}"

    def function(self, name: str) -> str:
        return f"\\operatorname{{{_latex_escape(name)}}}"

    def render(self) -> str:
        head = (f"% smtgrad {__version__}: an answer as a LaTeX fragment; it needs "
                "\\usepackage{amsmath} in the preamble.\n")
        return head + super().render()


def _plain_number(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, Fraction | int):
        return format_exact(value)
    if not _exact(value):
        return _approximate(value)
    return str(value)


def _approximate(value: Any) -> str:
    """A ball or an enclosure as "≈midpoint (±radius)"."""
    from smtgrad.reference.intervals import Enclosure, ball_bounds

    try:
        lo, hi = (value.lo, value.hi) if isinstance(value, Enclosure) else \
            ball_bounds(getattr(value, "value", value))
    except (TypeError, ValueError, AttributeError, ArithmeticError, InexactValue):
        return str(value)
    middle, radius = (lo + hi) / 2, (hi - lo) / 2
    return f"≈{float(middle):.15g} (±{float(radius):.1e})"


def _latex_number(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, Fraction | int):
        value = Fraction(value)
        if value.denominator == 1:
            return str(value.numerator)
        sign = "-" if value < 0 else ""
        return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
    if not _exact(value):
        text = _approximate(value)
        middle, _, radius = text[1:].partition(" (±")
        return _scientific(f"\\approx {middle}\\;(\\pm {radius.rstrip(')')})")
    try:
        import sympy

        latex: str = sympy.latex(sympy.sympify(str(value)))
        return latex
    except (sympy.SympifyError, TypeError, ValueError, SyntaxError):
        return f"\\text{{{_latex_escape(str(value))}}}"


def _scientific(text: str) -> str:
    """``1.5e-30`` as ``1.5 \\cdot 10^{-30}``."""
    return re.sub(r"(\d(?:\.\d+)?)e([+-]?)0*(\d+)",
                  lambda m: f"{m.group(1)} \\cdot 10^{{{m.group(2).replace('+', '')}"
                            f"{m.group(3)}}}", text)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "&": r"\&",
                  "%": r"\%", "$": r"\$", "#": r"\#", "^": r"\^{}", "~": r"\~{}",
                  "≠": r"$\neq$", "≈": r"$\approx$", "≥": r"$\geq$", "≤": r"$\leq$",
                  "→": r"$\to$", "—": "---", "–": "--", "·": r"$\cdot$", "±": r"$\pm$",
                  "ŷ": r"$\hat{y}$", "δ": r"$\delta$", "Σ": r"$\Sigma$", "∈": r"$\in$",
                  "×": r"$\times$", "′": "'", "−": "-", "✓": "(ok)", "✗": "(fails)",
                  "⊙": r"$\odot$", "ᵀ": r"$^T$", "<": r"$<$", ">": r"$>$", "|": r"$|$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


# ----------------------------------------------------------------------------------------
# The content.


_LOSS_NAMES = {LossKind.MSE: "mean squared error", LossKind.BCE: "binary cross-entropy",
               LossKind.CROSS_ENTROPY: "cross-entropy"}
_TARGET_WORDS = {TargetKind.REAL: "real targets", TargetKind.UNIT_INTERVAL: "targets in [0, 1]",
                 TargetKind.BINARY: "binary 0/1 targets", TargetKind.CLASS: "class labels"}


class _Answer:
    def __init__(self, writer: _Writer, spec: Spec) -> None:
        self.w = writer
        self.spec = spec
        self.shapes = spec.network.parameter_shapes()

    # -- the question --------------------------------------------------------------------

    def architecture(self) -> str:
        network = self.spec.network
        widths = "-".join(str(n) for n in (network.inputs,
                                             *(layer.units for layer in network.layers)))
        names = ", ".join(f"{layer.units} {layer.activation.name}" for layer in network.layers)
        return f"a {widths} network (layers: {names})"

    def block_size(self, block: str) -> int:
        size = 1
        for n in self.shapes[block]:
            size *= n
        return size

    def grad_of(self, block: str, index: tuple[int, ...] | None) -> str:
        return self.w.grad(block, index or (), self.block_size(block) if index else 1)

    def conditions(self) -> str:
        w, query = self.w, self.spec.query
        parts = [w.math(f"{self.grad_of(t.block, t.index)} = 0") for t in query.zero]
        for target in query.nonzero:
            formula = f"{self.grad_of(target.block, target.index)} {w.neq} 0"
            parts.append(w.math(formula))
        return ", ".join(parts) if parts else w.text("no condition on the gradients")

    def question(self, samples: str) -> None:
        w, spec = self.w, self.spec
        loss = spec.loss
        loss_text = _LOSS_NAMES[loss.kind]
        if loss.reduction is Reduction.SUM or loss.scale != 1:
            loss_text += f" ({loss.reduction.value}, scale {format_exact(loss.scale)})"
        sentence = (f"Is there {self.architecture()}, trained with {loss_text} on "
                    f"{samples} with {_TARGET_WORDS[spec.targets]}, such that ")
        extra = []
        if spec.fixed:
            extra.append("with " + ", ".join(sorted(spec.fixed)) + " fixed as in the spec")
        if spec.assume:
            extra.append("assuming " + " and ".join(w.code(a.text) for a in spec.assume))
        if spec.generic:
            extra.append("generic (no zero weight, no sample on a kink, distinct inputs)")
        tail = (", " + "; ".join(w.text(e) if not e.startswith("assuming") else e
                                  for e in extra)) if extra else ""
        w.para(w.text(sentence) + self.conditions() + tail + w.text("?"))

    # -- the network ---------------------------------------------------------------------

    def network(self) -> None:
        w, spec = self.w, self.spec
        network = spec.network
        lines = []
        for n, layer in enumerate(network.layers, start=1):
            previous = w.sample("x", None, "m", None) if n == 1 else \
                w.sample("a", n - 1, "m", None)
            u = w.sample("u", n, "m", None)
            lines.append(f"{u} = {w.name(f'W{n}')} {previous} + {w.name(f'b{n}')}")
            a = w.sample(w.yhat, None, "m", None) if n == network.depth else \
                w.sample("a", n, "m", None)
            activation = layer.activation.name
            lines.append(f"{a} = {u}" if layer.activation.identity else
                         f"{a} = {w.function(activation)}({u})")
        lines.append(self.loss_formula())
        w.para(w.strong(w.text("Network.")) + " " + w.text(
            f"{_count(network.inputs, 'input')}; " + "; ".join(
                f"layer {n}: {_count(layer.units, layer.activation.name + ' unit')}"
                for n, layer in enumerate(network.layers, start=1)) + "."))
        w.equations(lines)
        kinked = [layer.activation.name for layer in network.layers
                  if layer.activation.kinks(layer)]
        if kinked:
            convention = spec.conventions.relu_grad_at_zero
            which = "0, as PyTorch does" if convention == 0 else \
                "the slope of the linear piece"
            w.para(w.text(f"At a kink of {', '.join(dict.fromkeys(kinked))} the derivative "
                          f"is taken as {which} (relu'(0) = {convention})."))

    def loss_formula(self) -> str:
        w, spec = self.w, self.spec
        loss = spec.loss
        m_count = "M" if loss.kind is LossKind.CROSS_ENTROPY else (
            "M" if spec.network.outputs == 1 else f"{spec.network.outputs}M")
        scale = "" if loss.scale == 1 else f"{w.number(loss.scale)}{w.times}"
        norm = scale if loss.reduction is Reduction.SUM else (
            f"{scale}(1/{m_count}){w.times}" if isinstance(w, _Markdown)
            else f"{scale}\\frac{{1}}{{{m_count}}}")
        yhat, y = w.sample(w.yhat, None, "m", None), w.sample("y", None, "m", None)
        if loss.kind is LossKind.MSE:
            body = f"{w.sum_m}{w.power(f'({yhat} - {y})', 2)}"
        elif loss.kind is LossKind.BCE:
            body = (f"{w.sum_m}[-{y} log {yhat} - (1 - {y}) log(1 - {yhat})]"
                    if isinstance(w, _Markdown) else
                    f"{w.sum_m}\\bigl[-{y}\\log {yhat} - (1 - {y})\\log(1 - {yhat})\\bigr]")
        else:
            body = (f"{w.sum_m}(-log {yhat}[y_m])" if isinstance(w, _Markdown) else
                    f"{w.sum_m}\\bigl(-\\log \\hat{{y}}_{{m, y_m}}\\bigr)")
        return f"L = {norm}{body}"

    # -- the witness ---------------------------------------------------------------------

    def witness(self, facts: Facts) -> None:
        w = self.w
        rows = []
        for name in self.shapes:
            rows.append([w.math(w.name(name)), w.math(_matrix(w, facts.witness.parameters,
                                                              name))])
        w.para(w.strong(w.text("Parameters.")))
        w.table([w.text("parameter"), w.text("value")], rows)

    def forward(self, facts: Facts) -> None:
        w, spec = self.w, self.spec
        network = spec.network
        evaluation, witness = facts.evaluation, facts.witness
        header = ["m", w.math(w.sample("x", None, "m", None)),
                  w.math(w.sample("y", None, "m", None))]
        # A linear output's pre-activation is the prediction: one column for both.
        shown = network.depth if not network.layers[-1].activation.identity else \
            network.depth - 1
        for n in range(1, shown + 1):
            header.append(w.math(w.sample("u", n, "m", None)))
            if n < network.depth:
                header.append(w.math(w.sample("a", n, "m", None)))
        header += [w.math(w.sample(w.yhat, None, "m", None)),
                   w.math(w.sample("r", None, "m", None) + f" = {w.yhat} - y")]
        rows = []
        for m in range(witness.samples):
            target = witness.targets[m]
            row = [str(m), w.math(w.vector(witness.inputs[m])),
                   w.math(w.vector(target) if isinstance(target, tuple) else w.number(target))]
            for n in range(1, shown + 1):
                row.append(w.math(w.vector(evaluation.pre_activations[n - 1][m])))
                if n < network.depth:
                    row.append(w.math(w.vector(evaluation.activations[n - 1][m])))
            row += [w.math(w.vector(evaluation.predictions[m])),
                    w.math(w.vector(evaluation.residuals[m]))]
            rows.append(row)
        w.para(w.strong(w.text("Forward pass")) + w.text(" (one row per sample; r = ŷ − y is "
                                                         "the residual):"))
        w.table(header, rows)
        if evaluation.kinks:
            convention = spec.conventions.relu_grad_at_zero
            w.para(w.text("On a kink (where the derivative follows the convention above, "
                          f"relu'(0) = {convention}): ") + ", ".join(
                w.math(f"{w.sample('u', k.layer, str(k.sample), None)}"
                       f"{'' if network.layers[k.layer - 1].units == 1 else f' (unit {k.unit})'}"
                       f" = {w.number(k.point)}") for k in evaluation.kinks) + w.text("."))

    def backward(self, facts: Facts) -> None:
        w, spec = self.w, self.spec
        network = spec.network
        if facts.deltas is None:
            return
        depth = network.depth
        top = w.sample(w.delta, depth, "m", None)
        output = network.layers[-1]
        if spec.loss.kind is LossKind.MSE:
            source = "the 2 of the square is in the factor"
            rule = f"{top} = {w.sample('r', None, 'm', None)}" if output.activation.identity \
                else (f"{top} = {w.sample('r', None, 'm', None)} "
                      f"{w.function(output.activation.name)}'"
                      f"({w.sample('u', depth, 'm', None)})")
        else:
            source = f"{output.activation.name} and the loss combine"
            rule = f"{top} = {w.sample('r', None, 'm', None)}"
        lines = [rule]
        for n in range(depth - 1, 0, -1):
            layer = network.layers[n - 1]
            upper = w.sample(w.delta, n + 1, "m", None)
            product = f"{w.name(f'W{n + 1}')}^T {upper}" if isinstance(w, _Markdown) else \
                f"{w.name(f'W{n + 1}')}^{{T}} {upper}"
            if layer.activation.identity:
                lines.append(f"{w.sample(w.delta, n, 'm', None)} = {product}")
            else:
                odot = "⊙" if isinstance(w, _Markdown) else r"\odot"
                lines.append(f"{w.sample(w.delta, n, 'm', None)} = ({product}) {odot} "
                             f"{w.function(layer.activation.name)}'"
                             f"({w.sample('u', n, 'm', None)})")
        one = facts.factor == 1
        c = "" if one else w.number(facts.factor)
        plain = "" if one else f"({_plain_number(facts.factor)})·"
        times = "a sum" if one else f"{_plain_number(facts.factor)} times a sum"
        w.para(w.strong(w.text("Backpropagation.")) + w.text(
            f" Every gradient is {times} over the samples "
            f"({source}): dL/db_l = {plain}Σ_m δ_l[m] and "
            f"dL/dW_l = {plain}Σ_m δ_l[m] a_(l-1)[m]ᵀ, with a_0 = x "
            "and the deltas:") if isinstance(w, _Markdown) else
            w.strong("Backpropagation.") + " Every gradient is "
            f"{'a sum' if one else f'${c}$ times a sum'} over the samples ({w.text(source)}): "
            f"$\\partial L/\\partial b_{{l}} = {c}\\sum_m \\delta^{{(l)}}_m$ and "
            f"$\\partial L/\\partial W_{{l}} = {c}\\sum_m \\delta^{{(l)}}_m "
            f"(a^{{(l-1)}}_m)^{{T}}$, with $a^{{(0)}} = x$ and the deltas:")
        w.equations(lines)
        header = ["m"] + [w.math(w.sample(w.delta, n, "m", None))
                          for n in range(depth, 0, -1)]
        rows = [[str(m)] + [w.math(w.vector(facts.deltas[n - 1][m]))
                            for n in range(depth, 0, -1)]
                for m in range(facts.witness.samples)]
        w.table(header, rows)

    def gradients(self, facts: Facts) -> None:
        w = self.w
        lines = []
        for line in facts.lines:
            lines.append(self.gradient_line(line) + self.requirement(line, for_equation=True))
        balls = not all(_exact(line.value) and all(map(_exact, line.deltas))
                        for line in facts.lines)
        w.para(w.strong(w.text("Gradients.")) + w.text(
            " Each entry written out over the samples, with the exact values" +
            (" (rigorous enclosures shown as ≈midpoint (±radius)):" if balls else ":")))
        w.equations(lines)
        if any(line.certified_zero for line in facts.lines):
            w.para(w.text("The zero entries are exact: the Krawczyk test (python-flint arb "
                          "ball arithmetic) proves that the zero-gradient equations have "
                          "exactly one solution in the witness's box."))

    def gradient_line(self, line: GradientLine) -> str:
        w = self.w
        size = self.block_size(line.block)
        lhs = w.grad(line.block, line.index, size)
        value = "0" if line.certified_zero else w.number(line.value)
        if not line.deltas:
            return f"{lhs} = {value}"
        j = None if self.shapes[line.block][0] == 1 else str(line.index[0])
        layer = int(line.block[1:])
        delta = w.sample(w.delta, layer, "m", j)
        c = w.number(line.factor) if isinstance(w, _Latex) else f"({w.number(line.factor)})"
        c = "" if line.factor == 1 else c + w.times
        if line.inputs is None:
            symbolic = f"{c}{w.sum_m}{delta}"
            terms = [w.factor(d) for d in line.deltas]
        else:
            i = None if self.shapes[line.block][1] == 1 else str(line.index[1])
            below = w.sample("x", None, "m", i) if layer == 1 else \
                w.sample("a", layer - 1, "m", i)
            symbolic = f"{c}{w.sum_m}{delta}{w.times}{below}"
            terms = [f"{w.factor(d)}{w.times}{w.factor(a)}"
                     for d, a in zip(line.deltas, line.inputs, strict=True)]
        open_, close = ("(", ")") if isinstance(w, _Markdown) else (r"\bigl(", r"\bigr)")
        numeric = f"{c}{open_}{' + '.join(terms)}{close}"
        amp = "&" if isinstance(w, _Latex) else ""
        return f"{lhs} {amp}= {symbolic} = {numeric} = {value}"

    def requirement(self, line: GradientLine, for_equation: bool = False) -> str:
        if not line.required:
            return ""
        w = self.w
        if isinstance(w, _Markdown):
            return f"    (required {line.required})"
        needed = line.required.replace("≠", r"\neq").replace(
            "(some entry of ", r"\text{ (some entry of }").replace(")", r"\text{)}") \
            if "some entry" in line.required else line.required.replace("≠", r"\neq")
        return f" && (\\text{{required }} {needed})"

    def loss(self, facts: Facts) -> None:
        w, spec = self.w, self.spec
        evaluation = facts.evaluation
        value = w.number(evaluation.loss)
        if spec.loss.kind is LossKind.MSE:
            norm = loss_normaliser(spec.loss, facts.witness.samples, spec.network.outputs)
            squares = [w.power(w.factor(r), 2) for row in evaluation.residuals for r in row]
            c = w.number(norm) if isinstance(w, _Latex) else f"({w.number(norm)})"
            open_, close = ("(", ")") if isinstance(w, _Markdown) else (r"\bigl(", r"\bigr)")
            formula = f"L = {c}{w.times}{open_}{' + '.join(squares)}{close} = {value}"
        else:
            formula = f"L = {value}"
        w.para(w.strong(w.text("Loss.")))
        w.equations([formula])

    # -- verdict texts -------------------------------------------------------------------

    def sat(self, result: Result) -> None:
        w, spec = self.w, self.spec
        assert result.witness is not None and result.evaluation is not None
        samples = result.samples or result.witness.samples
        w.heading(w.text(f"{spec.name}: yes, with M = {samples} samples"))
        self.question(f"M = {samples} samples" if spec.samples.min == spec.samples.max
                      else f"M samples ({spec.samples.min} ≤ M ≤ {spec.samples.max})")
        enclosure = result.certificate == "enclosure"
        how = ("The witness below is a certified enclosure: every entry is exact except "
               "those given as tiny boxes, which contain exactly one exact solution of the "
               "zero-gradient equations (Krawczyk test), and every other requirement holds "
               "on the whole box." if enclosure else
               "Every number below is exact, and smtgrad's independent reference network "
               "recomputed the forward pass, the loss and every gradient from the witness "
               "alone in exact arithmetic.")
        smaller = [a for a in result.attempts if a.verdict is Verdict.UNSAT]
        w.para(w.strong(w.text("Yes.")) + w.text(
            f" With M = {samples} samples. Found by {result.method}, with {result.solver}, "
            f"in {result.seconds:.3f} s. {how}"))
        if smaller:
            w.para(w.text("Fewer samples do not work:"))
            w.items([w.text(f"M = {a.samples}: {_attempt_words(a.method, a.detail)}")
                     for a in smaller])
        self.explain(facts(spec, result.witness, result.evaluation, certified=enclosure))

    def explain(self, found: Facts) -> None:
        self.network()
        self.witness(found)
        self.forward(found)
        self.backward(found)
        self.gradients(found)
        self.loss(found)

    def unsat(self, result: Result) -> None:
        w, spec = self.w, self.spec
        proved = result.proved or "?"
        w.heading(w.text(f"{spec.name}: no — proved impossible for {_proved_words(proved)}"))
        self.question(_samples_words(proved))
        w.para(w.strong(w.text("No.")) + w.text(
            f" No choice of weights and data satisfies these conditions for "
            f"{_proved_words(proved)}. The proof:"))
        attempts = [a for a in result.attempts if a.verdict is Verdict.UNSAT]
        if attempts:
            w.items([w.text(f"M = {a.samples}: {_attempt_words(a.method, a.detail)}")
                     for a in attempts])
        if result.reason and all(result.reason != a.detail for a in attempts) and \
                not result.reason.startswith("unsat at every M"):
            w.para(w.text(_sentence(result.reason)))
        if proved == "all M":
            w.para(w.text("The argument does not depend on M, so no number of samples works."))
        w.para(w.text(f"Proved by: {result.method}, with {result.solver}, in "
                      f"{result.seconds:.3f} s."))

    def unknown(self, result: Result) -> None:
        w, spec = self.w, self.spec
        w.heading(w.text(f"{spec.name}: undecided"))
        self.question("M samples")
        w.para(w.strong(w.text("Unknown.")) + w.text(
            f" smtgrad neither found a verified witness nor proved that none exists: "
            f"{_sentence(result.reason or 'no reason given')}"))
        unsat = [a for a in result.attempts if a.verdict is Verdict.UNSAT]
        if unsat:
            w.para(w.text("What was proved on the way:"))
            w.items([w.text(f"M = {a.samples}: {_attempt_words(a.method, a.detail)}")
                     for a in unsat])
        w.para(w.text(f"Last method tried: {result.method}, with {result.solver}; "
                      f"{result.seconds:.3f} s in all."))

    def check(self, witness: Witness, verification: Verification, enclosed: bool) -> None:
        w, spec = self.w, self.spec
        status = verification.status
        title = {Status.HOLDS: "the witness holds", Status.FAILS: "the witness does not hold",
                 Status.UNDECIDED: "cannot decide"}[status]
        w.heading(w.text(f"{spec.name}: {title}"))
        self.question(f"M = {witness.samples} samples")
        if status is Status.HOLDS:
            w.para(w.strong(w.text("Yes.")) + w.text(
                " This witness satisfies every requirement, checked exactly by smtgrad's "
                "independent reference network:"))
        elif status is Status.FAILS:
            w.para(w.strong(w.text("No.")) + w.text(" This witness fails:"))
            w.items([w.text(item) for item in verification.failures])
        else:
            w.para(w.strong(w.text("Cannot decide.")) + w.text(" Undecided requirements:"))
            w.items([w.text(item) for item in verification.undecided])
        if verification.evaluation is not None:
            self.explain(facts(spec, witness, verification.evaluation,
                               certified=enclosed and verification.accepted))


def _matrix(w: _Writer, parameters: Parameters, name: str) -> str:
    block = parameters.block(name)
    if name[0] == "b":
        return w.vector(block)
    if len(block) == 1 and len(block[0]) == 1:
        return w.number(block[0][0])
    if isinstance(w, _Latex):
        rows = r" \\ ".join(" & ".join(w.number(v) for v in row) for row in block)
        return f"\\begin{{pmatrix}} {rows} \\end{{pmatrix}}"
    return "[" + "; ".join(", ".join(w.number(v) for v in row) for row in block) + "]"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."


def _proved_words(proved: str) -> str:
    if proved == "all M":
        return "any number of samples M"
    if proved.startswith("M="):
        return "M = " + proved[2:].replace("..", " to ")
    return proved


def _samples_words(proved: str) -> str:
    if proved.startswith("M=") and ".." not in proved and proved[2:].isdigit():
        return _count(int(proved[2:]), "sample")
    return "M samples"


def _attempt_words(method: str, detail: str) -> str:
    """One attempt's argument in words: which lemma, or which solver refuted which encoding."""
    detail = detail.strip()
    if method.endswith("lemma"):
        return f"by the {method}: {_sentence(detail)}"
    if "abstraction" in method:
        return (f"the SMT solver refuted the monotone abstraction ({method}): "
                f"{_sentence(detail)} The abstraction keeps only facts that are true of the "
                "smooth activations, so its unsat is the real problem's.")
    if "encoding" in method:
        return (f"the SMT solver refuted the exact encoding ({method}): {_sentence(detail)} "
                "The encoding is exact: residuals r = ŷ − y as unknowns and one phase "
                "variable per sample and piecewise-linear unit.")
    return f"{method}: {_sentence(detail)}"


# ----------------------------------------------------------------------------------------
# Entry points.


def _result(writer: _Writer, result: Result) -> str:
    answer = _Answer(writer, result.spec)
    if result.verdict is Verdict.SAT and result.witness is not None \
            and result.evaluation is not None:
        answer.sat(result)
    elif result.verdict is Verdict.UNSAT:
        answer.unsat(result)
    else:
        answer.unknown(result)
    writer.para(writer.text(f"(Answer written by smtgrad {__version__} from "
                            f"{result.spec.source}.)"))
    return writer.render()


def result_markdown(result: Result) -> str:
    """A solve result as a Markdown answer."""
    return _result(_Markdown(), result)


def result_latex(result: Result) -> str:
    """A solve result as a LaTeX fragment (amsmath)."""
    return _result(_Latex(), result)


def _check(writer: _Writer, spec: Spec, witness: Witness, verification: Verification,
           enclosed: bool) -> str:
    _Answer(writer, spec).check(witness, verification, enclosed)
    writer.para(writer.text(f"(Checked by smtgrad {__version__} against {spec.source}.)"))
    return writer.render()


def check_markdown(spec: Spec, witness: Witness, verification: Verification,
                   enclosed: bool = False) -> str:
    """``smtgrad check`` as a Markdown answer."""
    return _check(_Markdown(), spec, witness, verification, enclosed)


def check_latex(spec: Spec, witness: Witness, verification: Verification,
                enclosed: bool = False) -> str:
    """``smtgrad check`` as a LaTeX fragment (amsmath)."""
    return _check(_Latex(), spec, witness, verification, enclosed)
