"""The benchmark workloads, as YAML spec text.

Two roles:

* **scale** rows (issue 17): what users wait for. Free data, ``generic: true``, MSE,
  ReLU hidden layers, a linear output; one hidden layer: zero [W2, b2], nonzero
  [W1, b1]; deeper: zero every layer above the first, nonzero [W1]. The seed 1-1-1
  at M = 1000 .. 10,000, 1-k-1 for k = 8 .. 64 at M = 16 and 64, and 1-4-4-1,
  1-8-8-1, 1-8-8-8-1. The peers are the direct z3 encoding and cvc5 on the same
  formula.
* **regression** rows (issue 4): the millisecond rows of the first benchmark. A row
  answered in a few milliseconds measures the interpreter, not the method, so they
  are no longer targets; they still run, as a check that nothing got slower or
  changed its verdict (peer: the direct z3 encoding).

Each workload is a spec (built as YAML text and parsed by smtgrad's own
``parse_spec``), the M (or M range with ``minimal``) to solve at, the verdict we
expect, and the axis values used by the plot and the growth fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The 1-1-1 series of the plot: regression rows M = 4 .. 64, scale rows from 1000.
SEED_MS = (4, 8, 16, 32, 64)
SCALE_SEED_MS = (1000, 1024, 2000, 5000, 10000)
WIDTHS = (2, 4, 8)
WIDTH_MS = (8, 16)
SCALE_WIDTHS = (8, 16, 32, 64)
SCALE_MS = (16, 64)
#: The width series of the plot and its growth fit: 1-k-1 at this M.
WIDTH_SERIES_M = 64
PEERS = ("z3", "cvc5")


@dataclass(frozen=True)
class Workload:
    """One benchmark row."""

    name: str
    group: str  # e.g. "seed-generic", "width", "deep", "minimal", "impossible", "smooth",
    #             "scale-seed", "scale-width", "scale-deep"
    yaml: str
    samples: int  # M, or the largest M when minimal
    role: str = "regression"  # "scale" (targets) or "regression"
    minimal: bool = False
    min_samples: int = 1  # first M when minimal
    expect: str = "sat"  # the verdict we expect (mathematically known)
    quick: bool = False  # part of `run.py --quick`
    # Axis values for the plot and the fits: "net" (e.g. "1-8-1"), "M", "width".
    axis: dict[str, object] = field(default_factory=dict)
    # Which peers run on this row ("z3": bench/baseline.py; "cvc5": the same formula).
    peers: tuple[str, ...] = ("z3",)
    # Hook: run only when the installed smtgrad supports smooth activations.
    requires_smooth: bool = False
    note: str = ""


def _layers(*layers: tuple[int, str]) -> str:
    return "\n".join(f"    - {{units: {units}, activation: {act}}}" for units, act in layers)


def spec_yaml(name: str, layers: list[tuple[int, str]], zero: list[str], nonzero: list[str],
              samples: int | str, generic: bool, loss: str = "mse",
              targets: str = "real") -> str:
    """A spec as YAML text (1 input)."""
    return (
        f"name: {name}\n"
        "network:\n"
        "  inputs: 1\n"
        "  layers:\n"
        f"{_layers(*layers)}\n"
        f"loss: {loss}\n"
        f"samples: {samples}\n"
        f"targets: {targets}\n"
        "query:\n"
        f"  zero: [{', '.join(zero)}]\n"
        f"  nonzero: [{', '.join(nonzero)}]\n"
        f"generic: {'true' if generic else 'false'}\n"
    )


SEED_LAYERS = [(1, "relu"), (1, "linear")]
UPPER, LOWER = ["W2", "b2"], ["W1", "b1"]


def relu_net(hidden: tuple[int, ...]) -> tuple[str, list[tuple[int, str]], list[str], list[str]]:
    """Name, layers and query of a ReLU net with these hidden widths (the issue-17 query)."""
    layers = [(units, "relu") for units in hidden] + [(1, "linear")]
    depth = len(layers)
    if depth == 2:
        zero, nonzero = list(UPPER), list(LOWER)
    else:  # zero every layer above the first, top down: [W3, b3, W2, b2]
        zero = [f"{kind}{layer}" for layer in range(depth, 1, -1) for kind in ("W", "b")]
        nonzero = ["W1"]
    return "1-" + "-".join(map(str, hidden)) + "-1", layers, zero, nonzero


# ----------------------------------------------------------------------------------------
# Scale rows (issue 17).


def _scale(hidden: tuple[int, ...], m: int, group: str, quick: bool = False,
           note: str = "") -> Workload:
    net, layers, zero, nonzero = relu_net(hidden)
    name = f"{net}-M{m}"
    axis: dict[str, object] = {"net": net, "M": m, "depth": len(hidden)}
    if len(hidden) == 1:
        axis["width"] = hidden[0]
    return Workload(name=name, group=group, role="scale",
                    yaml=spec_yaml(name, layers, zero, nonzero, m, True),
                    samples=m, expect="sat", quick=quick, axis=axis, peers=PEERS,
                    note=note or f"generic; zero {zero}, nonzero {nonzero}")


def scale_seed() -> list[Workload]:
    return [_scale((1,), m, "scale-seed") for m in SCALE_SEED_MS]


def scale_width() -> list[Workload]:
    return [_scale((k,), m, "scale-width", quick=(k == 8 and m == 16))
            for k in SCALE_WIDTHS for m in SCALE_MS]


def scale_deep() -> list[Workload]:
    rows = [_scale((4, 4), 64, "scale-deep")]
    rows += [_scale((8, 8), m, "scale-deep") for m in SCALE_MS]
    rows += [_scale((8, 8, 8), m, "scale-deep") for m in SCALE_MS]
    return rows


# ----------------------------------------------------------------------------------------
# Regression rows (issue 4).


def seed_generic() -> list[Workload]:
    return [
        Workload(
            name=f"seed-generic-M{m}", group="seed-generic",
            yaml=spec_yaml(f"seed-generic-M{m}", SEED_LAYERS, UPPER, LOWER, m, True),
            samples=m, expect="sat", quick=m <= 8,
            axis={"net": "1-1-1", "M": m, "width": 1, "depth": 1},
        )
        for m in SEED_MS
    ]


def widths() -> list[Workload]:
    result = []
    for width in WIDTHS:
        for m in WIDTH_MS:
            result.append(Workload(
                name=f"relu-w{width}-M{m}", group="width",
                yaml=spec_yaml(f"relu-w{width}-M{m}", [(width, "relu"), (1, "linear")],
                               UPPER, LOWER, m, True),
                samples=m, expect="sat", quick=(width == 2 and m == 8),
                axis={"net": f"1-{width}-1", "width": width, "M": m, "depth": 1},
            ))
    return result


def deep() -> list[Workload]:
    return [Workload(
        name="deep-3x3-M8", group="deep",
        yaml=spec_yaml("deep-3x3-M8", [(3, "relu"), (3, "relu"), (1, "linear")],
                       ["W3", "b3", "W2", "b2"], ["W1"], 8, True),
        samples=8, expect="sat",
        note="generic; zero the gradients of the last two layers, nonzero W1",
    )]


def minimal() -> list[Workload]:
    return [Workload(
        name="seed-minimal-M1..4", group="minimal",
        yaml=spec_yaml("seed-minimal", SEED_LAYERS, UPPER, LOWER, "{min: 1, max: 4}", False),
        samples=4, minimal=True, min_samples=1, expect="sat", quick=True,
        note="--minimal: M=1, 2 unsat, first sat at M=3",
    )]


def impossible() -> list[Workload]:
    linear = [(1, "linear"), (1, "linear")]
    return [
        Workload(name="seed-M2", group="impossible",
                 yaml=spec_yaml("seed-M2", SEED_LAYERS, UPPER, LOWER, 2, False),
                 samples=2, expect="unsat", quick=True),
        *[Workload(name=f"linear-hidden-M{m}", group="impossible",
                   yaml=spec_yaml(f"linear-hidden-M{m}", linear, UPPER, LOWER, m, False),
                   samples=m, expect="unsat", quick=m == 8,
                   note="dL/db1 = W2^T dL/db2 identically")
          for m in (8, 16)],
    ]


# HOOK (smooth activations): the one smooth regression row; the smooth family of its
# issue is bench/smooth.py (another engineer's bench), referenced from the README.
SMOOTH_WORKLOADS: list[Workload] = [
    Workload(
        name="sigmoid-bce-hard-minimal", group="smooth",
        yaml=spec_yaml("sigmoid-bce-hard-minimal", [(1, "relu"), (1, "sigmoid")], UPPER, LOWER,
                       "{min: 1, max: 10}", False, loss="bce", targets="binary"),
        samples=10, minimal=True, min_samples=1, expect="sat", requires_smooth=True,
        peers=(),
        note="hard labels (targets: binary), sigmoid output + BCE, --minimal up to M=10; "
             "the direct encoding does not cover smooth activations",
    ),
]


def scale_workloads() -> list[Workload]:
    return [*scale_seed(), *scale_width(), *scale_deep()]


def regression_workloads() -> list[Workload]:
    return [*seed_generic(), *widths(), *deep(), *minimal(), *impossible(), *SMOOTH_WORKLOADS]


def all_workloads() -> list[Workload]:
    return [*scale_workloads(), *regression_workloads()]
