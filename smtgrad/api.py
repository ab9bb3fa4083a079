"""The Python API: ``load_spec``, ``solve``, ``check`` (re-exported by :mod:`smtgrad`).

>>> import smtgrad
>>> spec = smtgrad.load_spec("specs/relu_mse.yaml")
>>> result = smtgrad.solve(spec)
>>> result.verdict.value, result.samples, result.certificate
('sat', 3, 'exact')
>>> result.gradients["W2"], result.gradients["b1"]
(((Fraction(0, 1),),), (Fraction(-4, 1),))
>>> print(result.loss)
26/3
>>> smtgrad.check(spec, result).status.value
'holds'

A spec comes from a file path, a mapping (the YAML structure as Python data) or YAML
text; every malformed input raises :class:`smtgrad.spec.SpecError` (an
:class:`smtgrad.errors.InputError`) naming the key and what was expected, as the command
line does. :func:`solve` returns :class:`smtgrad.engine.Result` (the JSON contract is
``result.to_dict()``); :func:`check` returns :class:`CheckResult`, the verifier's
three-valued answer. Both carry the exact witness and gradients and export them
(``.to_torch()``, ``.to_numpy()``, ``.to_onnx()``, ``.replay()``, ``.save(path)``:
:mod:`smtgrad.views`).

May import everything below the command line; imports the engine and the verifier when
first called, never torch or numpy (the exports do, when asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtgrad.views import WitnessViews

if TYPE_CHECKING:
    from smtgrad.engine import Result
    from smtgrad.reference.network import Evaluation
    from smtgrad.reference.verify import Status, Verification
    from smtgrad.reference.witness import Witness
    from smtgrad.spec import Spec

#: Where a mapping or YAML text came from, in error messages.
DICT_SOURCE = "<dict>"
TEXT_SOURCE = "<yaml>"


def _plain(value: Any, key: str) -> Any:
    """A mapping's values as YAML-ready data: Fractions as exact text, tuples as lists."""
    from smtgrad.spec import SpecError

    if isinstance(value, Mapping):
        plain = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise SpecError(DICT_SOURCE, key or "<top>",
                                f"keys must be text, found {type(name).__name__} {name!r}")
            plain[name] = _plain(item, f"{key}.{name}" if key else name)
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, f"{key}[{index}]") for index, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    from smtgrad.numbers.lognum import LogNumber
    from smtgrad.reference.intervals import Enclosure

    if isinstance(value, LogNumber | Enclosure):
        return str(value)  # exact text: "3*log(2)/2", "[lo, hi]"
    raise SpecError(DICT_SOURCE, key or "<top>", f"expected a number, text, list or mapping, "
                                                 f"found {type(value).__name__}")


def load_spec(source: Spec | str | Path | Mapping[str, Any]) -> Spec:
    """A validated spec from a path, a mapping or YAML text (a spec is returned as is).

    A ``str`` is YAML text when it has a line break, starts with ``{``, or reads
    ``key: value`` without naming a file; otherwise a path. A mapping has the structure
    of the YAML file (``{"network": {"inputs": 1, "layers": [...]}, "loss": "mse",
    ...}``); numbers may be ints, Fractions, exact text
    (``"13/3"``, ``"log(2)"``) or floats (read as their shortest decimal: ``0.1`` is
    1/10). Raises :class:`smtgrad.spec.SpecError` (exit 2 on the command line).
    """
    from smtgrad.spec import Spec, SpecError, parse_spec
    from smtgrad.spec import load_spec as load_file

    if isinstance(source, Spec):
        return source
    if isinstance(source, Path):
        return load_file(source)
    if isinstance(source, str):
        if _is_yaml_text(source):
            return parse_spec(source, TEXT_SOURCE)
        return load_file(source)
    if isinstance(source, Mapping):
        import yaml

        text = yaml.safe_dump(_plain(source, ""), sort_keys=False, allow_unicode=True)
        return parse_spec(text, DICT_SOURCE)
    raise SpecError("<spec>", "", f"expected a path, a mapping or YAML text, found "
                                  f"{type(source).__name__}")


def _is_yaml_text(text: str) -> bool:
    """YAML text, not a path: a line break, a flow mapping, or a ``key: value`` that names
    no file and does not end like a spec file."""
    if "\n" in text or text.lstrip().startswith("{"):
        return True
    if text.endswith((".yaml", ".yml", ".json")) or Path(text).exists():
        return False
    return ": " in text


def solve(spec: Spec | str | Path | Mapping[str, Any], *, samples: int | None = None,
          minimal: bool = False, timeout: float | None = 60, backend: str = "z3",
          cross_check: bool = False) -> Result:
    """Answer a spec as ``smtgrad solve`` does: sat with a verified witness, unsat with what
    proved it, or unknown with the reason.

    ``samples`` overrides M, ``minimal`` walks M up from 1, ``timeout`` bounds the whole
    search (seconds), ``backend`` is ``"z3"`` or ``"cvc5"``, ``cross_check`` confirms
    every unsat with the other backend. Raises :class:`smtgrad.errors.InputError` for bad
    input (exit 2 on the command line) and :class:`smtgrad.errors.InternalError` for a bug
    (a witness the verifier rejects, exit 4); never returns an unverified sat.
    """
    from smtgrad.engine import SolveOptions
    from smtgrad.engine import solve as run

    options = SolveOptions(samples=samples, minimal=minimal, timeout=timeout, backend=backend,
                           cross_check=cross_check)
    return run(load_spec(spec), options)


@dataclass(frozen=True)
class CheckResult(WitnessViews):
    """The verifier's answer on one witness: ``status`` holds / fails / undecided.

    ``failures`` lists the refuted requirements, ``undecided`` those that could not be
    proved (with the reason); ``gradients`` and ``loss`` are the exact values it computed.
    ``to_dict()`` is the JSON of ``smtgrad check --format json``.
    """

    spec: Spec
    witness: Witness
    verification: Verification

    @property
    def status(self) -> Status:
        """``Status.HOLDS``, ``Status.FAILS`` or ``Status.UNDECIDED``."""
        return self.verification.status

    @property
    def holds(self) -> bool | None:
        """True (holds), False (a requirement is refuted) or None (cannot decide)."""
        from smtgrad.reference.verify import Status

        status = self.status
        return None if status is Status.UNDECIDED else status is Status.HOLDS

    @property
    def failures(self) -> tuple[str, ...]:
        return self.verification.failures

    @property
    def undecided(self) -> tuple[str, ...]:
        return self.verification.undecided

    @property
    def evaluation(self) -> Evaluation | None:
        return self.verification.evaluation

    def _evaluation(self) -> Evaluation | None:
        return self.verification.evaluation

    def _enclosure(self) -> bool:
        from smtgrad.reference.verify import enclosed_coordinates

        return self.verification.accepted and bool(enclosed_coordinates(self.witness))

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``smtgrad check --format json``."""
        from smtgrad.report import check_json

        return check_json(self.spec, self.verification, self._enclosure())

    def text(self) -> str:
        """The text report that ``smtgrad check`` prints."""
        from smtgrad.reference.verify import enclosed_coordinates
        from smtgrad.report import render_check

        return render_check(self.spec, self.witness, self.verification,
                            bool(enclosed_coordinates(self.witness)))

    def __repr__(self) -> str:
        return (f"CheckResult(spec={self.spec.name!r}, status={self.status.value!r}, "
                f"failures={len(self.failures)}, undecided={len(self.undecided)})")


def read_witness(spec: Spec, source: Any) -> Witness:
    """A witness for ``spec`` from a :class:`~smtgrad.engine.Result` or
    :class:`CheckResult`, a result or bare-witness mapping, a path to a JSON or YAML file,
    or a :class:`~smtgrad.reference.witness.Witness` (returned as is).

    Raises :class:`smtgrad.reference.witness.WitnessError` (exit 2) for a file or mapping
    that does not fit the spec, and :class:`smtgrad.interop.NoWitness` for an answer
    without one.
    """
    from smtgrad.reference.witness import Witness, WitnessError, witness_from_json
    from smtgrad.spec import SpecError, parse_yaml

    if isinstance(source, Witness):
        return source
    if isinstance(source, WitnessViews):
        return source._witness("check()")
    if isinstance(source, Mapping):
        try:
            plain = _plain(source, "")
        except SpecError as error:
            raise WitnessError(f"{error.key}: {error.expected}") from None
        return witness_from_json(plain, spec.network, spec.targets)
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise WitnessError(f"{path}: not a readable file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise WitnessError(f"{path}: cannot read ({error})") from None
        try:
            raw = parse_yaml(text, str(path))
        except SpecError as error:
            raise WitnessError(str(error)) from None
        try:
            return witness_from_json(raw, spec.network, spec.targets)
        except WitnessError as error:
            raise WitnessError(f"{path}: {error}") from None
    raise WitnessError(f"expected a witness, a result, a mapping or a file path, found "
                       f"{type(source).__name__}")


def check(spec: Spec | str | Path | Mapping[str, Any], witness: Any) -> CheckResult:
    """Re-verify a witness exactly, as ``smtgrad check`` does (three-valued: ``status``).

    ``witness``: a :class:`~smtgrad.engine.Result`, a result or bare-witness mapping, a
    JSON or YAML file path, or a :class:`~smtgrad.reference.witness.Witness`.
    """
    from smtgrad.reference.verify import verify

    loaded = load_spec(spec)
    candidate = read_witness(loaded, witness)
    return CheckResult(loaded, candidate, verify(loaded, candidate))


__all__ = ["CheckResult", "check", "load_spec", "read_witness", "solve"]
