"""The Python API (smtgrad.load_spec / solve / check, Result, CheckResult): specs from a
path, a mapping or YAML text, clear errors, the JSON contract, exact gradients that an
independent computation confirms, lazy imports, and the doctested examples."""

from __future__ import annotations

import copy
import doctest
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

import smtgrad
from smtgrad.report import result_json

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SEED = SPECS / "relu_mse.yaml"

SEED_DICT: dict[str, Any] = {
    "name": "seed-from-a-dict",
    "network": {"inputs": 1, "layers": [{"units": 1, "activation": "relu"},
                                        {"units": 1, "activation": "linear"}]},
    "loss": "mse",
    "samples": 3,
    "query": {"zero": ["W2", "b2"], "nonzero": ["W1", "b1"]},
}
HAND = {"W1": [["1"]], "b1": ["-1"], "W2": [["1"]], "b2": ["-1"],
        "X": [["0"], ["2"], ["3"]], "Y": [["-2"], ["2"], ["0"]]}


def seed_gradients(w1: Fraction, b1: Fraction, w2: Fraction, b2: Fraction,
                   xs: list[Fraction], ys: list[Fraction]) -> dict[str, Fraction]:
    """dL/d(W1, b1, W2, b2) of the 1-1-1 relu net with mean MSE, by hand (relu'(0) = 0)."""
    grads = dict.fromkeys(("W1", "b1", "W2", "b2"), Fraction(0))
    count = len(xs)
    for x, y in zip(xs, ys, strict=True):
        u = w1 * x + b1
        a = max(u, Fraction(0))
        delta = 2 * (w2 * a + b2 - y) / count
        grads["W2"] += delta * a
        grads["b2"] += delta
        back = delta * w2 * (1 if u > 0 else 0)
        grads["W1"] += back * x
        grads["b1"] += back
    return grads


def _comparable(spec: smtgrad.Spec) -> tuple[Any, ...]:
    return (spec.network, spec.loss, spec.samples, spec.targets, spec.query, spec.conventions,
            dict(spec.fixed), spec.generic)


# ----------------------------------------------------------------------------------------
# load_spec


def test_a_path_a_mapping_and_yaml_text_give_the_same_spec() -> None:
    text = SEED.read_text(encoding="utf-8")
    from_path = smtgrad.load_spec(SEED)
    from_str_path = smtgrad.load_spec(str(SEED))
    from_text = smtgrad.load_spec(text)
    from_dict = smtgrad.load_spec(yaml.safe_load(text))
    assert from_path.name == "relu-mse-seed" and from_path.source == str(SEED)
    assert from_text.source == "<yaml>" and from_dict.source == "<dict>"
    assert _comparable(from_path) == _comparable(from_str_path) == _comparable(from_text) \
        == _comparable(from_dict)
    assert smtgrad.load_spec(from_path) is from_path


def test_a_mapping_takes_exact_numbers_fractions_and_floats_as_decimals() -> None:
    data = copy.deepcopy(SEED_DICT)
    data["fixed"] = {"W1": [[Fraction(1, 3)]], "b1": ["log(2)"], "X": (0.1, "13/3", 2)}
    spec = smtgrad.load_spec(data)
    assert spec.fixed["W1"] == ((Fraction(1, 3),),)
    assert str(spec.fixed["b1"][0]) == "log(2)"
    assert spec.fixed["X"] == ((Fraction(1, 10),), (Fraction(13, 3),), (Fraction(2),))


def test_flow_style_yaml_text_on_one_line() -> None:
    text = ("{network: {inputs: 1, layers: [{units: 1, activation: relu}, {units: 1}]}, "
            "samples: 3, query: {zero: [W2, b2], nonzero: [W1, b1]}}")
    spec = smtgrad.load_spec(text)
    assert spec.network.layers[1].activation.name == "linear"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["network"]["layers"][0].update(activation="relu6"),
     "<dict>: network.layers[0].activation: expected one of linear, relu"),
    (lambda d: d.update(samplez=3), "<dict>: samplez: unknown key"),
    (lambda d: d.update(loss="hinge"), "<dict>: loss: expected one of mse, bce, cross_entropy"),
    (lambda d: d.update(fixed={"W1": [[object()]]}),
     "<dict>: fixed.W1[0][0]: expected a number, text, list or mapping, found object"),
    (lambda d: d["query"].update({1: ["W1"]}), "<dict>: query: keys must be text"),
    (lambda d: d.update(fixed={"W1": [[float("nan")]]}), "<dict>: fixed.W1[0][0]"),
    (lambda d: d.pop("network"), "<dict>: network: required key is missing"),
])
def test_a_bad_mapping_is_a_spec_error_naming_the_key(change: Any, message: str) -> None:
    data = copy.deepcopy(SEED_DICT)
    change(data)
    with pytest.raises(smtgrad.SpecError) as caught:
        smtgrad.load_spec(data)
    assert str(caught.value).startswith(message), str(caught.value)
    assert isinstance(caught.value, smtgrad.InputError)


@pytest.mark.parametrize(("source", "message"), [
    ("specs/no_such_spec.yaml", "specs/no_such_spec.yaml: file not found"),
    ("network: [", "<yaml>: invalid YAML"),
    ("name: x", "<yaml>: network: required key is missing"),
    (42, "<spec>: expected a path, a mapping or YAML text, found int"),
])
def test_bad_paths_text_and_types_are_input_errors(source: Any, message: str) -> None:
    with pytest.raises(smtgrad.InputError) as caught:
        smtgrad.load_spec(source)
    assert str(caught.value).startswith(message), str(caught.value)


# ----------------------------------------------------------------------------------------
# solve and Result


def test_solve_a_mapping_gives_a_witness_whose_gradients_an_independent_pass_confirms() -> None:
    result = smtgrad.solve(SEED_DICT)
    assert result.verdict is smtgrad.Verdict.SAT and result.samples == 3
    w = result.witness
    assert w is not None
    values = {name: w.parameters.block(name) for name in ("W1", "b1", "W2", "b2")}
    expected = seed_gradients(values["W1"][0][0], values["b1"][0], values["W2"][0][0],
                              values["b2"][0], [row[0] for row in w.inputs],
                              [row[0] for row in w.targets])
    gradients = result.gradients
    assert gradients is not None and list(gradients) == ["W1", "b1", "W2", "b2"]
    assert gradients["W1"][0][0] == expected["W1"] != 0
    assert gradients["b1"][0] == expected["b1"] != 0
    assert gradients["W2"][0][0] == expected["W2"] == 0
    assert gradients["b2"][0] == expected["b2"] == 0
    assert result.loss > 0


def test_solve_keywords_reach_the_engine() -> None:
    result = smtgrad.solve(SPECS / "seed_minimal.yaml", minimal=True, timeout=30)
    assert [(a.samples, a.verdict.value) for a in result.attempts] == [
        (1, "unsat"), (2, "unsat"), (3, "sat")]
    single = smtgrad.solve(SEED_DICT, samples=2)
    assert single.verdict is smtgrad.Verdict.UNSAT and single.proved == "M=2"
    with pytest.raises(smtgrad.InputError, match="backend"):
        smtgrad.solve(SEED_DICT, backend="yices")


@pytest.mark.parametrize("name", ["relu_mse", "seed_single_sample", "silu_mse"])
def test_to_dict_is_the_json_contract(solved: Any, name: str) -> None:
    result = solved(SPECS / f"{name}.yaml")
    data = result.to_dict()
    assert data == result_json(result)
    assert json.loads(json.dumps(data)) == data
    if result.verdict is smtgrad.Verdict.SAT:
        assert data["gradients"] == {name: json.loads(json.dumps(value)) for name, value in
                                     _texts(result.gradients).items()}


def _texts(gradients: dict[str, Any]) -> dict[str, Any]:
    from smtgrad.reference.witness import to_json

    return {name: to_json(value) for name, value in gradients.items()}


def test_enclosure_gradients_have_the_certified_exact_zeros(solved: Any) -> None:
    result = solved(SPECS / "silu_mse.yaml")
    assert result.certificate == "enclosure"
    gradients = result.gradients
    assert gradients["W2"] == ((Fraction(0),),) and gradients["b2"] == (Fraction(0),)
    assert str(gradients["b1"][0]).startswith("[0.77083332714418")


def test_an_unsat_result_has_no_witness_to_export(solved: Any) -> None:
    from smtgrad.interop import NoWitness

    result = solved(SPECS / "seed_single_sample.yaml")
    assert result.gradients is None and result.loss is None and not result.has_witness
    with pytest.raises(NoWitness, match="the verdict is unsat"):
        result.to_numpy()
    with pytest.raises(NoWitness, match="the verdict is unsat"):
        result.save("never.json")
    assert not Path("never.json").exists()


def test_repr_and_notebook_display(solved: Any) -> None:
    result = solved(SEED)
    assert repr(result) == ("Result(spec='relu-mse-seed', verdict=sat at M=3, "
                            "certificate='exact', method='rank criterion (exact linear "
                            "algebra on residuals)')")
    markdown = result._repr_markdown_()
    assert markdown.startswith("```text\nsmtgrad ") and markdown.endswith("```\n")
    assert "verdict: sat at M=3" in markdown and "Gradients of the loss" in markdown
    assert markdown[len("```text\n"):-len("```\n")] == result.text()


# ----------------------------------------------------------------------------------------
# check and CheckResult


def test_check_takes_a_result_a_mapping_a_file_and_a_witness(solved: Any, tmp_path: Path
                                                            ) -> None:
    result = solved(SEED)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result.to_dict()), encoding="utf-8")
    answers = [smtgrad.check(SEED, result), smtgrad.check(SEED, result.to_dict()),
               smtgrad.check(SEED, path), smtgrad.check(SEED, str(path)),
               smtgrad.check(SEED, result.witness)]
    for answer in answers:
        assert answer.status is smtgrad.Status.HOLDS and answer.holds is True
        assert answer.failures == () and answer.undecided == ()
        assert answer.gradients == result.gradients and answer.loss == result.loss


def test_check_the_hand_witness_and_a_mutated_one() -> None:
    answer = smtgrad.check(SEED_DICT, HAND)
    assert answer.holds is True
    assert answer.gradients["W1"] == ((Fraction(-2, 3),),)
    assert answer.to_dict()["status"] == "holds"
    assert "CheckResult(spec='seed-from-a-dict', status='holds'" in repr(answer)
    mutated = {**HAND, "Y": [["-2"], ["2"], ["1"]]}
    refuted = smtgrad.check(SEED_DICT, mutated)
    assert refuted.status is smtgrad.Status.FAILS and refuted.holds is False
    assert "dL/db2[0] = -2/3, expected 0" in refuted.failures
    assert "does NOT satisfy" in refuted._repr_markdown_()


def test_check_reports_a_witness_that_does_not_fit(tmp_path: Path) -> None:
    from smtgrad.reference.witness import WitnessError

    with pytest.raises(WitnessError, match="W2: missing"):
        smtgrad.check(SEED_DICT, {"W1": [[1]], "b1": [0], "X": [0], "Y": [0]})
    with pytest.raises(WitnessError, match="not a readable file"):
        smtgrad.check(SEED_DICT, tmp_path / "missing.json")
    with pytest.raises(WitnessError, match="expected a witness"):
        smtgrad.check(SEED_DICT, 3.5)


# ----------------------------------------------------------------------------------------
# Imports stay light; the examples run.


def test_import_and_solve_never_import_torch_or_numpy() -> None:
    code = ("import sys, smtgrad\n"
            "r = smtgrad.solve(smtgrad.load_spec('specs/sigmoid_bce_soft.yaml'))\n"
            "r.to_dict(); r.gradients; r.text(); smtgrad.check('specs/relu_mse.yaml', "
            "smtgrad.solve('specs/relu_mse.yaml'))\n"
            "from smtgrad.cli import app\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'numpy', 'onnx', 'onnxruntime', 'matplotlib'}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_lazy_attributes() -> None:
    assert smtgrad.Result.__name__ == "Result"
    assert {"load_spec", "solve", "check", "CheckResult"} <= set(dir(smtgrad))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        smtgrad.nope  # noqa: B018


def _doctest(text: str, name: str, monkeypatch: pytest.MonkeyPatch) -> doctest.TestResults:
    monkeypatch.chdir(REPO)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    return runner.summarize(verbose=False)


def test_the_api_docstring_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import smtgrad.api

    assert smtgrad.api.__doc__ is not None
    results = _doctest(smtgrad.api.__doc__, "smtgrad.api", monkeypatch)
    assert results.attempted >= 5 and results.failed == 0


def test_the_readme_api_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Python API\n(.*?)(?=^## )", readme, re.S | re.M)
    assert match, "README has no '## Python API' section"
    blocks = re.findall(r"```python\n(.*?)```", match.group(1), re.S)
    examples = "\n".join(block for block in blocks if ">>>" in block)
    results = _doctest(examples, "README", monkeypatch)
    assert results.attempted >= 8 and results.failed == 0


def test_exact_values_are_fractions_sympy_closed_forms_and_boxes() -> None:
    import sympy

    from smtgrad.reference.intervals import Enclosure

    closed = smtgrad.solve(smtgrad.load_spec("specs/relu_log_weight.yaml")).exact_values()
    assert closed["W1"] == [[sympy.log(2)]]
    assert all(isinstance(v, Fraction) for row in closed["X"] for v in row)
    assert any(isinstance(v, sympy.Expr) and v.has(sympy.log) for row in closed["Y"]
               for v in row)
    boxed = smtgrad.solve(smtgrad.load_spec("specs/sigmoid_bce_hard.yaml")).exact_values()
    box = next(v for name in ("W1", "b1", "W2", "b2") for v in _flat(boxed[name])
               if isinstance(v, Enclosure))  # which entries are boxed: the method's choice
    assert box.lo < box.hi


def _flat(array: object) -> list[object]:
    if isinstance(array, list | tuple):
        return [item for part in array for item in _flat(part)]
    return [array]
