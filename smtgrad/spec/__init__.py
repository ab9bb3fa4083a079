"""The spec layer: the YAML format, its validation and the frozen data model
(:mod:`.model`). The ``assume`` language it parses is :mod:`smtgrad.numbers.expr`.

May import :mod:`smtgrad.numbers`, :mod:`smtgrad.activations` and
:mod:`smtgrad.errors`; nothing above it.
"""

from smtgrad.spec.model import (
    MAX_LAYERS,
    MAX_SAMPLES,
    MAX_SPEC_BYTES,
    MAX_UNITS,
    Activation,
    Assumption,
    Conventions,
    Expectation,
    FixedArray,
    Layer,
    Loss,
    LossKind,
    Minimum,
    Network,
    Query,
    Reduction,
    SampleRange,
    Spec,
    SpecError,
    Target,
    TargetKind,
    Verdict,
    entries,
    load_spec,
    normalize_ref,
    parse_spec,
    parse_yaml,
    sample_plan,
)

__all__ = ["MAX_LAYERS", "MAX_SAMPLES", "MAX_SPEC_BYTES", "MAX_UNITS", "Activation",
           "Assumption", "Conventions", "Expectation", "FixedArray", "Layer", "Loss",
           "LossKind", "Minimum", "Network", "Query", "Reduction", "SampleRange", "Spec",
           "SpecError", "Target", "TargetKind", "Verdict", "entries", "load_spec", "normalize_ref",
           "parse_spec", "parse_yaml", "sample_plan"]
