"""Rendering results for people (rich tables as text) and for scripts (the JSON contract).

Every function here returns a string or a JSON-ready dict; nothing prints.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from smtgrad import __version__
from smtgrad.engine import Result
from smtgrad.numbers import format_exact
from smtgrad.reference.intervals import zero_coordinates
from smtgrad.reference.landscape import Classification, classify, describe
from smtgrad.reference.network import Evaluation, with_entry
from smtgrad.reference.verify import Status, Verification
from smtgrad.reference.witness import Witness, to_json, witness_to_json
from smtgrad.spec import Spec, Verdict

if TYPE_CHECKING:
    from rich.console import Console


def _exact(value: Any) -> str:
    if isinstance(value, Fraction | int):
        return format_exact(value)
    return str(value)


def _short(value: Any) -> str:
    """Text for tables: exact when short; enclosures as midpoint and radius."""
    text = _exact(value)
    if text.startswith("[") and "," in text:
        lo, hi = (Fraction(part.strip()) for part in text[1:-1].split(","))
        middle, radius = (lo + hi) / 2, (hi - lo) / 2
        return f"≈{float(middle):.15g} (±{float(radius):.1e})"
    if len(text) > 40 and isinstance(value, Fraction):
        return f"{text[:18]}…  (≈{float(value):.6g})"
    return text


def _matrix(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_matrix(item) for item in value) + "]"
    return _short(value)


def _certified_gradients(spec: Spec, gradients: dict[str, Any]) -> dict[str, Any]:
    """Gradients with the zero-query entries set to exact 0 (proved by the Krawczyk test)."""
    result = dict(gradients)
    for name, index in zero_coordinates(spec):
        result[name] = with_entry(result[name], index, Fraction(0))
    return result


def evaluation_json(evaluation: Evaluation, spec: Spec | None = None) -> dict[str, Any]:
    """Gradients, loss, predictions, residuals and kinks as exact strings.

    With ``spec`` (an enclosure certificate), the zero-query entries are the exact 0
    that the certificate proves; the other values are enclosures "[lo, hi]".
    """
    gradients = evaluation.gradients if spec is None else _certified_gradients(
        spec, evaluation.gradients)
    return {
        "gradients": {name: to_json(value) for name, value in gradients.items()},
        "loss": _exact(evaluation.loss),
        "predictions": to_json(evaluation.predictions),
        "residuals": to_json(evaluation.residuals),
        "kinks": [
            {"layer": kink.layer, "sample": kink.sample, "unit": kink.unit,
             "point": format_exact(kink.point)}
            for kink in evaluation.kinks
        ],
    }


def result_json(result: Result) -> dict[str, Any]:
    """The result object of the contract (DESIGN section 3), plus a few extra fields."""
    data: dict[str, Any] = {"verdict": result.verdict.value}
    if result.verdict is Verdict.SAT and result.witness and result.evaluation:
        data["certificate"] = result.certificate or "exact"
        data["samples"] = result.samples
        data["witness"] = witness_to_json(result.witness, result.spec.network)
        enclosed = result.certificate == "enclosure"
        data.update(evaluation_json(result.evaluation, result.spec if enclosed else None))
        classification = result_classification(result)
        if classification is not None:
            data.update(classification_json(classification))
        if enclosed:
            data["enclosure"] = {
                "test": "Krawczyk operator maps the box into its interior (python-flint arb ball "
                        "arithmetic): the zero-gradient equations have exactly one solution "
                        "in the box, and every other requirement holds on the whole box",
                "equations": [f"{name}[{_index(index)}]"
                              for name, index in zero_coordinates(result.spec)],
            }
    else:
        data["samples"] = result.samples
        data["reason"] = result.reason
        if result.proved:
            data["proved"] = result.proved
    data["solver"] = result.solver
    data["method"] = result.method
    data["seconds"] = round(result.seconds, 4)
    data["spec"] = {"name": result.spec.name, "source": result.spec.source}
    data["attempts"] = [
        {"samples": a.samples, "verdict": a.verdict.value, "method": a.method,
         "seconds": round(a.seconds, 4), **({"detail": a.detail} if a.detail else {})}
        for a in result.attempts
    ]
    if result.notes:
        data["notes"] = list(result.notes)
    data["smtgrad"] = __version__
    return data


def result_classification(result: Result) -> Classification | None:
    """The second-order classification of a stationary sat witness (None otherwise)."""
    if result.verdict is not Verdict.SAT or not result.witness or not result.evaluation:
        return None
    try:
        return classify(result.spec, result.witness, result.evaluation,
                        certified=result.certificate == "enclosure")
    except (ArithmeticError, TypeError, ValueError):
        return None


def classification_json(classification: Classification) -> dict[str, Any]:
    """``classification`` (DESIGN: local minima) and how it was decided."""
    second_order: dict[str, Any] = {"certificate": classification.certificate or None,
                                    "reason": classification.reason}
    if classification.direction:
        second_order["descent_direction"] = {name: to_json(value) for name, value
                                             in classification.direction.items()}
    return {"classification": classification.kind.value, "second_order": second_order}


def check_json(spec: Spec, verification: Verification, enclosed: bool = False
               ) -> dict[str, Any]:
    """The JSON printed by ``smtgrad check``."""
    status = verification.status
    data: dict[str, Any] = {"status": status.value,
                            "holds": None if status is Status.UNDECIDED else verification.accepted,
                            "failures": list(verification.failures),
                            "undecided": list(verification.undecided)}
    if verification.evaluation is not None:
        certified = verification.accepted and enclosed
        data.update(evaluation_json(verification.evaluation, spec if certified else None))
    data["spec"] = {"name": spec.name, "source": spec.source}
    return data


# ----------------------------------------------------------------------------------------
# Text.


def _console(buffer: io.StringIO) -> Console:
    from rich.console import Console  # lazily: JSON output never needs rich

    return Console(file=buffer, width=110, force_terminal=False, color_system=None,
                   highlight=False, soft_wrap=True, markup=False)


def _required(spec: Spec, block: str) -> str:
    parts = []
    for target in spec.query.zero:
        if target.block == block:
            parts.append("= 0" if target.index is None else f"[{_index(target.index)}] = 0")
    for target in spec.query.nonzero:
        if target.block == block:
            parts.append("≠ 0" if target.index is None else f"[{_index(target.index)}] ≠ 0")
    return ", ".join(parts)


def _index(index: tuple[int, ...]) -> str:
    return ",".join(map(str, index))


def _tables(spec: Spec, witness: Witness, evaluation: Evaluation, console: Console,
            certified: bool = False) -> None:
    from rich.table import Table

    params = Table(title="Parameters", title_justify="left", show_edge=False)
    params.add_column("name")
    params.add_column("value")
    for name in spec.network.parameter_shapes():
        params.add_row(name, _matrix(witness.parameters.block(name)))
    console.print(params)
    console.print()

    kinks: dict[int, list[str]] = {}
    for kink in evaluation.kinks:
        kinks.setdefault(kink.sample, []).append(
            f"L{kink.layer}u{kink.unit}@{format_exact(kink.point)}")
    data = Table(title="Samples", title_justify="left", show_edge=False)
    for column in ("m", "X", "Y", "yhat", "residual", "kink"):
        data.add_column(column, justify="right" if column != "kink" else "left")
    for m in range(witness.samples):
        target = witness.targets[m]
        data.add_row(str(m), _matrix(witness.inputs[m]),
                     _matrix(target) if isinstance(target, tuple) else _exact(target),
                     _matrix(evaluation.predictions[m]), _matrix(evaluation.residuals[m]),
                     " ".join(kinks.get(m, [])) or "-")
    console.print(data)
    console.print()

    grads = Table(title="Gradients of the loss", title_justify="left", show_edge=False)
    grads.add_column("block")
    grads.add_column("dL/d(block)")
    grads.add_column("required")
    gradients = _certified_gradients(spec, evaluation.gradients) if certified \
        else evaluation.gradients
    for name, value in gradients.items():
        grads.add_row(name, _matrix(value), _required(spec, name))
    console.print(grads)
    if certified:
        console.print("zero entries are exact: the Krawczyk test proves a unique solution of "
                      "the zero-gradient equations inside the box")
    console.print(f"loss = {_short(evaluation.loss)}")


def render_result(result: Result) -> str:
    """A readable report of a solve result."""
    buffer = io.StringIO()
    console = _console(buffer)
    spec = result.spec
    console.print(f"smtgrad {__version__} · {spec.name} · {spec.source}")
    for note in result.notes:
        console.print(f"note: {note}")
    for attempt in result.attempts[:-1] if len(result.attempts) > 1 else ():
        console.print(f"  M={attempt.samples}: {attempt.verdict.value} "
                      f"({attempt.seconds:.3f} s, {attempt.method})")
    if result.verdict is Verdict.SAT and result.witness and result.evaluation:
        console.print(f"verdict: sat at M={result.samples} — witness verified exactly "
                      f"(certificate: {result.certificate})")
        console.print(f"found by: {result.method}; solver: {result.solver}; "
                      f"time: {result.seconds:.3f} s")
        console.print()
        _tables(spec, result.witness, result.evaluation, console,
                certified=result.certificate == "enclosure")
        if not result.evaluation.kinks:
            console.print("no sample sits on a kink")
        classification = result_classification(result)
        if classification is not None:
            console.print(f"stationary point: {describe(classification)} — "
                          f"{classification.reason}")
    else:
        proved = f" (proved for {result.proved})" if result.proved else ""
        console.print(f"verdict: {result.verdict.value}{proved}")
        console.print(f"reason: {result.reason}")
        console.print(f"solver: {result.solver}; method: {result.method}; "
                      f"time: {result.seconds:.3f} s")
    if spec.expect is not None:
        agrees = spec.expect.verdict is result.verdict
        console.print(f"expected verdict ({spec.expect.verdict.value}): "
                      f"{'matches' if agrees else 'DIFFERS'}")
    return buffer.getvalue()


def _ball_valued(evaluation: Evaluation | None) -> bool:
    """Whether the evaluation's gradients are balls (no exact evaluation was possible)."""
    from smtgrad.reference.intervals import Dual

    if evaluation is None:
        return False
    stack: list[Any] = list(evaluation.gradients.values())
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, Dual):
            return True
    return False


def render_check(spec: Spec, witness: Witness, verification: Verification,
                 enclosed: bool = False) -> str:
    """A readable report of ``smtgrad check``."""
    buffer = io.StringIO()
    console = _console(buffer)
    console.print(f"smtgrad {__version__} · check · {spec.name} · {spec.source}")
    if verification.evaluation is not None:
        _tables(spec, witness, verification.evaluation, console,
                certified=enclosed and verification.accepted)
    status = verification.status
    if status is Status.HOLDS and not _ball_valued(verification.evaluation):
        console.print("verdict: the witness satisfies the spec exactly")
    elif status is Status.HOLDS:
        console.print("verdict: the witness satisfies the spec (values without a closed "
                      "form decided by rigorous arb ball arithmetic)")
    elif status is Status.FAILS:
        console.print("verdict: the witness does NOT satisfy the spec (a requirement is "
                      "refuted):")
        for failure in verification.failures:
            console.print(f"  - {failure}")
    else:
        console.print("verdict: cannot decide whether the witness satisfies the spec; "
                      "undecided requirements:")
    for item in verification.undecided if status is not Status.HOLDS else ():
        console.print(f"  ? {item}")
    return buffer.getvalue()
