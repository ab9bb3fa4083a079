"""Benchmark: fixed-data stationary points, smtgrad against the direct encodings.

    python bench/landscape.py [--timeout 20] [--only K-M[,K-M]] [--out DIR]

The family of the fixed-data issue: a 1-k-1 ReLU network, MSE (sum), X = 0..M-1,
Y fixed (seeded small integers), every gradient exactly zero, and one of three
loss conditions: ``loss > 0``, ``loss == best line fit`` (sat: every unit active
on every sample), ``loss == 1/7`` (an impossible value: unsat). Per row, in the
same run and each in a fresh process with the same timeout:

* **smtgrad** — ``smtgrad.solve`` (the fixed-data pattern method);
* **direct z3** — the hand-written encoding of bench/baseline.py (relu as ``If``
  terms, gradients from backprop) with the loss condition added, plain
  ``z3.Solver()``;
* **cvc5** — the same direct formula, exported as SMT-LIB by z3 (after z3's
  arithmetic ``simplify``: z3 writes 1-ary sums that cvc5 rejects) and solved by
  cvc5's Python API (default options, logic ALL: the derivative terms are
  integer-valued ``If`` terms).

Prints a table (verdict and seconds per tool, smtgrad's speed-up over the
fastest peer that answered) and writes landscape.json / landscape.md to --out
(a full run: bench/; a run restricted with --only: bench/results/, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
from common import feed_smtlib, run_worker  # noqa: E402

ROWS = [(1, 4), (1, 8), (1, 20), (2, 4), (2, 8), (3, 4), (3, 6), (3, 12), (4, 8), (4, 20)]
QUERIES = ("loss > 0", "loss == line", "loss == 1/7")


def data(units: int, samples: int) -> tuple[list[int], list[int]]:
    rng = random.Random(1000 * units + samples)
    xs = list(range(samples))
    return xs, [rng.randint(-3, 3) for _ in xs]


def line_fit_loss(xs: list[int], ys: list[int]) -> Fraction:
    n = len(xs)
    mx, my = Fraction(sum(xs), n), Fraction(sum(ys), n)
    slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
             / sum((x - mx) ** 2 for x in xs))
    return sum(((slope * (x - mx) + my - y) ** 2 for x, y in zip(xs, ys, strict=True)),
               Fraction(0))


def condition(query: str, xs: list[int], ys: list[int]) -> str:
    return f"loss == {line_fit_loss(xs, ys)}" if query == "loss == line" else query


def spec_text(units: int, samples: int, query: str) -> str:
    xs, ys = data(units, samples)
    return (f"name: landscape-1-{units}-1-M{samples}\n"
            f"network: {{inputs: 1, layers: [{{units: {units}, activation: relu}}, "
            f"{{units: 1, activation: linear}}]}}\n"
            "loss: {kind: mse, reduction: sum}\n"
            "query: {zero: [W1, b1, W2, b2]}\n"
            f"fixed: {{X: {[[x] for x in xs]}, Y: {[[y] for y in ys]}}}\n"
            f"assume: [{json.dumps(condition(query, xs, ys))}]\n")


def _direct(units: int, samples: int, query: str) -> Any:
    """The direct z3 formula: bench/baseline.py's encoding plus the loss condition."""
    import dataclasses

    import z3

    sys.path.insert(0, str(ROOT / "bench"))
    from baseline import build

    from smtgrad.spec import parse_spec

    spec = parse_spec(spec_text(units, samples, query))
    solver, unknowns = build(dataclasses.replace(spec, assume=()), samples)
    xs, ys = data(units, samples)
    W, b = unknowns["W"], unknowns["b"]
    total = z3.RealVal(0)
    for x, y in zip(xs, ys, strict=True):
        hidden = [z3.If(W[0][j][0] * x + b[0][j] > 0, W[0][j][0] * x + b[0][j], 0)
                  for j in range(units)]
        out = z3.Sum([W[1][0][j] * hidden[j] for j in range(units)]) + b[1][0]
        total = total + (out - y) * (out - y)
    text = condition(query, xs, ys)
    if text == "loss > 0":
        solver.add(total > 0)
    else:
        value = Fraction(text.split("==")[1].strip())
        solver.add(total == z3.RealVal(f"{value.numerator}/{value.denominator}"))
    return solver


def worker(tool: str, units: int, samples: int, query: str, timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    if tool == "smtgrad":
        from smtgrad.engine import SolveOptions, solve
        from smtgrad.spec import parse_spec

        spec = parse_spec(spec_text(units, samples, query))
        start = time.perf_counter()
        result = solve(spec, SolveOptions(timeout=timeout))
        return {"verdict": result.verdict.value, "seconds": time.perf_counter() - start,
                "method": result.method}
    solver = _direct(units, samples, query)
    if tool == "z3":
        solver.set("timeout", int(timeout * 1000))
        answer = str(solver.check())
        return {"verdict": answer, "seconds": time.perf_counter() - start}
    import cvc5
    import z3

    # z3 writes 1-ary sums ("(+ x)") that cvc5 rejects: export z3's simplification of each
    # assertion (arithmetic normalisation only; no solving).
    export = z3.Solver()
    for assertion in solver.assertions():
        export.add(z3.simplify(assertion))
    script = export.to_smt2()
    tm = cvc5.TermManager()
    cvc = cvc5.Solver(tm)
    cvc.setOption("tlimit-per", str(int(timeout * 1000)))
    cvc.setLogic("ALL")
    feed_smtlib(cvc, script.replace("(check-sat)", ""), "bench")
    answer = cvc.checkSat()
    verdict = "sat" if answer.isSat() else "unsat" if answer.isUnsat() else "unknown"
    return {"verdict": verdict, "seconds": time.perf_counter() - start}


def measure(tool: str, units: int, samples: int, query: str, timeout: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", tool, str(units), str(samples), query,
               str(timeout)]
    return run_worker(command, timeout, ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--only", help="rows as K-M, comma separated (e.g. 3-12,4-20)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        tool, units, samples, query, timeout = args.worker
        print(json.dumps(worker(tool, int(units), int(samples), query, float(timeout))))
        return 0
    rows = ROWS
    if args.only:
        wanted = {tuple(map(int, item.split("-"))) for item in args.only.split(",")}
        rows = [row for row in rows if row in wanted]
    records = []
    header = (f"{'network':<8} {'M':>3} {'query':<13} {'smtgrad':>16} {'direct z3':>16} "
              f"{'cvc5':>16} {'ratio':>8}")
    print(header)
    print("-" * len(header))
    for units, samples in rows:
        for query in QUERIES:
            cells = {tool: measure(tool, units, samples, query, args.timeout)
                     for tool in ("smtgrad", "z3", "cvc5")}
            answered = [c["seconds"] for tool, c in cells.items()
                        if tool != "smtgrad" and c["verdict"] in ("sat", "unsat")]
            ours = cells["smtgrad"]
            ratio = (min(answered) / ours["seconds"]
                     if answered and ours["verdict"] in ("sat", "unsat") else None)
            record = {"units": units, "samples": samples, "query": query, **{
                tool: cell for tool, cell in cells.items()}, "ratio": ratio}
            records.append(record)

            def cell(c: dict[str, Any]) -> str:
                return f"{c['verdict']} {c['seconds']:.2f}s"

            print(f"1-{units}-1    {samples:>3} {query:<13} {cell(ours):>16} "
                  f"{cell(cells['z3']):>16} {cell(cells['cvc5']):>16} "
                  f"{'' if ratio is None else f'{ratio:.0f}x':>8}", flush=True)
    if args.out is None:
        args.out = ROOT / "bench" / ("results" if args.only else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "landscape.json").write_text(json.dumps(
        {"timeout": args.timeout, "rows": records}, indent=2), encoding="utf-8")
    lines = ["| network | M | query | smtgrad | direct z3 | cvc5 | ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        def md(c: dict[str, Any]) -> str:
            return f"{c['verdict']} {c['seconds']:.2f} s"
        ratio_text = "" if r["ratio"] is None else f"{r['ratio']:.0f}x"
        lines.append(f"| 1-{r['units']}-1 | {r['samples']} | {r['query']} | "
                     f"{md(r['smtgrad'])} | {md(r['z3'])} | {md(r['cvc5'])} | {ratio_text} |")
    (args.out / "landscape.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ahead = [r for r in records if r["ratio"] is not None]
    behind = [r for r in ahead if r["ratio"] < 1]
    print(f"\nrows where a peer answered: {len(ahead)}; smtgrad slower on {len(behind)}; "
          f"timeout {args.timeout:g} s per tool")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
