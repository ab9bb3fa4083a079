"""Exports and replay (smtgrad.interop): floats of exact values, the PyTorch model and its
autograd gradients against the exact ones, ONNX in onnxruntime against the exact forward
pass, .npz / .pt / .json files, and --save-witness / --replay on the command line.

Exact values are converted to floats independently here (sympy on the contract's strings),
so a wrong conversion in smtgrad.interop.values fails these tests."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sympy
from conftest import invoke

import smtgrad
from smtgrad.interop.values import floats, to_float

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SEED = str(SPECS / "relu_mse.yaml")

#: Specs that solve in well under a second, each with its kind of exact value.
EXPORTED = ["relu_mse",  # rationals, a sample on the relu kink
            "sigmoid_bce_soft",  # closed forms in log(2), sigmoid + bce
            "softmax_stationary",  # softmax + cross-entropy, class targets
            "silu_mse",  # an enclosure certificate
            "deep_leaky"]  # leaky_relu (slope 1/10) and abs, samples on kinks


def exact_float(text: str) -> float:
    """A contract string as a float, by sympy ("[lo, hi]": the midpoint)."""
    text = text.strip()
    if text.startswith("["):
        lo, hi = (sympy.Rational(part.strip()) for part in text[1:-1].split(","))
        return float((lo + hi) / 2)
    return float(sympy.N(sympy.sympify(text), 30))


def exact_floats(value: Any) -> Any:
    if isinstance(value, list):
        return [exact_floats(item) for item in value]
    return exact_float(value)


def flat(value: Any) -> list[float]:
    if isinstance(value, list | tuple):
        return [item for part in value for item in flat(part)]
    return [float(value)]


def close(got: list[float], want: list[float], rel: float) -> None:
    """Agreement to ``rel`` relative to the largest magnitude (exact zeros included)."""
    assert len(got) == len(want)
    scale = max([1.0, *map(abs, want)])
    for g, w in zip(got, want, strict=True):
        assert abs(g - w) <= rel * scale, (got, want)


# ----------------------------------------------------------------------------------------
# Floats of exact values.


def test_to_float_of_every_kind_of_exact_value() -> None:
    from smtgrad.numbers.lognum import parse_value
    from smtgrad.reference.intervals import Enclosure

    assert to_float(Fraction(1, 3)) == 1 / 3 and to_float(7) == 7.0
    assert to_float("-2/3") == -2 / 3
    assert to_float("3*log(2)/2") == pytest.approx(1.5 * math.log(2), rel=1e-16)
    assert to_float(parse_value("log(3) - log(2)")) == pytest.approx(math.log(1.5), rel=1e-15)
    assert to_float("[0.25, 0.75]") == 0.5
    assert to_float(Enclosure(Fraction(1, 4), Fraction(3, 4))) == 0.5
    assert floats(((Fraction(1, 2), "log(2)"),)) == [[0.5, math.log(2)]]
    with pytest.raises(ValueError):
        to_float(True)


def test_to_float_of_balls_and_exponential_closed_forms(solved: Any) -> None:
    result = solved(SPECS / "sigmoid_symmetric_fixed.yaml")
    w1 = result.gradients["W1"][0][0]  # 4*exp(2)/(3*exp(3) + 9*exp(2) + 9*exp(1) + 3)
    e = math.e
    assert to_float(w1) == pytest.approx(4 * e**2 / (3 * e**3 + 9 * e**2 + 9 * e + 3),
                                         rel=1e-15)
    enclosed = solved(SPECS / "silu_mse.yaml")
    ball = enclosed.gradients["b1"][0]  # a Dual over an arb ball
    assert to_float(ball) == pytest.approx(exact_float(str(ball)), rel=1e-15)


# ----------------------------------------------------------------------------------------
# PyTorch: the model, its forward pass and autograd against the exact values.


@pytest.mark.parametrize("name", EXPORTED)
def test_torch_float64_gradients_match_the_exact_ones(solved: Any, name: str) -> None:
    torch = pytest.importorskip("torch")
    result = solved(SPECS / f"{name}.yaml")
    data = result.to_dict()
    model, inputs, targets = result.to_torch()
    assert isinstance(model, torch.nn.Sequential) and inputs.dtype == torch.float64
    assert [type(m).__name__ for m in model][::2] == ["Linear"] * result.spec.network.depth
    predictions = model(inputs)
    close(flat(predictions.tolist()), flat(exact_floats(data["predictions"])), 1e-13)
    loss = result.torch_loss()(predictions, targets)
    assert loss.item() == pytest.approx(exact_float(data["loss"]), rel=1e-13)
    loss.backward()
    for index in range(result.spec.network.depth):
        for name_, tensor in ((f"W{index + 1}", model[2 * index].weight),
                              (f"b{index + 1}", model[2 * index].bias)):
            close(flat(tensor.grad.tolist()), flat(exact_floats(data["gradients"][name_])),
                  1e-12)


def test_torch_state_dict_keys_and_class_targets(solved: Any) -> None:
    torch = pytest.importorskip("torch")
    result = solved(SPECS / "softmax_stationary.yaml")
    model, _, targets = result.to_torch()
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert targets.dtype == torch.int64 and targets.tolist() == [0, 1, 2]
    assert type(model[3]).__name__ == "Softmax"
    single = result.to_torch(torch.float32)[0]
    assert single[0].weight.dtype == torch.float32


def _all_activation_specs() -> list[dict[str, Any]]:
    def spec(names: list[str]) -> dict[str, Any]:
        layers = [{"units": 2, "activation": name, **({"slope": "1/3"} if name == "leaky_relu"
                                                       else {})} for name in names]
        layers.append({"units": 1, "activation": "linear"})
        return {"name": "-".join(names), "network": {"inputs": 2, "layers": layers},
                "loss": {"kind": "mse", "reduction": "sum", "scale": "1/2"}, "samples": 3,
                "query": {"nonzero": ["W1"]}}

    return [spec(["leaky_relu", "sigmoid", "tanh", "elu", "hardtanh", "abs", "relu"]),
            spec(["softplus", "silu", "gelu", "linear"])]


def _random_witness(spec: smtgrad.Spec, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)

    def number() -> str:
        return str(Fraction(rng.randint(-7, 7), rng.randint(1, 4)))

    witness: dict[str, Any] = {}
    for name, shape in spec.network.parameter_shapes().items():
        witness[name] = [[number() for _ in range(shape[1])] for _ in range(shape[0])] \
            if len(shape) == 2 else [number() for _ in range(shape[0])]
    witness["X"] = [[number(), number()] for _ in range(3)]
    witness["Y"] = [[number()] for _ in range(3)]
    return witness


@pytest.mark.parametrize("index", [0, 1])
def test_every_activation_replays_in_torch_and_onnxruntime(index: int) -> None:
    """Random rational witnesses through every activation: torch's float64 forward pass
    and gradients, and onnxruntime's forward pass, against the exact (ball) evaluation."""
    torch = pytest.importorskip("torch")
    spec = smtgrad.load_spec(_all_activation_specs()[index])
    for seed in range(40):  # a witness whose first layer gets gradient (relus may kill it)
        answer = smtgrad.check(spec, _random_witness(spec, seed))
        data = answer.to_dict()
        if sum(abs(exact_float(v)) > 1e-3 for v in flat_texts(data["gradients"]["W1"])) >= 3:
            break
    else:
        pytest.fail("no witness with a live first layer")
    model, inputs, targets = answer.to_torch()
    predictions = model(inputs)
    want = flat(exact_floats(data["predictions"]))
    close(flat(predictions.tolist()), want, 1e-12)
    answer.torch_loss()(predictions, targets).backward()
    for layer in range(spec.network.depth):
        close(flat(model[2 * layer].weight.grad.tolist()),
              flat(exact_floats(data["gradients"][f"W{layer + 1}"])), 1e-10)
    assert torch.is_tensor(targets)

    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    gelu = "gelu" in spec.name
    for dtype, rel in (("float64", 1e-6 if gelu else 1e-13), ("float32", 1e-5)):
        session = ort.InferenceSession(answer.to_onnx(dtype).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {"X": np.array(floats(answer.witness.inputs), dtype=dtype)})[0]
        assert got.dtype == np.dtype(dtype)
        close(flat(got.tolist()), want, rel)


def flat_texts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [item for part in value for item in flat_texts(part)]
    return [value]


# ----------------------------------------------------------------------------------------
# Files: --save-witness through the command line.



@pytest.mark.parametrize("name", ["relu_mse", "sigmoid_bce_soft", "softmax_stationary"])
def test_onnx_file_replays_in_onnxruntime(runner: Any, tmp_path: Path, name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "net.onnx"
    done = invoke(runner, "solve", str(SPECS / f"{name}.yaml"), "--save-witness", str(path),
                  "--format", "json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert {p.key: p.value for p in model.metadata_props}["smtgrad.spec"] == data["spec"]["name"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["X"]
    inputs = np.array(exact_floats(data["witness"]["X"]), dtype=np.float64)
    got = session.run(["yhat"], {"X": inputs})[0]
    close(flat(got.tolist()), flat(exact_floats(data["predictions"])), 1e-14)


def test_npz_file_round_trips(runner: Any, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "w.npz"
    done = invoke(runner, "solve", str(SPECS / "sigmoid_bce_soft.yaml"), "--save-witness",
                  str(path), "--format", "json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    with np.load(path, allow_pickle=False) as saved:
        assert str(saved["spec"]) == "sigmoid-bce-soft-labels"
        for key in ("W1", "b1", "W2", "b2", "X", "Y"):
            assert saved[key].dtype == np.float64
            assert saved[f"{key}_exact"].tolist() == data["witness"][key]
            close(flat(saved[key].tolist()), flat(exact_floats(data["witness"][key])), 1e-16)
        for key, value in data["gradients"].items():
            assert saved[f"grad_{key}_exact"].tolist() == value
            close(flat(saved[f"grad_{key}"].tolist()), flat(exact_floats(value)), 1e-16)
        assert str(saved["loss_exact"]) == data["loss"]
    assert saved_keys_match(np, path)


def saved_keys_match(np: Any, path: Path) -> bool:
    with np.load(path, allow_pickle=False) as saved:
        return {"W1", "W1_exact", "grad_W1", "loss", "spec"} <= set(saved.files)


def test_pt_file_round_trips(runner: Any, tmp_path: Path, solved: Any) -> None:
    torch = pytest.importorskip("torch")
    from smtgrad.interop.torch_export import load_pt

    path = tmp_path / "w.pt"
    done = invoke(runner, "solve", SEED, "--save-witness", str(path))
    assert done.exit_code == 0 and "witness saved to" in done.output
    payload = torch.load(path, weights_only=True)
    assert payload["spec"] == "relu-mse-seed"
    assert list(payload["state_dict"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    result = solved(SEED)
    assert payload["exact"] == result.to_dict()["witness"]
    model, inputs, targets = load_pt(path)
    fresh, fresh_inputs, fresh_targets = result.to_torch()
    assert torch.equal(inputs, fresh_inputs) and torch.equal(targets, fresh_targets)
    assert torch.equal(model(inputs), fresh(inputs))
    assert model(inputs).flatten().tolist() == [-8.0, 0.0, -2.0]


def test_json_file_is_the_contract(runner: Any, tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    done = invoke(runner, "solve", SEED, "--save-witness", str(path), "--format", "json")
    assert done.exit_code == 0
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(done.stdout)


def test_unsat_writes_no_file_and_keeps_its_exit_code(runner: Any, tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    done = invoke(runner, "solve", str(SPECS / "seed_single_sample.yaml"), "--save-witness",
                  str(path), "--replay", "torch")
    assert done.exit_code == 1
    assert not path.exists()
    assert "no witness to save (the verdict is unsat)" in done.stderr
    assert "no witness to replay (the verdict is unsat)" in done.stderr


def test_an_unknown_suffix_is_exit_2_naming_the_suffixes(runner: Any, tmp_path: Path) -> None:
    done = invoke(runner, "solve", SEED, "--save-witness", str(tmp_path / "w.txt"))
    assert done.exit_code == 2
    assert "'.txt' names no format; --save-witness writes .json, .npz, .pt, .onnx" in \
        done.stderr
    assert "verdict" not in done.output  # refused before the search


@pytest.mark.parametrize(("args", "module", "extra"), [
    (("--save-witness", "w.pt"), "torch", "torch"),
    (("--save-witness", "w.onnx"), "onnx", "onnx"),
    (("--save-witness", "w.npz"), "numpy", "numpy"),
    (("--replay", "torch"), "torch", "torch"),
])
def test_a_missing_optional_dependency_is_exit_2_with_the_install_line(
        runner: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: tuple[str, str],
        module: str, extra: str) -> None:
    import smtgrad.interop

    real = smtgrad.interop.available
    monkeypatch.setattr(smtgrad.interop, "available", lambda name: name != module and real(name))
    monkeypatch.chdir(tmp_path)
    done = invoke(runner, "solve", SEED, *args)
    assert done.exit_code == 2
    assert f"needs {module}, which is not installed; install it with " \
           f"pip install 'smtgrad[{extra}]'" in done.stderr
    assert not any(tmp_path.iterdir())
    if args[0] == "--replay":
        check = invoke(runner, "check", SEED, "--witness", str(REPO / "examples" /
                                                               "seed_hand_witness.json"),
                       *args)
        assert check.exit_code == 2 and "pip install 'smtgrad[torch]'" in check.stderr


# ----------------------------------------------------------------------------------------
# --replay torch


def test_solve_replay_prints_the_table(runner: Any) -> None:
    pytest.importorskip("torch")
    done = invoke(runner, "solve", str(SPECS / "sigmoid_bce_soft.yaml"), "--replay", "torch")
    assert done.exit_code == 0
    text = done.stdout
    assert "Autograd replay (PyTorch" in text
    assert text.index("Gradients of the loss") < text.index("Autograd replay")
    rows = {line.split("│")[0].strip(): [cell.strip() for cell in line.split("│")]
            for line in text.splitlines() if "│" in line}
    import sympy  # the witness is the method's choice: its exact gradient, read back

    exact = sympy.sympify(rows["W1[0,0]"][1])
    assert exact != 0 and exact.has(sympy.log)
    assert float(rows["W1[0,0]"][2]) == pytest.approx(float(exact), rel=1e-15)
    assert float(rows["W2[0,0]"][3]) < 1e-15 and float(rows["W2[0,0]"][5]) < 1e-6
    assert rows["W2[0,0]"][6] == "= 0"
    match = [line for line in text.splitlines() if line.startswith("exact zeros (2)")]
    assert match and "in float64" in match[0] and "in float32" in match[0]


def test_replay_with_json_keeps_stdout_one_document(runner: Any) -> None:
    pytest.importorskip("torch")
    done = invoke(runner, "solve", SEED, "--replay", "torch", "--format", "json")
    assert done.exit_code == 0
    assert json.loads(done.stdout)["verdict"] == "sat"
    assert "Autograd replay" in done.stderr


def test_check_replay_of_the_hand_witness(runner: Any) -> None:
    pytest.importorskip("torch")
    done = invoke(runner, "check", SEED, "--witness",
                  str(REPO / "examples" / "seed_hand_witness.json"), "--replay", "torch")
    assert done.exit_code == 0
    rows = {line.split("│")[0].strip(): [cell.strip() for cell in line.split("│")]
            for line in done.stdout.splitlines() if "│" in line}
    assert rows["b1[0]"][1] == "-2/3" and float(rows["b1[0]"][2]) == pytest.approx(-2 / 3)
    assert rows["loss"][1] == "2"


def test_replay_says_torch_cannot_mirror_convention_one_on_a_kink(solved: Any) -> None:
    pytest.importorskip("torch")
    result = solved(SPECS / "kink_convention.yaml")
    replay = result.replay()
    # The exact gradient is nonzero (the spec's convention counts the kink sample);
    # torch's relu'(0) = 0 drops it, and here nothing else contributes.
    exact = result.gradients["b1"][0]
    assert exact != 0 and replay.row("b1[0]").exact == exact
    assert replay.row("b1[0]").float64 == 0.0
    assert any("relu_grad_at_zero: 1" in note and "no way to mirror" in note
               for note in replay.notes)
    seed = solved(SEED).replay()  # convention 0: torch agrees on the kink
    assert any("torch's derivative there is 0, the spec's convention" in note
               for note in seed.notes)
    assert seed.row("b1[0]").float64 == -4.0


def test_replay_says_when_rounding_moves_a_sample_off_its_kink() -> None:
    pytest.importorskip("torch")
    spec = smtgrad.load_spec(SEED)
    # 1/10 * 3 - 3/10 is exactly 0, but not in floats.
    answer = smtgrad.check(spec, {"W1": [["1/10"]], "b1": ["-3/10"], "W2": [["1"]],
                                  "b2": ["0"], "X": [["3"], ["5"], ["7"]],
                                  "Y": [["1"], ["0"], ["2"]]})
    assert [kink.sample for kink in answer.kinks] == [0]
    notes = answer.replay().notes
    assert any("in float64 that pre-activation rounds to" in note and "off the kink" in note
               for note in notes), notes
