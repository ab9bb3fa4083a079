"""CLI conventions: --version, shell completion, progress on a terminal, the target kinds
bce and cross-entropy default to, per-sample `assume` (X[*,0]), and README YAML that parses."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import HAND_WITNESS_JSON, SEED_SPEC_TEXT, invoke
from typer.testing import CliRunner

from smtgrad import __version__
from smtgrad.spec import TargetKind, parse_spec

REPO = Path(__file__).resolve().parent.parent
SEED = str(REPO / "specs" / "relu_mse.yaml")



@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag(runner: CliRunner, flag: str) -> None:
    result = invoke(runner, flag)
    assert result.exit_code == 0
    assert result.output.strip() == f"smtgrad {__version__}"


def test_version_flag_wins_over_a_command(runner: CliRunner) -> None:
    result = invoke(runner, "--version", "solve", "no-such-file.yaml")
    assert result.exit_code == 0 and __version__ in result.output


def test_completion_is_offered(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_progress_lines_when_not_a_terminal(runner: CliRunner) -> None:
    result = invoke(runner, "solve", str(REPO / "specs" / "seed_minimal.yaml"), "--minimal",
                    "--progress")
    assert result.exit_code == 0
    assert "  … M=1: unsat\n" in result.output and "  … M=3: sat\n" in result.output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_updating_line_on_a_terminal(monkeypatch: Any) -> None:
    from smtgrad.cli import _progress

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with _progress(True) as show:
        assert show is not None
        for m in range(1, 4):
            show(f"M={m}: unsat")
    text = terminal.getvalue()
    assert "M=3: unsat" in text
    assert "\x1b[" in text  # cursor control: the line is rewritten in place
    assert "M=1: unsat\n" not in text  # not one line per message
    with _progress(False) as nothing:
        assert nothing is None


@pytest.mark.parametrize(("loss", "kind"), [("bce", TargetKind.UNIT_INTERVAL),
                                            ("cross_entropy", TargetKind.CLASS),
                                            ("mse", TargetKind.REAL)])
def test_losses_default_to_the_targets_they_need(loss: str, kind: TargetKind) -> None:
    output = "softmax" if loss == "cross_entropy" else "sigmoid"
    units = 2 if loss == "cross_entropy" else 1
    text = (SEED_SPEC_TEXT.replace("loss: mse", f"loss: {loss}")
            .replace("{units: 1, activation: linear}", f"{{units: {units}, activation: "
                                                       f"{output}}}"))
    assert parse_spec(text).targets is kind
    if loss == "bce":  # an explicit kind still wins
        assert parse_spec(text + "targets: binary\n").targets is TargetKind.BINARY


def _seed_with(assume: list[str], samples: str = "samples: 3") -> str:
    return SEED_SPEC_TEXT.replace("samples: 3", samples) + f"assume: {json.dumps(assume)}\n"


def test_every_sample_assumption_holds_for_every_sample(runner: CliRunner,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(_seed_with(["X[*] >= 1", "yhat[*,0] > 0"], "samples: {min: 1, max: 4}"),
                    encoding="utf-8")
    result = invoke(runner, "solve", str(path), "--minimal", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    from fractions import Fraction

    xs = [Fraction(row[0]) for row in data["witness"]["X"]]
    predictions = [Fraction(row[0]) for row in data["predictions"]]
    assert len(xs) == data["samples"] == 3
    assert all(x >= 1 for x in xs) and all(p > 0 for p in predictions)
    assert [a["samples"] for a in data["attempts"]] == [1, 2, 3]


def test_every_sample_assumption_is_checked_per_sample(runner: CliRunner,
                                                       tmp_path: Path) -> None:
    """The hand witness has X = 0, 2, 3: `X[*] >= 1` fails at m=0 only."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(_seed_with(["X[*] >= 1"]), encoding="utf-8")
    witness = tmp_path / "hand.json"
    witness.write_text(json.dumps(HAND_WITNESS_JSON), encoding="utf-8")
    result = invoke(runner, "check", str(spec), "--witness", str(witness), "--format", "json")
    assert result.exit_code == 1
    failures = json.loads(result.stdout)["failures"]
    assert failures == ["assume 'X[*] >= 1 (m=0)' does not hold"]
    spec.write_text(_seed_with(["X[*] >= 0"]), encoding="utf-8")
    assert invoke(runner, "check", str(spec), "--witness", str(witness)).exit_code == 0


def test_every_sample_assumption_can_make_it_unsat(runner: CliRunner, tmp_path: Path) -> None:
    """All inputs equal (X[*] == 1) leave the seed no witness: the solver proves it."""
    path = tmp_path / "spec.yaml"
    path.write_text(_seed_with(["X[*] == 1"]), encoding="utf-8")
    result = invoke(runner, "solve", str(path), "--format", "json")
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize("bad", ["W1[*,0] > 0", "loss[*] > 0", "X[0,*] > 0", "X[*,3] > 0"])
def test_every_sample_index_only_for_data(runner: CliRunner, tmp_path: Path, bad: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(_seed_with([bad]), encoding="utf-8")
    result = invoke(runner, "solve", str(path))
    assert result.exit_code == 2
    assert "assume[0]" in result.output


def test_readme_yaml_blocks_parse() -> None:
    """Every ```yaml block of the README loads with yaml.safe_load, and the specs among
    them (a mapping with `network`) are valid smtgrad specs."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 2
    for block in blocks:
        data = yaml.safe_load(block)
        assert data is not None, block
        if isinstance(data, dict) and "network" in data:
            parse_spec(block, "README.md")


def test_every_sample_syntax_round_trips() -> None:
    from smtgrad.numbers.expr import (
        ExprError,
        for_each_sample,
        names_every_sample,
        parse_condition,
        to_text,
    )

    condition = parse_condition("X[*,0] >= 0 and not yhat[*] < W1[0,0]")
    assert names_every_sample(condition)
    assert to_text(condition) == "X[*,0] >= 0 and not yhat[*] < W1[0,0]"
    assert parse_condition(to_text(condition)) == condition
    assert [to_text(c) for c in for_each_sample(condition, 2)] == [
        "X[0,0] >= 0 and not yhat[0] < W1[0,0]", "X[1,0] >= 0 and not yhat[1] < W1[0,0]"]
    plain = parse_condition("X[1,0] >= 0")
    assert for_each_sample(plain, 3) == (plain,) and not names_every_sample(plain)
    for bad in ("X[*,*] > 0", "X[**] > 0", "X[1,*] > 0"):
        with pytest.raises(ExprError):
            parse_condition(bad)
