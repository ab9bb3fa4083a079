"""Determinism under load (issue 18): the same verdict and witness idle and beside
busy processes.

    python bench/load.py [--only GLOB[,GLOB]] [--burners 2] [--factor 10]
                         [--min-timeout 1] [--idle-timeout 30] [--out DIR]

For every example spec (specs/*.yaml with an ``expect``) and every workload of
bench/workloads.py:

1. an **idle** run: ``smtgrad solve CASE --format json --timeout IDLE`` in a fresh
   process, nothing else started by this script;
2. a **loaded** run of the same command beside ``--burners`` processes that spin
   ``while True: pass`` (one per core by default; each is bounded in time and killed
   afterwards), with ``--timeout`` = ``--factor`` x the idle run's solve time (at least
   ``--min-timeout`` seconds): the issue's "any timeout of at least ten times its idle
   time";
3. the two JSON answers compared: verdict, method and witness (canonical JSON).

A case the idle run leaves unknown is reported but not compared (there is nothing to
reproduce). Writes DIR/load.json and DIR/load.md (default: bench/).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from workloads import all_workloads  # noqa: E402

BURNER = ("import sys, time\n"
          "end = time.monotonic() + float(sys.argv[1])\n"
          "while time.monotonic() < end:\n"
          "    pass\n")


def cases(only: list[str]) -> list[dict[str, Any]]:
    """Example specs with an expected verdict, then the bench workloads."""
    import yaml

    found: list[dict[str, Any]] = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if isinstance(raw, dict) and "expect" in raw:
            found.append({"name": f"specs/{path.name}", "path": str(path), "args": []})
    scratch = Path(tempfile.mkdtemp(prefix="smtgrad-load-"))
    for workload in all_workloads():
        path = scratch / f"{workload.name}.yaml"
        path.write_text(workload.yaml)
        args = ["--minimal"] if workload.minimal else ["--samples", str(workload.samples)]
        found.append({"name": f"bench:{workload.name}", "path": str(path), "args": args})
    if only:
        found = [case for case in found
                 if any(fnmatch.fnmatch(case["name"], pattern) or pattern in case["name"]
                        for pattern in only)]
    return found


def solve(case: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One fresh `smtgrad solve` process; its JSON answer and wall time."""
    command = [sys.executable, "-c", "from smtgrad.cli import main; main()", "solve",
               case["path"], *case["args"],
               "--format", "json", "--timeout", f"{timeout:g}"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 60,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"verdict": "killed", "wall": time.perf_counter() - started}
    wall = time.perf_counter() - started
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"verdict": f"exit {done.returncode}", "wall": wall,
                "error": (done.stderr or done.stdout)[-400:]}
    return {"verdict": answer.get("verdict"), "method": answer.get("method"),
            "seconds": answer.get("seconds"), "wall": wall,
            "witness": json.dumps(answer.get("witness"), sort_keys=True),
            "reason": (answer.get("reason") or "")[:300], "exit": done.returncode}


def burners(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", BURNER, f"{seconds:g}"])
            for _ in range(count)]


def compare(idle: dict[str, Any], loaded: dict[str, Any]) -> str:
    if idle["verdict"] not in ("sat", "unsat"):
        return "not decided idle"
    if loaded["verdict"] != idle["verdict"]:
        return "DIFFERENT VERDICT"
    if loaded.get("witness") != idle.get("witness"):
        return "DIFFERENT WITNESS"
    if loaded.get("method") != idle.get("method"):
        return "same answer, other method"
    return "identical"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="case names or globs, comma separated")
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--min-timeout", type=float, default=1.0)
    parser.add_argument("--idle-timeout", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    selected = cases([p.strip() for p in args.only.split(",") if p.strip()])
    print(f"# {len(selected)} cases, {args.burners} burners, timeout = {args.factor:g} x idle "
          f"(at least {args.min_timeout:g} s)", file=sys.stderr)
    rows = []
    for case in selected:
        idle = solve(case, args.idle_timeout)
        idle_seconds = idle.get("seconds") or idle["wall"]
        timeout = max(args.min_timeout, args.factor * idle_seconds)
        load = os.getloadavg()[0]
        if idle["verdict"] not in ("sat", "unsat"):
            loaded = {"verdict": "not run", "wall": 0.0}  # nothing to reproduce
        else:
            spinning = burners(args.burners, timeout + 90)
            try:
                time.sleep(0.2)  # let the burners take the cores
                load = os.getloadavg()[0]
                loaded = solve(case, timeout)
            finally:
                for process in spinning:
                    process.kill()
                    process.wait()
        verdict = compare(idle, loaded)
        row = {"case": case["name"], "args": case["args"], "idle": idle, "loaded": loaded,
               "loaded_timeout": timeout, "load_average": load, "comparison": verdict}
        rows.append(row)
        print(f"{case['name']:<44} idle {idle['verdict']:<8} {idle_seconds:8.3f} s | loaded "
              f"{loaded['verdict']:<8} {(loaded.get('seconds') or loaded['wall']):8.3f} s "
              f"(timeout {timeout:.2f} s) | {verdict}", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python bench/load.py" + (" " + " ".join(argv if argv is not None
                                                       else sys.argv[1:])).rstrip()
    info = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"{platform.platform()}", "command": command}
    (args.out / "load.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2)
                                        + "\n")
    (args.out / "load.md").write_text(markdown(rows, info, args))
    differing = [row["case"] for row in rows if row["comparison"].startswith("DIFFERENT")]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["comparison"]] = counts.get(row["comparison"], 0) + 1
    print(", ".join(f"{n} {what}" for what, n in counts.items()))
    if differing:
        print(f"differ under load: {', '.join(differing)}")
    print(f"wrote {args.out / 'load.json'} and {args.out / 'load.md'}")
    return 1 if differing else 0


def markdown(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace
             ) -> str:
    lines = [
        "# Determinism under load",
        "",
        f"Measured {info['date']} on {info['machine']}. Command: `{info['command']}`.",
        "",
        f"Each case runs twice in a fresh process: idle, then beside {args.burners} processes "
        f"spinning `while True: pass`, with `--timeout` = {args.factor:g} x the idle solve "
        f"time (at least {args.min_timeout:g} s). Compared: verdict, method, witness "
        "(canonical JSON). Times are the solve's own seconds (JSON `seconds`).",
        "",
        "| case | idle | idle s | loaded | loaded s | timeout s | load avg | comparison |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        idle, loaded = row["idle"], row["loaded"]
        lines.append(
            f"| {row['case']} {' '.join(row['args'])} | {idle['verdict']} | "
            f"{(idle.get('seconds') or idle['wall']):.3f} | {loaded['verdict']} | "
            f"{(loaded.get('seconds') or loaded['wall']):.3f} | {row['loaded_timeout']:.2f} | "
            f"{row['load_average']:.2f} | {row['comparison']} |")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["comparison"]] = counts.get(row["comparison"], 0) + 1
    lines += ["", "Summary: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + ".",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
