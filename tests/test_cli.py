"""The command line through typer's CliRunner: verbs, the JSON contract, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sympy
import z3
from conftest import HAND_WITNESS_JSON, invoke
from typer.testing import CliRunner

SPECS = Path(__file__).resolve().parent.parent / "specs"
SEED = str(SPECS / "relu_mse.yaml")
HAND = HAND_WITNESS_JSON

EXIT_SAT, EXIT_UNSAT, EXIT_BAD_INPUT, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 4



def rational(text: Any) -> Fraction:
    assert isinstance(text, str), text
    value = sympy.sympify(text)
    assert isinstance(value, sympy.Rational), text
    return Fraction(int(value.p), int(value.q))


def all_rational(value: Any) -> Any:
    if isinstance(value, list):
        return [all_rational(item) for item in value]
    if isinstance(value, dict):
        return {key: all_rational(item) for key, item in value.items()}
    return rational(value)


# ----------------------------------------------------------------------------------------
# solve


def test_solve_text(runner: CliRunner) -> None:
    result = invoke(runner, "solve", SEED)
    assert result.exit_code == EXIT_SAT
    assert "verdict: sat at M=3" in result.output
    assert "certificate: exact" in result.output
    for name in ("W1", "b1", "W2", "b2"):
        assert name in result.output


def test_solve_json_contract(runner: CliRunner) -> None:
    result = invoke(runner, "solve", SEED, "--format", "json")
    assert result.exit_code == EXIT_SAT
    data = json.loads(result.stdout)
    for key in ("verdict", "certificate", "samples", "witness", "gradients", "loss", "solver",
                "seconds"):
        assert key in data, key
    assert data["verdict"] == "sat"
    assert data["certificate"] == "exact"
    assert data["samples"] == 3
    assert set(data["witness"]) == {"W1", "b1", "W2", "b2", "X", "Y"}
    assert set(data["gradients"]) == {"W1", "b1", "W2", "b2"}
    assert isinstance(data["solver"], str) and data["solver"]
    assert isinstance(data["seconds"], int | float) and data["seconds"] >= 0
    witness = all_rational(data["witness"])
    gradients = all_rational(data["gradients"])
    loss = rational(data["loss"])
    assert len(witness["X"]) == len(witness["Y"]) == 3
    assert all(len(row) == 1 for row in witness["X"] + witness["Y"])
    assert gradients["W2"] == [[0]] and gradients["b2"] == [0]
    assert gradients["W1"] != [[0]] and gradients["b1"] != [0]
    assert loss >= 0
    for key in ("predictions", "residuals"):
        if key in data:
            all_rational(data[key])


def test_solve_json_file_matches_stdout(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    result = invoke(runner, "solve", SEED, "--format", "json", "--json", str(path))
    assert result.exit_code == EXIT_SAT
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(result.stdout)
    # --json also works with the text report on stdout.
    other = tmp_path / "other.json"
    text = invoke(runner, "solve", SEED, "--json", str(other))
    assert text.exit_code == EXIT_SAT
    assert "verdict: sat" in text.output
    written = json.loads(other.read_text(encoding="utf-8"))
    assert written["verdict"] == "sat" and written["witness"]


def test_minimal_walks_up(runner: CliRunner) -> None:
    result = invoke(runner, "solve", str(SPECS / "seed_minimal.yaml"), "--minimal", "--format",
                    "json")
    assert result.exit_code == EXIT_SAT
    data = json.loads(result.stdout)
    attempts = [(a["samples"], a["verdict"]) for a in data["attempts"]]
    assert attempts == [(1, "unsat"), (2, "unsat"), (3, "sat")]
    assert data["samples"] == 3
    text = invoke(runner, "solve", str(SPECS / "seed_minimal.yaml"), "--minimal")
    assert "M=1: unsat" in text.output and "M=2: unsat" in text.output


def test_minimal_on_a_fixed_m_spec(runner: CliRunner) -> None:
    result = invoke(runner, "solve", SEED, "--minimal", "--format", "json")
    assert result.exit_code == EXIT_SAT
    data = json.loads(result.stdout)
    assert [(a["samples"], a["verdict"]) for a in data["attempts"]] == [
        (1, "unsat"), (2, "unsat"), (3, "sat")]


def test_samples_two_is_unsat(runner: CliRunner) -> None:
    result = invoke(runner, "solve", SEED, "--samples", "2", "--format", "json")
    assert result.exit_code == EXIT_UNSAT
    data = json.loads(result.stdout)
    assert data["verdict"] == "unsat"
    assert data["proved"] == "M=2"
    assert data["reason"]
    assert "witness" not in data
    text = invoke(runner, "solve", SEED, "--samples", "2")
    assert text.exit_code == EXIT_UNSAT
    assert "verdict: unsat" in text.output


def _solver_only_hardtanh(tmp_path: Path) -> str:
    """specs/hardtanh_dead.yaml with its first assumption written as a disjunction (the
    same set of u), which the fixed-piece lemma does not read: the backend must prove it."""
    text = (SPECS / "hardtanh_dead.yaml").read_text(encoding="utf-8").replace(
        '"W1[0,0]*X[0] + b1[0] > 1",',
        '"W1[0,0]*X[0] + b1[0] > 1 or W1[0,0]*X[0] + b1[0] > 2",')
    assert " or " in text
    path = tmp_path / "hardtanh_solver_only.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("backend", ["z3", "cvc5"])
def test_unsat_exit_code(runner: CliRunner, backend: str, tmp_path: Path) -> None:
    from smtgrad.backends import installed_backends

    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    # Saturated hardtanh units: no structural lemma applies, the backend proves it.
    result = invoke(runner, "solve", _solver_only_hardtanh(tmp_path), "--backend",
                    backend, "--format", "json")
    assert result.exit_code == EXIT_UNSAT
    data = json.loads(result.stdout)
    assert data["verdict"] == "unsat" and data["proved"] == "M=3"
    assert backend in data["solver"]


def test_unknown_exit_code_from_the_backend(runner: CliRunner, monkeypatch: Any,
                                            tmp_path: Path) -> None:
    from smtgrad.backends import SolverAnswer, SolverStatus
    from smtgrad.backends.z3_backend import Z3Backend

    def give_up(self: Any, formula: Any, timeout: float | None,
                work: int | None = None) -> SolverAnswer:
        return SolverAnswer(SolverStatus.UNKNOWN, reason="z3: forced unknown")

    monkeypatch.setattr(Z3Backend, "solve", give_up)
    from smtgrad.backends.cvc5_backend import Cvc5Backend

    # cvc5 races z3 for the proof on the last step: it gives up too.
    monkeypatch.setattr(Cvc5Backend, "_solve", give_up)
    # No lemma applies and the rank fast path finds no witness, so the backend decides.
    result = invoke(runner, "solve", _solver_only_hardtanh(tmp_path), "--format", "json")
    assert result.exit_code == EXIT_UNKNOWN
    data = json.loads(result.stdout)
    assert data["verdict"] == "unknown"
    assert "forced unknown" in data["reason"]
    assert "witness" not in data and "proved" not in data


_TINY: dict[str, Any] = {}


def tiny_timeout_run(runner: CliRunner, tmp_path_factory: Any, hard_spec_text: str) -> Any:
    """One `solve --timeout 0.1` of the hard spec, shared by the two tests below."""
    if "result" not in _TINY:
        path = tmp_path_factory.mktemp("hard") / "hard.yaml"
        path.write_text(hard_spec_text, encoding="utf-8")
        _TINY["result"] = invoke(runner, "solve", str(path), "--timeout", "0.1", "--format",
                                 "json")
    return _TINY["result"]


def test_unknown_exit_code_from_a_tiny_timeout(runner: CliRunner, tmp_path_factory: Any,
                                               hard_spec_text: str) -> None:
    result = tiny_timeout_run(runner, tmp_path_factory, hard_spec_text)
    assert result.exit_code == EXIT_UNKNOWN
    data = json.loads(result.stdout)
    assert data["verdict"] == "unknown"
    assert "timeout" in data["reason"]
    assert "witness" not in data


def test_timeout_reason_is_not_negative(runner: CliRunner, tmp_path_factory: Any,
                                        hard_spec_text: str) -> None:
    """The deadline passes while the (large) query is encoded: the reason must still
    report a sensible timeout, not the negative remaining budget ("after -0.01 s")."""
    data = json.loads(tiny_timeout_run(runner, tmp_path_factory, hard_spec_text).stdout)
    assert data["verdict"] == "unknown"
    assert "after -" not in data["reason"], data["reason"]
    for attempt in data["attempts"]:
        assert "after -" not in attempt.get("detail", ""), attempt


def test_internal_error_when_the_verifier_rejects(runner: CliRunner, monkeypatch: Any) -> None:
    import smtgrad.methods.base
    from smtgrad.reference.verify import Verification

    def reject(spec: Any, witness: Any, *args: Any, **kwargs: Any) -> Verification:
        return Verification(False, ("forced rejection",), None)

    monkeypatch.setattr(smtgrad.methods.base, "verify", reject)  # every method's verifier
    result = invoke(runner, "solve", SEED)
    assert result.exit_code == EXIT_INTERNAL
    assert "forced rejection" in result.output
    assert "verdict: sat" not in result.output


def test_interrupted(runner: CliRunner, monkeypatch: Any) -> None:
    import smtgrad.engine

    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(smtgrad.engine, "solve", interrupt)
    result = invoke(runner, "solve", SEED)
    assert result.exit_code == 130
    assert "interrupted" in result.output


def test_unknown_backend(runner: CliRunner) -> None:
    result = invoke(runner, "solve", SEED, "--backend", "nope")
    assert result.exit_code == EXIT_BAD_INPUT
    assert "nope" in result.output


@pytest.mark.parametrize("args", [
    ["solve"], ["solve", SEED, "--samples", "0"], ["solve", SEED, "--format", "xml"],
    ["solve", SEED, "--timeout", "0"], ["solve", SEED, "--no-such-option"], ["frobnicate"],
    ["check", SEED],
])
def test_usage_errors(runner: CliRunner, args: list[str]) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == EXIT_BAD_INPUT


def test_unwritable_json_path(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "solve", SEED, "--json", str(tmp_path / "missing" / "out.json"))
    assert result.exit_code == EXIT_BAD_INPUT
    assert "cannot write" in result.output


# ----------------------------------------------------------------------------------------
# check


def test_check_hand_witness(runner: CliRunner, write_json: Callable[..., Path]) -> None:
    path = write_json(HAND)
    result = invoke(runner, "check", SEED, "--witness", str(path))
    assert result.exit_code == EXIT_SAT
    assert "-2/3" in result.output
    assert "satisfies" in result.output
    data = json.loads(invoke(runner, "check", SEED, "--witness", str(path), "--format",
                             "json").stdout)
    assert data["holds"] is True and data["failures"] == []
    assert data["gradients"] == {"W1": [["-2/3"]], "b1": ["-2/3"], "W2": [["0"]], "b2": ["0"]}
    assert data["loss"] == "2"


def test_check_flat_yaml_witness(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "witness.yaml"
    path.write_text("W1: [[1]]\nb1: [-1]\nW2: [[1]]\nb2: [-1]\nX: [0, 2, 3]\nY: [-2, 2, 0]\n",
                    encoding="utf-8")
    result = invoke(runner, "check", SEED, "--witness", str(path))
    assert result.exit_code == EXIT_SAT
    assert "-2/3" in result.output


def test_check_result_json_from_solve(runner: CliRunner, tmp_path: Path) -> None:
    # published_claim fixes every number to the hand witness.
    claim = str(SPECS / "published_claim.yaml")
    path = tmp_path / "claim.json"
    assert invoke(runner, "solve", claim, "--json", str(path)).exit_code == EXIT_SAT
    assert json.loads(path.read_text(encoding="utf-8"))["witness"] == HAND
    for spec in (claim, SEED):
        result = invoke(runner, "check", spec, "--witness", str(path))
        assert result.exit_code == EXIT_SAT, result.output
        assert "-2/3" in result.output
    # And the solver's own witness for the seed.
    found = tmp_path / "found.json"
    assert invoke(runner, "solve", SEED, "--json", str(found)).exit_code == EXIT_SAT
    assert invoke(runner, "check", SEED, "--witness", str(found)).exit_code == EXIT_SAT


def test_check_wrong_witness(runner: CliRunner, write_json: Callable[..., Path]) -> None:
    path = write_json({**HAND, "b2": ["0"]})  # the false claim's b2
    result = invoke(runner, "check", SEED, "--witness", str(path))
    assert result.exit_code == EXIT_UNSAT
    assert "does NOT satisfy" in result.output
    assert "dL/db2[0]" in result.output
    data = json.loads(invoke(runner, "check", SEED, "--witness", str(path), "--format",
                             "json").stdout)
    assert data["holds"] is False and data["failures"]
    # The fixed values of the claim are checked too.
    claim = invoke(runner, "check", str(SPECS / "published_claim.yaml"), "--witness", str(path))
    assert claim.exit_code == EXIT_UNSAT
    assert "fixed b2[0]" in claim.output


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", ""),
    ("[1, 2, 3]", "mapping"),
    ('{"W1": [["1"]]}', "X"),
    (json.dumps({k: v for k, v in HAND.items() if k != "b2"}), "b2"),
    (json.dumps({**HAND, "W1": [["1", "2"]]}), "W1"),
    (json.dumps({**HAND, "b1": ["minus one"]}), "b1"),
    (json.dumps({**HAND, "W9": [["1"]]}), "W9"),
    (json.dumps({**HAND, "Y": [["1"], ["2"]]}), "Y"),
    (json.dumps({**HAND, "b1": [None]}), "b1"),
    (json.dumps({**HAND, "b1": ["1/0"]}), "b1"),
    ("", ""),
])
def test_check_malformed_witness(runner: CliRunner, tmp_path: Path, content: str,
                                 message: str) -> None:
    path = tmp_path / "witness.json"
    path.write_text(content, encoding="utf-8")
    result = invoke(runner, "check", SEED, "--witness", str(path))
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert message in result.output
    assert result.output.count("\n") <= 3


def test_check_missing_or_binary_witness(runner: CliRunner, tmp_path: Path) -> None:
    missing = invoke(runner, "check", SEED, "--witness", str(tmp_path / "absent.json"))
    assert missing.exit_code == EXIT_BAD_INPUT
    assert "absent.json" in missing.output
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert invoke(runner, "check", SEED, "--witness", str(binary)).exit_code == EXIT_BAD_INPUT
    assert invoke(runner, "check", SEED, "--witness", str(tmp_path)).exit_code == \
        EXIT_BAD_INPUT


def test_check_malformed_witness_is_called_a_witness(runner: CliRunner,
                                                     tmp_path: Path) -> None:
    """A witness file that is not valid JSON/YAML is a bad *witness*, not a bad spec."""
    path = tmp_path / "witness.json"
    path.write_text("{not json", encoding="utf-8")
    result = invoke(runner, "check", SEED, "--witness", str(path))
    assert result.exit_code == EXIT_BAD_INPUT
    assert "witness.json" in result.output
    assert "bad witness" in result.output, result.output
    assert "bad spec" not in result.output


# ----------------------------------------------------------------------------------------
# export and version


def _z3_verdict(script: str) -> Any:
    solver = z3.Solver()
    solver.add(z3.parse_smt2_string(script))
    return solver.check()


def test_export_parses_back_sat(runner: CliRunner) -> None:
    result = invoke(runner, "export", SEED)
    assert result.exit_code == EXIT_SAT
    script = result.stdout
    assert "(set-logic" in script and "(check-sat)" in script
    assert _z3_verdict(script) == z3.sat


def test_export_parses_back_unsat(runner: CliRunner) -> None:
    result = invoke(runner, "export", str(SPECS / "seed_single_sample.yaml"))
    assert result.exit_code == EXIT_SAT
    assert _z3_verdict(result.stdout) == z3.unsat


def test_export_samples_and_output(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "seed2.smt2"
    result = invoke(runner, "export", SEED, "--samples", "2", "--output", str(path))
    assert result.exit_code == EXIT_SAT
    script = path.read_text(encoding="utf-8")
    assert "M=2" in script
    assert _z3_verdict(script) == z3.unsat  # the seed needs three samples
    assert _z3_verdict(invoke(runner, "export", SEED, "--samples", "4").stdout) == z3.sat


def test_export_declares_each_symbol_once(runner: CliRunner) -> None:
    script = invoke(runner, "export", str(SPECS / "two_hidden_units.yaml")).stdout
    declarations = [line for line in script.splitlines() if line.startswith("(declare-fun")]
    assert declarations
    assert len(declarations) == len(set(declarations))


def test_version(runner: CliRunner) -> None:
    from smtgrad import __version__

    result = invoke(runner, "version")
    assert result.exit_code == 0
    assert f"smtgrad {__version__}" in result.output
    assert "z3" in result.output
