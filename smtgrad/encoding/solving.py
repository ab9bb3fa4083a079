"""What every solver is told besides the formula: the logic, the options, and the order
in which the unknowns are declared -- one source for the backends and ``smtgrad export``
(so that z3 and cvc5 on an exported file behave as smtgrad's own calls).

The declaration order matters more than it looks: cvc5's nonlinear procedure (coverings)
orders its variables by creation, and on the fixed-data ReLU encodings of issue 19 the
order of pysmt's converter walk decides M = 8 in 4-9 s, while the same assertions with
the unknowns declared in order of first appearance (or pysmt's set order, which the
exported files used) ran past 20 s. Both the backends (which create the solver's
constants in this order before converting the formula) and the export (which declares
them in it) use :func:`declaration_order`.
"""

from __future__ import annotations

from pysmt.fnode import FNode

#: The logic of every formula smtgrad builds (Booleans, ite, nonlinear real arithmetic).
LOGIC = "QF_NRA"

#: Options per solver, as SMT-LIB ``set-option`` names and values. cvc5's are exactly
#: those its backend sets (pysmt's wrapper sets the first four itself; nl-cov is
#: cylindrical algebraic coverings, complete for QF_NRA); z3's: models and its seed
#: (the backend also pins nlsat.seed = 0, z3's default, globally).
OPTIONS: dict[str, dict[str, str]] = {
    "z3": {"produce-models": "true", "random-seed": "0"},
    "cvc5": {"produce-models": "true", "incremental": "true", "ite-simp": "true",
             "simp-ite-compress": "true", "nl-cov": "true"},
}


def declaration_order(formula: FNode) -> list[FNode]:
    """The formula's free symbols in the order pysmt's converters first reach them (a
    depth-first walk that visits a node's last argument first)."""
    order: list[FNode] = []
    seen: set[FNode] = set()
    stack = [formula]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.is_symbol():
            order.append(node)
        else:
            stack.extend(node.args())
    return order
