"""Benchmark: smtgrad against the hand-written Z3 baseline, side by side in one run.

    python bench/run.py [--timeout 30] [--baseline-timeout 60] [--only NAME[,NAME]]
                        [--no-baseline] [--quick] [--out DIR]

Every measurement (one workload, one tool) runs in a fresh Python process, so
that no solver state, term cache or memory is shared between measurements:

* time: ``time.perf_counter`` inside the worker around the whole answer, after
  the imports and after parsing the spec, which both tools receive parsed
  (smtgrad: ``solve``, i.e. lemmas, fast path, encoding, solving and exact
  verification; baseline: building the z3 terms + ``check()``). Import and
  parse times are recorded separately in the JSON;
* peak memory: the worker's peak resident set size, from ``os.wait4`` on that
  one child (``ru_maxrss``), so it includes the interpreter and imported
  modules (about 100 MB of the figure);
* timeouts: the tool's own timeout, plus a hard kill of the worker at
  timeout + 30 s in case a solver ignores its limit.

A full run writes bench/results.json, bench/results.md and (if matplotlib is
installed) bench/results.png; runs restricted with --only or --quick write to
bench/results/ (git-ignored) unless --out is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fnmatch
import json
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

from workloads import Workload, all_workloads  # noqa: E402

HARD_KILL_GRACE = 30.0
#: Also timed through the CLI, imports included (issue 4: "M = 32 ... under 1 s end to end").
CLI_WORKLOAD = "seed-generic-M32"
#: Environment of the worker processes (PYTHONPATH points at the code snapshot, if any).
WORKER_ENV: dict[str, str] | None = None
SMOOTH_UNSUPPORTED = re.compile(r"smooth|not piecewise linear|unsupported|not supported", re.I)
MEMORY_METHOD = ("peak RSS of the fresh worker process (os.wait4 ru_maxrss of that child; "
                 "includes the Python interpreter and imports)")


# ----------------------------------------------------------------------------------------
# Workers (run in a fresh process each).


def _worker_smtgrad(workload: Workload, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    # The z3 backend is imported lazily by smtgrad; load it before the clock starts, and
    # first, as the baseline worker imports z3 before its own code (the order decides
    # which code is still in the CPU caches when the clock starts; measured: about 5 %
    # of a millisecond-long answer).
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
    spec = parse_spec(workload.yaml, f"<bench:{workload.name}>")
    record["parse_seconds"] = time.perf_counter() - parse_start
    start = time.perf_counter()
    try:
        options = SolveOptions(minimal=workload.minimal, timeout=timeout)
        result = solve(spec, options)
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
    return record


def _worker_baseline(workload: Workload, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    import z3
    from baseline import BaselineUnsupported, solve_baseline_model, solve_baseline_range

    from smtgrad.spec import parse_spec

    imports = time.perf_counter() - started
    record: dict[str, Any] = {"tool": "baseline", "import_seconds": imports,
                              "solver": f"z3 {z3.get_version_string()}"}
    spec = parse_spec(workload.yaml, f"<bench:{workload.name}>")
    try:
        if workload.minimal:
            verdict, seconds, samples = solve_baseline_range(
                spec, workload.min_samples, workload.samples, timeout)
            record.update(verdict=verdict, seconds=seconds, samples=samples)
            if verdict == "unknown":
                record["reason"] = ("timeout" if seconds >= 0.95 * timeout
                                    else f"z3 unknown at M={samples}")
            return record
        verdict, seconds, extra = solve_baseline_model(spec, workload.samples, timeout)
    except BaselineUnsupported as error:
        record.update(verdict="n/a", seconds=None, reason=str(error))
        return record
    record.update(verdict=verdict, seconds=seconds, samples=workload.samples)
    if verdict == "unknown":
        record["reason"] = str(extra)
    if verdict == "sat":
        record["reverified"] = _verify_baseline(spec, extra)
    return record


def _verify_baseline(spec: Any, model: dict[str, Any]) -> Any:
    """Check the baseline's model with smtgrad's exact verifier (keeps the baseline honest)."""
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


def worker_main(tool: str, name: str, timeout: float, out: str) -> None:
    workload = _find(name)
    if tool == "smtgrad":
        record = _worker_smtgrad(workload, timeout)
    else:
        record = _worker_baseline(workload, timeout)
    Path(out).write_text(json.dumps(record, default=str))


def _find(name: str) -> Workload:
    for workload in all_workloads():
        if workload.name == name:
            return workload
    raise SystemExit(f"unknown workload {name!r}")


# ----------------------------------------------------------------------------------------
# Parent: one fresh process per measurement, with a hard kill and per-child rusage.


def measure(tool: str, workload: Workload, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh process; add peak memory and wall time."""
    handle, out = tempfile.mkstemp(prefix=f"smtgrad-bench-{tool}-", suffix=".json")
    os.close(handle)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, workload.name,
               "--timeout", str(timeout), "--worker-out", out]
    load_before = os.getloadavg()[0]
    wall_start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, env=WORKER_ENV)
    captured: list[bytes] = []
    reader = threading.Thread(target=lambda: captured.append(process.stdout.read()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    hard_limit = wall_start + timeout + HARD_KILL_GRACE
    killed = False
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
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - wall_start
    reader.join(2)
    try:
        record: dict[str, Any] = json.loads(Path(out).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        record = {}
    finally:
        Path(out).unlink(missing_ok=True)
    if not record:
        output = b"".join(captured).decode(errors="replace")[-2000:]
        record = {"tool": tool, "verdict": "killed" if killed else "crashed",
                  "seconds": None, "reason": (f"killed after {wall:.1f} s (hard limit)"
                                              if killed else f"exit {process.returncode}: "
                                              f"{output}")}
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
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  env=WORKER_ENV, timeout=120)
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
    return {"command": " ".join(["smtgrad", "--help"]), "best_seconds": min(times),
            "all_seconds": times}


# ----------------------------------------------------------------------------------------
# Code snapshot: the package is installed editable and other people edit it while a
# run takes minutes, so by default every worker imports one frozen copy of smtgrad/.


def snapshot_code() -> tuple[Path, dict[str, Any]]:
    """Copy smtgrad/ to a temporary directory; return it and a description."""
    import hashlib

    source = HERE.parent / "smtgrad"
    target = Path(tempfile.mkdtemp(prefix="smtgrad-bench-code-"))
    shutil.copytree(source, target / "smtgrad",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # Byte-compile, as pip does on install: start-up times then match a user's machine
    # even where PYTHONDONTWRITEBYTECODE is set.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(target / "smtgrad")],
                   check=True)
    digest = hashlib.sha256()
    for file in sorted((target / "smtgrad").rglob("*.py")):
        digest.update(str(file.relative_to(target)).encode())
        digest.update(file.read_bytes())
    check = subprocess.run([sys.executable, "-c", "import smtgrad, smtgrad.engine, "
                            "smtgrad.cli; print(smtgrad.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(target)}, cwd=target,
                           capture_output=True, text=True, check=False)
    if check.returncode != 0 or not check.stdout.strip().startswith(str(target)):
        raise SystemExit(f"the snapshot of smtgrad/ does not import cleanly (someone may be "
                         f"mid-edit; retry, or use --no-snapshot):\n{check.stderr[-2000:]}")
    return target, {"snapshot": True, "sha256": digest.hexdigest()[:16],
                    "copied_from": str(source)}


# ----------------------------------------------------------------------------------------
# Machine information.


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import z3

        z3_version = z3.get_version_string()
    except ImportError:
        z3_version = "not installed"
    try:
        from importlib.metadata import version

        smtgrad_version = version("smtgrad")
    except Exception:
        smtgrad_version = "unknown"
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "smtgrad")
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "z3": z3_version,
        "smtgrad": smtgrad_version,
        "git_commit": commit,
        "smtgrad_tree_dirty": bool(dirty),
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
# Rows, flags and formatting.


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 10:
        return f"{value:.3f}"
    return f"{value:.1f}"


def _solved(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("verdict") in ("sat", "unsat")


#: Rows where both tools answer in under REPEAT_BELOW seconds are measured REPEATS times
#: each (fresh processes, the tools alternating) and the medians are reported: single runs
#: of a few milliseconds vary by about +-30 % on a shared machine, for both tools.
REPEAT_BELOW = 1.0
REPEATS = 9


def repeat_if_fast(workload: Workload, ours: dict[str, Any], base: dict[str, Any] | None,
                   timeout: float, baseline_timeout: float) -> None:
    """Re-measure a row whose two answers were both fast; medians replace the seconds."""
    if base is None or not all(_solved(record) and record.get("seconds") is not None
                               and record["seconds"] < REPEAT_BELOW for record in (ours, base)):
        return
    runs = {"smtgrad": [ours], "baseline": [base]}
    for _ in range(REPEATS - 1):
        runs["smtgrad"].append(measure("smtgrad", workload, timeout))
        runs["baseline"].append(measure("baseline", workload, baseline_timeout))
    for record, tool in ((ours, "smtgrad"), (base, "baseline")):
        measured = runs[tool]
        record["repeat_verdicts"] = [run.get("verdict") for run in measured]
        record["repeat_seconds"] = [run.get("seconds") for run in measured]
        if any(run.get("verdict") != record["verdict"] or run.get("seconds") is None
               for run in measured):
            record["verdict"] = "inconsistent"
            record["reason"] = f"repeated runs answered {record['repeat_verdicts']}"
            continue
        record["first_seconds"] = record["seconds"]
        record["seconds"] = statistics.median(record["repeat_seconds"])


def summarise(workload: Workload, ours: dict[str, Any], base: dict[str, Any] | None,
              timeout: float, baseline_timeout: float) -> dict[str, Any]:
    """One table row: verdicts, times, ratio and flags."""
    flags: list[str] = []
    skipped = False
    verdict = ours.get("verdict", "?")
    if workload.requires_smooth and (
            verdict == "error" or (verdict == "unknown"
                                   and SMOOTH_UNSUPPORTED.search(ours.get("reason") or ""))):
        skipped = True
        flags.append("skipped: installed smtgrad does not support smooth activations yet "
                     f"({(ours.get('reason') or '').splitlines()[0][:90]})")
    ours_s = ours.get("seconds")
    if not skipped:
        if verdict == "unknown":
            flags.append(f"UNKNOWN ({(ours.get('reason') or '')[:80]})")
        elif verdict in ("error", "crashed", "killed"):
            flags.append(f"{verdict.upper()} ({(ours.get('reason') or '')[:120]})")
        elif verdict != workload.expect:
            flags.append(f"UNEXPECTED verdict (expected {workload.expect})")
        if verdict == "sat" and not ours.get("reverified", False):
            flags.append("SAT WITNESS NOT RE-VERIFIED")
        if ours_s is not None and _solved(ours) and ours_s > timeout:
            flags.append(f"over {timeout:g} s")
    base_verdict = base.get("verdict") if base else None
    base_s = base.get("seconds") if base else None
    if base is None:
        base_text = "not run"
    elif base_verdict == "n/a":
        base_text = "n/a"
    elif base_verdict in ("sat", "unsat"):
        base_text = _fmt_seconds(base_s)
    elif (base_verdict == "unknown" and "timeout" in str(base.get("reason", "timeout"))) or \
            base_verdict == "killed":
        base_text = f"timeout >{baseline_timeout:g}"
    else:
        base_text = f"{base_verdict} ({_fmt_seconds(base_s)})"
    ratio: float | None = None
    ratio_text = "—"
    if not skipped and _solved(ours) and ours_s:
        if _solved(base) and base_s is not None:
            ratio = base_s / ours_s
            ratio_text = f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2g}x"
            if ratio < 100:
                flags.append("<100x vs baseline")
        elif base_text.startswith("timeout"):
            ratio = baseline_timeout / ours_s
            ratio_text = f">{ratio:,.0f}x"
            if ratio < 100:
                flags.append("<100x bound (baseline timed out, but at a short timeout)")
    if (_solved(ours) and _solved(base) and base_verdict != verdict):
        flags.append(f"DISAGREE: baseline says {base_verdict}")
    if base and base.get("reverified") is False:
        flags.append("baseline model rejected by the verifier")
    if (ratio is not None and base is not None and "repeat_seconds" in ours
            and "repeat_seconds" in base):
        pairs = [b / o for o, b in zip(ours["repeat_seconds"], base["repeat_seconds"],
                                       strict=True) if o]
        flags.append(f"median of {len(pairs)} runs each; run by run {min(pairs):,.0f}-"
                     f"{max(pairs):,.0f}x")
    return {
        "workload": workload.name,
        "group": workload.group,
        "expect": workload.expect,
        "verdict": "skipped" if skipped else verdict,
        "samples": ours.get("samples"),
        "smtgrad_seconds": ours_s,
        "smtgrad_text": "—" if skipped or ours_s is None else (
            _fmt_seconds(ours_s) if _solved(ours) else f"{verdict} ({_fmt_seconds(ours_s)})"),
        "baseline_verdict": base_verdict,
        "baseline_seconds": base_s,
        "baseline_text": base_text,
        "ratio": ratio,
        "ratio_text": ratio_text,
        "smtgrad_peak_mb": ours.get("peak_mb"),
        "baseline_peak_mb": base.get("peak_mb") if base else None,
        "flags": flags,
        "method": ours.get("method"),
        "axis": workload.axis,
        "note": workload.note,
    }


COLUMNS = ["workload", "verdict", "smtgrad s", "baseline", "baseline s", "ratio",
           "peak MB (smtgrad / baseline)", "notes"]


def _row_cells(row: dict[str, Any]) -> list[str]:
    verdict = row["verdict"]
    if verdict in ("sat", "unsat") and row.get("samples") and row["group"] == "minimal":
        verdict = f"{verdict} (M={row['samples']})"
    base_mb = row.get("baseline_peak_mb")
    ours_mb = row.get("smtgrad_peak_mb")
    memory = (f"{ours_mb:.0f}" if ours_mb is not None else "—") + " / " + (
        f"{base_mb:.0f}" if base_mb is not None else "—")
    return [row["workload"], verdict, row["smtgrad_text"], row["baseline_verdict"] or "—",
            row["baseline_text"], row["ratio_text"], memory, "; ".join(row["flags"])]


def print_table(rows: list[dict[str, Any]], info: dict[str, Any], help_info: dict[str, Any],
                args: argparse.Namespace) -> None:
    title = (f"smtgrad vs hand-written z3 baseline (timeouts {args.timeout:g} s / "
             f"{args.baseline_timeout:g} s)")
    caption = (f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, "
               f"z3 {info['z3']}; memory: {MEMORY_METHOD}; "
               f"smtgrad --help: {help_info['best_seconds']:.3f} s (best of 5)"
               + (f"; CLI end to end on {help_info['cli']['workload']}: "
                  f"{help_info['cli']['best_seconds']:.3f} s (best of 3)"
                  if "cli" in help_info else ""))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(" | ".join(COLUMNS))
        for row in rows:
            print(" | ".join(_row_cells(row)))
        print(caption)
        return
    table = Table(title=title, caption=caption)
    for column in COLUMNS:
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("smtgrad s", "baseline s", "ratio")
                         else "left")
    for row in rows:
        cells = _row_cells(row)
        style = "red" if any(flag.split()[0] in ("UNKNOWN", "ERROR", "CRASHED", "KILLED",
                                                 "UNEXPECTED", "DISAGREE", "SAT")
                             for flag in row["flags"]) else None
        table.add_row(*cells, style=style)
    Console(width=200).print(table)


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], help_info: dict[str, Any],
             args: argparse.Namespace) -> str:
    lines = [
        "# smtgrad benchmark",
        "",
        f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores"
        f"{', ' + info['memory'] + ' RAM' if info.get('memory') else ''}), "
        f"{info['platform']}, Python {info['python']}, z3 {info['z3']}, smtgrad "
        f"{info['smtgrad']} (git {info['git_commit']}"
        f"{', with uncommitted changes in smtgrad/' if info['smtgrad_tree_dirty'] else ''}"
        + (f"; every worker imported one snapshot of smtgrad/, sha256 "
           f"{info['code']['sha256']}" if info.get("code", {}).get("snapshot") else "")
        + ").",
        "",
        f"Command: `{args.command}`. smtgrad timeout {args.timeout:g} s, baseline timeout "
        f"{args.baseline_timeout:g} s. Times are seconds of one run (the median of "
        f"{REPEATS} runs per tool, each in a fresh process, where both tools answer in under "
        f"{REPEAT_BELOW:g} s), end to end in process "
        "from the parsed spec (smtgrad: lemmas + fast path + encoding + solving + exact "
        "verification; baseline: building the z3 terms + `check()`), imports and YAML parsing "
        "excluded for both. Ratio = baseline s / smtgrad s "
        "(\">X\" when the baseline timed out). Peak MB: " + MEMORY_METHOD + ".",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c in ("smtgrad s", "baseline s", "ratio") else "---"
                       for c in COLUMNS) + "|",
    ]
    for row in rows:
        cells = [cell.replace("|", "\\|") for cell in _row_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"`smtgrad --help`: {help_info['best_seconds']:.3f} s wall (best of 5, fresh process)."
        + (f" `{help_info['cli']['command']}` (the whole CLI, imports included): "
           f"{help_info['cli']['best_seconds']:.3f} s wall (best of 3, verdicts "
           f"{', '.join(help_info['cli']['verdicts'])})." if "cli" in help_info else ""),
        "",
        f"1-minute load average at the start: {info['loadavg_at_start'][0]:.2f} on "
        f"{info['cores']} cores (other work on the machine inflates times; each "
        "measurement's load is in results.json).",
        "",
        "Baseline: `bench/baseline.py`, the direct z3 encoding (targets as unknowns, `If` "
        "terms for activations and derivatives, `Distinct` inputs); its sat models at a fixed M "
        "are checked with smtgrad's exact verifier (results.json, baseline.reverified).",
        "",
    ]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, baseline_timeout: float,
         smtgrad_timeout: float) -> str:
    """Time against M (seed, generic) and against width (1 hidden layer); log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: skipped the plot (pip install matplotlib)"
    seed = sorted((r for r in rows if r["group"] == "seed-generic"), key=lambda r: r["axis"]["M"])
    width = [r for r in rows if r["group"] == "width"]
    if not seed and not width:
        return "no seed-generic or width workloads in this run: skipped the plot"
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))

    def series(ax: Any, points: list[tuple[float, dict[str, Any]]], label: str,
               marker: str, linestyle: str) -> None:
        xs = [x for x, _ in points]
        ours = [r["smtgrad_seconds"] if r["verdict"] in ("sat", "unsat") else None
                for _, r in points]
        ax.plot([x for x, y in zip(xs, ours, strict=True) if y], [y for y in ours if y],
                marker=marker, linestyle=linestyle, color="tab:blue",
                label=f"smtgrad{label}")
        solved = [(x, r["baseline_seconds"]) for x, r in points
                  if r["baseline_verdict"] in ("sat", "unsat")]
        timed = [x for x, r in points if r["baseline_text"].startswith("timeout")]
        unsolved = [x for x, r in points if r["verdict"] not in ("sat", "unsat", "skipped")]
        if unsolved:
            ax.scatter(unsolved, [smtgrad_timeout] * len(unsolved), marker="x", s=70,
                       color="tab:blue", label=f"smtgrad unknown (>{smtgrad_timeout:g} s){label}")
        if solved:
            ax.plot([x for x, _ in solved], [y for _, y in solved], marker=marker,
                    linestyle=linestyle, color="tab:red", label=f"baseline{label}")
        if timed:
            ax.scatter(timed, [baseline_timeout] * len(timed), marker="^", color="tab:red",
                       facecolors="none", s=70,
                       label=f"baseline timeout (>{baseline_timeout:g} s){label}")

    if seed:
        ax = axes[0]
        series(ax, [(r["axis"]["M"], r) for r in seed], "", "o", "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("samples M")
        ax.set_ylabel("seconds")
        ax.set_title("seed query (1-1-1 ReLU, MSE), generic")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    if width:
        ax = axes[1]
        for m, marker, linestyle in ((8, "o", "-"), (16, "s", "--")):
            points = sorted(((r["axis"]["width"], r) for r in width if r["axis"]["M"] == m),
                            key=lambda p: p[0])
            if points:
                series(ax, points, f", M={m}", marker, linestyle)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden units")
        ax.set_ylabel("seconds")
        ax.set_title("1 hidden ReLU layer, generic")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"wrote {path}"


# ----------------------------------------------------------------------------------------


def select(args: argparse.Namespace) -> list[Workload]:
    workloads = all_workloads()
    if args.quick:
        workloads = [w for w in workloads if w.quick]
    if args.only:
        patterns = [p.strip() for p in args.only.split(",") if p.strip()]
        workloads = [w for w in workloads
                     if any(fnmatch.fnmatch(w.name, p) or p == w.group for p in patterns)]
        if not workloads:
            names = ", ".join(w.name for w in all_workloads())
            raise SystemExit(f"--only {args.only!r} matches no workload; known: {names}")
    return workloads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="smtgrad timeout (s)")
    parser.add_argument("--baseline-timeout", type=float, default=60.0,
                        help="baseline timeout (s)")
    parser.add_argument("--only", help="workload names, globs or groups, comma separated")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    parser.add_argument("--quick", action="store_true", help="a small subset of workloads")
    parser.add_argument("--out", type=Path, help="directory for results.{json,md,png}")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="import the live smtgrad/ tree in every worker instead of a copy "
                             "frozen at the start of the run")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker[0], args.worker[1], args.timeout, args.worker_out)
        return 0

    args.command = "python bench/run.py" + (" " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])).rstrip()
    workloads = select(args)
    partial = bool(args.only or args.quick)
    out = args.out or (HERE / "results" if partial else HERE)
    out.mkdir(parents=True, exist_ok=True)
    global WORKER_ENV
    info = machine()
    snapshot_dir = None
    if args.no_snapshot:
        info["code"] = {"snapshot": False}
    else:
        snapshot_dir, info["code"] = snapshot_code()
        WORKER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(snapshot_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    print(f"# {len(workloads)} workloads; {info['cpu']}, {info['cores']} cores, "
          f"z3 {info['z3']}; writing to {out}", file=sys.stderr)

    help_info = help_time()
    print(f"# smtgrad --help: {help_info['best_seconds']:.3f} s (best of 5)", file=sys.stderr)
    cli_target = next((w for w in workloads if w.name == CLI_WORKLOAD), None)
    if cli_target is not None:
        help_info["cli"] = cli_time(cli_target)
        print(f"# CLI end to end, {CLI_WORKLOAD}: {help_info['cli']['best_seconds']:.3f} s "
              f"(best of 3)", file=sys.stderr)

    rows, raw = [], []
    for workload in workloads:
        ours = measure("smtgrad", workload, args.timeout)
        print(f"# {workload.name}: smtgrad {ours.get('verdict')} in "
              f"{_fmt_seconds(ours.get('seconds'))}", file=sys.stderr, flush=True)
        base = None
        if not args.no_baseline and not workload.requires_smooth:
            base = measure("baseline", workload, args.baseline_timeout)
            print(f"# {workload.name}: baseline {base.get('verdict')} in "
                  f"{_fmt_seconds(base.get('seconds'))}", file=sys.stderr, flush=True)
        elif workload.requires_smooth:
            base = {"verdict": "n/a", "seconds": None,
                    "reason": "the baseline covers piecewise-linear nets with MSE only"}
        repeat_if_fast(workload, ours, base, args.timeout, args.baseline_timeout)
        row = summarise(workload, ours, base, args.timeout, args.baseline_timeout)
        rows.append(row)
        raw.append({"workload": workload.name, "yaml": workload.yaml,
                    "minimal": workload.minimal, "smtgrad": ours, "baseline": base})

    if snapshot_dir is not None:
        shutil.rmtree(snapshot_dir, ignore_errors=True)
    print_table(rows, info, help_info, args)
    document = {
        "command": args.command,
        "machine": info,
        "settings": {"timeout": args.timeout, "baseline_timeout": args.baseline_timeout,
                     "hard_kill_grace": HARD_KILL_GRACE, "memory": MEMORY_METHOD,
                     "timing": "perf_counter inside a fresh worker process, from the parsed "
                     "spec (imports and parsing excluded)"},
        "help": help_info,
        "rows": rows,
        "measurements": raw,
    }
    (out / "results.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(rows, info, help_info, args))
    print(plot(rows, out / "results.png", args.baseline_timeout, args.timeout))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    problems = [row["workload"] for row in rows
                if any(flag.split()[0] in ("UNKNOWN", "ERROR", "CRASHED", "KILLED", "UNEXPECTED",
                                           "DISAGREE", "SAT") for flag in row["flags"])]
    if problems:
        print(f"flagged: {', '.join(problems)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
