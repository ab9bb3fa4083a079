"""SMT-LIB 2 export of an encoding (the same formula ``solve`` sends to a backend)."""

from __future__ import annotations

import io

from pysmt.logics import QF_NRA
from pysmt.smtlib.script import smtlibscript_from_formula

from smtgrad.encoding.builder import Encoding


def to_smtlib(encoding: Encoding, title: str) -> str:
    """A complete SMT-LIB 2 script: logic, declarations, assertions, (check-sat)."""
    script = smtlibscript_from_formula(encoding.formula(), logic=QF_NRA)
    buffer = io.StringIO()
    buffer.write(f"; {title}\n")
    buffer.write("; unknowns: W<l>_<j>_<i>, b<l>_<j> parameters; X_<m>_<i> inputs; "
                 "r_<m>_<k> residuals yhat - y;\n")
    buffer.write("; u_<l>_<m>_<j> pre-activations, a_* activations, d_* backpropagated "
                 "deltas, phase_* linear pieces.\n")
    buffer.write("; Gradients are written up to the positive loss factor 2*scale/N.\n")
    script.serialize(buffer, daggify=False)
    buffer.write("\n")
    return buffer.getvalue()
