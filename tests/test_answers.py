"""Answers ready to post (`--format markdown|latex`, smtgrad.answers): the written-out
gradient sums are parsed back and must equal the verifier's exact gradients."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import HAND_WITNESS_JSON, invoke
from typer.testing import CliRunner

from smtgrad.numbers.expr import FractionAlgebra, Ref, evaluate_arith, parse_arith

SPECS = Path(__file__).resolve().parent.parent / "specs"
SEED = str(SPECS / "relu_mse.yaml")
PACKAGE = Path(__file__).resolve().parent.parent / "smtgrad"



def _no_reference(ref: Ref) -> Fraction:
    raise AssertionError(f"a written-out sum names {ref}")


def _exact(text: str) -> Fraction:
    """A written-out sum such as ``(2/3)·((-1)·4 + (-3)·0 + 4·1)``, evaluated exactly."""
    value = evaluate_arith(parse_arith(text.replace("·", "*")), _no_reference,
                           FractionAlgebra())
    return Fraction(value)


def _gradient_lines(markdown: str) -> dict[str, tuple[str, str]]:
    """``dL/dW2 = symbolic = numeric = value`` lines: name -> (numeric sum, value)."""
    lines = {}
    for line in markdown.splitlines():
        if not line.startswith("dL/d"):
            continue
        formula = line.split("    (required")[0]
        parts = formula.split(" = ")
        assert len(parts) == 4, line
        lines[parts[0][4:]] = (parts[2], parts[3])
    return lines


def _entries(name: str, value: Any) -> dict[str, Fraction]:
    """A JSON gradient block as entry names (``W1`` for a 1x1 block, ``W1[0,1]``)."""
    flat: dict[tuple[int, ...], Fraction] = {}

    def walk(item: Any, index: tuple[int, ...]) -> None:
        if isinstance(item, list):
            for k, sub in enumerate(item):
                walk(sub, (*index, k))
        else:
            flat[index] = Fraction(item)

    walk(value, ())
    if len(flat) == 1:
        return {name: next(iter(flat.values()))}
    return {f"{name}[{','.join(map(str, index))}]": v for index, v in flat.items()}


def _check_sums(markdown: str, gradients: dict[str, Any]) -> None:
    expected: dict[str, Fraction] = {}
    for name, value in gradients.items():
        expected.update(_entries(name, value))
    written = _gradient_lines(markdown)
    assert set(written) == set(expected), (sorted(written), sorted(expected))
    for name, (numeric, value) in written.items():
        assert _exact(numeric) == expected[name], (name, numeric)
        assert Fraction(value) == expected[name], (name, value)


def test_seed_markdown_sums_are_the_exact_gradients(runner: CliRunner) -> None:
    markdown = invoke(runner, "solve", SEED, "--format", "markdown")
    assert markdown.exit_code == 0
    data = json.loads(invoke(runner, "solve", SEED, "--format", "json").stdout)
    text = markdown.stdout
    for heading in ("**Yes.**", "**Network.**", "**Parameters.**", "**Forward pass**",
                    "**Backpropagation.**", "**Gradients.**", "**Loss.**"):
        assert heading in text, heading
    _check_sums(text, data["gradients"])
    assert "(required = 0)" in text and "(required ≠ 0)" in text
    # The loss written out is the loss.
    loss_line = [line for line in text.splitlines() if line.startswith("L = (")][-1]
    numeric, value = loss_line[4:].rsplit(" = ", 1)
    assert _exact(numeric) == Fraction(data["loss"]) == Fraction(value)
    # Residuals per sample, as the JSON has them.
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 3


def test_the_check_can_fail(runner: CliRunner) -> None:
    """The parse-back detects a wrong sum (so the seed test above can fail)."""
    markdown = invoke(runner, "solve", SEED, "--format", "markdown").stdout
    data = json.loads(invoke(runner, "solve", SEED, "--format", "json").stdout)
    broken = markdown.replace("dL/db1 = (2/3)·Σ_m δ1[m] = (2/3)·(", "dL/db1 = (2/3)·Σ_m δ1[m]"
                              " = (2/3)·(1 + ", 1)
    assert broken != markdown
    with pytest.raises(AssertionError):
        _check_sums(broken, data["gradients"])


def test_hand_witness_check_markdown(runner: CliRunner, tmp_path: Path) -> None:
    """The accepted answer's own witness, written out: dL/dw1 = dL/db1 = -2/3."""
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(HAND_WITNESS_JSON), encoding="utf-8")
    result = invoke(runner, "check", SEED, "--witness", str(path), "--format", "markdown")
    assert result.exit_code == 0
    lines = _gradient_lines(result.stdout)
    assert Fraction(lines["b1"][1]) == Fraction(-2, 3) == _exact(lines["b1"][0])
    assert Fraction(lines["W2"][1]) == 0 == _exact(lines["W2"][0])
    assert "**Yes.**" in result.stdout


def test_failing_witness_markdown_names_the_failure(runner: CliRunner, tmp_path: Path) -> None:
    witness = dict(HAND_WITNESS_JSON, b2=["0"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(witness), encoding="utf-8")
    result = invoke(runner, "check", SEED, "--witness", str(path), "--format", "markdown")
    assert result.exit_code == 1
    assert "**No.**" in result.stdout and "dL/db2" in result.stdout


@pytest.mark.parametrize(("spec", "words"), [
    ("seed_single_sample.yaml", ["one-sample lemma", "M = 1"]),
    ("linear_hidden.yaml", ["linear-identity lemma", "any number of samples"]),
    # Every sample saturated: the fixed-piece lemma (issue 19), no solver needed.
    ("hardtanh_dead.yaml", ["fixed-piece lemma", "derivative 0"]),
])
def test_unsat_markdown_gives_the_argument(runner: CliRunner, spec: str,
                                           words: list[str]) -> None:
    result = invoke(runner, "solve", str(SPECS / spec), "--format", "markdown")
    assert result.exit_code == 1
    assert "**No.**" in result.stdout
    for word in words:
        assert word in result.stdout, (word, result.stdout)
    assert "dL/d" in result.stdout  # the question is stated


def test_unknown_markdown_gives_the_reason(runner: CliRunner, tmp_path: Path,
                                           hard_spec_text: str) -> None:
    path = tmp_path / "hard.yaml"
    path.write_text(hard_spec_text, encoding="utf-8")
    result = invoke(runner, "solve", str(path), "--timeout", "0.2", "--format", "markdown")
    assert result.exit_code == 3
    assert "**Unknown.**" in result.stdout
    assert "time" in result.stdout.lower()


def _balanced(latex: str) -> None:
    depth = 0
    for char in latex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", latex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name
    assert not stack
    assert latex.count(r"\left") == latex.count(r"\right")
    assert latex.count(r"\bigl") == latex.count(r"\bigr")
    # Inline math delimiters pair up on every line.
    for line in latex.splitlines():
        assert line.replace(r"\$", "").count("$") % 2 == 0, line


@pytest.mark.parametrize("spec", ["relu_mse.yaml", "seed_single_sample.yaml"])
def test_latex_is_balanced(runner: CliRunner, spec: str, tmp_path: Path) -> None:
    result = invoke(runner, "solve", str(SPECS / spec), "--format", "latex")
    latex = result.stdout
    assert result.exit_code in (0, 1)
    _balanced(latex)
    assert "amsmath" in latex.splitlines()[0]
    if spec == "relu_mse.yaml":
        assert r"\begin{align*}" in latex and r"\frac{\partial L}{\partial b_{2}}" in latex
    if shutil.which("pdflatex"):  # compile it for real where TeX is installed
        document = tmp_path / "answer.tex"
        document.write_text("\\documentclass{article}\n\\usepackage{amsmath}\n"
                            "\\begin{document}\n" + latex + "\\end{document}\n",
                            encoding="utf-8")
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                              document.name], cwd=tmp_path, capture_output=True, timeout=60,
                             check=False)
        assert run.returncode == 0, run.stdout[-2000:]


def test_enclosure_answer_says_certified(runner: CliRunner) -> None:
    """A transcendental witness (softplus, M=3): balls written as ≈, zeros certified."""
    from smtgrad.answers import result_markdown
    from smtgrad.engine import SolveOptions, solve
    from smtgrad.spec import load_spec

    result = solve(load_spec(SPECS / "silu_mse.yaml"), SolveOptions())
    if result.certificate != "enclosure":
        pytest.skip(f"no enclosure here ({result.verdict.value})")
    text = result_markdown(result)
    assert "Krawczyk" in text and "≈" in text


def test_output_modules_import_no_solver() -> None:
    """answers and plots are output code: spec, reference, report; never a solver, the
    encoding or the methods (ARCHITECTURE.md)."""
    import ast

    for module in ("answers.py", "plots.py"):
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        bad = [n for n in names if n.split(".")[0] in ("z3", "cvc5", "pysmt") or
               n.startswith(("smtgrad.encoding", "smtgrad.methods", "smtgrad.backends"))]
        assert bad == [], (module, bad)
