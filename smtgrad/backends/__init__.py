"""SMT backends: the only code that imports a solver.

Backends are found by try-import and registered by name. Each takes a pysmt
formula and returns a :class:`SolverAnswer` with exact model values.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol

from smtgrad.backends.threads import running_solver_threads, solver_thread
from smtgrad.errors import InputError

if TYPE_CHECKING:
    from pysmt.fnode import FNode

#: The solver-thread count lives in :mod:`smtgrad.backends.threads`; these are its
#: former names here, kept for callers (and tests) that import them from the package.
solver_thread_running = solver_thread
solver_threads_running = running_solver_threads


class SolverStatus(Enum):
    """What a solver said about a formula."""

    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"


class IrrationalValue(ValueError):
    """A model value that is algebraic but not rational.

    An internal signal, not an error (not a :class:`~smtgrad.errors.SmtgradError`): the
    engine catches it and handles the irrational model itself.
    """


class BackendUnavailable(InputError, RuntimeError):
    """The named backend is unknown or not installed (a usage error: exit 2)."""

    label = ""  # the message says it all: "backend cvc5 is not installed; ..."


class Model(Protocol):
    """Exact values of terms in a satisfying assignment."""

    def value(self, term: FNode) -> Fraction:
        """The exact rational value of a term (IrrationalValue if it is not rational)."""
        ...

    def truth(self, term: FNode) -> bool:
        """The truth value of a Boolean term."""
        ...

    def approximate(self, term: FNode) -> Fraction:
        """A rational within 1e-20 of the (possibly irrational) value of a term."""
        ...


#: z3 resource units (``rlimit``) in about one second of an idle core of the reference
#: machine (measured 2-3M on the exact encodings). Work budgets are written in these
#: "solver seconds"; what is counted is the units, never the clock.
Z3_UNITS_PER_SECOND = 2_000_000


@dataclass(frozen=True)
class SolverAnswer:
    """A solver's status, model (when sat) and reason (when unknown)."""

    status: SolverStatus
    model: Model | None = None
    reason: str = ""
    seconds: float = 0.0
    #: Resource units the solver spent (z3's ``rlimit count``), when it reports them.
    work: int | None = None
    #: The solver that answered (name and version), when a backend runs several.
    solver: str = ""


class Backend(Protocol):
    """An SMT solver that decides quantifier-free nonlinear real arithmetic."""

    name: str

    def version(self) -> str:
        """Solver name and version, e.g. 'z3 4.15.0'."""
        ...

    def solve(self, formula: FNode, timeout: float | None,
              work: int | None = None) -> SolverAnswer:
        """Decide ``formula``; give up with UNKNOWN after ``timeout`` seconds or after
        ``work`` resource units (z3 ``rlimit``, cvc5 ``rlimit-per``: counted steps, so
        the same answer on an idle and a busy machine)."""
        ...


_REGISTRY: dict[str, tuple[str, str]] = {
    "z3": ("smtgrad.backends.z3_backend", "Z3Backend"),
    "cvc5": ("smtgrad.backends.cvc5_backend", "Cvc5Backend"),
    # z3 and cvc5 in parallel child processes, the first definite answer (race.py).
    "both": ("smtgrad.backends.race", "RaceBackend"),
}


#: The Python package each backend's solver comes from.
_SOLVER_PACKAGES = {"z3": ("z3",), "cvc5": ("cvc5",), "both": ("z3", "cvc5")}


def require_backend(name: str) -> None:
    """Raise BackendUnavailable unless ``name`` is a known backend whose solver package is
    installed; cheap (nothing is imported), so a bad choice fails before any work."""
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; expected one of "
                                 f"{', '.join(_REGISTRY)}")
    if not all(_package_installed(package) for package in _SOLVER_PACKAGES[name]):
        raise BackendUnavailable(f"backend {name} is not installed; "
                                 f"pip install 'smtgrad[{name}]'")


@functools.cache
def _package_installed(package: str) -> bool:
    return package in sys.modules or importlib.util.find_spec(package) is not None


def backend_names() -> list[str]:
    """Names of every known backend, installed or not."""
    return list(_REGISTRY)


def get_backend(name: str) -> Backend:
    """Instantiate a backend by name (BackendUnavailable if its solver is missing)."""
    require_backend(name)
    module_name, class_name = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BackendUnavailable(f"backend {name} is not installed ({error}); "
                                 f"pip install 'smtgrad[{name}]'") from None
    factory: Callable[[], Backend] = getattr(module, class_name)
    return factory()


def installed_backends() -> list[str]:
    """Names of the backends whose solver imports."""
    names = []
    for name in _REGISTRY:
        try:
            get_backend(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names
