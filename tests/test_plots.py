"""`smtgrad solve --plot FILE.png|svg` (smtgrad.plots): files are written, and a missing
matplotlib or a bad suffix is exit 2 with a hint, never a traceback."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from typer.testing import CliRunner

SPECS = Path(__file__).resolve().parent.parent / "specs"



def test_missing_matplotlib_is_exit_2_with_a_hint(runner: CliRunner, tmp_path: Path,
                                                  monkeypatch: Any) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    path = tmp_path / "plot.png"
    result = invoke(runner, "solve", str(SPECS / "relu_mse.yaml"), "--plot", str(path))
    assert result.exit_code == 2
    assert "pip install 'smtgrad[plot]'" in result.output
    assert not path.exists()


def test_unknown_suffix_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "solve", str(SPECS / "relu_mse.yaml"), "--plot",
                    str(tmp_path / "plot.jpg"))
    assert result.exit_code == 2
    assert ".png or .svg" in result.output


@pytest.mark.parametrize(("spec", "args", "name", "code"), [
    ("seed_minimal.yaml", ["--minimal"], "seed.png", 0),  # 1-D, with the walk over M
    ("two_hidden_units.yaml", [], "two.svg", 0),  # 2-D inputs: a heat map
    ("softmax_ce.yaml", [], "unsat.png", 1),  # unsat: the verdict per M
])
def test_plot_files_are_written(runner: CliRunner, tmp_path: Path, spec: str,
                                args: list[str], name: str, code: int) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / name
    result = invoke(runner, "solve", str(SPECS / spec), *args, "--plot", str(path),
                    "--format", "json")
    assert result.exit_code == code, result.output
    data = path.read_bytes()
    if name.endswith(".png"):
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    else:
        assert b"<svg" in data[:2000]


def test_the_plot_uses_no_display(runner: CliRunner, tmp_path: Path, monkeypatch: Any) -> None:
    """Agg: no GUI toolkit is imported, even with a DISPLAY set."""
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("DISPLAY", ":99")
    imported: list[str] = []
    real_import = builtins.__import__

    def spy(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", spy)
    result = invoke(runner, "solve", str(SPECS / "relu_mse.yaml"), "--plot",
                    str(tmp_path / "seed.png"))
    assert result.exit_code == 0
    assert not [n for n in imported if n.split(".")[0] in ("tkinter", "PyQt5", "PyQt6", "gi")]
