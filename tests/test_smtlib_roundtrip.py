"""SMT-LIB that round-trips: `smtgrad export` states the expected status and asks for a
model; z3's and cvc5's models of it read back through `smtgrad check --smt-model` and are
verified exactly; a mutated model is refuted."""

from __future__ import annotations

import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import invoke
from typer.testing import CliRunner

from smtgrad.encoding.smtmodel import parse_model
from smtgrad.reference.witness import WitnessError

SPECS = Path(__file__).resolve().parent.parent / "specs"
SEED = str(SPECS / "relu_mse.yaml")



def _export(runner: CliRunner, spec: str, path: Path, *extra: str) -> str:
    result = invoke(runner, "export", spec, "--output", str(path), *extra)
    assert result.exit_code == 0, result.output
    return path.read_text(encoding="utf-8")


def _z3_model(script: Path) -> str:
    """z3's answer and (get-model) output: the binary when installed, else the Python API."""
    binary = shutil.which("z3")
    if binary is not None:
        run = subprocess.run([binary, "-smt2", "-T:30", str(script)], capture_output=True,
                             text=True, timeout=60, check=False)
        if run.returncode == 0:
            return run.stdout
    import z3

    solver = z3.Solver()
    solver.add(z3.parse_smt2_file(str(script)))
    answer = solver.check()
    if answer != z3.sat:
        return str(answer)
    model = solver.model()
    lines = [f"(define-fun {d.name()} () {'Bool' if z3.is_bool(model[d]) else 'Real'} "
             f"{model[d].sexpr()})" for d in model.decls()]
    return "sat\n(\n" + "\n".join(lines) + "\n)\n"


def _cvc5_model(script: Path) -> str:
    cvc5 = pytest.importorskip("cvc5")
    terms = cvc5.TermManager()
    solver = cvc5.Solver(terms)
    symbols = cvc5.SymbolManager(terms)
    parser = cvc5.InputParser(solver, symbols)
    parser.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, str(script))
    output = []
    while True:
        command = parser.nextCommand()
        if command.isNull():
            break
        output.append(command.invoke(solver, symbols))
    return "".join(output)


@pytest.mark.parametrize("solver", ["z3", "cvc5"])
def test_a_solver_model_checks_and_a_mutated_one_fails(runner: CliRunner, tmp_path: Path,
                                                       solver: str) -> None:
    script = tmp_path / "seed.smt2"
    text = _export(runner, SEED, script)
    assert "(set-info :status sat)" in text
    assert text.rstrip().endswith("(check-sat)\n(get-model)")
    model = (_z3_model if solver == "z3" else _cvc5_model)(script)
    assert model.lstrip().startswith("sat")
    path = tmp_path / "model.txt"
    path.write_text(model, encoding="utf-8")
    result = invoke(runner, "check", SEED, "--smt-model", str(path))
    assert result.exit_code == 0, result.output
    assert "satisfies the spec exactly" in result.output
    # The same model with one residual changed: dL/db2 = (2/3)·Σ r is no longer 0.
    values = parse_model(model)
    assert isinstance(values["r_0_0"], Fraction)
    mutated = re.sub(r"\(define-fun r_0_0 \(\) Real\s+[^\n]*\)",
                     f"(define-fun r_0_0 () Real {values['r_0_0'] + 1}.0)"
                     if values["r_0_0"].denominator == 1 else
                     f"(define-fun r_0_0 () Real (+ 1 {_smt(values['r_0_0'])}))", model)
    if mutated == model:  # z3 prints the value on the next line
        mutated = re.sub(r"(\(define-fun r_0_0 \(\) Real\s+)([^\n]+)\)",
                         lambda m: f"{m.group(1)}(+ 1 {m.group(2)}))", model)
    assert mutated != model
    path.write_text(mutated, encoding="utf-8")
    result = invoke(runner, "check", SEED, "--smt-model", str(path))
    assert result.exit_code == 1, result.output
    assert "dL/db2" in result.output


def _smt(value: Fraction) -> str:
    text = f"(/ {abs(value.numerator)} {value.denominator})"
    return f"(- {text})" if value < 0 else text


def test_model_values_z3_and_cvc5_print() -> None:
    values = parse_model("""sat
(model
  (define-fun W1_0_0 () Real (- 2.0))
  (define-fun |b1_0| () Real (/ 1 3))
  (define-fun X_0_0 () Real (- (/ 1.0 4.0)))
  (define-fun r_0_0 () Real
    0.5)
  (define-fun phase_1_0_0 () Bool true) ; a comment
)""")
    assert values == {"W1_0_0": Fraction(-2), "b1_0": Fraction(1, 3),
                      "X_0_0": Fraction(-1, 4), "r_0_0": Fraction(1, 2), "phase_1_0_0": True}
    assert parse_model("((define-fun x () Real 7))") == {"x": Fraction(7)}


@pytest.mark.parametrize(("text", "message"), [
    ("unsat\n", "answered unsat"),
    ("sat\n((define-fun x () Real (root-obj (+ (^ x 2) (- 2)) 1)))", "irrational"),
    ("sat\n((define-fun x () Real 1.0)", "unbalanced"),
    ("sat\n(foo)", "no (define-fun"),
    ("((define-fun f ((y Real)) Real y))", "not a constant"),
])
def test_bad_models_are_bad_input(text: str, message: str) -> None:
    with pytest.raises(WitnessError, match=re.escape(message)):
        parse_model(text)


def test_check_needs_exactly_one_witness_source(runner: CliRunner, tmp_path: Path) -> None:
    assert invoke(runner, "check", SEED).exit_code == 2
    path = tmp_path / "m.txt"
    path.write_text("unsat\n", encoding="utf-8")
    both = invoke(runner, "check", SEED, "--smt-model", str(path), "--witness", str(path))
    assert both.exit_code == 2
    unsat = invoke(runner, "check", SEED, "--smt-model", str(path))
    assert unsat.exit_code == 2 and "answered unsat" in unsat.output
    smooth = invoke(runner, "check", str(SPECS / "sigmoid_bce_hard.yaml"), "--smt-model",
                    str(path))
    assert smooth.exit_code == 2


@pytest.mark.parametrize(("spec", "extra", "status"), [
    ("relu_mse.yaml", (), "sat"),
    ("relu_mse.yaml", ("--samples", "2"), "unknown"),  # expect says nothing about M=2
    ("seed_minimal.yaml", (), "unsat"),  # M=1 < the first sat M=3 of the walk
    ("seed_minimal.yaml", ("--samples", "3"), "sat"),
    ("seed_single_sample.yaml", (), "unsat"),
    ("linear_hidden.yaml", (), "unsat"),
    ("hardtanh_dead.yaml", (), "unsat"),
    ("sigmoid_bce_hard.yaml", (), "unknown"),  # an abstraction keeps no unsat
])
def test_status_is_stated_when_known_and_z3_agrees(runner: CliRunner, tmp_path: Path,
                                                  spec: str, extra: tuple[str, ...],
                                                  status: str) -> None:
    script = tmp_path / "script.smt2"
    text = _export(runner, str(SPECS / spec), script, *extra)
    assert f"(set-info :status {status})" in text
    assert text.index("(set-option :produce-models true)") < text.index("(set-logic")
    if status != "unknown":
        answer = _z3_model(script).split()[0]
        assert answer == status
