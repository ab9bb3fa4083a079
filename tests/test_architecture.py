"""The layers import one way (ARCHITECTURE.md): a test that reads every module's imports.

Function-level (lazy) imports count too: a trusted module that imported search code
inside a function would still depend on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "smtgrad"

#: For each layer, the smtgrad subpackages and third-party roots it must never import.
FORBIDDEN = {
    "numbers": ("smtgrad.spec", "smtgrad.activations", "smtgrad.reference",
                "smtgrad.encoding", "smtgrad.methods", "smtgrad.backends", "smtgrad.engine",
                "pysmt", "z3", "cvc5"),
    "activations": ("smtgrad.spec", "smtgrad.reference", "smtgrad.methods",
                    "smtgrad.backends", "smtgrad.engine", "z3", "cvc5"),
    "spec": ("smtgrad.reference", "smtgrad.encoding", "smtgrad.methods", "smtgrad.backends",
             "smtgrad.engine", "pysmt", "z3", "cvc5"),
    "reference": ("smtgrad.encoding", "smtgrad.methods", "smtgrad.backends",
                  "smtgrad.engine", "smtgrad.report", "smtgrad.cli", "pysmt", "z3", "cvc5"),
    "encoding": ("smtgrad.methods", "smtgrad.backends", "smtgrad.engine", "smtgrad.report",
                 "smtgrad.cli", "z3", "cvc5"),
    "methods": ("smtgrad.engine", "smtgrad.report", "smtgrad.cli", "z3", "cvc5"),
    # Exports and replay: floats of what the verifier found, never the search or a solver.
    "interop": ("smtgrad.encoding", "smtgrad.methods", "smtgrad.backends", "smtgrad.engine",
                "smtgrad.report", "smtgrad.cli", "smtgrad.api", "pysmt", "z3", "cvc5"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer: str) -> None:
    offences = []
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                offences.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offences == []


def test_only_the_backends_import_a_solver() -> None:
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "backends":
            continue
        for name in _imports(path):
            if name.split(".")[0] in ("z3", "cvc5") or name.startswith("pysmt.solvers"):
                offences.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offences == []


def test_the_checker_finds_a_planted_offence(tmp_path: Path) -> None:
    planted = tmp_path / "bad.py"
    planted.write_text("def f():\n    from smtgrad.methods import rank\n", encoding="utf-8")
    assert "smtgrad.methods.rank" in _imports(planted)


def test_solving_leaves_pysmt_global_environment_alone() -> None:
    """smtgrad builds and solves in its own pysmt environment (encoding/environment.py):
    after a solve that used the solver, pysmt's stack and global formula manager are as
    they were, and none of smtgrad's formulas live in the global manager."""
    import pysmt.environment as environments

    from smtgrad.engine import SolveOptions, solve
    from smtgrad.spec import load_spec

    global_env = environments.get_env()
    before = (len(environments.ENVIRONMENTS_STACK), len(global_env.formula_manager.formulae),
              global_env.formula_manager.__dict__.get("_do_type_check"))
    result = solve(load_spec(PACKAGE.parent / "specs" / "seed_minimal.yaml"),
                   SolveOptions(fast_path=False, timeout=60))
    assert result.verdict.value == "sat" and "z3" in result.method
    after = (len(environments.ENVIRONMENTS_STACK), len(global_env.formula_manager.formulae),
             global_env.formula_manager.__dict__.get("_do_type_check"))
    assert after == before
