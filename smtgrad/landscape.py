"""``smtgrad landscape``: every activation pattern of a fixed dataset that has a stationary
point, with its loss and classification.

The spec's network, loss, X and Y are used; its query and ``assume`` are not (every
parameter gradient is asked to be zero, and every stationary pattern is listed). The
enumeration is :func:`smtgrad.methods.patterns.enumerate_patterns`; every listed point
is re-verified exactly and classified by trusted code. May import the methods, the
spec and the reference code (like the engine); the CLI renders the result.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from smtgrad.errors import InputError, InternalError
from smtgrad.methods.patterns import (
    NotApplicable,
    Tally,
    describe_units,
    enumerate_patterns,
    landscape_problem,
)
from smtgrad.reference.landscape import Classification, Kind
from smtgrad.reference.verify import Status, verify
from smtgrad.reference.witness import Witness, witness_to_json
from smtgrad.spec import Query, Spec, Target, sample_plan


class LandscapeError(InputError, ValueError):
    """The spec is outside the family ``landscape`` decides (exit 2, with the reason)."""

    label = "landscape"


@dataclass(frozen=True)
class StationaryPattern:
    """One set of live units with a stationary point: the point, its loss and type."""

    description: str
    loss: Fraction
    witness: Witness
    classification: Classification | None


@dataclass(frozen=True)
class LandscapeResult:
    """Every stationary pattern found, and how far the enumeration got."""

    spec: Spec
    samples: int
    patterns: tuple[StationaryPattern, ...]
    total: int
    examined: int
    linear_problems: int
    complete: bool
    seconds: float

    @property
    def least_loss(self) -> Fraction | None:
        return min((p.loss for p in self.patterns), default=None)

    def spurious(self, pattern: StationaryPattern) -> bool:
        """A local minimum whose loss is above that of another verified stationary point:
        a parameter point with a lower loss exists, so the minimum is not global."""
        least = self.least_loss
        return (pattern.classification is not None and pattern.classification.kind.is_minimum
                and least is not None and pattern.loss > least)


def stationary_spec(spec: Spec) -> Spec:
    """The spec asking for a stationary point and nothing else."""
    blocks = tuple(Target(block) for block in spec.network.parameter_shapes())
    return dataclasses.replace(spec, query=Query(zero=blocks), assume=())


def landscape(spec: Spec, timeout: float | None = 60.0, limit: int | None = None
              ) -> LandscapeResult:
    """Enumerate the stationary patterns of a fixed-data spec (at most ``limit``)."""
    start = time.perf_counter()
    plain = stationary_spec(spec)
    plan, _ = sample_plan(plain, None, False)
    plain = plain.with_samples(plan.values()[0])
    try:
        problem = landscape_problem(plain)
    except NotApplicable as error:
        raise LandscapeError(f"{spec.source}: landscape needs fixed X and Y, free "
                             f"parameters, one hidden layer of relu, leaky_relu, abs or "
                             f"linear units, one linear output and MSE ({error})") from None
    deadline = None if timeout is None else start + timeout
    tally = Tally()
    found: list[StationaryPattern] = []
    try:
        for report in enumerate_patterns(problem, deadline, tally, limit,
                                         prefer_minimum=True):
            if report.status != "stationary" or report.witness is None:
                continue
            check = verify(plain, report.witness)
            if check.status is not Status.HOLDS:
                raise InternalError("a stationary point of the pattern enumeration failed "
                                    "exact verification: " + "; ".join(check.failures[:3]))
            found.append(StationaryPattern(describe_units(problem, report.units), report.loss,
                                           report.witness, report.classification))
    except TimeoutError:
        pass
    return LandscapeResult(spec, problem.samples, tuple(found), tally.total, tally.examined,
                           tally.linear_problems, tally.complete,
                           time.perf_counter() - start)


def _text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else \
        f"{value.numerator}/{value.denominator}"


def landscape_json(result: LandscapeResult) -> dict[str, Any]:
    """The landscape as JSON (exact strings, as in the result contract)."""
    least = result.least_loss
    return {
        "spec": {"name": result.spec.name, "source": result.spec.source},
        "samples": result.samples,
        "complete": result.complete,
        "patterns_total": result.total,
        "patterns_examined": result.examined,
        "linear_problems": result.linear_problems,
        "least_stationary_loss": None if least is None else _text(least),
        "stationary": [
            {"live_units": p.description, "loss": _text(p.loss),
             "classification": (p.classification.kind.value if p.classification
                                else Kind.UNDETERMINED.value),
             "certificate": p.classification.certificate if p.classification else None,
             "reason": p.classification.reason if p.classification else "",
             "spurious": result.spurious(p),
             "witness": witness_to_json(p.witness, result.spec.network)}
            for p in result.patterns],
        "seconds": round(result.seconds, 4),
    }


def render_landscape(result: LandscapeResult) -> str:
    """A table of the stationary patterns."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, no_color=True, highlight=False)
    console.print(f"landscape of {result.spec.name} · {result.spec.source} · "
                  f"M={result.samples}")
    table = Table(show_lines=False)
    for column in ("#", "live units (active samples)", "loss", "classification"):
        table.add_column(column)
    for number, pattern in enumerate(result.patterns, 1):
        kind = pattern.classification.kind.value if pattern.classification else "undetermined"
        if pattern.classification and pattern.classification.certificate:
            kind += f" ({pattern.classification.certificate})"
        if result.spurious(pattern):
            kind += ", spurious"
        table.add_row(str(number), pattern.description, _text(pattern.loss), kind)
    console.print(table)
    status = "complete" if result.complete else "cut short (time limit or --limit)"
    console.print(f"{len(result.patterns)} stationary patterns; {result.examined} of "
                  f"{result.total} sets of live units examined ({status}); "
                  f"{result.linear_problems} exact LPs; {result.seconds:.2f} s")
    least = result.least_loss
    if least is not None and result.complete:
        console.print(f"least stationary loss: {_text(least)}")
    return buffer.getvalue()


def plot_landscape(result: LandscapeResult, path: Any) -> None:
    """1-D inputs: the data, and the network function of each stationary pattern."""
    from pathlib import Path

    if result.spec.network.inputs != 1:
        raise LandscapeError(f"--plot draws 1-D inputs only; this network has "
                             f"{result.spec.network.inputs} inputs")
    if Path(path).suffix.lower() not in (".png", ".svg"):
        raise LandscapeError(f"--plot {path}: expected a .png or .svg file")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LandscapeError("--plot needs matplotlib: pip install 'smtgrad[plot]'") from None
    from smtgrad.reference.network import evaluate

    spec = result.spec
    xs = [float(x[0]) for x in result.patterns[0].witness.inputs] if result.patterns else []
    figure, axes = plt.subplots(figsize=(10, 5))
    if result.patterns:
        witness = result.patterns[0].witness
        ys = [float(t[0]) for t in witness.targets]
        lo, hi = min(xs), max(xs)
        pad = (hi - lo) * 0.15 or 1.0
        grid = [Fraction(lo - pad) + Fraction(hi - lo + 2 * pad) * k / 200 for k in range(201)]
        for number, pattern in enumerate(result.patterns, 1):
            inputs = tuple((x,) for x in grid)
            values = evaluate(spec.network, spec.loss, spec.conventions,
                              pattern.witness.parameters, inputs,
                              tuple((Fraction(0),) for _ in grid)).predictions
            kind = pattern.classification.kind.value if pattern.classification else "?"
            axes.plot([float(x) for x in grid], [float(v[0]) for v in values],
                      label=f"#{number}: loss {float(pattern.loss):.4g}, {kind}")
        axes.scatter(xs, ys, color="black", zorder=3, label="data")
    axes.set_xlabel("x")
    axes.set_ylabel("network output")
    axes.set_title(f"stationary points of {spec.name} (M={result.samples})")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
