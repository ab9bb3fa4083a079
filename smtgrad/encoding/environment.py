"""smtgrad's own pysmt environment: formulas are built and solved in it, and pysmt's
global environment is left as the user had it.

pysmt's shortcuts (``Symbol``, ``Plus``, ...), its FNode methods (``substitute``,
``simplify``) and its solvers all use the environment on top of pysmt's stack, so
smtgrad pushes its environment for as long as it works with formulas
(:func:`private_environment`: the engine from the first SMT call of a solve to its end,
``smtgrad export`` around its encoding), rather than passing it around. In
this environment the formula manager's type check is off (the encoder builds only
well-typed Real/Bool terms, and pysmt's check was half of the encoding time), without
patching the global manager. May import pysmt only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ENVIRONMENT: Any = None


def environment() -> Any:
    """smtgrad's pysmt environment (created on first use)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        from pysmt.environment import Environment

        created = Environment()
        created.formula_manager._do_type_check = lambda formula: None
        _ENVIRONMENT = created
    return _ENVIRONMENT


@contextmanager
def private_environment() -> Iterator[Any]:
    """Build and solve in smtgrad's environment for the duration of the block."""
    from pysmt.environment import get_env, pop_env, push_env

    env = environment()
    if get_env() is env:  # already inside (a nested solve): nothing to do
        yield env
        return
    push_env(env)
    try:
        yield env
    finally:
        pop_env()

