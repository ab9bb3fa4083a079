"""Benchmark: what users wait for. smtgrad and its peers, side by side in one run.

    python bench/run.py [--timeout 30] [--peer-timeout 30] [--only NAME[,NAME]]
                        [--no-baseline] [--quick] [--out DIR] [--fresh] [--no-profile]

Rows (bench/workloads.py): **scale** rows, the targets (free data at M up to 10,000,
widths up to 64, up to three hidden layers), and **regression** rows (the
millisecond rows of the first benchmark: still run, no longer targets). Peers:
the direct hand-written z3 encoding (bench/baseline.py) and cvc5 on the same
formula (exported as SMT-LIB, QF_NRA with ``nl-cov``).

Every measurement (one workload, one tool) runs in a fresh Python process:

* time: ``time.perf_counter`` inside the worker, from the parsed spec (imports and
  YAML parsing excluded for every tool, recorded separately in the JSON);
* peak memory: the worker's peak resident set size (``os.wait4`` ``ru_maxrss`` of
  that child), interpreter and imports included;
* timeouts: each tool's own limit, and a hard kill of the worker's process group at
  the limit plus a grace (cvc5's nonlinear solver does not always honour its own
  limit): a killed peer counts as a timeout.

Where smtgrad answers in under a second, it is run REPEATS times (fresh processes)
and the median is reported. A scale row where smtgrad is slow or does not answer
gets one more, profiled run (cProfile): "where the time goes" in the Markdown.

The run is restartable: every finished row is appended to OUT/results.partial.jsonl,
and the same command run again reuses the rows measured with the same code and
settings (``--fresh`` ignores them); the file is removed when the run completes.

A full run writes bench/results.{json,md,png}; runs restricted with --only or
--quick write to bench/results/ (git-ignored) unless --out is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fnmatch
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import SCALE_MS, WIDTH_SERIES_M, Workload, all_workloads  # noqa: E402

SMTGRAD_GRACE = 30.0  # smtgrad keeps its own deadline; the kill is a safety net
PEER_GRACE = 5.0  # cvc5 may ignore tlimit-per inside its CAD: kill soon after the limit
#: Also timed through the CLI, imports included.
CLI_WORKLOADS = ("seed-generic-M32", "1-1-1-M10000")
#: Environment of the worker processes (PYTHONPATH points at the code snapshot, if any).
WORKER_ENV: dict[str, str] | None = None
SMOOTH_UNSUPPORTED = re.compile(r"smooth|not piecewise linear|unsupported|not supported", re.I)
MEMORY_METHOD = ("peak RSS of the fresh worker process (os.wait4 ru_maxrss of that child; "
                 "includes the Python interpreter and imports)")
#: Rows where smtgrad answers in under REPEAT_BELOW seconds are measured REPEATS times
#: (fresh processes; on regression rows where the peer is fast too, the tools alternate)
#: and the medians are reported: single runs of a few milliseconds vary by about +-30 %
#: on a shared machine.
REPEAT_BELOW = 1.0
REPEATS = 5
#: Profiled scale rows slower than this (or unanswered) get a table of their own.
PROFILE_DETAIL_ABOVE = 1.0
#: Per-measurement start-up (interpreter, imports) for the duration estimate.
STARTUP_SECONDS = 1.0
#: Issue 17's targets: seconds for named rows, and peak memory for every scale row.
TARGET_SECONDS = {"1-64-1-M64": 5.0, "1-8-8-1-M64": 5.0, "1-8-8-8-1-M64": 5.0,
                  "1-1-1-M10000": 10.0}
TARGET_MB = 2048.0
PEER_MEMORY_MB = 4096
PEER_NAMES = {"z3": "direct z3", "cvc5": "cvc5 (same formula)"}
FLAG_WORDS = ("UNKNOWN", "ERROR", "CRASHED", "KILLED", "UNEXPECTED", "DISAGREE", "SAT", "OVER")


# ----------------------------------------------------------------------------------------
# Workers (run in a fresh process each).


def _witness_bits(witness: Any) -> dict[str, int] | None:
    """Bit sizes of the largest numerator and denominator among the witness's rationals."""
    from fractions import Fraction

    numerator = denominator = 0
    found = False

    def walk(item: Any) -> None:
        nonlocal numerator, denominator, found
        if isinstance(item, Fraction | int) and not isinstance(item, bool):
            value = Fraction(item)
            numerator = max(numerator, abs(value.numerator).bit_length())
            denominator = max(denominator, value.denominator.bit_length())
            found = True
        elif isinstance(item, tuple | list):
            for part in item:
                walk(part)

    parameters = witness.parameters
    for part in (parameters.weights, parameters.biases, witness.inputs, witness.targets):
        walk(part)
    return {"numerator_bits": numerator, "denominator_bits": denominator} if found else None


def _worker_smtgrad(workload: Workload, timeout: float, profile: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    # The z3 backend is imported lazily by smtgrad; load it before the clock starts, and
    # first, as the peers' workers import z3 before their own code.
    with contextlib.suppress(Exception):
        import smtgrad.backends.z3_backend
    from smtgrad.engine import SolveOptions, solve
    from smtgrad.reference.verify import verify
    from smtgrad.spec import parse_spec

    imports = time.perf_counter() - started

    import smtgrad

    record: dict[str, Any] = {"tool": "smtgrad", "import_seconds": imports,
                              "smtgrad_file": smtgrad.__file__}
    parse_start = time.perf_counter()
    try:
        spec = parse_spec(workload.yaml, f"<bench:{workload.name}>")
    except Exception as error:  # e.g. a sample count beyond the spec's cap
        record.update(verdict="error", seconds=None, reason=f"spec: {error}")
        return record
    record["parse_seconds"] = time.perf_counter() - parse_start
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    start = time.perf_counter()
    try:
        options = SolveOptions(minimal=workload.minimal, timeout=timeout)
        if profiler is not None:
            profiler.enable()
        try:
            result = solve(spec, options)
        finally:
            if profiler is not None:
                profiler.disable()
    except Exception as error:
        record.update(verdict="error", seconds=time.perf_counter() - start,
                      reason=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc(limit=8))
        return record
    seconds = time.perf_counter() - start
    record.update(
        verdict=result.verdict.value, seconds=seconds, engine_seconds=result.seconds,
        samples=result.samples, method=result.method, solver=result.solver,
        proved=result.proved, reason=result.reason, certificate=result.certificate,
        attempts=[{"samples": a.samples, "verdict": a.verdict.value, "method": a.method,
                   "seconds": round(a.seconds, 6), "detail": a.detail}
                  for a in result.attempts],
    )
    if profiler is not None and profile:
        record["profile"] = _profile_summary(profiler, profile)
    if result.verdict.value == "sat":
        # The engine verifies before it reports; check the witness is there and
        # re-verify it independently (outside the timed region).
        assert result.witness is not None, "smtgrad reported sat without a witness"
        check = verify(spec, result.witness)
        record["witness_present"] = True
        record["reverified"] = bool(check.accepted)
        record["reverify_failures"] = list(check.failures)
        record["witness_kinks"] = (len(check.evaluation.kinks)
                                   if check.evaluation is not None else None)
        with contextlib.suppress(Exception):
            record["witness_bits"] = _witness_bits(result.witness)
    return record


def _profile_summary(profiler: Any, path: str, top: int = 12) -> dict[str, Any]:
    """The profile's heaviest functions by own time and by cumulative time."""
    import pstats

    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    total = getattr(stats, "total_tt", 0.0)
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = file
        for marker in ("/smtgrad/", "/site-packages/", "/lib/python"):
            if marker in file:
                short = file.split(marker, 1)[1]
                short = ("smtgrad/" if marker == "/smtgrad/" else "") + short
                break
        rows.append({"function": f"{short}:{line}({name})", "calls": calls,
                     "own_seconds": round(own, 4), "cumulative_seconds": round(cumulative, 4)})
    # Modules imported lazily during the solve (e.g. python-flint on the first large system).
    imports = max((r["cumulative_seconds"] for r in rows
                   if r["function"].endswith("(_find_and_load)")), default=0.0)
    by_own = sorted(rows, key=lambda r: -r["own_seconds"])[:top]
    by_cumulative = sorted(rows, key=lambda r: -r["cumulative_seconds"])[:top]
    return {"total_seconds": round(total, 4), "import_seconds": round(imports, 4),
            "by_own_time": by_own,
            "by_cumulative_time": by_cumulative, "prof_file": path}


def _worker_peer(tool: str, workload: Workload, timeout: float,
                 on_phase: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    import z3

    if tool == "cvc5":
        import cvc5
    from baseline import (
        BaselineUnsupported,
        solve_baseline_model,
        solve_baseline_range,
        solve_cvc5_model,
    )

    from smtgrad.spec import parse_spec

    # z3's own memory cap (the direct encoding at M = 10,000 grows past 7 GB otherwise;
    # the machine is shared). Reaching it is an unknown answer ("memout").
    z3.set_param("memory_max_size", PEER_MEMORY_MB)
    imports = time.perf_counter() - started
    record: dict[str, Any] = {"tool": tool, "import_seconds": imports,
                              "solver": (f"z3 {z3.get_version_string()}" if tool == "z3"
                                         else f"cvc5 {cvc5.__version__}")}
    try:
        spec = parse_spec(workload.yaml, f"<bench:{workload.name}>")
    except Exception as error:
        record.update(verdict="error", seconds=None, reason=f"spec: {error}")
        return record
    try:
        if workload.minimal:
            if tool != "z3":
                raise BaselineUnsupported("--minimal rows run with the z3 peer only")
            verdict, seconds, samples = solve_baseline_range(
                spec, workload.min_samples, workload.samples, timeout)
            record.update(verdict=verdict, seconds=seconds, samples=samples)
            if verdict == "unknown":
                record["reason"] = ("timeout" if seconds >= 0.95 * timeout
                                    else f"z3 unknown at M={samples}")
            return record
        hook = on_phase or (lambda phase: None)
        if tool == "z3":
            verdict, seconds, extra = solve_baseline_model(spec, workload.samples, timeout,
                                                           on_phase=hook)
        else:
            verdict, seconds, extra, info = solve_cvc5_model(spec, workload.samples, timeout,
                                                             on_phase=hook)
            record["cvc5"] = info
    except BaselineUnsupported as error:
        record.update(verdict="n/a", seconds=None, reason=str(error))
        return record
    record.update(verdict=verdict, seconds=seconds, samples=workload.samples)
    if verdict == "unknown":
        reason = str(extra)
        record["reason"] = ("timeout" if seconds >= 0.95 * timeout or "timeout" in reason
                            or "canceled" in reason.lower() else reason)
    if verdict == "sat":
        record["reverified"] = _verify_model(spec, extra)
    return record


def _verify_model(spec: Any, model: dict[str, Any]) -> Any:
    """Check a peer's model with smtgrad's exact verifier (keeps the peers honest)."""
    from fractions import Fraction

    from smtgrad.reference.network import Parameters
    from smtgrad.reference.verify import verify
    from smtgrad.reference.witness import Witness

    def exact(item: Any) -> Any:
        if isinstance(item, list):
            return tuple(exact(x) for x in item)
        if item.startswith("irrational:"):
            raise ValueError(item)
        return Fraction(item)

    try:
        witness = Witness(
            parameters=Parameters(weights=exact(model["W"]), biases=exact(model["b"])),
            inputs=exact(model["X"]), targets=exact(model["Y"]))
    except ValueError:
        return "irrational model (not checked)"
    return bool(verify(spec, witness).accepted)


def worker_main(tool: str, name: str, timeout: float, out: str, profile: str | None) -> None:
    workload = _find(name)
    if tool == "smtgrad":
        record = _worker_smtgrad(workload, timeout, profile)
    else:
        started = time.perf_counter()

        def on_phase(phase: str) -> None:
            # How far the peer got, for the parent to read if it has to kill this process.
            Path(out).write_text(json.dumps({"phase": phase, "phase_started":
                                             round(time.perf_counter() - started, 3)}))

        record = _worker_peer(tool, workload, timeout, on_phase)
    Path(out).write_text(json.dumps(record, default=str))


def _find(name: str) -> Workload:
    for workload in all_workloads():
        if workload.name == name:
            return workload
    raise SystemExit(f"unknown workload {name!r}")


# ----------------------------------------------------------------------------------------
# Parent: one fresh process per measurement, with a hard kill and per-child rusage.


def measure(tool: str, workload: Workload, timeout: float,
            profile: str | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh process; add peak memory and wall time."""
    handle, out = tempfile.mkstemp(prefix=f"smtgrad-bench-{tool}-", suffix=".json")
    os.close(handle)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, workload.name,
               "--timeout", str(timeout), "--worker-out", out]
    if profile:
        command += ["--worker-profile", profile]
    load_before = os.getloadavg()[0]
    grace = SMTGRAD_GRACE if tool == "smtgrad" else PEER_GRACE
    wall_start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, env=WORKER_ENV)
    captured: list[bytes] = []
    reader = threading.Thread(target=lambda: captured.append(process.stdout.read()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    hard_limit = wall_start + timeout + grace
    killed = False
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > hard_limit:
                killed = True
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
    except BaseException:  # Ctrl-C: take the worker down with us
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.wait4(process.pid, 0)
        Path(out).unlink(missing_ok=True)
        if process.stdout is not None:
            process.stdout.close()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - wall_start
    reader.join(2)
    if process.stdout is not None:
        process.stdout.close()
    try:
        record: dict[str, Any] = json.loads(Path(out).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        record = {}
    finally:
        Path(out).unlink(missing_ok=True)
    phase = record.pop("phase", None) if "verdict" not in record else None
    if "verdict" not in record:
        output = b"".join(captured).decode(errors="replace")[-2000:]
        if killed and tool != "smtgrad":
            record = {"tool": tool, "verdict": "unknown", "seconds": None,
                      "reason": f"timeout (killed after {wall:.1f} s, during "
                                f"{phase or 'start-up'}; it did not stop at its "
                                f"{timeout:g} s limit)", "killed_in": phase}
        else:
            record = {"tool": tool, "verdict": "killed" if killed else "crashed",
                      "seconds": None,
                      "reason": (f"killed after {wall:.1f} s (hard limit)" if killed
                                 else f"exit {process.returncode}: {output}")}
        record["killed"] = killed
    record["peak_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    record["process_wall_seconds"] = wall
    record["timeout"] = timeout
    record["loadavg_1min_before"] = load_before
    return record


def cli_time(workload: Workload, repeats: int = 3) -> dict[str, Any]:
    """Wall time of `smtgrad solve SPEC --format json` in a fresh process (imports included)."""
    exe = shutil.which("smtgrad")
    handle, path = tempfile.mkstemp(prefix="smtgrad-bench-", suffix=".yaml")
    with os.fdopen(handle, "w") as file:
        file.write(workload.yaml)
    command = ([exe] if exe else [sys.executable, "-c", "from smtgrad.cli import main; main()"]
               ) + ["solve", path, "--format", "json"]
    times, verdicts = [], []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False,
                                      env=WORKER_ENV, timeout=120)
            except subprocess.TimeoutExpired:
                times.append(120.0)
                verdicts.append("timeout")
                continue
            times.append(time.perf_counter() - start)
            try:
                verdicts.append(json.loads(done.stdout)["verdict"])
            except (ValueError, KeyError):
                verdicts.append(f"exit {done.returncode}")
    finally:
        os.unlink(path)
    return {"workload": workload.name, "command": f"smtgrad solve <{workload.name}.yaml> "
            "--format json", "best_seconds": min(times), "all_seconds": times,
            "verdicts": verdicts}


def help_time(repeats: int = 5) -> dict[str, Any]:
    """Wall time of `smtgrad --help` (fresh process, best of N)."""
    exe = shutil.which("smtgrad")
    command = [exe, "--help"] if exe else [sys.executable, "-c",
                                           "from smtgrad.cli import main; main()", "--help"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, env=WORKER_ENV)
        times.append(time.perf_counter() - start)
    return {"command": "smtgrad --help", "best_seconds": min(times), "all_seconds": times}


# ----------------------------------------------------------------------------------------
# Code snapshot: the package is installed editable and other people edit it while a
# run takes minutes, so by default every worker imports one frozen copy of smtgrad/.


def tree_sha(root: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        digest.update(str(file.relative_to(root.parent)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def snapshot_code(attempts: int = 3) -> tuple[Path, dict[str, Any]]:
    """Copy smtgrad/ to a temporary directory; return it and a description.

    A tree caught mid-edit (it does not import) is copied again, up to ``attempts``
    times, 20 s apart.
    """
    source = HERE.parent / "smtgrad"
    for attempt in range(attempts):
        target = Path(tempfile.mkdtemp(prefix="smtgrad-bench-code-"))
        shutil.copytree(source, target / "smtgrad",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Byte-compile, as pip does on install.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(target / "smtgrad")],
                       check=False, stdout=subprocess.DEVNULL)
        check = subprocess.run([sys.executable, "-c", "import smtgrad, smtgrad.engine, "
                                "smtgrad.cli; print(smtgrad.__file__)"],
                               env={**os.environ, "PYTHONPATH": str(target)}, cwd=target,
                               capture_output=True, text=True, check=False)
        if check.returncode == 0 and check.stdout.strip().startswith(str(target)):
            return target, {"snapshot": True, "sha256": tree_sha(target / "smtgrad"),
                            "copied_from": str(source)}
        shutil.rmtree(target, ignore_errors=True)
        if attempt + 1 < attempts:
            print(f"# the snapshot of smtgrad/ does not import (someone mid-edit?); "
                  f"retrying in 20 s:\n{check.stderr[-500:]}", file=sys.stderr)
            time.sleep(20)
    raise SystemExit(f"the snapshot of smtgrad/ does not import cleanly (retry later, or "
                     f"use --no-snapshot):\n{check.stderr[-2000:]}")


# ----------------------------------------------------------------------------------------
# Machine information.


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for module in ("z3", "cvc5", "flint"):
        try:
            imported = __import__(module)
            versions[module] = (imported.get_version_string() if module == "z3"
                                else getattr(imported, "__version__", "?"))
        except ImportError:
            versions[module] = "not installed"
    try:
        from importlib.metadata import version

        smtgrad_version = version("smtgrad")
    except Exception:
        smtgrad_version = "unknown"
    memory = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    return {
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "z3": versions["z3"],
        "cvc5": versions["cvc5"],
        "python-flint": versions["flint"],
        "smtgrad": smtgrad_version,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "smtgrad_tree_dirty": bool(_git("status", "--porcelain", "--", "smtgrad")),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg(),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True,
                              check=False, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ----------------------------------------------------------------------------------------
# Measuring one row: smtgrad, its repeats, its profile, the peers.


def _solved(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("verdict") in ("sat", "unsat")


def _fast(record: dict[str, Any] | None) -> bool:
    return (_solved(record) and record is not None and record.get("seconds") is not None
            and record["seconds"] < REPEAT_BELOW)


def _take_medians(record: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    record["repeat_verdicts"] = [run.get("verdict") for run in runs]
    record["repeat_seconds"] = [run.get("seconds") for run in runs]
    record["repeat_peak_mb"] = [run.get("peak_mb") for run in runs]
    if any(run.get("verdict") != record["verdict"] or run.get("seconds") is None
           for run in runs):
        record["verdict"] = "inconsistent"
        record["reason"] = f"repeated runs answered {record['repeat_verdicts']}"
        return
    record["first_seconds"] = record["seconds"]
    record["seconds"] = statistics.median(record["repeat_seconds"])


def run_row(workload: Workload, args: argparse.Namespace,
            log: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    ours = measure("smtgrad", workload, args.timeout)
    log(f"smtgrad {ours.get('verdict')} in {_fmt_seconds(ours.get('seconds'))}, "
        f"{ours.get('peak_mb', 0):.0f} MB")
    peers: dict[str, dict[str, Any]] = {}
    if not args.no_baseline:
        for tool in workload.peers:
            peers[tool] = measure(tool, workload, args.peer_timeout)
            log(f"{tool} {peers[tool].get('verdict')} in "
                f"{_fmt_seconds(peers[tool].get('seconds'))}"
                + (f" ({peers[tool].get('reason', '')[:60]})"
                   if not _solved(peers[tool]) else ""))
    if _fast(ours):
        # Repeat the fast tools, alternating, so load drifts hit them alike.
        fast_peers = [tool for tool, record in peers.items() if _fast(record)]
        runs: dict[str, list[dict[str, Any]]] = {"smtgrad": [ours],
                                                 **{t: [peers[t]] for t in fast_peers}}
        for _ in range(args.repeats - 1):
            runs["smtgrad"].append(measure("smtgrad", workload, args.timeout))
            for tool in fast_peers:
                runs[tool].append(measure(tool, workload, args.peer_timeout))
        _take_medians(ours, runs["smtgrad"])
        for tool in fast_peers:
            _take_medians(peers[tool], runs[tool])
        log(f"median of {args.repeats}: smtgrad {_fmt_seconds(ours.get('seconds'))}")
    if (workload.role == "scale" and not args.no_profile
            and (not _solved(ours) or (ours.get("seconds") or 0) >= args.profile_above)):
        folder = (args.out if args.out_is_scratch else HERE / "results") / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        profiled = measure("smtgrad", workload, args.timeout,
                           profile=str(folder / f"{workload.name}.prof"))
        ours["profiled_run"] = {key: profiled.get(key) for key in
                                ("verdict", "seconds", "profile", "attempts", "reason")}
        log(f"profiled run: {profiled.get('verdict')} in "
            f"{_fmt_seconds(profiled.get('seconds'))}")
    return ours, peers


# ----------------------------------------------------------------------------------------
# Rows, flags and formatting.


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 10:
        return f"{value:.3f} s"
    return f"{value:.1f} s"


def _peer_text(record: dict[str, Any] | None, timeout: float) -> str:
    if record is None:
        return "not run"
    verdict = record.get("verdict")
    if verdict == "n/a":
        return "n/a"
    if verdict in ("sat", "unsat"):
        text = f"{verdict} {_fmt_seconds(record.get('seconds'))}"
        if verdict == "sat" and record.get("reverified") is False:
            text += " (model REJECTED)"
        return text
    if verdict in ("unknown", "killed") and "timeout" in str(record.get("reason", "timeout")):
        return f"timeout >{timeout:g} s"
    if verdict == "unknown" and "memout" in str(record.get("reason")):
        return f"memory limit ({PEER_MEMORY_MB} MB)"
    reason = str(record.get("reason") or "")[:50]
    return f"{verdict} ({reason})" if reason else str(verdict)


def summarise(workload: Workload, ours: dict[str, Any], peers: dict[str, dict[str, Any]],
              args: argparse.Namespace) -> dict[str, Any]:
    """One table row: verdicts, times, memory, witness size and flags."""
    flags: list[str] = []
    skipped = False
    verdict = ours.get("verdict", "?")
    if workload.requires_smooth and (
            verdict == "error" or (verdict == "unknown"
                                   and SMOOTH_UNSUPPORTED.search(ours.get("reason") or ""))):
        skipped = True
        flags.append("skipped: installed smtgrad does not support smooth activations yet")
    ours_s = ours.get("seconds")
    if not skipped:
        if verdict == "unknown":
            flags.append(f"UNKNOWN ({(ours.get('reason') or '')[:80]})")
        elif verdict in ("error", "crashed", "killed", "inconsistent"):
            flags.append(f"{verdict.upper()} ({(ours.get('reason') or '')[:120]})")
        elif verdict != workload.expect:
            flags.append(f"UNEXPECTED verdict (expected {workload.expect})")
        if verdict == "sat" and not ours.get("reverified", False):
            flags.append("SAT WITNESS NOT RE-VERIFIED")
    target = TARGET_SECONDS.get(workload.name)
    if target is not None and _solved(ours) and ours_s is not None and ours_s > target:
        flags.append(f"OVER target ({target:g} s)")
    if workload.role == "scale" and (ours.get("peak_mb") or 0) > TARGET_MB:
        flags.append(f"OVER memory target ({TARGET_MB:g} MB)")
    peer_rows: dict[str, dict[str, Any]] = {}
    for tool, record in peers.items():
        peer_rows[tool] = {"verdict": record.get("verdict"), "seconds": record.get("seconds"),
                           "text": _peer_text(record, args.peer_timeout),
                           "peak_mb": record.get("peak_mb"),
                           "reverified": record.get("reverified")}
        if _solved(ours) and _solved(record) and record.get("verdict") != verdict:
            flags.append(f"DISAGREE: {tool} says {record.get('verdict')}")
        if record.get("reverified") is False:
            flags.append(f"{tool} model rejected by the verifier")
        killed_in = str(record.get("killed_in") or "")
        if killed_in and not killed_in.startswith(("z3 check", "cvc5 checkSat")):
            flags.append(f"{tool} timed out before solving (in {killed_in.split(' (')[0]})")
    times = [t for t in ours.get("repeat_seconds", []) if t is not None]
    if len(times) > 1 and _solved(ours):
        flags.append(f"median of {len(times)} runs ({_fmt_seconds(min(times))} to "
                     f"{_fmt_seconds(max(times))})")
    ratio = None
    z3_row = peers.get("z3")
    if _solved(ours) and ours_s and _solved(z3_row) and z3_row is not None:
        ratio = z3_row["seconds"] / ours_s
    return {
        "workload": workload.name,
        "role": workload.role,
        "group": workload.group,
        "expect": workload.expect,
        "verdict": "skipped" if skipped else verdict,
        "samples": ours.get("samples"),
        "smtgrad_seconds": ours_s if _solved(ours) else None,
        "smtgrad_text": "—" if skipped or ours_s is None else (
            _fmt_seconds(ours_s) if _solved(ours) else f"{verdict} ({_fmt_seconds(ours_s)})"),
        "smtgrad_peak_mb": ours.get("peak_mb"),
        "witness_bits": ours.get("witness_bits"),
        "method": ours.get("method"),
        "target_seconds": target,
        "peers": peer_rows,
        "ratio_vs_z3": ratio,
        "flags": flags,
        "no_peer": "not run" if workload.peers else "n/a",
        "axis": workload.axis,
        "note": workload.note,
    }


def _bits_text(row: dict[str, Any]) -> str:
    bits = row.get("witness_bits")
    return f"{bits['numerator_bits']} / {bits['denominator_bits']}" if bits else "—"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


SCALE_COLUMNS = ["workload", "verdict", "smtgrad", "peak MB", "witness bits (num / den)",
                 "direct z3", "cvc5", "notes"]
REGRESSION_COLUMNS = ["workload", "verdict", "smtgrad", "peak MB", "direct z3", "notes"]


def _cells(row: dict[str, Any], columns: list[str]) -> list[str]:
    verdict = row["verdict"]
    if verdict in ("sat", "unsat") and row.get("samples") and row["group"] == "minimal":
        verdict = f"{verdict} (M={row['samples']})"
    values = {
        "workload": row["workload"], "verdict": verdict, "smtgrad": row["smtgrad_text"],
        "peak MB": _mb(row.get("smtgrad_peak_mb")), "witness bits (num / den)": _bits_text(row),
        "direct z3": row["peers"].get("z3", {}).get("text", row.get("no_peer", "not run")),
        "cvc5": row["peers"].get("cvc5", {}).get("text", row.get("no_peer", "not run")),
        "notes": "; ".join(row["flags"]),
    }
    return [values[column] for column in columns]


def _tables(rows: list[dict[str, Any]]) -> list[tuple[str, list[str], list[dict[str, Any]]]]:
    scale = [r for r in rows if r["role"] == "scale"]
    regression = [r for r in rows if r["role"] != "scale"]
    return [(title, columns, part) for title, columns, part in (
        ("Scale rows (the targets)", SCALE_COLUMNS, scale),
        ("Regression rows (millisecond rows of the first benchmark; not targets)",
         REGRESSION_COLUMNS, regression)) if part]


def print_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for title, columns, part in _tables(rows):
            print(title)
            print(" | ".join(columns))
            for row in part:
                print(" | ".join(_cells(row, columns)))
        return
    console = Console(width=220)
    for title, columns, part in _tables(rows):
        table = Table(title=title)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in part:
            style = "red" if any(flag.split()[0] in FLAG_WORDS for flag in row["flags"]) else None
            table.add_row(*_cells(row, columns), style=style)
        console.print(table)


# ----------------------------------------------------------------------------------------
# Growth: least-squares slopes of log time against log M and log width.


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x); None for fewer than 2 distinct x."""
    usable = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in usable}) < 2:
        return None
    mean_x = sum(x for x, _ in usable) / len(usable)
    mean_y = sum(y for _, y in usable) / len(usable)
    sxx = sum((x - mean_x) ** 2 for x, _ in usable)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in usable)
    return sxy / sxx


def _dedupe(rows: list[dict[str, Any]], axis: str) -> list[dict[str, Any]]:
    """One row per axis value (a scale row over a regression row of the same net and M)."""
    chosen: dict[Any, dict[str, Any]] = {}
    for row in rows:
        x = row["axis"][axis]
        if x not in chosen or (row["role"] == "scale" and chosen[x]["role"] != "scale"):
            chosen[x] = row
    return [chosen[x] for x in sorted(chosen)]


def _series(rows: list[dict[str, Any]], axis: str, m: int = WIDTH_SERIES_M
            ) -> list[dict[str, Any]]:
    """The 1-1-1 rows by M (axis "M"), or the 1-k-1 rows at this M by width."""
    if axis == "M":
        chosen = [r for r in rows if r["axis"].get("net") == "1-1-1" and "M" in r["axis"]]
    else:
        chosen = [r for r in rows if r["axis"].get("depth") == 1 and "width" in r["axis"]
                  and r["axis"].get("M") == m]
    return _dedupe(chosen, axis)


def growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for axis, label, tail_from in (("M", "time vs M (1-1-1)", 1000),
                                   ("width", f"time vs width (1-k-1, M = {WIDTH_SERIES_M})", 8)):
        series = _series(rows, axis)
        points = [(float(r["axis"][axis]), float(r["smtgrad_seconds"])) for r in series
                  if r["smtgrad_seconds"] is not None]
        tail = [(x, y) for x, y in points if x >= tail_from]
        result[axis] = {
            "label": label, "slope": fit_slope(points), "points": points,
            "unsolved": [r["axis"][axis] for r in series if r["smtgrad_seconds"] is None],
            "tail_from": tail_from, "tail_slope": fit_slope(tail), "tail_points": len(tail),
        }
    return result


def _slope_text(fit: dict[str, Any]) -> str:
    if fit["slope"] is None:
        return f"{fit['label']}: not enough solved points"
    xs = [x for x, _ in fit["points"]]
    text = (f"{fit['label']}: slope {fit['slope']:.2f} over {len(xs)} points "
            f"({min(xs):g} to {max(xs):g})")
    if fit["tail_slope"] is not None:
        text += f"; {fit['tail_slope']:.2f} over the {fit['tail_points']} points from " \
                f"{fit['tail_from']:g}"
    if fit["unsolved"]:
        text += f"; unanswered (left out): {', '.join(f'{x:g}' for x in fit['unsolved'])}"
    return text


# ----------------------------------------------------------------------------------------
# Markdown and plot.


def _short(function: str) -> str:
    if function.startswith("~:0(<"):  # a built-in: "~:0(<built-in method len>)"
        return "<" + function[5:-2].replace("built-in method ", "") + ">"
    return function.replace("smtgrad/", "")


def _where_time_goes(raw: list[dict[str, Any]], detail_above: float) -> list[str]:
    profiled_rows = [(entry["workload"], entry["smtgrad"]["profiled_run"]) for entry in raw
                     if ((entry.get("smtgrad") or {}).get("profiled_run") or {}).get("profile")]
    if not profiled_rows:
        return []
    lines = ["One more run of smtgrad per scale row under cProfile (which slows it down). "
             "Imports: modules loaded lazily inside the solve (python-flint, sympy, ...).", "",
             "| workload | profiled run | imports inside the solve | heaviest functions by "
             "own time (s) |", "|---|---|---|---|"]
    for name, profiled in profiled_rows:
        profile = profiled["profile"]
        top = ", ".join(f"`{_short(item['function'])}` {item['own_seconds']:.3f}"
                        for item in profile["by_own_time"][:3])
        lines.append(f"| {name} | {profiled.get('verdict')} "
                     f"{_fmt_seconds(profiled.get('seconds'))} | "
                     f"{profile.get('import_seconds', 0):.3f} s | {top} |")
    lines.append("")
    for name, profiled in profiled_rows:
        if profiled.get("verdict") in ("sat", "unsat") and \
                (profiled.get("seconds") or 0) <= detail_above:
            continue
        profile = profiled["profile"]
        lines += [f"**{name}** — profiled run: {profiled.get('verdict')} in "
                  f"{_fmt_seconds(profiled.get('seconds'))} (cProfile adds overhead); "
                  f"attempts: " + "; ".join(
                      f"M={a['samples']} {a['verdict']} by {a['method']} "
                      f"{a['seconds']:.3f} s" + (f" ({a['detail'][:80]})" if a.get("detail")
                                                else "")
                      for a in (profiled.get("attempts") or [])), "",
                  "| function | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
        for item in profile["by_own_time"][:8]:
            lines.append(f"| `{item['function']}` | {item['calls']} | {item['own_seconds']:.3f} "
                         f"| {item['cumulative_seconds']:.3f} |")
        lines.append("")
    return lines


def _included(name: str, title: str, command: str) -> list[str]:
    path = HERE / name
    if not path.exists():
        return [f"### {title}", "", f"`{command}` (not measured in this run; no "
                f"bench/{name} yet).", ""]
    stamp = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc)
    return [f"### {title}", "", f"Measured separately by `{command}` (bench/{name}, written "
            f"{stamp:%Y-%m-%d %H:%M} UTC), included as it stands:", "",
            path.read_text().strip(), ""]


def markdown(rows: list[dict[str, Any]], raw: list[dict[str, Any]], info: dict[str, Any],
             help_info: dict[str, Any], fits: dict[str, Any], args: argparse.Namespace) -> str:
    loads = [float(m["loadavg_1min_before"]) for entry in raw for m in _measurements(entry)
             if m.get("loadavg_1min_before") is not None]
    lines = [
        "# smtgrad benchmark",
        "",
        f"Measured {info['date']} on {info['hostname']}: {info['cpu']} ({info['cores']} cores"
        f"{', ' + info['memory'] + ' RAM' if info.get('memory') else ''}), "
        f"{info['platform']}, Python {info['python']}, z3 {info['z3']}, cvc5 {info['cvc5']}, "
        f"python-flint {info['python-flint']}, smtgrad {info['smtgrad']} "
        f"(git {info['git_commit']}"
        f"{', with uncommitted changes in smtgrad/' if info['smtgrad_tree_dirty'] else ''}"
        + (f"; every worker imported one snapshot of smtgrad/, sha256 "
           f"{info['code']['sha256']}" if info.get("code", {}).get("snapshot") else "")
        + ").",
        "",
        f"1-minute load average: {info['loadavg_at_start'][0]:.2f} at the start"
        + (f", {min(loads):.2f} to {max(loads):.2f} before the measurements" if loads else "")
        + f", {info.get('loadavg_at_end', [float('nan')])[0]:.2f} at the end, on "
        f"{info['cores']} cores (a shared machine: other work inflates times; each "
        "measurement's load is in results.json).",
        "",
        f"Command: `{args.command}`. smtgrad timeout {args.timeout:g} s, peer timeout "
        f"{args.peer_timeout:g} s (a peer that does not stop is killed "
        f"{PEER_GRACE:g} s later and counts as a timeout). Every measurement in a fresh "
        "process; times from the parsed spec to the answer (smtgrad: the whole portfolio "
        "and the exact verification; peers: building the formula, for cvc5 its SMT-LIB "
        f"export and parse, and the check; z3 capped at {PEER_MEMORY_MB} MB by its "
        f"`memory_max_size`), imports excluded; the median of {args.repeats} runs "
        f"where smtgrad answers in under {REPEAT_BELOW:g} s. Peak MB: {MEMORY_METHOD}. "
        "Witness bits: bit length of the largest numerator / denominator in the witness.",
        "",
        "Peers: `bench/baseline.py`, the direct z3 encoding (targets as unknowns, `If` "
        "terms for activations and derivatives, `Distinct` inputs, plain `z3.Solver()`), and "
        "cvc5 on the same formula (z3's `to_smt2()`, read by `cvc5.InputParser`, logic "
        "QF_NRA, `nl-cov`). Their sat models are checked with smtgrad's exact verifier.",
        "",
    ]
    for title, columns, part in _tables(rows):
        lines += [f"## {title}", ""]
        if title.startswith("Regression"):
            lines += ["Answered in milliseconds by smtgrad: these rows measure the interpreter "
                      "more than the method and are kept to catch regressions (verdicts, "
                      "gross slow-downs); the ratio to the direct encoding is in results.json "
                      "(`ratio_vs_z3`), not a target.", ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        for row in part:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row, columns))
                         + " |")
        lines.append("")
        if title.startswith("Scale"):
            lines += ["### Growth (least-squares slope of log time against log M / log width)",
                      "", *[f"- {_slope_text(fit)}" for fit in fits.values()], "",
                      "![time against M and width](results.png)", ""]
            where = _where_time_goes(raw, PROFILE_DETAIL_ABOVE)
            if where:
                lines += ["### Where the time goes", "", *where]
    lines += _included("landscape.md", "Fixed-data rows", "python bench/landscape.py")
    lines += _included("smooth.md", "Smooth family", "python bench/smooth.py")
    lines += ["### The CLI", "",
              f"`smtgrad --help`: {help_info['best_seconds']:.3f} s wall (best of 5)."]
    for cli in help_info.get("cli", []):
        lines.append(f"`{cli['command']}` (imports included): {cli['best_seconds']:.3f} s "
                     f"wall (best of 3; verdicts {', '.join(cli['verdicts'])}).")
    return "\n".join(lines) + "\n"


def _measurements(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["smtgrad"], *entry.get("peers", {}).values()]


def plot(rows: list[dict[str, Any]], fits: dict[str, Any], path: Path,
         peer_timeout: float, smtgrad_timeout: float) -> str:
    """Log-log: time against M (1-1-1) and against width (1-k-1, M = 64 and 16)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: skipped the plot (pip install matplotlib)"
    panels: list[tuple[str, list[tuple[int | None, list[dict[str, Any]]]], str, str]] = [
        ("M", [(None, _series(rows, "M"))], "samples M", "1-1-1 ReLU, MSE, generic"),
              ("width", [(m, _series(rows, "width", m)) for m in sorted(SCALE_MS, reverse=True)],
               "hidden units k", "1-k-1 ReLU, MSE, generic")]
    if not any(points for _, groups, _, _ in panels for _, points in groups):
        return "no 1-1-1 or 1-k-1 rows in this run: skipped the plot"
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = {"z3": "tab:red", "cvc5": "tab:green"}
    for ax, (axis, groups, xlabel, title) in zip(axes, panels, strict=True):
        for m, points in groups:
            if not points:
                continue
            suffix = "" if m is None else f", M={m}"
            dashed = m is not None and m != WIDTH_SERIES_M
            solved = [(r["axis"][axis], r["smtgrad_seconds"]) for r in points
                      if r["smtgrad_seconds"] is not None]
            if solved:
                ax.plot(*zip(*solved, strict=True), marker="o", color="tab:blue",
                        linestyle="--" if dashed else "-", alpha=0.6 if dashed else 1.0,
                        label=f"smtgrad{suffix}")
            open_rows = [r["axis"][axis] for r in points
                         if r["smtgrad_seconds"] is None and r["verdict"] != "skipped"]
            if open_rows:
                ax.scatter(open_rows, [smtgrad_timeout] * len(open_rows), marker="x", s=70,
                           color="tab:blue", label=f"smtgrad no answer (>{smtgrad_timeout:g} s)"
                           f"{suffix}")
            for tool, colour in colours.items():
                answered = [(r["axis"][axis], r["peers"][tool]["seconds"]) for r in points
                            if tool in r["peers"] and r["peers"][tool]["verdict"] in
                            ("sat", "unsat")]
                timed = [r["axis"][axis] for r in points if tool in r["peers"]
                         and r["peers"][tool]["verdict"] not in ("sat", "unsat", "n/a")]
                if answered:
                    ax.plot(*zip(*answered, strict=True), marker="s", color=colour,
                            linestyle=":", label=f"{PEER_NAMES[tool]}{suffix}")
                if timed:
                    ax.scatter(timed, [peer_timeout * (1.08 if tool == "cvc5" else 1.0)]
                               * len(timed), marker="^", facecolors="none",
                               edgecolors=colour, s=60,
                               label=f"{PEER_NAMES[tool]}: timeout (>{peer_timeout:g} s)"
                               f"{suffix}")
        fit = fits.get(axis)
        if fit and fit["slope"] is not None:
            xs = [x for x, _ in fit["points"]]
            mean_x = sum(math.log(x) for x in xs) / len(xs)
            mean_y = sum(math.log(y) for _, y in fit["points"]) / len(xs)
            line = [(x, math.exp(mean_y + fit["slope"] * (math.log(x) - mean_x)))
                    for x in (min(xs), max(xs))]
            ax.plot(*zip(*line, strict=True), color="grey", linestyle="-.", linewidth=1,
                    label=f"fit: slope {fit['slope']:.2f}"
                    + ("" if axis == "M" else f" (M={WIDTH_SERIES_M})"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds")
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"wrote {path}"


# ----------------------------------------------------------------------------------------
# Selection, estimate, checkpoint.


def select(args: argparse.Namespace) -> list[Workload]:
    workloads = all_workloads()
    if args.quick:
        workloads = [w for w in workloads if w.quick]
    if args.only:
        patterns = [p.strip() for p in args.only.split(",") if p.strip()]
        workloads = [w for w in workloads
                     if any(fnmatch.fnmatch(w.name, p) or p in (w.group, w.role)
                            for p in patterns)]
        if not workloads:
            names = ", ".join(w.name for w in all_workloads())
            raise SystemExit(f"--only {args.only!r} matches no workload; known: {names}")
    return workloads


def estimate(workloads: list[Workload], args: argparse.Namespace,
             previous: dict[str, Any]) -> tuple[float, float]:
    """(expected, at most) seconds of the run: from a previous results.json where it has
    the row, else smtgrad ~2 s and every peer at its timeout."""
    expected = worst = 0.0
    for workload in workloads:
        before = previous.get(workload.name, {})
        ours = before.get("smtgrad_seconds")
        ours = 2.0 if ours is None else ours
        expected += STARTUP_SECONDS + ours * (args.repeats if ours < REPEAT_BELOW else 1)
        worst += STARTUP_SECONDS + args.timeout
        if workload.role == "scale" and not args.no_profile and ours >= args.profile_above:
            expected += STARTUP_SECONDS + 2 * ours
            worst += STARTUP_SECONDS + args.timeout
        if args.no_baseline:
            continue
        for tool in workload.peers:
            seconds = (before.get("peers", {}).get(tool) or {}).get("seconds")
            seconds = args.peer_timeout if seconds is None else min(seconds, args.peer_timeout)
            expected += STARTUP_SECONDS + seconds
            worst += STARTUP_SECONDS + args.peer_timeout + PEER_GRACE
    return expected, worst


def row_key(workload: Workload, args: argparse.Namespace, code: str, peer_code: str) -> str:
    settings = [workload.yaml, workload.minimal, workload.samples, list(workload.peers),
                args.timeout, args.peer_timeout, args.no_baseline, args.no_profile,
                args.profile_above, args.repeats, code, peer_code]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:20]


def load_checkpoint(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
            entry = json.loads(line)
            rows[entry["key"]] = entry
    return rows


def render_only(args: argparse.Namespace) -> int:
    """Rewrite results.md / results.png from a results.json (after a change of layout)."""
    out = args.out or HERE
    document = json.loads((out / "results.json").read_text())
    settings = document["settings"]
    args.command = document["command"]
    args.timeout, args.peer_timeout = settings["timeout"], settings["peer_timeout"]
    args.repeats = settings["repeats"]
    by_name = {w.name: w for w in all_workloads()}
    rows = [summarise(by_name[entry["workload"]], entry["smtgrad"], entry["peers"], args)
            if entry["workload"] in by_name else row
            for entry, row in zip(document["measurements"], document["rows"], strict=True)]
    fits = growth(rows)
    document.update(rows=rows, growth=fits)
    (out / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(rows, document["measurements"],
                                             document["machine"], document["help"], fits, args))
    print(plot(rows, fits, out / "results.png", args.peer_timeout, args.timeout))
    print(f"rewrote {out / 'results.md'} from {out / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="smtgrad timeout (s)")
    parser.add_argument("--peer-timeout", "--baseline-timeout", dest="peer_timeout",
                        type=float, default=30.0,
                        help="timeout of each peer (direct z3, cvc5), s (default 30)")
    parser.add_argument("--only", help="workload names, globs, groups or roles (scale, "
                        "regression), comma separated")
    parser.add_argument("--no-baseline", action="store_true", help="skip the peers")
    parser.add_argument("--quick", action="store_true", help="a small subset of workloads")
    parser.add_argument("--out", type=Path, help="directory for results.{json,md,png}")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore rows checkpointed by an interrupted run")
    parser.add_argument("--no-profile", action="store_true",
                        help="no profiled run of slow or unanswered scale rows")
    parser.add_argument("--profile-above", type=float, default=0.0,
                        help="profile the scale rows where smtgrad takes longer than this "
                             "(s; default 0: every scale row)")
    parser.add_argument("--repeats", type=int, default=REPEATS,
                        help=f"runs of a row answered in under {REPEAT_BELOW:g} s (median; "
                             f"default {REPEATS})")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="import the live smtgrad/ tree in every worker instead of a copy "
                             "frozen at the start of the run")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite results.md and results.png from the "
                             "results.json in --out (default bench/)")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--worker-profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker[0], args.worker[1], args.timeout, args.worker_out,
                    args.worker_profile)
        return 0

    args.command = "python bench/run.py" + (" " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])).rstrip()
    if args.render_only:
        return render_only(args)
    workloads = select(args)
    partial = bool(args.only or args.quick)
    args.out_is_scratch = args.out is not None or partial
    out = args.out or (HERE / "results" if partial else HERE)
    args.out = out
    out.mkdir(parents=True, exist_ok=True)
    global WORKER_ENV
    info = machine()
    snapshot_dir = None
    if args.no_snapshot:
        info["code"] = {"snapshot": False, "sha256": tree_sha(HERE.parent / "smtgrad")}
    else:
        snapshot_dir, info["code"] = snapshot_code()
        WORKER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(snapshot_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    peer_code = hashlib.sha256((HERE / "baseline.py").read_bytes()).hexdigest()[:16]
    checkpoint = out / "results.partial.jsonl"
    if args.fresh:
        checkpoint.unlink(missing_ok=True)
    saved = load_checkpoint(checkpoint)
    keys = {w.name: row_key(w, args, info["code"]["sha256"], peer_code) for w in workloads}
    reused = [w for w in workloads if keys[w.name] in saved]
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        for row in json.loads((out / "results.json").read_text())["rows"]:
            previous[row["workload"]] = row
    expected, worst = estimate([w for w in workloads if w not in reused], args, previous)
    print(f"# {len(workloads)} workloads ({sum(w.role == 'scale' for w in workloads)} scale, "
          f"{sum(w.role != 'scale' for w in workloads)} regression); {info['cpu']}, "
          f"{info['cores']} cores, load {info['loadavg_at_start'][0]:.2f}; z3 {info['z3']}, "
          f"cvc5 {info['cvc5']}; writing to {out}", file=sys.stderr)
    if reused:
        print(f"# resuming: {len(reused)} rows measured by an interrupted run with the same "
              f"code and settings are reused from {checkpoint} (--fresh to re-measure)",
              file=sys.stderr)
    print(f"# expected duration: about {expected / 60:.0f} min (at most {worst / 60:.0f} min "
          f"if every measurement runs into its timeout)", file=sys.stderr, flush=True)

    lock = out / "results.lock"
    try:
        other = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        other = 0
    if other and other != os.getpid() and Path(f"/proc/{other}").exists():
        raise SystemExit(f"another bench run (pid {other}) writes to {out}; wait for it, or "
                         "use --out DIR")
    lock.write_text(str(os.getpid()))

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    rows, raw = [], []
    try:
        help_info: dict[str, Any] = help_time()
        help_info["cli"] = [cli_time(w) for w in workloads if w.name in CLI_WORKLOADS]
        for number, workload in enumerate(workloads, 1):
            key = keys[workload.name]
            if key in saved:
                ours, peers = saved[key]["smtgrad"], saved[key]["peers"]
            else:
                def log(text: str, name: str = workload.name, number: int = number) -> None:
                    print(f"# [{number}/{len(workloads)} {time.perf_counter() - started:5.0f} s]"
                          f" {name}: {text}", file=sys.stderr, flush=True)

                ours, peers = run_row(workload, args, log)
                with checkpoint.open("a") as file:
                    file.write(json.dumps({"key": key, "workload": workload.name,
                                           "smtgrad": ours, "peers": peers},
                                          default=str) + "\n")
                    file.flush()
                    os.fsync(file.fileno())
            rows.append(summarise(workload, ours, peers, args))
            raw.append({"workload": workload.name, "role": workload.role, "yaml": workload.yaml,
                        "minimal": workload.minimal, "smtgrad": ours, "peers": peers,
                        "resumed": key in saved})
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(raw)} rows are checkpointed in {checkpoint}; the same "
              "command resumes the run", file=sys.stderr)
        return 130
    finally:
        if snapshot_dir is not None:
            shutil.rmtree(snapshot_dir, ignore_errors=True)
        lock.unlink(missing_ok=True)

    info["loadavg_at_end"] = os.getloadavg()
    info["run_seconds"] = time.perf_counter() - started
    fits = growth(rows)
    print_table(rows, info)
    for fit in fits.values():
        print(_slope_text(fit))
    document = {
        "command": args.command,
        "machine": info,
        "settings": {"timeout": args.timeout, "peer_timeout": args.peer_timeout,
                     "smtgrad_grace": SMTGRAD_GRACE, "peer_grace": PEER_GRACE,
                     "repeats": args.repeats, "repeat_below": REPEAT_BELOW,
                     "memory": MEMORY_METHOD, "targets": {"seconds": TARGET_SECONDS,
                                                          "peak_mb": TARGET_MB},
                     "timing": "perf_counter inside a fresh worker process, from the parsed "
                     "spec (imports and parsing excluded)"},
        "help": help_info,
        "growth": fits,
        "rows": rows,
        "measurements": raw,
    }
    (out / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(rows, raw, info, help_info, fits, args))
    print(plot(rows, fits, out / "results.png", args.peer_timeout, args.timeout))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'} "
          f"({info['run_seconds'] / 60:.1f} min)")
    checkpoint.unlink(missing_ok=True)
    problems = [row["workload"] for row in rows
                if any(flag.split()[0] in FLAG_WORDS for flag in row["flags"])]
    if problems:
        print(f"flagged: {', '.join(problems)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
