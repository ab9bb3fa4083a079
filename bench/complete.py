"""Benchmark (issue 19): unsat proofs against a direct hand-written encoding, z3 and cvc5.

    python bench/complete.py [--timeout 20] [--repeat 3] [--only ID[,ID]] [--out DIR]

Every row of issue 19's table, in one run; each measurement in a fresh process with the
same timeout (the parent kills a worker that overruns it by 20 s):

* **smtgrad** -- ``smtgrad.solve`` with the default options (lemmas, portfolio, z3);
* **smtgrad both** -- the same with ``backend="both"`` (z3 and cvc5 raced);
* **direct z3 / direct cvc5** -- the encoding a user writes by hand, as SMT-LIB text
  built here from the spec (no smtgrad encoder): unknown weights, data and targets, relu
  as ``ite`` terms with the PyTorch kink convention, gradients from backpropagation, the
  query and ``assume`` written out; for softmax, ``exp`` (cvc5's transcendental
  extension; z3 has no ``exp``: "-"). The same text through z3's and cvc5's own parsers
  (cvc5 with logic ALL, its default options);
* **export z3 / export cvc5** -- ``smtgrad export --solver z3|cvc5`` of the query (the
  exact encoding, or the full abstraction for smooth nets), through each solver's own
  parser: the formula smtgrad's own solver calls see, with their options.

Times are measured inside the worker after imports and spec parsing (for every tool
alike). Rows where a tool answers in under 1 s are repeated ``--repeat`` times (fresh
processes, tools alternating) and the median is shown. "best peer" is the faster of the
direct encodings that answered; "ratio" is smtgrad's time over it (< 1: smtgrad faster).
A full run writes bench/complete.{json,md}; a run restricted with --only writes to
bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
from common import feed_smtlib, run_worker  # noqa: E402

RELU_111 = ("network: {inputs: 1, layers: [{units: 1, activation: relu}, "
            "{units: 1, activation: linear}]}\n")
SEED_QUERY = "query: {zero: [W2, b2], nonzero: [W1, b1]}\n"


def _fixed_data(samples: int) -> str:
    """bench/landscape.py's fixed-data family (X = 0..M-1, seeded integer Y)."""
    rng = random.Random(1000 * 1 + samples)
    xs = list(range(samples))
    ys = [rng.randint(-3, 3) for _ in xs]
    return (f"name: fixed-1-1-1-M{samples}\n{RELU_111}"
            "loss: {kind: mse, reduction: sum}\n"
            "query: {zero: [W1, b1, W2, b2]}\n"
            f"fixed: {{X: {[[x] for x in xs]}, Y: {[[y] for y in ys]}}}\n"
            'assume: ["loss == 1/7"]\n')


#: id -> (what the issue's table calls the row, spec text).
ROWS: dict[str, tuple[str, str]] = {
    "active-8": ("1-1-1 ReLU, free data, assume every sample active, M = 8",
                 f"name: active-8\n{RELU_111}loss: mse\nsamples: 8\n{SEED_QUERY}"
                 'assume: ["W1[0,0]*X[*] + b1[0] > 0"]\n'),
    "active-12": ("same, M = 12",
                  f"name: active-12\n{RELU_111}loss: mse\nsamples: 12\n{SEED_QUERY}"
                  'assume: ["W1[0,0]*X[*] + b1[0] > 0"]\n'),
    "dead-8": ("1-1-1 ReLU, fixed dead weights (W1 = 0, b1 = -1), M = 8",
               f"name: dead-8\n{RELU_111}loss: mse\nsamples: 8\n{SEED_QUERY}"
               "fixed: {W1: [[0]], b1: [-1]}\n"),
    "softmax-3": ("1-2-3 ReLU -> softmax, cross-entropy, M = 3",
                  "name: softmax-3\nnetwork: {inputs: 1, layers: [{units: 2, activation: "
                  "relu}, {units: 3, activation: softmax}]}\nloss: cross_entropy\n"
                  f"targets: class\nsamples: 3\n{SEED_QUERY}"),
    **{f"fixed-{m}": (f"fixed data 1-1-1 ReLU, M = {m}, all gradients zero, loss == 1/7",
                      _fixed_data(m)) for m in range(6, 13)},
}

TOOLS = ("smtgrad", "smtgrad both", "direct z3", "direct cvc5", "export z3", "export cvc5")
PEERS = ("direct z3", "direct cvc5")


# -- the direct encoding (SMT-LIB text, written from the mathematics) ----------------------


def _q(value: Fraction) -> str:
    text = f"(/ {abs(value.numerator)}.0 {value.denominator}.0)" if value.denominator != 1 \
        else f"{abs(value.numerator)}.0"
    return f"(- {text})" if value < 0 else text


def _sum(terms: list[str]) -> str:
    return "0.0" if not terms else terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"


def direct(spec: Any, samples: int) -> str:
    """The hand-written encoding of a 1-k-C spec (relu hidden layer; linear output with
    MSE, or softmax with cross-entropy and class labels)."""
    from smtgrad.numbers.expr import evaluate_condition
    from smtgrad.spec import LossKind, Reduction, normalize_ref

    net = spec.network
    hidden, top = net.layers
    k, outputs = hidden.units, top.units
    softmax = spec.loss.kind is LossKind.CROSS_ENTROPY
    decls: list[str] = []
    facts: list[str] = []

    def var(name: str, index: tuple[int, ...], label: str, sort: str = "Real") -> str:
        fixed = spec.fixed_value(name, index)
        if fixed is not None:
            return _q(Fraction(fixed))
        decls.append(f"(declare-fun {label} () {sort})")
        return label

    W1 = [var("W1", (j, 0), f"W1_{j}") for j in range(k)]
    b1 = [var("b1", (j,), f"b1_{j}") for j in range(k)]
    W2 = [[var("W2", (c, j), f"W2_{c}_{j}") for j in range(k)] for c in range(outputs)]
    b2 = [var("b2", (c,), f"b2_{c}") for c in range(outputs)]
    X = [var("X", (m, 0), f"x_{m}") for m in range(samples)]
    u = [[f"(+ (* {W1[j]} {X[m]}) {b1[j]})" for j in range(k)] for m in range(samples)]
    a = [[f"(ite (> {u[m][j]} 0.0) {u[m][j]} 0.0)" for j in range(k)] for m in range(samples)]
    d = [[f"(ite (> {u[m][j]} 0.0) 1.0 0.0)" for j in range(k)] for m in range(samples)]
    z = [[_sum([f"(* {W2[c][j]} {a[m][j]})" for j in range(k)] + [b2[c]])
          for c in range(outputs)] for m in range(samples)]
    if softmax:
        labels = [var("Y", (m,), f"y_{m}", "Int") for m in range(samples)]
        for label in labels:
            if not label.endswith(".0"):
                facts.append(f"(and (<= 0 {label}) (< {label} {outputs}))")
        total = [_sum([f"(exp {z[m][c]})" for c in range(outputs)]) for m in range(samples)]
        yhat = [[f"(/ (exp {z[m][c]}) {total[m]})" for c in range(outputs)]
                for m in range(samples)]
        target = [[(("1.0" if float(labels[m]) == c else "0.0") if labels[m].endswith(".0")
                    else f"(ite (= {labels[m]} {c}) 1.0 0.0)") for c in range(outputs)]
                  for m in range(samples)]
    else:
        yhat = z
        target = [[var("Y", (m, c), f"y_{m}") for c in range(outputs)] for m in range(samples)]
    r = [[f"(- {yhat[m][c]} {target[m][c]})" for c in range(outputs)] for m in range(samples)]
    back = [[_sum([f"(* {W2[c][j]} {r[m][c]})" for c in range(outputs)])
             for j in range(k)] for m in range(samples)]
    grads = {
        "b2": [_sum([r[m][c] for m in range(samples)]) for c in range(outputs)],
        "W2": [_sum([f"(* {r[m][c]} {a[m][j]})" for m in range(samples)])
               for c in range(outputs) for j in range(k)],
        "b1": [_sum([f"(* {back[m][j]} {d[m][j]})" for m in range(samples)])
               for j in range(k)],
        "W1": [_sum([f"(* {back[m][j]} {d[m][j]} {X[m]})" for m in range(samples)])
               for j in range(k)],
    }
    for target_ in spec.query.zero:
        facts += [f"(= {g} 0.0)" for g in grads[target_.block]]
    for target_ in spec.query.nonzero:
        facts.append("(or " + " ".join(f"(not (= {g} 0.0))" for g in grads[target_.block])
                     + ")")
    if spec.assume:
        count = samples * outputs
        factor = spec.loss.scale / count if spec.loss.reduction is Reduction.MEAN \
            else spec.loss.scale
        loss = f"(* {_q(factor)} {_sum([f'(* {x} {x})' for row in r for x in row])})"
        table = {"X": [[x] for x in X], "yhat": yhat, "W1": [[w] for w in W1], "b1": b1,
                 "W2": W2, "b2": b2}

        def resolve(ref: Any) -> str:
            ref = normalize_ref(ref)
            if ref.name == "loss":
                return loss
            item: Any = table[ref.name]
            for position in ref.indices:
                item = item[position]
            return str(item)

        for assumption in spec.assumptions_at(samples):
            facts.append(evaluate_condition(assumption.condition, resolve, _Text()))
    logic = "ALL" if softmax else "QF_NRA"
    return "\n".join([f"(set-logic {logic})", *decls, *(f"(assert {f})" for f in facts),
                      "(check-sat)"]) + "\n"


class _Text:
    """``assume`` expressions as SMT-LIB text."""

    def const(self, value: Fraction) -> str:
        return _q(value)

    def add(self, a: str, b: str) -> str:
        return f"(+ {a} {b})"

    def sub(self, a: str, b: str) -> str:
        return f"(- {a} {b})"

    def mul(self, a: str, b: str) -> str:
        return f"(* {a} {b})"

    def div(self, a: str, b: str) -> str:
        return f"(/ {a} {b})"

    def neg(self, a: str) -> str:
        return f"(- {a})"

    def compare(self, op: str, a: str, b: str) -> str:
        if op == "!=":
            return f"(not (= {a} {b}))"
        return f"({'=' if op == '==' else op} {a} {b})"

    def conj(self, items: list[str]) -> str:
        return f"(and {' '.join(items)})"

    def disj(self, items: list[str]) -> str:
        return f"(or {' '.join(items)})"

    def negate(self, a: str) -> str:
        return f"(not {a})"

    def boolean(self, value: bool) -> str:
        return "true" if value else "false"


# -- solving a script with each solver's own parser ------------------------------------------


def run_z3(script: str, timeout: float) -> str:
    import z3

    solver = z3.Solver()
    solver.set("timeout", int(timeout * 1000))
    try:
        solver.from_string(script.replace("(check-sat)", "").replace("(get-model)", ""))
    except z3.Z3Exception as error:
        return f"unsupported ({str(error)[:60]})"
    return str(solver.check())


def run_cvc5(script: str, timeout: float, logic_all: bool = False) -> str:
    import cvc5

    solver = cvc5.Solver(cvc5.TermManager())
    solver.setOption("tlimit-per", str(int(timeout * 1000)))
    answer = "unknown"
    for output in feed_smtlib(solver, script.replace("(get-model)", ""), "bench")[1]:
        words = output.split()
        if words[:1] and words[0] in ("sat", "unsat", "unknown"):
            answer = words[0]
    return answer


def exported(spec: Any, samples: int, solver: str) -> str:
    from smtgrad.encoding.builder import encode
    from smtgrad.encoding.environment import private_environment
    from smtgrad.encoding.modes import EXACT, Mode, ModeKind, is_smooth
    from smtgrad.encoding.smtlib import to_smtlib
    from smtgrad.spec import LossKind

    smooth = is_smooth(spec) or spec.loss.kind is not LossKind.MSE
    with private_environment():
        encoding = encode(spec, samples, Mode(ModeKind.ABSTRACT) if smooth else EXACT)
        return to_smtlib(encoding, spec.name, solver=solver)


def worker(tool: str, row: str, timeout: float) -> dict[str, Any]:
    from smtgrad.spec import parse_spec

    spec = parse_spec(ROWS[row][1])
    samples = spec.samples.min
    # Libraries are imported before the clock starts, for every tool alike.
    if tool.endswith("z3"):
        import z3  # noqa: F401
    if tool.endswith("cvc5"):
        import cvc5  # noqa: F401
    if not tool.startswith("direct"):
        import smtgrad.encoding.builder
        import smtgrad.encoding.smtlib  # noqa: F401
    from smtgrad.engine import SolveOptions, solve

    start = time.perf_counter()
    if tool.startswith("smtgrad"):
        result = solve(spec, SolveOptions(timeout=timeout,
                                          backend="both" if tool == "smtgrad both" else "z3"))
        return {"verdict": result.verdict.value, "seconds": time.perf_counter() - start,
                "method": result.method, "solver": result.solver}
    if tool.startswith("direct"):
        script = direct(spec, samples)
    else:
        script = exported(spec, samples, tool.split()[1])
    answer = run_z3(script, timeout) if tool.endswith("z3") else run_cvc5(script, timeout)
    return {"verdict": answer, "seconds": time.perf_counter() - start}


def measure(tool: str, row: str, timeout: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", tool, row, str(timeout)]
    return run_worker(command, timeout, ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})


def _decided(cell: dict[str, Any]) -> bool:
    return cell["verdict"] in ("sat", "unsat")


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def render(data: dict[str, Any]) -> str:
    """The Markdown table of a run (``--render JSON`` redraws it from a saved run)."""
    lines = [f"Timeout {data['timeout']:g} s per tool, fresh processes, medians of up to "
             f"{data['repeat']} runs under 1 s; 1-minute load average {data['load']:.1f} at "
             "the start.", "",
             "| query | " + " | ".join(TOOLS) + " | best peer | ratio |",
             "|---|" + "---|" * (len(TOOLS) + 2)]
    for r in data["rows"]:
        lines.append(f"| {r['query']} | " + " | ".join(
            f"{r[t]['verdict']} {_seconds(r[t]['seconds'])}" for t in TOOLS) + " | "
            + ("-" if r["best peer"] is None else _seconds(r["best peer"])) + " | "
            + ("-" if r["ratio"] is None else f"{r['ratio']:.3f}") + " |")
    lines += ["", *(f"- {r['row']}: smtgrad by {r['smtgrad'].get('method', '?')}"
                    for r in data["rows"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="row ids, comma separated: " + ", ".join(ROWS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, help="redraw complete.md from a saved JSON")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(args.render.read_text(encoding="utf-8"))
        args.render.with_suffix(".md").write_text(render(data), encoding="utf-8")
        return 0
    if args.worker:
        tool, row, timeout = args.worker
        print(json.dumps(worker(tool, row, float(timeout))))
        return 0
    rows = list(ROWS) if not args.only else args.only.split(",")
    load = os.getloadavg()[0]
    records = []
    for row in rows:
        cells: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
        for round_ in range(max(1, args.repeat)):
            for tool in TOOLS:
                if round_ and not (cells[tool] and _decided(cells[tool][0])
                                   and cells[tool][0]["seconds"] < 1.0):
                    continue
                cells[tool].append(measure(tool, row, args.timeout))
        summary = {}
        for tool, runs in cells.items():
            cell = dict(runs[0])
            cell["seconds"] = statistics.median(run["seconds"] for run in runs)
            cell["runs"] = [round(run["seconds"], 3) for run in runs]
            summary[tool] = cell
        peers = [summary[t]["seconds"] for t in PEERS if _decided(summary[t])]
        best = min(peers) if peers else None
        ours = summary["smtgrad"]
        ratio = ours["seconds"] / best if best and _decided(ours) else None
        records.append({"row": row, "query": ROWS[row][0], **summary, "best peer": best,
                        "ratio": ratio})
        print(f"{row:<10} " + "  ".join(f"{t}: {summary[t]['verdict']} "
                                        f"{summary[t]['seconds']:.2f}s" for t in TOOLS)
              + (f"  ratio {ratio:.3f}" if ratio is not None else ""), flush=True)
    out = args.out or (ROOT / "bench" / ("results" if args.only else ""))
    out.mkdir(parents=True, exist_ok=True)
    data = {"timeout": args.timeout, "repeat": args.repeat, "load": load, "rows": records}
    (out / "complete.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (out / "complete.md").write_text(render(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
