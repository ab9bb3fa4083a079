"""Planted bugs in the encoder must surface as a rejected witness and exit code 4.

The verifier is independent of the encoder on purpose (DESIGN section 4). These
tests break the encoder in two classic ways -- a flipped sign and a term dropped
from a gradient sum -- switch off the rank fast path so that the SMT witness is
the one reported, and check that the tool refuses to call the result sat: it
exits 4 with a one-line message and no traceback.

Both specs fix every parameter and input, so the bug cannot hide: every model of
the broken encoding is provably wrong (worked out in the comments).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import network_yaml
from pysmt.fnode import FNode
from pysmt.shortcuts import Plus
from typer.testing import CliRunner

import smtgrad.encoding.builder as encoding
from smtgrad import activations
from smtgrad.cli import app
from smtgrad.methods.exact import FastPath
from smtgrad.spec import Layer

# leaky_relu (slope 1/10), u = x - 1 = (-1, 1, 2): sample 0 is on the negative side.
# With the sign of the negative slope flipped, the encoder believes a_0 = +1/10 while the
# network computes -1/10. The encoder forces sum(r) = 0 for its own residuals, so the
# verifier's residuals sum to -W2 * (1/10 + 1/10) = -1/5 != 0: dL/db2 is not zero.
SIGN_SPEC = """
name: planted-sign
""" + network_yaml("1 leaky_relu slope=1/10", "1 linear") + """loss: mse
fixed:
  W1: [[1]]
  b1: [-1]
  W2: [[1]]
  b2: [-1]
  X: [0, 2, 3]
query:
  zero: [W2, b2]
  nonzero: [W1]
"""

# relu, a = (0, 1, 2), yhat = (-1, 0, 1) and Y[2] = 0 fixed, so r_2 = 1. Dropping the last
# sample from the zero-queried sums leaves r_0 + r_1 = 0 and r_1 = 0, whose only solution
# r = (0, 0, 1) satisfies the broken encoding (dL/dW1 = 3 r_2 != 0) while the true
# dL/db2 = r_0 + r_1 + r_2 = 1.
DROP_SPEC = """
name: planted-drop
""" + network_yaml("1 relu", "1 linear") + """loss: mse
fixed:
  W1: [[1]]
  b1: [-1]
  W2: [[1]]
  b2: [-1]
  X: [0, 2, 3]
  Y: [null, null, 0]
query:
  zero: [W2, b2]
  nonzero: [W1]
"""


@pytest.fixture
def no_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rank criterion and the output-layer solve would find a correct witness
    themselves: switch the fast path off."""
    monkeypatch.setattr(FastPath, "run", lambda *args, **kwargs: None)


@pytest.fixture
def flip_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: leaky_relu's negative piece gets slope -s instead of s."""
    original = encoding.pieces

    def broken(layer: Layer, kink_derivative_one: bool) -> tuple[encoding.Piece, ...]:
        table = original(layer, kink_derivative_one)
        if layer.activation is not activations.LEAKY_RELU:
            return table
        first = dataclasses.replace(table[0], slope=-table[0].slope)
        return (first, *table[1:])

    monkeypatch.setattr(encoding, "pieces", broken)


@pytest.fixture
def drop_term(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the last term of every zero-queried gradient sum is dropped."""
    original: Callable[..., None] = encoding._Builder.query

    def drop(item: Any) -> Any:
        if isinstance(item, list):
            return [drop(sub) for sub in item]
        node: FNode = item
        if node.is_plus() and len(node.args()) > 1:
            return Plus(node.args()[:-1])
        return node

    def broken(self: Any, gradients: dict[str, Any], shapes: dict[str, tuple[int, ...]]
               ) -> None:
        zero_blocks = {target.block for target in self.spec.query.zero}
        changed = {name: drop(value) if name in zero_blocks else value
                   for name, value in gradients.items()}
        original(self, changed, shapes)

    monkeypatch.setattr(encoding._Builder, "query", broken)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "planted.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _assert_rejected(runner: CliRunner, path: Path) -> str:
    result = runner.invoke(app, ["solve", str(path), "--timeout", "30"])
    output = result.output
    assert result.exit_code == 4, output
    assert "Traceback" not in output, output
    assert output.startswith("smtgrad: internal error"), output
    assert "rejected by the exact verifier" in output, output
    assert "dL/db2" in output, output  # names the requirement the witness breaks
    assert len(output.strip().splitlines()) == 1, output
    assert "verdict: sat" not in output
    return output


@pytest.mark.usefixtures("no_fast_path")
@pytest.mark.parametrize("text", [SIGN_SPEC, DROP_SPEC], ids=["sign", "drop"])
def test_unbroken_encoder_finds_a_verified_witness(text: str, tmp_path: Path,
                                                   runner: CliRunner) -> None:
    """Control: without the planted bug both specs are sat through the SMT encoding."""
    result = runner.invoke(app, ["solve", str(_write(tmp_path, text)), "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "z3" in result.output


@pytest.mark.usefixtures("no_fast_path", "flip_sign")
def test_flipped_sign_is_rejected_with_exit_4(tmp_path: Path, runner: CliRunner) -> None:
    _assert_rejected(runner, _write(tmp_path, SIGN_SPEC))


@pytest.mark.usefixtures("no_fast_path", "drop_term")
def test_dropped_term_is_rejected_with_exit_4(tmp_path: Path, runner: CliRunner) -> None:
    _assert_rejected(runner, _write(tmp_path, DROP_SPEC))


@pytest.mark.usefixtures("no_fast_path", "drop_term")
def test_dropped_term_json_format_also_exits_4(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["solve", str(_write(tmp_path, DROP_SPEC)), "--format", "json",
                                 "--timeout", "30"])
    assert result.exit_code == 4, result.output
    assert '"verdict"' not in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("no_fast_path", "flip_sign")
def test_cross_check_does_not_hide_the_bug(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["solve", str(_write(tmp_path, SIGN_SPEC)), "--cross-check",
                                 "--backend", "cvc5", "--timeout", "30"])
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("no_fast_path", "flip_sign")
def test_the_fuzzer_reports_the_planted_bug_as_an_error() -> None:
    """A witness the verifier rejects is an internal error (exit 4), and the fuzzer counts
    it among its errors, which fail the batch like disagreements do."""
    from smtgrad.spec import parse_spec
    from tools.fuzz import CaseReport, Category, FuzzConfig, check_spec

    report = CaseReport(index=0, seed=0, spec_text=SIGN_SPEC)
    check_spec(parse_spec(SIGN_SPEC), FuzzConfig(timeout=20, points=50),
               random.Random(0), report)
    assert report.category is Category.ERROR, report.describe()
    assert any("rejected" in line for line in report.details), report.describe()


def test_a_mutated_witness_fails_check(tmp_path: Path, runner: CliRunner) -> None:
    """The verifier can say no: change one target of a good witness and check it."""
    spec = _write(tmp_path, DROP_SPEC.replace("  Y: [null, null, 0]\n", ""))
    good = tmp_path / "good.json"
    result = runner.invoke(app, ["solve", str(spec), "--json", str(good), "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["check", str(spec), "--witness", str(good)]).exit_code == 0
    text = good.read_text(encoding="utf-8")
    import json

    data = json.loads(text)
    data["witness"]["Y"][0][0] = str(int(data["witness"]["Y"][0][0].split("/")[0]) + 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--witness", str(bad)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
