"""Limits: --timeout is honoured, Ctrl-C exits 130 cleanly, answers are reproducible.

* ``--timeout T`` must end the run within 10 % of T plus 1 s, exiting 3 with a
  reason. In a fresh process the interpreter start and the imports come on top;
  they are measured on a quick spec in the same conditions and subtracted.
* SIGINT (Ctrl-C) must end ``smtgrad solve`` with exit code 130 within a few
  seconds and no traceback, wherever it lands (imports, fast path, solver).
* The same spec solved twice in fresh processes gives byte-identical witness JSON.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import network_yaml
from typer.testing import CliRunner

from smtgrad.cli import app

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"

#: Two hidden relu layers of 3 units, generic, with assumptions the rank fast path cannot
#: meet by chance (a determinant, a product of three weights, an exact loss): z3 does not
#: finish it in a minute.
HARD_SPEC = """
name: hard-timeout
""" + network_yaml("3 relu", "3 relu", "1 linear", inputs=2) + """samples: 5
generic: true
assume:
  - "W1[0,0]*W1[1,1] - W1[0,1]*W1[1,0] == 7/3"
  - "loss == 3"
  - "yhat[0]*yhat[1] == 5/7"
  - "W2[0,0]*W2[1,1]*W2[2,2] == 2"
query:
  zero: [W3, b3, W2, b2, b1]
  nonzero: ["W1[0,0]", "W1[1,1]"]
"""

#: Large M within the spec limits: the rank fast path evaluates M networks of M samples.
LARGE_M_SPEC = """
name: large-m
""" + network_yaml("3 relu", "3 relu", "1 linear", inputs=2) + """samples: 200
generic: true
query:
  zero: [W3, b3, W2]
  nonzero: [W1]
"""

#: Found by the fuzzer (python -m tools.fuzz, seed 0, case 10): z3 answers sat in well
#: under a second, while cvc5 (nl-cov) once ran 117 s past a 2.5 s limit on it.
CVC5_SLOW_SPEC = """
name: cvc5-slow
network:
  inputs: 2
  layers:
    - {units: 3, activation: leaky_relu}
    - {units: 2, activation: leaky_relu}
    - {units: 2, activation: linear}
loss: {kind: mse, reduction: sum, scale: 3/7}
samples: 2
fixed:
  W3: [[-1, null], [-2, 1/2]]
  W1: [[null, null], [-1/2, null], [null, null]]
query:
  zero: [b2]
  nonzero: [W3, b3]
"""

SMTGRAD = [sys.executable, "-c",
           "import sys; from smtgrad.cli import main; sys.argv[0] = 'smtgrad'; main()"]


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def hard_spec(tmp_path: Path) -> Path:
    return _write(tmp_path, HARD_SPEC, "hard.yaml")


def _run(args: list[str], limit: float) -> tuple[subprocess.CompletedProcess[str] | None,
                                                 float]:
    """Run smtgrad; (process, seconds), or (None, seconds) if it had to be killed."""
    started = time.perf_counter()
    try:
        process = subprocess.run([*SMTGRAD, *args], capture_output=True, text=True,
                                 timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - started
    return process, time.perf_counter() - started


def _startup_seconds() -> float:
    """Interpreter start, imports, a z3 solver and exit: a quick unsat spec, best of two."""
    times = []
    for _ in range(2):
        process, seconds = _run(["solve", str(SPECS / "linear_hidden.yaml"), "--timeout", "30"],
                                60)
        assert process is not None and process.returncode == 1
        times.append(seconds)
    return min(times)


# ----------------------------------------------------------------------------------------
# --timeout


def test_timeout_in_process(hard_spec: Path) -> None:
    """With imports done, the run ends within 10 % + 1 s of --timeout, exit 3, a reason."""
    runner = CliRunner()
    warm = runner.invoke(app, ["solve", str(SPECS / "linear_hidden.yaml")])
    assert warm.exit_code == 1, warm.output
    timeout = 4.0
    started = time.perf_counter()
    result = runner.invoke(app, ["solve", str(hard_spec), "--timeout", str(timeout),
                                 "--format", "json"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 3, result.output
    data = json.loads(result.output)
    assert data["verdict"] == "unknown"
    assert "timeout" in data["reason"] or "time" in data["reason"], data["reason"]
    assert elapsed <= 1.1 * timeout + 1, f"{elapsed:.2f} s for --timeout {timeout}"


@pytest.mark.parametrize("timeout", [3.0, 8.0])
def test_timeout_in_a_fresh_process(hard_spec: Path, timeout: float) -> None:
    startup = _startup_seconds()
    process, elapsed = _run(["solve", str(hard_spec), "--timeout", str(timeout)],
                            startup + 3 * timeout + 30)
    assert process is not None, f"still running after {elapsed:.0f} s"
    assert process.returncode == 3, process.stdout + process.stderr
    assert "reason:" in process.stdout and "timeout" in process.stdout, process.stdout
    assert "Traceback" not in process.stderr
    budget = startup + 1.1 * timeout + 1
    assert elapsed <= budget, (f"{elapsed:.2f} s for --timeout {timeout} "
                               f"(start-up {startup:.2f} s, budget {budget:.2f} s)")


def _solves_within_timeout(spec: Path, extra: list[str], label: str,
                           timeout: float = 3.0) -> None:
    """`smtgrad solve SPEC --timeout T` answers (sat or unknown) within start-up + 1.1 T + 1 s."""
    startup = _startup_seconds()
    budget = startup + 1.1 * timeout + 1
    process, elapsed = _run(["solve", str(spec), *extra, "--timeout", str(timeout)],
                            budget + 20)
    assert process is not None, f"{label}--timeout {timeout}: still running after {elapsed:.0f} s"
    assert process.returncode in (0, 3), process.stdout + process.stderr
    assert elapsed <= budget, f"{elapsed:.2f} s for --timeout {timeout} (budget {budget:.2f})"


def test_timeout_with_large_m(tmp_path: Path) -> None:
    """The fast path must respect the deadline too, however many samples it handles."""
    _solves_within_timeout(_write(tmp_path, LARGE_M_SPEC, "large.yaml"), [], "")


def test_timeout_with_cvc5(tmp_path: Path) -> None:
    _solves_within_timeout(_write(tmp_path, CVC5_SLOW_SPEC, "cvc5.yaml"),
                           ["--backend", "cvc5"], "cvc5 ")


def test_tiny_timeout_is_unknown_not_unsat(hard_spec: Path) -> None:
    result = CliRunner().invoke(app, ["solve", str(hard_spec), "--timeout", "0.1"])
    assert result.exit_code == 3, result.output
    assert "unsat" not in result.output


# ----------------------------------------------------------------------------------------
# Ctrl-C


@pytest.fixture
def solving() -> Iterator[list[subprocess.Popen[str]]]:
    """Start smtgrad processes; kill any that a failing test leaves behind."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _interrupt(process: subprocess.Popen[str], limit: float = 5.0) -> tuple[int | None, str,
                                                                          float]:
    sent = time.perf_counter()
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        return None, stderr, time.perf_counter() - sent
    return process.returncode, stderr, time.perf_counter() - sent


def _wait_for(process: subprocess.Popen[str], needle: str, limit: float = 30) -> str:
    """Read stderr lines until one contains ``needle`` (the solver has started)."""
    assert process.stderr is not None
    seen = []
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r}: {''.join(seen)}")


def _solve_and_interrupt(solving: list[subprocess.Popen[str]], args: list[str], delay: float,
                         wait_for: str | None = None) -> tuple[int | None, str, float]:
    """Start ``smtgrad solve`` in a fresh process, wait (for a stderr line containing
    ``wait_for``, if given, then ``delay`` seconds) and send SIGINT: see :func:`_interrupt`."""
    process = subprocess.Popen([*SMTGRAD, "solve", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    solving.append(process)
    if wait_for is not None:
        _wait_for(process, wait_for)
    time.sleep(delay)
    return _interrupt(process)


def test_ctrl_c_after_one_second(hard_spec: Path,
                                 solving: list[subprocess.Popen[str]]) -> None:
    code, stderr, seconds = _solve_and_interrupt(solving, [str(hard_spec), "--timeout", "60"], 1)
    assert code == 130, (code, stderr)
    assert "Traceback" not in stderr, stderr
    assert seconds < 5


@pytest.mark.parametrize("delay", [0.5, 1.5])
def test_ctrl_c_at_any_moment(hard_spec: Path, delay: float,
                              solving: list[subprocess.Popen[str]]) -> None:
    """Imports, spec loading, fast path or solver: 130, no traceback."""
    code, stderr, _ = _solve_and_interrupt(solving, [str(hard_spec), "--timeout", "60"], delay)
    assert code == 130, (code, stderr)
    assert "Traceback" not in stderr, stderr


def test_ctrl_c_during_the_entry_point_imports(hard_spec: Path) -> None:
    """SIGINT while the console script imports the CLI module (its first ~0.3 s).

    Made deterministic with an import hook that raises KeyboardInterrupt when typer
    is imported, then calling the installed ``smtgrad`` entry point exactly as the
    console script does. (Python's own start-up, before any smtgrad code runs, is out
    of reach of any program.)
    """
    code = f"""
import importlib, importlib.metadata, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            raise KeyboardInterrupt
        return None
(entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts")
            if e.name == "smtgrad"]
module, _, function = entry.value.partition(":")
sys.argv = ["smtgrad", "solve", {str(hard_spec)!r}]
sys.meta_path.insert(0, Interrupt())
sys.exit(getattr(importlib.import_module(module), function)())
"""
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=False)
    assert process.returncode == 130, (process.returncode, process.stderr[-1500:])
    assert "Traceback" not in process.stderr, process.stderr[-1500:]


@pytest.mark.parametrize("backend", ["z3", "cvc5"])
def test_ctrl_c_while_the_solver_runs(hard_spec: Path, backend: str,
                                      solving: list[subprocess.Popen[str]]) -> None:
    """SIGINT during the SMT call itself: 130 (not 'unknown'), no traceback, quickly."""
    code, stderr, seconds = _solve_and_interrupt(
        solving, [str(hard_spec), "--timeout", "60", "--progress", "--backend", backend], 1,
        wait_for=f"with {backend}")
    assert code == 130, (code, stderr, f"after {seconds:.1f} s")
    assert "Traceback" not in stderr, stderr
    assert seconds < 5
    # No solver child (cvc5 runs in a forked copy of the process) outlives the CLI.
    deadline = time.monotonic() + 3
    while _processes_mentioning(str(hard_spec)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_mentioning(str(hard_spec))


SMT_PATH_SPEC = """
""" + network_yaml("2 relu", "1 leaky_relu", inputs=2) + """loss: mse
fixed:
  Y: [1, -1, 2, 0]
query:
  zero: [W2, b2]
  nonzero: [W1]
"""


def test_z3_is_called_only_from_its_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python raises KeyboardInterrupt in the main thread; inside z3's Python API it can
    become a ctypes ArgumentError (a false internal error) or corrupt reference counts
    (exit -6). So conversion and check() must run in the worker thread."""
    import threading

    import z3
    from pysmt.shortcuts import GT, Equals, Real, Symbol, Times
    from pysmt.shortcuts import And as Both
    from pysmt.solvers.z3 import Z3Converter
    from pysmt.typing import REAL

    from smtgrad.backends import SolverStatus
    from smtgrad.backends.z3_backend import Z3Backend

    callers: list[threading.Thread] = []
    convert, check = Z3Converter.convert, z3.Solver.check

    def recording_convert(self: Z3Converter, formula: object) -> object:
        callers.append(threading.current_thread())
        return convert(self, formula)

    def recording_check(self: z3.Solver, *assumptions: object) -> object:
        callers.append(threading.current_thread())
        return check(self, *assumptions)

    monkeypatch.setattr(Z3Converter, "convert", recording_convert)
    monkeypatch.setattr(z3.Solver, "check", recording_check)
    x = Symbol("thread_test_x", REAL)
    answer = Z3Backend().solve(Both(Equals(Times(x, x), Real(4)), GT(x, Real(0))), 30)
    assert answer.status is SolverStatus.SAT
    # Converting the formula (its symbols first, in the export's declaration order) and
    # check(): every call in the one worker thread.
    assert len(callers) >= 2 and len(set(callers)) == 1
    assert threading.main_thread() not in callers
    # Reading the model afterwards (the worker has finished) is the caller's business.
    assert answer.model is not None and answer.model.value(x) == 2


def test_keyboard_interrupt_in_the_library_reaches_the_caller(hard_spec: Path) -> None:
    """Without the CLI's SIGINT handler, an interrupt at any moment of Z3Backend.solve
    (while converting or while checking) surfaces as KeyboardInterrupt, the worker stops,
    and the process exits normally (no abort at teardown)."""
    script = f"""
import _thread, threading
from smtgrad.backends import solver_threads_running
from smtgrad.backends.z3_backend import Z3Backend
from smtgrad.encoding.builder import encode
from smtgrad.spec import load_spec
formula = encode(load_spec({str(hard_spec)!r}), 5).formula()
for delay in (0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4):
    timer = threading.Timer(delay, _thread.interrupt_main)
    try:
        timer.start()
        Z3Backend().solve(formula, 30)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    timer.join()
    print(outcome, threading.active_count(), solver_threads_running())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-1500:])
    assert done.stdout.split("\n")[:-1] == ["interrupted 1 0"] * 7, done.stdout + done.stderr


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if text in command and state != "Z":
            found.append(int(entry.name))
    return found


# ----------------------------------------------------------------------------------------
# Determinism


def _witness_bytes(spec: Path, *extra: str) -> bytes:
    process, _ = _run(["solve", str(spec), "--format", "json", "--timeout", "60", *extra], 120)
    assert process is not None
    assert process.returncode == 0, process.stdout + process.stderr
    data = json.loads(process.stdout)
    document = {key: data[key] for key in ("verdict", "samples", "witness", "gradients",
                                           "loss", "method")}
    return json.dumps(document, sort_keys=True).encode()


DETERMINISTIC = [
    ("relu_mse.yaml", ()),
    ("deep_leaky.yaml", ()),
    ("two_hidden_units.yaml", ()),
    ("seed_minimal.yaml", ()),
    ("relu_mse.yaml", ("--backend", "cvc5")),
]


@pytest.mark.parametrize(("name", "extra"), DETERMINISTIC,
                         ids=[f"{n}{'-' + e[-1] if e else ''}" for n, e in DETERMINISTIC])
def test_same_witness_in_fresh_processes(name: str, extra: tuple[str, ...]) -> None:
    spec = SPECS / name
    first = _witness_bytes(spec, *extra)
    second = _witness_bytes(spec, *extra)
    assert first == second


def test_same_witness_through_the_smt_path(tmp_path: Path) -> None:
    """Fixed targets keep the rank fast path out, and a nonlinear output layer the
    output-layer solve: the witness comes from z3's model."""
    spec = _write(tmp_path, SMT_PATH_SPEC, "smt.yaml")
    first = _witness_bytes(spec)
    assert b"z3" in first
    assert first == _witness_bytes(spec)
