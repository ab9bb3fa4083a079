"""The root of every error smtgrad raises on purpose, and what each kind means.

The command line (:func:`smtgrad.cli._errors_to_exit_codes`) maps them to exit codes
in one place:

* :class:`InputError` -- bad input or usage: a spec, witness, number, expression or
  backend choice that smtgrad cannot use. Exit 2, with the message prefixed by the
  class's :attr:`InputError.label` (``"bad spec"``, ``"bad witness"``, ...).
  Subclasses: :class:`smtgrad.spec.SpecError`, :class:`smtgrad.reference.witness.WitnessError`,
  :class:`smtgrad.numbers.NumberError`, :class:`smtgrad.numbers.expr.ExprError`,
  :class:`smtgrad.backends.BackendUnavailable`.
* :class:`InternalError` -- a bug in smtgrad (for instance a solver's witness that
  the exact verifier rejects, or a lemma that a verified witness contradicts).
  Exit 4, "internal error (a bug, please report it): ...".

Any other exception that reaches the command line is a bug too (exit 4, with its type
name); ``KeyboardInterrupt`` exits 130 and ``RecursionError`` (input nested too deeply)
exits 2.

Classes that keep a standard base as well (``NumberError(InputError, ValueError)``)
do so on purpose: callers that catch ``ValueError`` or ``RuntimeError`` keep working.

Not errors: some exceptions are internal *signals* that one part of smtgrad raises and
another catches to change course; they never reach the user and deliberately do not
derive from :class:`SmtgradError` (an ``except SmtgradError`` must not swallow them,
and one escaping would rightly be reported as a bug, exit 4):
:class:`smtgrad.backends.IrrationalValue` (a model value that is not rational),
:class:`smtgrad.encoding.builder.EncodingTimeout` (the deadline passed while encoding),
:class:`smtgrad.encoding.modes.UnsupportedSpec` (a mode that cannot encode a spec; ``export``
reports it itself) and :class:`smtgrad.activations.base.InexactValue` (a value that
cannot be computed exactly).
"""

from __future__ import annotations

from typing import ClassVar


class SmtgradError(Exception):
    """Every error smtgrad raises on purpose: an :class:`InputError` (exit 2) or an
    :class:`InternalError` (exit 4). See the module documentation."""


class InputError(SmtgradError):
    """Bad input or usage (exit 2): the user can fix it."""

    #: How the command line prefixes the message (``"bad spec: ..."``); empty: no prefix.
    label: ClassVar[str] = "bad input"


class InternalError(SmtgradError):
    """A bug in smtgrad (exit 4): please report it."""
