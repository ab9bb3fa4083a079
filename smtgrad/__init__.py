"""smtgrad: exact existence questions about the gradients of small neural networks.

The Python API (:mod:`smtgrad.api`), imported on first use so that ``import smtgrad``
stays light (no solver, no torch, no numpy):

* ``smtgrad.load_spec(path | dict | YAML text) -> Spec``
* ``smtgrad.solve(spec, *, samples=None, minimal=False, timeout=60, backend="z3",
  cross_check=False) -> Result``
* ``smtgrad.check(spec, witness) -> CheckResult``

``Result`` and ``CheckResult`` carry the exact witness, ``.gradients`` and ``.loss``,
``.to_dict()`` (the JSON contract), ``.to_torch()``, ``.to_numpy()``, ``.to_onnx()``,
``.replay()`` and ``.save(path)``. See the README's "Python API" section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from smtgrad.api import CheckResult, check, load_spec, solve
    from smtgrad.engine import Result
    from smtgrad.errors import InputError, InternalError, SmtgradError
    from smtgrad.reference.verify import Status
    from smtgrad.spec import Spec, SpecError, Verdict

#: Each public name, with the module that defines it (imported when first used).
_LAZY = {
    "load_spec": "smtgrad.api", "solve": "smtgrad.api", "check": "smtgrad.api",
    "CheckResult": "smtgrad.api", "Result": "smtgrad.engine", "Spec": "smtgrad.spec",
    "SpecError": "smtgrad.spec", "Verdict": "smtgrad.spec", "Status": "smtgrad.reference.verify",
    "SmtgradError": "smtgrad.errors", "InputError": "smtgrad.errors",
    "InternalError": "smtgrad.errors",
}

__all__ = ["CheckResult", "InputError", "InternalError", "Result", "SmtgradError", "Spec",
           "SpecError", "Status", "Verdict", "__version__", "check", "load_spec", "solve"]


def __getattr__(name: str) -> Any:
    """The public API, imported on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smtgrad' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
