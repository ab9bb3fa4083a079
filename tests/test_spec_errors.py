"""Malformed specs: each raises SpecError naming the file and the key, and the CLI
exits 2 with a one-line message and no traceback.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SEED_SPEC_TEXT
from typer.testing import CliRunner

from smtgrad.cli import app
from smtgrad.spec import SpecError, load_spec

#: The seed spec under another name (used at import time, for the parametrisations).
VALID = SEED_SPEC_TEXT.replace("name: seed\n", "name: ok\n", 1)
assert VALID != SEED_SPEC_TEXT


def edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


HUGE = "1" + "0" * 1000
DEEP = "[" * 1500 + "]" * 1500

# (id, file content, key that the message must name ("" if none), text it must contain)
CASES: list[tuple[str, str | bytes, str, str]] = [
    ("yaml-syntax", VALID + "query: [W1, \n", "", "invalid YAML"),
    ("yaml-tab-indent", "network:\n\tinputs: 1\n", "", "invalid YAML"),
    ("top-level-list", "- network\n- query\n", "", "expected a mapping"),
    ("top-level-scalar", "just text\n", "", "expected a mapping"),
    ("empty-file", "", "", "empty"),
    ("only-comment", "# nothing here\n", "", "empty"),
    ("unknown-top-key", VALID + "optimizer: adam\n", "optimizer", "unknown key"),
    ("unknown-nested-key", edit("  inputs: 1\n", "  inputs: 1\n  layer: 2\n"),
     "network.layer", "unknown key"),
    ("unknown-layer-key", edit("{units: 1, activation: relu}",
                               "{units: 1, activation: relu, bias: false}"),
     "network.layers[0].bias", "unknown key"),
    ("missing-network", "query: {zero: [W1]}\nsamples: 1\n", "network", "missing"),
    ("missing-query", VALID.split("query:")[0], "query", "missing"),
    ("missing-samples", edit("samples: 3\n", ""), "samples", "missing"),
    ("units-text", edit("{units: 1, activation: relu}", '{units: "two", activation: relu}'),
     "network.layers[0].units", "whole number"),
    ("units-fraction", edit("{units: 1, activation: relu}", "{units: 1.5, activation: relu}"),
     "network.layers[0].units", "whole number"),
    ("units-zero", edit("{units: 1, activation: relu}", "{units: 0, activation: relu}"),
     "network.layers[0].units", "from 1"),
    ("units-negative", edit("{units: 1, activation: relu}", "{units: -3, activation: relu}"),
     "network.layers[0].units", "-3"),
    ("units-huge", edit("{units: 1, activation: relu}", f"{{units: {HUGE}, activation: relu}}"),
     "network.layers[0].units", "huge"),
    ("inputs-bool", edit("inputs: 1", "inputs: true"), "network.inputs", "boolean"),
    ("layers-empty", edit("""  layers:
    - {units: 1, activation: relu}
    - {units: 1, activation: linear}
""", "  layers: []\n"), "network.layers", "non-empty"),
    ("unknown-activation", edit("activation: relu}", "activation: relu6}"),
     "network.layers[0].activation", "relu6"),
    ("unknown-loss", edit("loss: mse", "loss: hinge"), "loss", "hinge"),
    ("loss-reduction", edit("loss: mse", "loss: {kind: mse, reduction: median}"),
     "loss.reduction", "median"),
    ("loss-scale-negative", edit("loss: mse", "loss: {kind: mse, scale: -1}"),
     "loss.scale", "positive"),
    ("bce-without-sigmoid", edit("loss: mse", "loss: bce\ntargets: binary"), "loss", "sigmoid"),
    # Explicit real targets (without `targets`, bce defaults to unit_interval).
    ("bce-real-targets", edit("activation: linear}", "activation: sigmoid}").replace(
        "loss: mse", "loss: bce\ntargets: real"), "targets", "bce"),
    ("unknown-targets", VALID + "targets: integer\n", "targets", "integer"),
    ("samples-empty-range", edit("samples: 3", "samples: {min: 5, max: 2}"), "samples",
     "empty range"),
    ("samples-zero", edit("samples: 3", "samples: 0"), "samples", "from 1"),
    ("samples-range-key", edit("samples: 3", "samples: {min: 1, most: 4}"), "samples.most",
     "unknown key"),
    ("fixed-huge-number", VALID + f"fixed:\n  W1: [[{HUGE}]]\n", "fixed.W1[0][0]",
     "too large"),
    ("fixed-huge-exponent", VALID + "fixed:\n  b1: ['1e999999999']\n", "fixed.b1[0]",
     "1e999999999"),
    ("fixed-inf", VALID + "fixed:\n  b1: [.inf]\n", "fixed.b1[0]", "finite"),
    ("fixed-nan", VALID + "fixed:\n  b2: [.nan]\n", "fixed.b2[0]", "finite"),
    ("fixed-text", VALID + "fixed:\n  b2: [one]\n", "fixed.b2[0]", "one"),
    ("fixed-division-by-zero", VALID + "fixed:\n  b2: ['1/0']\n", "fixed.b2[0]", "zero"),
    ("fixed-shape", VALID + "fixed:\n  W1: [[1, 2]]\n", "fixed.W1[0]", "1 entries"),
    ("fixed-rows", VALID + "fixed:\n  X: [0, 2]\n", "samples", "2"),
    ("fixed-unknown-block", VALID + "fixed:\n  W3: [[1]]\n", "fixed.W3", "unknown key"),
    ("query-unknown-parameter", edit("zero: [W2, b2]", "zero: [W9, b2]"), "query.zero[0]",
     "W9"),
    ("query-out-of-range", edit("zero: [W2, b2]", "zero: ['W1[3,0]', b2]"), "query.zero[0]",
     "out of range"),
    ("query-garbage", edit("nonzero: [W1, b1]", "nonzero: ['W1[[0]]']"),
     "query.nonzero[0]", "W1[[0]]"),
    ("query-not-a-list", edit("zero: [W2, b2]", "zero: {W2: 1}"), "query.zero", "list"),
    ("assume-syntax", VALID + "assume: ['W1[0,0] >']\n", "assume[0]", "unexpected end"),
    ("assume-call", VALID + "assume: [\"__import__('os').system('true') == 0\"]\n",
     "assume[0]", "not allowed"),
    ("assume-function", VALID + "assume: ['exp(W1[0,0]) > 0']\n", "assume[0]",
     "function calls are not allowed"),
    ("assume-attribute", VALID + "assume: ['W1.T > 0']\n", "assume[0]", "W1.T"),
    ("assume-unknown-name", VALID + "assume: ['theta > 0']\n", "assume[0]", "theta"),
    ("assume-sample-index", edit("samples: 3", "samples: {min: 2, max: 4}") +
     "assume: ['X[4] > 0']\n", "assume[0]", "sample 4"),
    ("assume-not-text", VALID + "assume: [[1, 2]]\n", "assume[0]", "text"),
    ("duplicate-key", VALID + "loss: mse\n", "", "duplicate key 'loss'"),
    ("conventions-two", VALID + "conventions: {relu_grad_at_zero: 2}\n",
     "conventions.relu_grad_at_zero", "2"),
    ("conventions-unknown", VALID + "conventions: {tanh_grad: 1}\n", "conventions.tanh_grad",
     "unknown key"),
    ("slope-on-relu", edit("{units: 1, activation: relu}",
                           "{units: 1, activation: relu, slope: 1/10}"),
     "network.layers[0].slope", "leaky_relu"),
    ("softmax-hidden", edit("activation: relu}", "activation: softmax}"),
     "network.layers[0].activation", "softmax"),
    ("generic-text", VALID + "generic: yes please\n", "generic", "true or false"),
    ("expect-verdict", VALID + "expect: {verdict: maybe}\n", "expect.verdict", "maybe"),
    ("non-text-key", VALID + "1: one\n", "", "keys must be text"),
    ("deep-nesting", VALID + f"description: {DEEP}\n", "", "invalid YAML"),
    ("nul-bytes", VALID + "name: a\x00b\n", "", "binary"),
    ("non-utf8", VALID.encode() + "description: caf\u00e9\n".encode("latin-1"), "", "UTF-8"),
    ("binary-garbage", random.Random(0).randbytes(2048), "", "binary data"),
]


def check_cli(runner: CliRunner, path: Path, key: str, text: str, every_verb: bool = True
              ) -> None:
    verbs = [["solve"], ["export"], ["check", "--witness", str(path)]]
    for verb in verbs if every_verb else verbs[:1]:
        result = runner.invoke(app, [*verb[:1], str(path), *verb[1:]])
        output = result.output
        assert result.exit_code == 2, (verb, result.exit_code, output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            verb, repr(result.exception))
        assert "Traceback" not in output
        assert str(path) in output
        assert key in output
        assert text in output
        assert output.count("\n") <= 3, output  # one short message, not a dump
        assert output.startswith("smtgrad: bad spec: "), output


@pytest.mark.parametrize(("case", "content", "key", "text"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec(case: str, content: str | bytes, key: str, text: str,
                        write_spec: Callable[..., Path], runner: CliRunner) -> None:
    path = write_spec(content)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    error = caught.value
    assert error.source == str(path)
    assert error.key == key, (error.key, key)
    assert text in str(error), str(error)
    assert str(path) in str(error)
    # Overflowing the YAML parser's recursion takes about a second: solve only.
    check_cli(runner, path, key, text, every_verb=case != "deep-nesting")


def test_case_count() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_valid_base_spec_loads(write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(VALID))
    assert spec.name == "ok"
    assert spec.samples.min == spec.samples.max == 3


def test_binary_garbage_has_no_nul_free_luck() -> None:
    # The fixed seed gives bytes that are neither UTF-8 nor YAML.
    data = random.Random(0).randbytes(2048)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_directory(tmp_path: Path, runner: CliRunner) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert "directory" in str(caught.value)
    check_cli(runner, tmp_path, "", "directory")


def test_missing_file(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "not found" in str(caught.value)
    check_cli(runner, path, "", "not found")


def test_large_file(write_spec: Callable[..., Path], runner: CliRunner) -> None:
    path = write_spec(VALID + "# " + "x" * 1_100_000 + "\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "larger than" in str(caught.value)
    check_cli(runner, path, "", "larger than")


def test_float_literals_are_exact(write_spec: Callable[..., Path]) -> None:
    # Not an error: 0.1 in YAML is the exact 1/10, never the binary float.
    from fractions import Fraction

    spec = load_spec(write_spec(VALID + "fixed:\n  b1: [0.1]\n  W2: [['-2/3']]\n"))
    assert spec.fixed_value("b1", (0,)) == Fraction(1, 10)
    assert spec.fixed_value("W2", (0, 0)) == Fraction(-2, 3)

