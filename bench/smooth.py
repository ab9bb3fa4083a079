"""Benchmark: smooth networks (sigmoid, tanh, softmax), smtgrad against cvc5 with exp.

    python bench/smooth.py [--timeout 60] [--peer-timeout 20] [--only NAME[,NAME]]
                           [--no-peer] [--out DIR]

Rows (issue 14): every query of the issue's table, then the series
sigmoid/BCE with hard and soft labels at M = 3, 5, 10, 20, tanh/MSE at M = 3..10
and softmax/CE (3 classes, a ReLU hidden layer of 2) at M = 3..9. Per row, in the
same run and each in a fresh process:

* **smtgrad** — the CLI, ``smtgrad solve SPEC --format json --timeout T`` (the wall
  time includes the interpreter's start-up);
* **cvc5** — a direct SMT-LIB encoding of the same instance with ``exp`` (cvc5's
  transcendental extension of nonlinear real arithmetic, logic ALL: class labels
  are integers): the forward pass, backpropagation and the query, written here
  from the spec, independent of smtgrad's encoder; ``--minimal`` rows give cvc5
  the first M smtgrad answered sat at (or the largest M).

Every sat is then re-checked twice: ``smtgrad check`` on the JSON witness, and an
independent 80-digit evaluation written here (mpmath; closed forms through
sympy; an enclosure at its midpoint): the zero-queried gradient entries must be
below 1e-20 there, each nonzero-queried block above 1e-15, labels in their kind.
Writes smooth.json / smooth.md to --out (a full run: bench/; --only: bench/results/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
from common import feed_smtlib, run_worker  # noqa: E402

#: The CLI in a fresh interpreter (the console script's own entry point, without a shim).
CLI = [sys.executable, "-c", "from smtgrad._entry import main; main()"]


@dataclass(frozen=True)
class Row:
    name: str
    yaml: str
    samples: int | None  # None: the spec's own M (fixed rows or a range with --minimal)
    minimal: bool = False
    expect: str = "sat"
    table: bool = False  # a row of the table


UPPER, LOWER = "[W2, b2]", "[W1, b1]"


def spec(name: str, inputs: int, layers: list[tuple[int, str]], loss: str, targets: str,
         samples: str, extra: str = "") -> str:
    body = ", ".join(f"{{units: {u}, activation: {a}}}" for u, a in layers)
    return (f"name: {name}\nnetwork: {{inputs: {inputs}, layers: [{body}]}}\n"
            f"loss: {loss}\ntargets: {targets}\nsamples: {samples}\n"
            f"query: {{zero: {UPPER}, nonzero: {LOWER}}}\n{extra}")


def rows() -> list[Row]:
    hard = spec("sigmoid-bce-hard", 1, [(1, "relu"), (1, "sigmoid")], "bce", "binary",
                "{min: 1, max: 10}")
    table = [
        Row("T1 relu->sigmoid BCE hard --minimal", hard, None, minimal=True, table=True),
        Row("T2 relu->sigmoid BCE hard M=10", hard, 10, table=True),
        Row("T3 2-3-1 tanh MSE M=4", spec("tanh-2-3-1", 2, [(3, "tanh"), (1, "linear")],
                                          "mse", "real", "4"), None, table=True),
        Row("T3g 2-3-1 tanh MSE M=4 generic", spec(
            "tanh-2-3-1-generic", 2, [(3, "tanh"), (1, "linear")], "mse", "real", "4",
            "generic: true\n"), None, table=True),
        Row("T4 sigmoid->sigmoid BCE hard M=3", spec(
            "sigmoid-sigmoid-bce-hard", 1, [(1, "sigmoid"), (1, "sigmoid")], "bce", "binary",
            "3"), None, table=True),
        Row("T5 relu(2)->softmax(3) CE M=10", spec(
            "relu-softmax-ce", 1, [(2, "relu"), (3, "softmax")], "cross_entropy", "class",
            "10"), None, table=True),
        Row("T6 relu->tanh MSE targets +-1", (
            "name: relu-tanh-pm1\nnetwork: {inputs: 1, layers: [{units: 1, activation: relu},"
            " {units: 1, activation: tanh}]}\nloss: mse\n"
            "fixed: {Y: [[1], [-1], [1], [-1], [1], [-1]]}\n"
            f"query: {{zero: {UPPER}, nonzero: {LOWER}}}\n"), None, table=True),
    ]
    series = []
    for labels, targets in (("hard", "binary"), ("soft", "unit_interval")):
        for m in (3, 5, 10, 20):
            series.append(Row(f"sigmoid/BCE {labels} M={m}", spec(
                f"sigmoid-bce-{labels}", 1, [(1, "relu"), (1, "sigmoid")], "bce", targets,
                str(m)), None))
    for m in range(3, 11):
        series.append(Row(f"tanh/MSE M={m}", spec(
            "tanh-mse", 1, [(1, "tanh"), (1, "linear")], "mse", "real", str(m)), None))
    for m in range(3, 10):
        series.append(Row(f"softmax/CE 1-2-3 M={m}", spec(
            "softmax-ce-hidden-2", 1, [(2, "relu"), (3, "softmax")], "cross_entropy",
            "class", str(m)), None, expect="?"))
    return table + series


# ----------------------------------------------------------------------------------------
# smtgrad (the CLI in a fresh process).


def run_smtgrad(row: Row, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(row.yaml, encoding="utf-8")
        command = [*CLI, "solve", str(path), "--format", "json", "--timeout", str(timeout)]
        if row.minimal:
            command.append("--minimal")
        if row.samples is not None:
            command += ["--samples", str(row.samples)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=timeout + 30, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"verdict": "killed", "seconds": time.perf_counter() - start}
        wall = time.perf_counter() - start
        try:
            result = json.loads(done.stdout)
        except json.JSONDecodeError:
            return {"verdict": f"exit {done.returncode}", "seconds": wall,
                    "stderr": done.stderr[-300:]}
        cell = {"verdict": result["verdict"], "seconds": wall,
                "solve_seconds": result.get("seconds"), "samples": result.get("samples"),
                "certificate": result.get("certificate"), "method": result.get("method"),
                "reason": result.get("reason")}
        if result["verdict"] == "sat":
            cell["check"] = run_check(path, result)
            cell["recheck80"] = recheck(row.yaml, result)
        return cell


def run_check(path: Path, result: dict[str, Any]) -> str:
    witness = path.with_name("witness.json")
    witness.write_text(json.dumps(result["witness"]), encoding="utf-8")
    done = subprocess.run([*CLI, "check", str(path), "--witness", str(witness)],
                          capture_output=True, text=True, cwd=ROOT)
    return {0: "holds", 1: "does not hold", 3: "cannot decide"}.get(done.returncode,
                                                                   f"exit {done.returncode}")


# ----------------------------------------------------------------------------------------
# The independent 80-digit re-check (mpmath; nothing of smtgrad's reference or verifier).


def _number(text: str, mp: Any) -> Any:
    text = text.strip()
    if text.startswith("["):
        lo, hi = (mp.mpf(_number(part, mp)) for part in text[1:-1].split(","))
        return (lo + hi) / 2
    import sympy

    return mp.mpf(sympy.sympify(text).evalf(100))


def recheck(yaml_text: str, result: dict[str, Any]) -> str:
    """"ok" or what failed, from an 80-digit forward and backward pass of our own."""
    import mpmath
    import yaml

    mp = mpmath.mp
    mp.dps = 80
    data = yaml.safe_load(yaml_text)
    layers = data["network"]["layers"]
    loss = data.get("loss", "mse")
    loss = loss["kind"] if isinstance(loss, dict) else loss
    w = result["witness"]
    depth = len(layers)
    W = [[[_number(v, mp) for v in row] for row in w[f"W{i + 1}"]] for i in range(depth)]
    b = [[_number(v, mp) for v in w[f"b{i + 1}"]] for i in range(depth)]
    X = [[_number(v, mp) for v in row] for row in w["X"]]
    classes = loss == "cross_entropy"
    Y = [int(v) for v in w["Y"]] if classes else [[_number(v, mp) for v in row]
                                                  for row in w["Y"]]
    targets = data.get("targets", "binary" if loss == "bce" else "real")
    if targets == "binary" and any(v not in (0, 1) for row in Y for v in row):
        return "a hard label is not 0 or 1"

    def act(name: str, u: Any) -> tuple[Any, Any]:
        if name == "relu":
            return (u, 1) if u > 0 else (0, 0)
        if name == "sigmoid":
            s = 1 / (1 + mp.exp(-u))
            return s, s * (1 - s)
        if name == "tanh":
            t = mp.tanh(u)
            return t, 1 - t * t
        return u, 1

    grads_W = [[[mp.mpf(0)] * len(W[i][0]) for _ in W[i]] for i in range(depth)]
    grads_b = [[mp.mpf(0)] * len(b[i]) for i in range(depth)]
    for m, x in enumerate(X):
        values, slopes = [x], []
        for i, layer in enumerate(layers):
            u = [sum((W[i][j][k] * values[-1][k] for k in range(len(values[-1]))), b[i][j])
                 for j in range(len(b[i]))]
            if layer["activation"] == "softmax":
                top = max(u)
                e = [mp.exp(v - top) for v in u]
                values.append([v / sum(e) for v in e])
                slopes.append(None)
            else:
                pairs = [act(layer["activation"], v) for v in u]
                values.append([p[0] for p in pairs])
                slopes.append([p[1] for p in pairs])
        out = values[-1]
        if classes:
            delta = [out[k] - (1 if k == Y[m] else 0) for k in range(len(out))]
        elif loss == "bce":
            delta = [out[k] - Y[m][k] for k in range(len(out))]
        else:
            delta = [2 * (out[k] - Y[m][k]) * slopes[-1][k] for k in range(len(out))]
        for i in range(depth - 1, -1, -1):
            for j in range(len(delta)):
                grads_b[i][j] += delta[j]
                for k in range(len(values[i])):
                    grads_W[i][j][k] += delta[j] * values[i][k]
            if i:
                delta = [sum(W[i][j][k] * delta[j] for j in range(len(delta))) * slopes[i - 1][k]
                         for k in range(len(values[i]))]
    blocks = {}
    for i in range(depth):
        blocks[f"W{i + 1}"] = [abs(v) for row in grads_W[i] for v in row]
        blocks[f"b{i + 1}"] = [abs(v) for v in grads_b[i]]
    query = data["query"]
    for name in query.get("zero", []):
        if max(blocks[name]) > mp.mpf(10) ** -20:
            return f"d{name} is {mpmath.nstr(max(blocks[name]), 5)}, not zero"
    for name in query.get("nonzero", []):
        if max(blocks[name]) < mp.mpf(10) ** -15:
            return f"d{name} is {mpmath.nstr(max(blocks[name]), 5)}: zero"
    return "ok"


# ----------------------------------------------------------------------------------------
# cvc5 with exp: a direct SMT-LIB encoding of the same instance.


def smtlib(yaml_text: str, samples: int) -> str:
    import yaml

    data = yaml.safe_load(yaml_text)
    inputs = data["network"]["inputs"]
    layers = data["network"]["layers"]
    loss = data.get("loss", "mse")
    loss = loss["kind"] if isinstance(loss, dict) else loss
    targets = data.get("targets", {"bce": "unit_interval", "cross_entropy": "class"}.get(
        loss, "real"))
    fixed = data.get("fixed", {})
    out: list[str] = ["(set-logic ALL)"]
    declared: list[str] = []

    def real(name: str) -> str:
        out.append(f"(declare-fun {name} () Real)")
        declared.append(name)
        return name

    def num(value: Any) -> str:
        from fractions import Fraction

        q = Fraction(str(value))
        text = f"{abs(q.numerator)}.0" if q.denominator == 1 else \
            f"(/ {abs(q.numerator)}.0 {q.denominator}.0)"
        return f"(- {text})" if q < 0 else text

    def define(name: str, term: str) -> str:
        out.append(f"(define-fun {name} () Real {term})")
        return name

    sizes = [inputs] + [layer["units"] for layer in layers]
    W = [[[real(f"W{i + 1}_{j}_{k}") for k in range(sizes[i])] for j in range(sizes[i + 1])]
         for i in range(len(layers))]
    B = [[real(f"b{i + 1}_{j}") for j in range(sizes[i + 1])] for i in range(len(layers))]
    if data.get("generic"):
        for term in [v for m in W for row in m for v in row]:
            out.append(f"(assert (not (= {term} 0.0)))")
    grads: dict[str, list[list[str]]] = {}
    w_terms = [[[[] for _ in range(sizes[i])] for _ in range(sizes[i + 1])]
               for i in range(len(layers))]
    b_terms = [[[] for _ in range(sizes[i + 1])] for i in range(len(layers))]
    xs = []
    for m in range(samples):
        if "X" in fixed:
            x = [num(v) for v in fixed["X"][m]]
        else:
            x = [real(f"X_{m}_{k}") for k in range(inputs)]
        xs.append(x)
        values, slopes = [x], []
        for i, layer in enumerate(layers):
            u = [define(f"u{i + 1}_{m}_{j}", f"(+ {B[i][j]} " + " ".join(
                f"(* {W[i][j][k]} {values[-1][k]})" for k in range(sizes[i])) + ")")
                for j in range(sizes[i + 1])]
            name = layer["activation"]
            if name == "softmax":
                exps = [define(f"e{i + 1}_{m}_{j}", f"(exp {v})") for j, v in enumerate(u)]
                total = define(f"s{i + 1}_{m}", "(+ " + " ".join(exps) + ")")
                values.append([define(f"a{i + 1}_{m}_{j}", f"(/ {e} {total})")
                               for j, e in enumerate(exps)])
                slopes.append(None)
                continue
            a, d = [], []
            for j, v in enumerate(u):
                if name == "relu":
                    a.append(define(f"a{i + 1}_{m}_{j}", f"(ite (> {v} 0.0) {v} 0.0)"))
                    d.append(f"(ite (> {v} 0.0) 1.0 0.0)")
                elif name == "sigmoid":
                    s = define(f"a{i + 1}_{m}_{j}", f"(/ 1.0 (+ 1.0 (exp (- {v}))))")
                    a.append(s)
                    d.append(f"(* {s} (- 1.0 {s}))")
                elif name == "tanh":
                    t = define(f"a{i + 1}_{m}_{j}",
                               f"(- 1.0 (/ 2.0 (+ (exp (* 2.0 {v})) 1.0)))")
                    a.append(t)
                    d.append(f"(- 1.0 (* {t} {t}))")
                else:
                    a.append(v)
                    d.append("1.0")
            values.append(a)
            slopes.append(d)
        output = values[-1]
        if targets == "class":
            if "Y" in fixed:
                label = str(int(fixed["Y"][m]))
            else:
                out.append(f"(declare-fun c_{m} () Int)")
                out.append(f"(assert (and (<= 0 c_{m}) (< c_{m} {len(output)})))")
                label = f"c_{m}"
            delta = [f"(- {p} (ite (= {label} {k}) 1.0 0.0))" for k, p in enumerate(output)]
        else:
            ys = []
            for k in range(len(output)):
                if "Y" in fixed:
                    ys.append(num(fixed["Y"][m][k]))
                    continue
                y = real(f"Y_{m}_{k}")
                if targets == "binary":
                    out.append(f"(assert (or (= {y} 0.0) (= {y} 1.0)))")
                elif targets == "unit_interval":
                    out.append(f"(assert (and (<= 0.0 {y}) (<= {y} 1.0)))")
                ys.append(y)
            if loss == "bce":
                delta = [f"(- {p} {y})" for p, y in zip(output, ys, strict=True)]
            else:
                delta = [f"(* 2.0 (- {p} {y}) {d})"
                         for p, y, d in zip(output, ys, slopes[-1], strict=True)]
        delta = [define(f"d{len(layers)}_{m}_{j}", t) for j, t in enumerate(delta)]
        for i in range(len(layers) - 1, -1, -1):
            for j in range(sizes[i + 1]):
                b_terms[i][j].append(delta[j])
                for k in range(sizes[i]):
                    w_terms[i][j][k].append(f"(* {delta[j]} {values[i][k]})")
            if i:
                delta = [define(f"d{i}_{m}_{k}", "(* (+ 0.0 " + " ".join(
                    f"(* {W[i][j][k]} {delta[j]})" for j in range(sizes[i + 1])) + f") "
                    f"{slopes[i - 1][k]})") for k in range(sizes[i])]
    if data.get("generic") and "X" not in fixed:
        for m in range(samples):
            for n in range(m):
                out.append("(assert (or " + " ".join(
                    f"(not (= {a} {c}))" for a, c in zip(xs[m], xs[n], strict=True)) + " false))")
    for i in range(len(layers)):
        grads[f"W{i + 1}"] = [[define(f"gW{i + 1}_{j}_{k}", "(+ 0.0 " + " ".join(t) + ")")
                               for k, t in enumerate(row)] for j, row in enumerate(w_terms[i])]
        grads[f"b{i + 1}"] = [[define(f"gb{i + 1}_{j}", "(+ 0.0 " + " ".join(t) + ")")
                               for j, t in enumerate(b_terms[i])]]
    query = data["query"]
    for name in query.get("zero", []):
        for row in grads[name]:
            for term in row:
                out.append(f"(assert (= {term} 0.0))")
    for name in query.get("nonzero", []):
        out.append("(assert (or " + " ".join(
            f"(not (= {term} 0.0))" for row in grads[name] for term in row) + "))")
    out.append("(check-sat)")
    return "\n".join(out) + "\n"


def cvc5_worker(yaml_text: str, samples: int, timeout: float) -> dict[str, Any]:
    import cvc5

    script = smtlib(yaml_text, samples)
    start = time.perf_counter()
    tm = cvc5.TermManager()
    solver = cvc5.Solver(tm)
    solver.setOption("tlimit-per", str(int(timeout * 1000)))
    solver.setOption("produce-models", "true")
    feed_smtlib(solver, script.replace("(check-sat)", ""), "bench")
    answer = solver.checkSat()
    verdict = "sat" if answer.isSat() else "unsat" if answer.isUnsat() else "unknown"
    return {"verdict": verdict, "seconds": time.perf_counter() - start,
            "reason": "" if verdict != "unknown" else str(answer.getUnknownExplanation())}


def run_cvc5(row: Row, samples: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(row.yaml, encoding="utf-8")
        command = [sys.executable, __file__, "--worker", str(path), str(samples), str(timeout)]
        return run_worker(command, timeout, ROOT, stderr_tail=300)


def _own_samples(row: Row) -> int:
    import yaml

    data = yaml.safe_load(row.yaml)
    if row.samples is not None:
        return row.samples
    if "Y" in data.get("fixed", {}):
        return len(data["fixed"]["Y"])
    samples = data["samples"]
    return samples["max"] if isinstance(samples, dict) else int(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--peer-timeout", type=float, default=20.0)
    parser.add_argument("--only", help="row names (or prefixes such as T1), comma separated")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        path, samples, timeout = args.worker
        print(json.dumps(cvc5_worker(Path(path).read_text(encoding="utf-8"), int(samples),
                                     float(timeout))))
        return 0
    selected = rows()
    if args.only:
        wanted = [item.strip() for item in args.only.split(",")]
        selected = [row for row in selected
                    if any(row.name == w or row.name.startswith(w + " ") for w in wanted)]
    records = []
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{'row':<40} {'smtgrad':>24} {'check':>8} {'80-digit':>8} {'cvc5 (exp)':>18}")
    for row in selected:
        ours = run_smtgrad(row, args.timeout)
        m = ours.get("samples") or _own_samples(row)
        peer = (None if args.no_peer else run_cvc5(row, m, args.peer_timeout))
        records.append({"row": row.name, "table": row.table, "samples": m,
                        "smtgrad": ours, "cvc5": peer, "spec": row.yaml})
        cell = f"{ours['verdict']} M={ours.get('samples')} {ours['seconds']:.2f}s"
        peer_cell = "-" if peer is None else f"{peer['verdict']} {peer['seconds']:.2f}s"
        print(f"{row.name:<40} {cell:>24} {ours.get('check', '-'):>8} "
              f"{ours.get('recheck80', '-'):>8} {peer_cell:>18}", flush=True)
    if args.out is None:
        args.out = ROOT / "bench" / ("results" if args.only else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "smooth.json").write_text(json.dumps(
        {"timeout": args.timeout, "peer_timeout": args.peer_timeout, "uptime": uptime,
         "rows": records}, indent=2), encoding="utf-8")
    lines = [f"Measured with `python bench/smooth.py --timeout {args.timeout:g} "
             f"--peer-timeout {args.peer_timeout:g}` ({uptime}).", "",
             "| row | M | smtgrad | certificate | method | check | 80-digit | cvc5 (exp) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        o, p = r["smtgrad"], r["cvc5"]
        peer_text = "-" if p is None else f"{p['verdict']} {p['seconds']:.2f} s"
        how = (o.get("method") or o.get("reason") or "-")[:70]
        lines.append(f"| {r['row']} | {r['samples']} | {o['verdict']} {o['seconds']:.2f} s | "
                     f"{o.get('certificate') or '-'} | {how} | {o.get('check', '-')} | "
                     f"{o.get('recheck80', '-')} | {peer_text} |")
    (args.out / "smooth.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
