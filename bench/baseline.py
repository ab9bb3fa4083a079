"""The baseline: the direct Z3 encoding a user would write by hand.

This is what a competent user writes with the z3 Python API when asked "can
these gradients be exactly zero and those nonzero?", without smtgrad's tricks:

* parameters, inputs X and **targets Y** are unknown reals (no residual
  substitution: the residual yhat - y stays a polynomial in the unknowns);
* the forward pass uses z3 ``If`` terms for relu / leaky_relu / abs / hardtanh;
* the gradients are written out from backpropagation, with ``If`` terms for
  the derivative (PyTorch convention: relu'(0) = 0, or the spec's convention);
* ``generic`` adds nonzero weights, no pre-activation on a kink and
  ``Distinct`` inputs;
* the query is a conjunction of equalities and, per nonzero block, a
  disjunction of disequalities, handed to a plain ``z3.Solver()``.

No phase variables, no rank criterion, no sample reduction, no symmetry
breaking. Bench code only: it imports z3 directly, never smtgrad's encoder.

The second peer, :func:`solve_cvc5_model`, is cvc5 on the *same* formula: the z3
assertions exported as SMT-LIB 2 (``Solver.to_smt2()``; every constant is real,
so the formula is QF_NRA) and read by cvc5's own parser (``cvc5.InputParser``),
solved with nonlinear real arithmetic by cylindrical algebraic coverings
(``nl-cov``) and a per-check time limit (``tlimit-per``).
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import z3
from common import feed_smtlib

from smtgrad.spec import Layer, LossKind, Reduction, Spec, TargetKind, entries


class BaselineUnsupported(ValueError):
    """The hand-written baseline covers piecewise-linear nets with MSE and real targets."""


def _q(value: Fraction) -> z3.ArithRef:
    return z3.RealVal(f"{value.numerator}/{value.denominator}")


ONE, ZERO = z3.RealVal(1), z3.RealVal(0)


def _sum(terms: list[z3.ArithRef]) -> z3.ArithRef:
    """z3.Sum, without the 1-ary sums "(+ x)" that z3 prints and cvc5's parser rejects."""
    return terms[0] if len(terms) == 1 else z3.Sum(terms)


def _or(terms: list[z3.BoolRef]) -> z3.BoolRef:
    """z3.Or, without 1-ary disjunctions (not SMT-LIB: ``or`` takes two or more)."""
    return terms[0] if len(terms) == 1 else z3.Or(terms)


def _act(layer: Layer, u: z3.ArithRef) -> z3.ArithRef:
    act = layer.activation
    if act.name == "linear":
        return u
    if act.name == "relu":
        return z3.If(u > 0, u, ZERO)
    if act.name == "leaky_relu":
        return z3.If(u > 0, u, _q(layer.slope) * u)
    if act.name == "abs":
        return z3.If(u >= 0, u, -u)
    if act.name == "hardtanh":
        return z3.If(u > 1, ONE, z3.If(u < -1, -ONE, u))
    raise BaselineUnsupported(f"activation {act.name} is not piecewise linear")


def _dact(layer: Layer, u: z3.ArithRef, kink_one: bool) -> z3.ArithRef:
    """Derivative used by backprop; at a kink, 0 (PyTorch) or 1 (kink_one)."""
    act = layer.activation
    if act.name == "linear":
        return ONE
    if act.name == "relu":
        return z3.If(u >= 0, ONE, ZERO) if kink_one else z3.If(u > 0, ONE, ZERO)
    if act.name == "leaky_relu":
        slope = _q(layer.slope)
        return z3.If(u >= 0, ONE, slope) if kink_one else z3.If(u > 0, ONE, slope)
    if act.name == "abs":
        if kink_one:
            return z3.If(u >= 0, ONE, -ONE)
        return z3.If(u > 0, ONE, z3.If(u < 0, -ONE, ZERO))
    if act.name == "hardtanh":
        if kink_one:
            return z3.If(z3.And(u >= -1, u <= 1), ONE, ZERO)
        return z3.If(z3.And(u > -1, u < 1), ONE, ZERO)
    raise BaselineUnsupported(f"activation {act.name} is not piecewise linear")


def _kinks(layer: Layer) -> tuple[int, ...]:
    if layer.activation.name in ("relu", "leaky_relu", "abs"):
        return (0,)
    if layer.activation.name == "hardtanh":
        return (-1, 1)
    return ()


def build(spec: Spec, samples: int) -> tuple[z3.Solver, dict[str, Any]]:
    """The hand-written constraints at M = ``samples``: a solver and its unknowns."""
    if spec.loss.kind is not LossKind.MSE or spec.targets is not TargetKind.REAL:
        raise BaselineUnsupported("the baseline handles MSE with real targets only")
    if spec.assume:
        raise BaselineUnsupported("the baseline does not translate `assume`")
    network = spec.network
    kink_one = spec.conventions.relu_grad_at_zero == 1

    def var(name: str, index: tuple[int, ...], label: str) -> z3.ArithRef:
        fixed = spec.fixed_value(name, index)
        return _q(fixed) if fixed is not None else z3.Real(label)

    shapes = network.parameter_shapes()
    W: list[list[list[z3.ArithRef]]] = []
    b: list[list[z3.ArithRef]] = []
    for layer_no in range(1, network.depth + 1):
        rows, cols = shapes[f"W{layer_no}"]
        W.append([[var(f"W{layer_no}", (j, i), f"W{layer_no}_{j}_{i}") for i in range(cols)]
                  for j in range(rows)])
        b.append([var(f"b{layer_no}", (j,), f"b{layer_no}_{j}") for j in range(rows)])
    X = [[var("X", (m, i), f"x_{m}_{i}") for i in range(network.inputs)]
         for m in range(samples)]
    Y = [[var("Y", (m, k), f"y_{m}_{k}") for k in range(network.outputs)]
         for m in range(samples)]

    # Forward pass, keeping pre-activations and layer inputs for backprop.
    pre: list[list[list[z3.ArithRef]]] = []  # [layer][m][unit]
    ins: list[list[list[z3.ArithRef]]] = []  # [layer][m][input]
    current = X
    for index, layer in enumerate(network.layers):
        ins.append(current)
        us = [[_sum([W[index][j][i] * current[m][i] for i in range(len(current[m]))])
               + b[index][j] for j in range(layer.units)] for m in range(samples)]
        pre.append(us)
        current = [[_act(layer, u) for u in row] for row in us]
    yhat = current

    # dL/dz at the output: (2 * scale / N) * (yhat - y) * h'(z) for mean MSE.
    count = samples * network.outputs
    factor = spec.loss.scale * (Fraction(2, count) if spec.loss.reduction is Reduction.MEAN
                                else 2)
    out = network.layers[-1]
    delta = [[_q(factor) * (yhat[m][k] - Y[m][k]) * _dact(out, pre[-1][m][k], kink_one)
              for k in range(network.outputs)] for m in range(samples)]
    grads: dict[str, Any] = {}
    for index in range(network.depth - 1, -1, -1):
        units = network.layers[index].units
        width = len(ins[index][0])
        grads[f"W{index + 1}"] = [[_sum([delta[m][j] * ins[index][m][i]
                                           for m in range(samples)]) for i in range(width)]
                                  for j in range(units)]
        grads[f"b{index + 1}"] = [_sum([delta[m][j] for m in range(samples)])
                                  for j in range(units)]
        if index == 0:
            break
        below = network.layers[index - 1]
        delta = [[_sum([W[index][j][i] * delta[m][j] for j in range(units)])
                  * _dact(below, pre[index - 1][m][i], kink_one) for i in range(width)]
                 for m in range(samples)]

    def entry(name: str, idx: tuple[int, ...]) -> z3.ArithRef:
        item = grads[name]
        for position in idx:
            item = item[position]
        return item

    solver = z3.Solver()
    for target in spec.query.zero:
        idxs = [target.index] if target.index is not None else entries(shapes[target.block])
        for idx in idxs:
            solver.add(entry(target.block, idx) == 0)
    for target in spec.query.nonzero:
        idxs = [target.index] if target.index is not None else entries(shapes[target.block])
        solver.add(_or([entry(target.block, idx) != 0 for idx in idxs]))
    if spec.generic:
        for weight in W:
            for row in weight:
                for w in row:
                    solver.add(w != 0)
        for index, layer in enumerate(network.layers):
            for point in _kinks(layer):
                for row in pre[index]:
                    for u in row:
                        solver.add(u != point)
        if network.inputs == 1:
            if samples > 1:
                solver.add(z3.Distinct([row[0] for row in X]))
        else:
            for m in range(samples):
                for n in range(m):
                    solver.add(_or([a != c for a, c in zip(X[m], X[n], strict=True)]))
    return solver, {"W": W, "b": b, "X": X, "Y": Y}


def solve_baseline(spec: Spec, samples: int, timeout: float | None
                   ) -> tuple[str, float]:
    """Run the hand-written encoding at one M; return (verdict, seconds).

    Seconds cover building the formula and ``check()``; the verdict is
    'sat', 'unsat' or 'unknown' (timeout or z3 incompleteness).
    """
    verdict, seconds, _ = solve_baseline_model(spec, samples, timeout)
    return verdict, seconds


def _no_phase(phase: str) -> None:
    """Default progress hook: the bench passes one that records how far a run got."""


def solve_baseline_model(spec: Spec, samples: int, timeout: float | None,
                         on_phase: Any = _no_phase) -> tuple[str, float, Any]:
    """As :func:`solve_baseline`, also returning a witness dict of exact strings when sat."""
    start = time.perf_counter()
    on_phase("building the z3 terms")
    solver, unknowns = build(spec, samples)
    on_phase(f"z3 check() (formula built in {time.perf_counter() - start:.1f} s)")
    if timeout is not None:
        solver.set("timeout", max(1, int(timeout * 1000)))
    answer = solver.check()
    seconds = time.perf_counter() - start
    if answer == z3.sat:
        model = solver.model()

        def value(term: z3.ArithRef) -> str:
            evaluated = model.eval(term, model_completion=True)
            if z3.is_rational_value(evaluated):
                return str(evaluated.as_fraction())
            return "irrational:" + str(evaluated.sexpr())

        return "sat", seconds, _model_strings(unknowns, value)
    if answer == z3.unsat:
        return "unsat", seconds, None
    return "unknown", seconds, solver.reason_unknown()


def _model_strings(unknowns: dict[str, Any], value: Any) -> dict[str, Any]:
    def walk(item: Any) -> Any:
        return [walk(x) for x in item] if isinstance(item, list) else value(item)

    return {name: walk(item) for name, item in unknowns.items()}


def smtlib(solver: z3.Solver) -> str:
    """The solver's assertions as an SMT-LIB 2 script (declarations and asserts)."""
    return str(solver.to_smt2()).replace("(check-sat)", "")


def solve_cvc5_model(spec: Spec, samples: int, timeout: float | None,
                     logic: str = "QF_NRA", on_phase: Any = _no_phase
                     ) -> tuple[str, float, Any, dict[str, Any]]:
    """cvc5 on the direct formula at one M: (verdict, seconds, model or reason, info).

    Seconds cover building the z3 terms, the SMT-LIB export, cvc5's parse and
    ``checkSat()``; the time limit is what is left of ``timeout`` after the export.
    """
    import cvc5

    start = time.perf_counter()
    on_phase("building the z3 terms")
    solver, unknowns = build(spec, samples)
    on_phase(f"SMT-LIB export (formula built in {time.perf_counter() - start:.1f} s)")
    script = smtlib(solver)
    on_phase(f"cvc5 parse (exported after {time.perf_counter() - start:.1f} s)")
    info: dict[str, Any] = {"logic": logic, "options": {"nl-cov": "true"},
                            "smtlib_chars": len(script),
                            "export_seconds": time.perf_counter() - start}
    tm = cvc5.TermManager()
    cvc = cvc5.Solver(tm)
    cvc.setOption("produce-models", "true")
    cvc.setOption("nl-cov", "true")
    cvc.setLogic(logic)
    symbols, _ = feed_smtlib(cvc, script, "direct-encoding")
    info["parse_seconds"] = time.perf_counter() - start - info["export_seconds"]
    on_phase(f"cvc5 checkSat() (parsed after {time.perf_counter() - start:.1f} s)")
    if timeout is not None:
        left = timeout - (time.perf_counter() - start)
        if left <= 0:
            return "unknown", time.perf_counter() - start, "timeout (before checkSat)", info
        cvc.setOption("tlimit-per", str(max(1, int(left * 1000))))
    answer = cvc.checkSat()
    seconds = time.perf_counter() - start
    if answer.isSat():
        values = {str(term): cvc.getValue(term) for term in symbols.getDeclaredTerms()}

        def value(term: z3.ArithRef) -> str:
            if z3.is_rational_value(term):
                return str(term.as_fraction())
            found = values.get(str(term))
            if found is None:  # in no assertion: any value will do
                return "0"
            if found.isRealValue():
                return str(found.getRealValue())
            return "irrational:" + str(found)

        return "sat", seconds, _model_strings(unknowns, value), info
    if answer.isUnsat():
        return "unsat", seconds, None, info
    return "unknown", seconds, str(answer.getUnknownExplanation()), info


def solve_baseline_range(spec: Spec, low: int, high: int, timeout: float | None
                         ) -> tuple[str, float, int | None]:
    """The hand-written ``--minimal``: M = low, low+1, ... with one shared deadline.

    Returns (verdict, seconds, M): the first sat M; unsat if every M is unsat;
    unknown as soon as one M is unknown or the deadline passes.
    """
    start = time.perf_counter()
    for samples in range(low, high + 1):
        left = None if timeout is None else timeout - (time.perf_counter() - start)
        if left is not None and left <= 0:
            return "unknown", time.perf_counter() - start, samples
        verdict, _ = solve_baseline(spec, samples, left)
        if verdict != "unsat":
            return verdict, time.perf_counter() - start, samples
    return "unsat", time.perf_counter() - start, None
