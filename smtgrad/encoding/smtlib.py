"""SMT-LIB 2 export of an encoding (the same formula ``solve`` sends to a backend).

The script round-trips: it asks for models (``:produce-models``), states the expected
answer when it is known (``(set-info :status sat|unsat|unknown)``), and ends with
``(check-sat)`` and ``(get-model)``; a solver's model of it reads back into a witness
with :mod:`smtgrad.encoding.smtmodel` (``smtgrad check SPEC --smt-model FILE``).
"""

from __future__ import annotations

import io

from smtgrad.encoding.builder import Encoding
from smtgrad.encoding.solving import LOGIC, OPTIONS, declaration_order
from smtgrad.spec import Spec

#: The values of ``(set-info :status ...)``.
STATUSES = ("sat", "unsat", "unknown")

#: The solvers an export can be written for (their options differ: each rejects the
#: other's).
SOLVERS = tuple(OPTIONS)


def to_smtlib(encoding: Encoding, title: str, status: str = "unknown",
              solver: str = "z3") -> str:
    """A complete SMT-LIB 2 script: options, logic, status, declarations, assertions,
    ``(check-sat)`` and ``(get-model)``.

    What ``solver``'s backend solves (:mod:`smtgrad.encoding.solving`): its options, the
    logic, the unknowns declared in the order the backend creates them, the same formula
    (one assertion). Time and work limits are not written (give them to the solver)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if solver not in OPTIONS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    formula = encoding.formula()
    buffer = io.StringIO()
    buffer.write(f"; {title}\n")
    buffer.write(f"; written for {solver}: its backend's options, logic and declaration "
                 "order (smtgrad export --solver)\n")
    buffer.write("; unknowns: W<l>_<j>_<i>, b<l>_<j> parameters; X_<m>_<i> inputs; "
                 "r_<m>_<k> residuals yhat - y;\n")
    buffer.write("; u_<l>_<m>_<j> pre-activations, a_* activations, d_* backpropagated "
                 "deltas, phase_* linear pieces.\n")
    buffer.write("; Gradients are written up to the positive loss factor 2*scale/N.\n")
    buffer.write("; A model (get-model) reads back with: smtgrad check SPEC --smt-model FILE\n")
    for option, value in OPTIONS[solver].items():
        buffer.write(f"(set-option :{option} {value})\n")
    buffer.write("(set-info :smt-lib-version 2.6)\n")
    buffer.write(f"(set-logic {LOGIC})\n")
    buffer.write(f"(set-info :status {status})\n")
    for symbol in declaration_order(formula):
        kind = "Bool" if symbol.symbol_type().is_bool_type() else "Real"
        buffer.write(f"(declare-fun {_quoted(symbol.symbol_name())} () {kind})\n")
    buffer.write(f"(assert {formula.to_smtlib(daggify=False)})\n")
    buffer.write("(check-sat)\n")
    buffer.write("(get-model)\n")
    return buffer.getvalue()


def _quoted(name: str) -> str:
    from pysmt.smtlib.printers import quote

    return str(quote(name))


def _proved_covers(proved: str | None, low: int, high: int, samples: int) -> bool:
    """Whether an expected unsat (``expect.proved``: ``all M``, ``M=2``, ``M=1..3``; none:
    the spec's own range) covers M = ``samples``."""
    if proved is None:
        return low <= samples <= high
    text = proved.replace(" ", "")
    if text == "allM":
        return True
    if not text.startswith("M="):
        return False
    first, _, last = text[2:].partition("..")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        return False
    return start <= samples <= end


def expected_status(spec: Spec, encoding: Encoding) -> str:
    """``sat``, ``unsat`` or ``unknown``: what a complete solver must answer on the
    encoding of ``spec`` (as written, with its range of M), as far as its ``expect`` tells.

    The exact encoding has the spec's answer at its M. A lattice (sat only: its witnesses
    are real ones) keeps an unsat; an abstraction, a relaxed closed form or an unencoded
    cross-entropy loss in ``assume`` (over-approximations) keep a sat. An expected sat at
    M = k of a range of M makes every smaller M of the range unsat (the walk stops at the
    first sat).
    """
    from smtgrad.encoding.modes import ModeKind
    from smtgrad.spec import Verdict

    samples = encoding.samples
    expect = spec.expect
    if expect is None:
        return "unknown"
    over = encoding.mode.kind is ModeKind.ABSTRACT or bool(encoding.relaxed) or \
        encoding.loss_unencoded
    under = encoding.mode.kind is ModeKind.LATTICE
    low, high = spec.samples.min, spec.samples.max  # the spec's own range of M
    verdict: str = "unknown"
    if expect.verdict is Verdict.SAT:
        first = expect.samples if expect.samples is not None else (low if low == high else None)
        if first == samples:
            verdict = "sat"
        elif first is not None and low <= samples < first:
            verdict = "unsat"
    elif expect.verdict is Verdict.UNSAT and _proved_covers(expect.proved, low, high, samples):
        verdict = "unsat"
    if verdict == "sat" and under:
        return "unknown"
    if verdict == "unsat" and over:
        return "unknown"
    return verdict
