"""Hostile and malformed input through the CLI: exit 2, a precise message, nothing executed.

Every case writes a spec (or a witness for ``smtgrad check``) to a file and runs
the real command. The message must name the file and the offending key (or the
YAML line, where the document does not even parse), carry no traceback, and no
expression in a spec may ever run code: the injection cases try to create
``/tmp/pwned`` and the test checks that it never appears.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HAND_WITNESS_JSON
from typer.testing import CliRunner

from smtgrad.cli import app

PWNED = Path("/tmp/pwned")

NETWORK = """network:
  inputs: 1
  layers:
    - {units: 1, activation: relu}
    - {units: 1, activation: linear}
"""
QUERY = "query: {zero: [W2, b2], nonzero: [W1, b1]}\n"
BASE = NETWORK + "samples: 3\n" + QUERY

HUGE_INT = "9" * 5000


def _spec(**extra: str) -> str:
    return BASE + "".join(f"{key}: {value}\n" for key, value in extra.items())


@pytest.fixture(autouse=True)
def no_pwned() -> Iterator[None]:
    """No test may leave /tmp/pwned behind (nothing in a spec is executed)."""
    if PWNED.exists():
        PWNED.unlink()
    yield
    assert not PWNED.exists(), "a spec managed to execute code"


def _message(result: object) -> str:
    """What the user sees (click's runner mixes stderr into ``output``)."""
    output: str = getattr(result, "output", "")
    return output


def _assert_clean_failure(result: object, path: Path, *needles: str) -> str:
    message = _message(result)
    assert getattr(result, "exit_code", None) == 2, message
    assert "Traceback" not in message, message
    assert message.startswith("smtgrad: "), message
    assert path.name in message, f"message does not name the file: {message}"
    for needle in needles:  # "a|b": either will do
        assert any(option in message for option in needle.split("|")), (
            f"message lacks {needle!r}: {message}")
    return message


# (case id, file content, substrings the message must contain besides the file name)
SPEC_CASES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    # Malformed YAML.
    ("unclosed-bracket", "network: [\n", ("invalid YAML", "line")),
    ("bad-indentation", "network:\n  inputs: 1\n layers: []\n", ("invalid YAML", "line")),
    ("tab-indent", "network:\n\tinputs: 1\n", ("invalid YAML",)),
    ("duplicate-key", BASE + "samples: 4\n", ("duplicate key", "samples")),
    ("python-tag", BASE + "fixed: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
     ("invalid YAML",)),
    ("python-name-tag", BASE + "name: !!python/name:os.system\n", ("invalid YAML",)),
    ("merge-key", "network:\n  inputs: 1\n  layers:\n    - &l {units: 1}\n    - <<: *l\n"
     + "samples: 3\n" + QUERY, ("invalid YAML",)),
    ("empty-file", "", ("empty",)),
    ("only-comment", "# nothing here\n", ("empty",)),
    ("top-level-list", "- a\n- b\n", ("expected a mapping",)),
    ("top-level-scalar", "42\n", ("expected a mapping",)),
    # Unknown keys.
    ("unknown-top-key", _spec(foo="1"), ("foo", "unknown key")),
    ("unknown-network-key", BASE.replace("inputs: 1", "inputs: 1\n  depth: 3"),
     ("network.depth", "unknown key")),
    ("unknown-layer-key", BASE.replace("activation: relu}", "activation: relu, bias: no}"),
     ("network.layers[0].bias",)),
    ("unknown-query-key", NETWORK + "samples: 3\nquery: {zero: [W2], maybe: [W1]}\n",
     ("query.maybe",)),
    ("unknown-loss-key", _spec(loss="{kind: mse, weight: 2}"), ("loss.weight",)),
    ("unknown-fixed-block", _spec(fixed="{W7: [[1]]}"), ("fixed.W7",)),
    ("unknown-convention", _spec(conventions="{relu_grad_at_one: 1}"),
     ("conventions.relu_grad_at_one",)),
    # Wrong types and shapes.
    ("network-scalar", "network: 5\nsamples: 3\n" + QUERY, ("network", "mapping")),
    ("layers-not-list", "network: {inputs: 1, layers: 3}\nsamples: 3\n" + QUERY,
     ("network.layers",)),
    ("layers-empty", "network: {inputs: 1, layers: []}\nsamples: 3\nquery: {zero: [W1]}\n",
     ("network.layers",)),
    ("layer-scalar", "network: {inputs: 1, layers: [5]}\nsamples: 3\nquery: {zero: [W1]}\n",
     ("network.layers[0]",)),
    ("activation-number", BASE.replace("activation: relu", "activation: 7"),
     ("network.layers[0].activation",)),
    ("activation-unknown", BASE.replace("activation: relu", "activation: swish"),
     ("network.layers[0].activation", "swish")),
    ("loss-unknown", _spec(loss="hinge"), ("loss", "hinge")),
    ("loss-kind-list", _spec(loss="{kind: [mse]}"), ("loss.kind",)),
    ("reduction-bad", _spec(loss="{kind: mse, reduction: max}"), ("loss.reduction",)),
    ("targets-bad", _spec(targets="integers"), ("targets",)),
    ("query-not-mapping", NETWORK + "samples: 3\nquery: [W1]\n", ("query",)),
    ("query-unknown-block", NETWORK + "samples: 3\nquery: {zero: [W9]}\n",
     ("query.zero[0]", "W9")),
    ("query-entry-out-of-range", NETWORK + "samples: 3\nquery: {zero: ['W1[5,5]']}\n",
     ("query.zero[0]", "out of range")),
    ("query-three-indices", NETWORK + "samples: 3\nquery: {zero: ['W1[0,0,0]']}\n",
     ("query.zero[0]",)),
    ("query-number", NETWORK + "samples: 3\nquery: {zero: [5]}\n", ("query.zero[0]",)),
    ("fixed-wrong-rows", _spec(fixed="{W1: [[1], [2]]}"), ("fixed.W1",)),
    ("fixed-wrong-columns", _spec(fixed="{W1: [[1, 2]]}"), ("fixed.W1[0]",)),
    ("fixed-scalar-for-matrix", _spec(fixed="{W1: 1}"), ("fixed.W1",)),
    ("fixed-too-deep", _spec(fixed="{b1: [[1]]}"), ("fixed.b1[0]",)),
    ("fixed-x-rows-vs-samples", _spec(fixed="{X: [[1], [2]]}"), ("samples", "2")),
    ("generic-text", _spec(generic="'yes'"), ("generic",)),
    ("samples-text", NETWORK + "samples: '3'\n" + QUERY, ("samples",)),
    ("samples-bool", NETWORK + "samples: true\n" + QUERY, ("samples",)),
    ("samples-fraction", NETWORK + "samples: 1.5\n" + QUERY, ("samples",)),
    ("samples-missing", NETWORK + QUERY, ("samples", "missing")),
    ("network-missing", "samples: 3\n" + QUERY, ("network", "missing")),
    ("query-missing", NETWORK + "samples: 3\n", ("query", "missing")),
    ("convention-two", _spec(conventions="{relu_grad_at_zero: 2}"),
     ("conventions.relu_grad_at_zero",)),
    ("slope-on-relu", BASE.replace("activation: relu}", "activation: relu, slope: 1/2}"),
     ("network.layers[0].slope",)),
    ("softmax-hidden", "network: {inputs: 1, layers: [{units: 2, activation: softmax}, "
     "{units: 2, activation: softmax}]}\nloss: cross_entropy\ntargets: class\nsamples: 2\n"
     "query: {zero: [W1]}\n", ("network.layers[0].activation",)),
    ("bce-without-sigmoid", _spec(loss="bce", targets="binary"), ("loss", "bce")),
    ("expect-bad", _spec(expect="{verdict: maybe}"), ("expect.verdict",)),
    # Non-numbers.
    ("inputs-word", BASE.replace("inputs: 1", "inputs: one"), ("network.inputs", "one")),
    ("units-null", BASE.replace("{units: 1, activation: relu}", "{units: null}"),
     ("network.layers[0].units",)),
    ("fixed-word", _spec(fixed="{W1: [[abc]]}"), ("fixed.W1[0][0]", "abc")),
    ("fixed-nan", _spec(fixed="{W1: [[.nan]]}"), ("fixed.W1[0][0]",)),
    ("fixed-inf", _spec(fixed="{W1: [[-.inf]]}"), ("fixed.W1[0][0]",)),
    ("fixed-bool", _spec(fixed="{W1: [[true]]}"), ("fixed.W1[0][0]",)),
    ("fixed-div-zero", _spec(fixed="{W1: [['1/0']]}"), ("fixed.W1[0][0]", "division by zero")),
    ("fixed-expression", _spec(fixed="{W1: [['2**10']]}"), ("fixed.W1[0][0]",)),
    ("scale-word", _spec(loss="{kind: mse, scale: half}"), ("loss.scale",)),
    ("slope-word", BASE.replace("activation: relu}", "activation: leaky_relu, slope: x}"),
     ("network.layers[0].slope",)),
    # Huge numbers.
    ("power-text", _spec(fixed="{W1: [['10^1000']]}"), ("fixed.W1[0][0]",)),
    ("int-1001-digits", _spec(fixed="{W1: [[1" + "0" * 1000 + "]]}"),
     ("fixed.W1[0][0]", "too large")),
    ("float-1e999999", _spec(fixed="{W1: [[1e999999]]}"), ("fixed.W1[0][0]",)),
    ("float-1e-999999", _spec(fixed="{W1: [[1e-999999]]}"), ("fixed.W1[0][0]",)),
    ("scale-1e400", _spec(loss="{kind: mse, scale: 1e400}"), ("loss.scale", "too large")),
    ("int-5000-digits", _spec(fixed="{W1: [[" + HUGE_INT + "]]}"), ("fixed.W1|line",)),
    ("string-5000-digits", _spec(fixed="{W1: [['" + HUGE_INT + "']]}"), ("fixed.W1[0][0]",)),
    ("units-5000-digits", BASE.replace("{units: 1, activation: relu}",
                                       "{units: " + HUGE_INT + ", activation: relu}"),
     ("network.layers[0].units|line",)),
    ("samples-huge", NETWORK + "samples: 1" + "0" * 30 + "\n" + QUERY, ("samples",)),
    ("units-huge", BASE.replace("{units: 1, activation: relu}", "{units: 100000}"),
     ("network.layers[0].units",)),
    ("assume-huge-exponent", _spec(assume="['W1[0,0] < 1e1000']"), ("assume[0]",)),
    ("assume-huge-power", _spec(assume="['W1[0,0] < 10^1000']"), ("assume[0]",)),
    ("assume-power-tower", _spec(assume="['W1[0,0] ** 16 ** 16 > 0']"), ("assume[0]",)),
    ("assume-long-number", _spec(assume="['W1[0,0] < " + HUGE_INT[:400] + "']"),
     ("assume[0]",)),
    # Zero or negative sizes, empty ranges.
    ("inputs-zero", BASE.replace("inputs: 1", "inputs: 0"), ("network.inputs",)),
    ("inputs-negative", BASE.replace("inputs: 1", "inputs: -2"), ("network.inputs",)),
    ("units-zero", BASE.replace("{units: 1, activation: relu}", "{units: 0}"),
     ("network.layers[0].units",)),
    ("units-negative", BASE.replace("{units: 1, activation: relu}", "{units: -1}"),
     ("network.layers[0].units",)),
    ("samples-zero", NETWORK + "samples: 0\n" + QUERY, ("samples",)),
    ("samples-negative", NETWORK + "samples: -3\n" + QUERY, ("samples",)),
    ("samples-empty-range", NETWORK + "samples: {min: 4, max: 2}\n" + QUERY,
     ("samples", "empty range")),
    ("samples-range-zero", NETWORK + "samples: {min: 0, max: 2}\n" + QUERY, ("samples.min",)),
    ("samples-range-no-max", NETWORK + "samples: {min: 2}\n" + QUERY, ("samples.max",)),
    ("scale-zero", _spec(loss="{kind: mse, scale: 0}"), ("loss.scale",)),
    ("scale-negative", _spec(loss="{kind: mse, scale: -1/2}"), ("loss.scale",)),
    ("too-many-layers", "network: {inputs: 1, layers: [" + ", ".join(["{units: 1}"] * 50)
     + "]}\nsamples: 3\nquery: {zero: [W1]}\n", ("network.layers",)),
    # Code in `assume`.
    ("assume-import", _spec(assume="[\"__import__('os').system('touch /tmp/pwned')\"]"),
     ("assume[0]",)),
    ("assume-open", _spec(assume="[\"open('x') == 0\"]"), ("assume[0]",)),
    ("assume-class", _spec(assume="['().__class__']"), ("assume[0]",)),
    ("assume-eval", _spec(assume="[\"eval('1') == 1\"]"), ("assume[0]",)),
    ("assume-attribute", _spec(assume="['W1[0,0].__class__ == 1']"), ("assume[0]",)),
    ("assume-call", _spec(assume="['abs(W1[0,0]) > 0']"), ("assume[0]",)),
    ("assume-lambda", _spec(assume="['(lambda: 1)() == 1']"), ("assume[0]",)),
    ("assume-subscript-string", _spec(assume="[\"W1['a'] > 0\"]"), ("assume[0]",)),
    ("assume-builtins", _spec(assume="['__builtins__ > 0']"), ("assume[0]",)),
    ("assume-dunder-name", _spec(assume="['W1[0,0] > __import__']"), ("assume[0]",)),
    ("assume-semicolon", _spec(assume="['W1[0,0] > 0; import os']"), ("assume[0]",)),
    ("assume-walrus", _spec(assume="['(x := 1) > 0']"), ("assume[0]",)),
    ("assume-fstring", _spec(assume="[\"f'{1}' == 1\"]"), ("assume[0]",)),
    ("assume-backslash", _spec(assume="['W1[0,0] > \\\\x00']"), ("assume[0]",)),
    ("assume-unknown-name", _spec(assume="['os > 0']"), ("assume[0]", "os")),
    ("assume-sample-out-of-range", _spec(assume="['X[7] > 0']"), ("assume[0]",)),
    ("assume-not-text", _spec(assume="[5]"), ("assume[0]",)),
    ("assume-mapping", _spec(assume="{a: 1}"), ("assume",)),
    ("assume-unbalanced", _spec(assume="['(((W1[0,0] > 0']"), ("assume[0]",)),
    ("assume-deep-parens", _spec(assume="['" + "(" * 5000 + "1" + ")" * 5000 + " > 0']"),
     ("assume[0]",)),
    ("assume-too-long", _spec(assume="['" + " + ".join(["W1[0,0]"] * 3000) + " > 0']"),
     ("assume[0]",)),
]


@pytest.mark.parametrize(("case", "content", "needles"), SPEC_CASES,
                         ids=[case[0] for case in SPEC_CASES])
def test_bad_spec_exits_2(case: str, content: str | bytes, needles: tuple[str, ...],
                          tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / f"{case}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    started = time.perf_counter()
    result = runner.invoke(app, ["solve", str(path), "--timeout", "5"])
    assert time.perf_counter() - started < 10
    _assert_clean_failure(result, path, *needles)


def test_the_base_spec_is_valid(tmp_path: Path, runner: CliRunner) -> None:
    """The cases above differ from a valid spec only in what they break."""
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    result = runner.invoke(app, ["solve", str(path), "--timeout", "30"])
    assert result.exit_code == 0, _message(result)


def test_missing_file(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "nowhere.yaml"
    result = runner.invoke(app, ["solve", str(path)])
    _assert_clean_failure(result, path, "not found")


def test_directory(tmp_path: Path, runner: CliRunner) -> None:
    folder = tmp_path / "specs.yaml"
    folder.mkdir()
    result = runner.invoke(app, ["solve", str(folder)])
    _assert_clean_failure(result, folder, "directory")


def test_unreadable_file(tmp_path: Path, runner: CliRunner) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "secret.yaml"
    path.write_text(BASE, encoding="utf-8")
    path.chmod(0)
    result = runner.invoke(app, ["solve", str(path)])
    _assert_clean_failure(result, path)


def test_two_megabyte_file(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(BASE + "description: '" + "x" * (2 * 1024 * 1024) + "'\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["solve", str(path)])
    _assert_clean_failure(result, path, "larger")


def test_many_list_entries_within_the_size_limit(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(NETWORK + "samples: 3\nquery: {zero: [" + ", ".join(["W1"] * 20_000)
                    + "]}\n", encoding="utf-8")
    started = time.perf_counter()
    result = runner.invoke(app, ["solve", str(path), "--timeout", "5"])
    # A query naming W1 20000 times is legal, if silly: it must simply be answered.
    assert result.exit_code in (0, 1, 2, 3), _message(result)
    assert "Traceback" not in _message(result)
    assert time.perf_counter() - started < 30


# ----------------------------------------------------------------------------------------
# Resource attacks, in a real process with a memory cap.


def _run_capped(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``smtgrad ARGS`` in a child process limited to 2 GiB of address space."""

    def limit() -> None:
        two_gib = 2 * 1024**3
        resource.setrlimit(resource.RLIMIT_AS, (two_gib, two_gib))

    code = "import sys; from smtgrad.cli import main; sys.argv[0] = 'smtgrad'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit, check=False)


BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

#: The same bomb hung under keys the validator reads.
BOMB_IN_SPEC = BILLION_LAUGHS.replace("a: &a", "description: &a").replace(
    "\nb: &b", "\nname: &b").replace("\nc: &c", "\nassume: &c").replace(
    "\nd: &d", "\nfixed: {X: &d").replace("[*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne:",
                                          "[*c,*c,*c,*c,*c,*c,*c,*c,*c]}\ne:")

ATTACKS: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("billion-laughs", BILLION_LAUGHS, ()),
    ("billion-laughs-in-query", NETWORK + "samples: 3\n" + BILLION_LAUGHS.replace(
        "i: &i", "query:\n  zero: &i") .replace("\na: &a", "\nx: &a"), ()),
    ("billion-laughs-in-fixed", NETWORK + "samples: 3\n" + QUERY
     + BILLION_LAUGHS.replace("i: &i [", "fixed: {X: [").replace("*h]\n", "*h]}\n")
     .replace("a: &a", "description: &a"), ()),
    ("deep-lists", "network: " + "[" * 100_000 + "]" * 100_000 + "\n", ()),
    ("deep-mappings", "network: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", ()),
    ("deep-block-lists", "network:\n" + "".join("  " * i + "-\n" for i in range(3000)), ()),
    ("binary-garbage", bytes(range(256)) * 64, ("binary",)),
    ("nul-in-text", BASE.encode() + b"\x00\x00", ()),
    ("utf16", BASE.encode("utf-16"), ()),
    ("random-bytes", os.urandom(4096), ()),
]


@pytest.mark.parametrize(("case", "content", "needles"), ATTACKS,
                         ids=[case[0] for case in ATTACKS])
def test_resource_attacks_exit_2(case: str, content: str | bytes, needles: tuple[str, ...],
                                 tmp_path: Path) -> None:
    path = tmp_path / f"{case}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    started = time.perf_counter()
    process = _run_capped(["solve", str(path), "--timeout", "5"])
    elapsed = time.perf_counter() - started
    message = process.stderr
    assert process.returncode == 2, (process.returncode, message[-2000:])
    assert "Traceback" not in message, message[-2000:]
    assert "MemoryError" not in message
    assert path.name in message, message[-500:]
    for needle in needles:
        assert needle in message, message[-500:]
    assert elapsed < 30, f"took {elapsed:.1f} s"


# ----------------------------------------------------------------------------------------
# `smtgrad check` with malformed witness files.

GOOD_WITNESS = HAND_WITNESS_JSON


def _witness(**changes: object) -> str:
    data: dict[str, object] = dict(GOOD_WITNESS)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data)


WITNESS_CASES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("truncated-json", _witness()[:-5], ()),
    ("not-a-mapping", "[1, 2, 3]", ()),
    ("empty", "", ()),
    ("missing-y", _witness(Y=None), ("Y",)),
    ("missing-x", _witness(X=None), ("X",)),
    ("missing-block", _witness(b2=None), ("b2",)),
    ("unknown-block", _witness(Z=[1]), ("Z",)),
    ("wrong-shape", _witness(W1=[["1", "2"]]), ("W1",)),
    ("rows-mismatch", _witness(X=[["0"], ["2"]]), ("Y",)),
    ("word", _witness(W1=[["abc"]]), ("W1[0][0]",)),
    ("boolean", json.dumps({**GOOD_WITNESS, "b1": [True]}), ("b1[0]",)),
    ("null", json.dumps({**GOOD_WITNESS, "b1": [None]}), ("b1[0]",)),
    ("nested-mapping", _witness(W1=[[{"a": 1}]]), ("W1[0][0]",)),
    ("nan", _witness().replace('["-1"]', "[NaN]", 1), ("b1[0]",)),
    ("infinity", _witness().replace('["-1"]', "[Infinity]", 1), ("b1[0]",)),
    ("json-float-1e999", _witness().replace('["-1"]', "[1e999]", 1), ("b1[0]",)),
    ("int-5000-digits", _witness().replace('["-1"]', f"[{HUGE_INT}]", 1), ("b1|line",)),
    ("string-5000-digits", _witness(b1=[HUGE_INT]), ("b1[0]",)),
    ("code-in-number", _witness(b1=["__import__('os').system('touch /tmp/pwned')"]),
     ("b1[0]",)),
    ("division-by-zero", _witness(b1=["1/0"]), ("b1[0]",)),
    ("x-text", _witness(X="0,2,3"), ("X",)),
    ("x-empty", _witness(X=[], Y=[]), ("X",)),
    ("witness-key-scalar", json.dumps({"witness": 5}), ()),
    ("duplicate-key", _witness()[:-1] + ', "W1": [["2"]]}', ("W1",)),
    ("binary", bytes(range(256)) * 8, ()),
    ("deep-lists", "[" * 100_000 + "]" * 100_000, ()),
]


@pytest.mark.parametrize(("case", "content", "needles"), WITNESS_CASES,
                         ids=[case[0] for case in WITNESS_CASES])
def test_bad_witness_exits_2(case: str, content: str | bytes, needles: tuple[str, ...],
                             tmp_path: Path, runner: CliRunner) -> None:
    spec = tmp_path / "seed.yaml"
    spec.write_text(BASE, encoding="utf-8")
    witness = tmp_path / f"witness-{case}.json"
    if isinstance(content, bytes):
        witness.write_bytes(content)
    else:
        witness.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--witness", str(witness)])
    message = _assert_clean_failure(result, witness, *needles)
    # The witness is not the spec: the message must not blame the spec.
    assert "bad spec" not in message, message


def test_good_witness_holds(tmp_path: Path, runner: CliRunner) -> None:
    spec = tmp_path / "seed.yaml"
    spec.write_text(BASE, encoding="utf-8")
    witness = tmp_path / "witness.json"
    witness.write_text(_witness(), encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--witness", str(witness)])
    assert result.exit_code == 0, _message(result)


def test_witness_missing_file_and_directory(tmp_path: Path, runner: CliRunner) -> None:
    spec = tmp_path / "seed.yaml"
    spec.write_text(BASE, encoding="utf-8")
    missing = tmp_path / "none.json"
    _assert_clean_failure(runner.invoke(app, ["check", str(spec), "--witness", str(missing)]),
                          missing)
    _assert_clean_failure(runner.invoke(app, ["check", str(spec), "--witness", str(tmp_path)]),
                          tmp_path)


def test_check_with_a_bad_spec_names_the_spec(tmp_path: Path, runner: CliRunner) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(_spec(foo="1"), encoding="utf-8")
    witness = tmp_path / "witness.json"
    witness.write_text(_witness(), encoding="utf-8")
    result = runner.invoke(app, ["check", str(spec), "--witness", str(witness)])
    _assert_clean_failure(result, spec, "foo")
