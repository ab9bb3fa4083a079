"""The benchmark harness (bench/): fast checks only, no timing targets.

The targets live in bench/ (``python bench/run.py``); these tests only check that
the harness keeps working: the workload list, the slope fit, the cvc5 peer's
export of the direct formula, and a two-row run without peers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
import workloads  # noqa: E402


def test_slope_fit_recovers_a_power_law() -> None:
    points = [(float(x), 3.0 * x ** 2) for x in (4, 16, 64, 1000)]
    assert run.fit_slope(points) == pytest.approx(2.0)
    assert run.fit_slope([(8.0, 1.0)]) is None
    assert run.fit_slope([(8.0, 1.0), (8.0, 2.0)]) is None


def test_scale_rows_are_the_issue_17_workloads() -> None:
    names = [w.name for w in workloads.all_workloads()]
    assert len(names) == len(set(names))
    scale = {w.name: w for w in workloads.scale_workloads()}
    expected = ({f"1-1-1-M{m}" for m in (1000, 1024, 2000, 5000, 10000)}
                | {f"1-{k}-1-M{m}" for k in (8, 16, 32, 64) for m in (16, 64)}
                | {"1-4-4-1-M64", "1-8-8-1-M16", "1-8-8-1-M64", "1-8-8-8-1-M16",
                   "1-8-8-8-1-M64"})
    assert set(scale) == expected
    for workload in scale.values():
        assert workload.role == "scale" and workload.peers == ("z3", "cvc5")
        assert "generic: true" in workload.yaml
    assert "zero: [W4, b4, W3, b3, W2, b2]" in scale["1-8-8-8-1-M64"].yaml
    assert "nonzero: [W1]" in scale["1-8-8-8-1-M64"].yaml
    assert "zero: [W2, b2]" in scale["1-64-1-M64"].yaml
    assert "nonzero: [W1, b1]" in scale["1-64-1-M64"].yaml


def test_growth_uses_the_1_1_1_series_and_the_width_series() -> None:
    def row(name: str, role: str, axis: dict[str, object], seconds: float | None) -> dict:
        return {"workload": name, "role": role, "axis": axis, "smtgrad_seconds": seconds}

    rows = [row("a", "regression", {"net": "1-1-1", "M": 10, "width": 1, "depth": 1}, 0.01),
            row("b", "scale", {"net": "1-1-1", "M": 1000, "width": 1, "depth": 1}, 1.0),
            row("c", "scale", {"net": "1-1-1", "M": 10000, "width": 1, "depth": 1}, None),
            row("d", "scale", {"net": "1-8-1", "M": 64, "width": 8, "depth": 1}, 0.08),
            row("e", "scale", {"net": "1-16-1", "M": 64, "width": 16, "depth": 1}, 0.32)]
    fits = run.growth(rows)
    assert fits["M"]["slope"] == pytest.approx(1.0)
    assert fits["M"]["unsolved"] == [10000]
    assert fits["width"]["slope"] == pytest.approx(2.0)


def test_cvc5_solves_the_direct_formula() -> None:
    pytest.importorskip("cvc5")
    from baseline import solve_cvc5_model

    from smtgrad.spec import parse_spec

    spec = parse_spec(
        "network: {inputs: 1, layers: [{units: 1, activation: relu}, "
        "{units: 1, activation: linear}]}\nloss: mse\nsamples: 3\n"
        "query: {zero: [W2, b2], nonzero: [W1, b1]}\n"
        "fixed: {W1: [[1]], b1: [-1], W2: [[1]], b2: [-1], X: [[0], [2], [3]]}\n")
    verdict, _, model, info = solve_cvc5_model(spec, 3, 20)
    assert verdict == "sat" and info["logic"] == "QF_NRA"
    assert run._verify_model(spec, model) is True
    two = parse_spec(workloads.spec_yaml("m2", workloads.SEED_LAYERS, workloads.UPPER,
                                         workloads.LOWER, 2, False))
    assert solve_cvc5_model(two, 2, 20)[0] == "unsat"


def test_two_row_run_without_peers(tmp_path: Path) -> None:
    code = run.main(["--only", "seed-M2,1-8-1-M16", "--no-baseline", "--no-profile",
                     "--no-snapshot", "--repeats", "1", "--out", str(tmp_path)])
    assert code == 0
    document = json.loads((tmp_path / "results.json").read_text())
    verdicts = {row["workload"]: row["verdict"] for row in document["rows"]}
    assert verdicts == {"1-8-1-M16": "sat", "seed-M2": "unsat"}
    assert {row["role"] for row in document["rows"]} == {"scale", "regression"}
    text = (tmp_path / "results.md").read_text()
    assert "Scale rows" in text and "Regression rows" in text and "Growth" in text
    assert not (tmp_path / "results.partial.jsonl").exists()
