"""The benchmark workloads of issue 4, as YAML spec text.

Each workload is a spec (built as YAML text and parsed by smtgrad's own
``parse_spec``), the M (or M range with ``minimal``) to solve at, the verdict
we expect, and the axis values used by the plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED_MS = (4, 8, 16, 32, 64)
WIDTHS = (2, 4, 8)
WIDTH_MS = (8, 16)


@dataclass(frozen=True)
class Workload:
    """One benchmark row."""

    name: str
    group: str  # "seed-generic", "width", "deep", "minimal", "impossible", "smooth"
    yaml: str
    samples: int  # M, or the largest M when minimal
    minimal: bool = False
    min_samples: int = 1  # first M when minimal
    expect: str = "sat"  # the verdict we expect (mathematically known)
    quick: bool = False  # part of `run.py --quick`
    # Axis values for the plot (M for the seed series, width for the width series).
    axis: dict[str, int] = field(default_factory=dict)
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


def seed_generic() -> list[Workload]:
    return [
        Workload(
            name=f"seed-generic-M{m}", group="seed-generic",
            yaml=spec_yaml(f"seed-generic-M{m}", SEED_LAYERS, UPPER, LOWER, m, True),
            samples=m, expect="sat", quick=m <= 8, axis={"M": m},
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
                axis={"width": width, "M": m},
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


# ----------------------------------------------------------------------------------------
# HOOK (smooth activations): workloads that need sigmoid / tanh / softmax support.
# They are run only if the installed smtgrad supports them; when solve() answers
# unknown with a reason mentioning 'smooth' (or raises), run.py reports the row
# as "skipped" with a note instead of failing. Another engineer is adding smooth
# support; add further smooth workloads to this list.
SMOOTH_WORKLOADS: list[Workload] = [
    Workload(
        name="sigmoid-bce-hard-minimal", group="smooth",
        yaml=spec_yaml("sigmoid-bce-hard-minimal", [(1, "relu"), (1, "sigmoid")], UPPER, LOWER,
                       "{min: 1, max: 10}", False, loss="bce", targets="binary"),
        samples=10, minimal=True, min_samples=1, expect="sat", requires_smooth=True,
        note="hard labels (targets: binary), sigmoid output + BCE, --minimal up to M=10; "
             "the baseline does not cover smooth activations",
    ),
]


def all_workloads() -> list[Workload]:
    return [*seed_generic(), *widths(), *deep(), *minimal(), *impossible(), *SMOOTH_WORKLOADS]
