"""What a researcher does with an answer: exact gradients, floats, tensors, files, replay.

:class:`WitnessViews` is shared by :class:`smtgrad.engine.Result` (a solve) and
:class:`smtgrad.api.CheckResult` (a check). It adds, on top of the exact witness
(``.witness``): ``.gradients`` and ``.loss`` (exact values), ``.to_torch()``,
``.to_numpy()``, ``.to_onnx()``, ``.replay()``, ``.save()``, and the notebook
representation (``_repr_markdown_``: the text report in a fenced block). The classes
using it provide four hooks: the evaluation, whether it is an enclosure certificate,
the contract JSON and the text report.

Light on purpose: imports only the spec, the reference layer and the standard library
at the top; :mod:`smtgrad.interop` (numpy, torch, onnx), :mod:`smtgrad.report` and rich
are imported inside the methods that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smtgrad.interop.replay import Replay
    from smtgrad.reference.network import Evaluation, Kink
    from smtgrad.reference.witness import Witness
    from smtgrad.spec import Spec


class WitnessViews:
    """Exact gradients and every export of a witness (see the module documentation)."""

    spec: Spec
    witness: Witness | None

    # -- hooks -------------------------------------------------------------------------------

    def _evaluation(self) -> Evaluation | None:
        raise NotImplementedError

    def _enclosure(self) -> bool:
        """Whether the witness is a certified enclosure (its zero entries are proved 0)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of this answer."""
        raise NotImplementedError

    def text(self) -> str:
        """The text report, as the command line prints it."""
        raise NotImplementedError

    # -- exact values --------------------------------------------------------------------------

    def exact_values(self) -> dict[str, Any]:
        """The witness as plain exact values: every block (W1, b1, ..., X, Y) as nested
        lists of ``fractions.Fraction`` (rationals), ``sympy`` expressions (closed forms
        such as ``3*log(2)/2``) or :class:`smtgrad.reference.intervals.Enclosure` boxes
        (``.lo``, ``.hi``: rational bounds of a certified enclosure)."""
        from fractions import Fraction

        from smtgrad.reference.intervals import parse_enclosure
        from smtgrad.reference.witness import witness_to_json

        witness = self._witness("exact values")

        def convert(item: Any) -> Any:
            if isinstance(item, list):
                return [convert(entry) for entry in item]
            text = str(item)
            if text.strip().startswith("["):
                return parse_enclosure(text)
            try:
                return Fraction(text)
            except ValueError:
                import sympy

                return sympy.sympify(text, rational=True)

        return {name: convert(value)
                for name, value in witness_to_json(witness, self.spec.network).items()}

    @property
    def gradients(self) -> dict[str, tuple[Any, ...]] | None:
        """dL/d(block) for W1, b1, ..., WL, bL (in that order) as nested tuples, or None
        without an evaluation.

        Exact values: Fractions, or closed forms (``LogNumber``, ``ExpNumber``, whose
        ``str`` is the contract text, e.g. ``log(2)/36``). With an enclosure certificate
        the queried zero entries are the exact 0 that the Krawczyk test proves, and the
        other entries rigorous arb balls (a ``Dual``; ``str`` gives ``"[lo, hi]"``).
        """
        evaluation = self._evaluation()
        if evaluation is None:
            return None
        result = {name: evaluation.gradients[name] for name in self.spec.network.parameter_shapes()}
        if self._enclosure():
            from fractions import Fraction

            from smtgrad.reference.intervals import zero_coordinates
            from smtgrad.reference.network import with_entry

            for name, index in zero_coordinates(self.spec):
                result[name] = with_entry(result[name], index, Fraction(0))
        return result

    @property
    def loss(self) -> Any:
        """The exact loss (a Fraction, a closed form, or a ball), or None."""
        evaluation = self._evaluation()
        return None if evaluation is None else evaluation.loss

    @property
    def kinks(self) -> tuple[Kink, ...]:
        """The samples whose pre-activation sits exactly on a kink."""
        evaluation = self._evaluation()
        return () if evaluation is None else evaluation.kinks

    @property
    def has_witness(self) -> bool:
        """Whether there is a verified witness to export (a sat, or any checked witness)."""
        return self.witness is not None

    def _witness(self, what: str) -> Witness:
        if self.witness is None or not self.has_witness:
            from smtgrad.interop import NoWitness

            raise NoWitness(f"{what}: this answer has no witness ({self._why_none()})")
        return self.witness

    def _why_none(self) -> str:
        return "no witness"

    # -- exports ----------------------------------------------------------------------------------

    def to_torch(self, dtype: Any = None) -> tuple[Any, Any, Any]:
        """``(model, X, Y)``: a ``torch.nn.Sequential`` (float64 unless ``dtype``) of
        ``nn.Linear`` + activation modules with the witness loaded, and the data as
        tensors (see :mod:`smtgrad.interop.torch_export`; enclosures at their midpoints).
        Needs ``pip install 'smtgrad[torch]'``."""
        witness = self._witness("to_torch()")
        from smtgrad.interop.torch_export import to_torch

        return to_torch(self.spec, witness) if dtype is None else \
            to_torch(self.spec, witness, dtype)

    def torch_loss(self) -> Any:
        """The spec's loss as a function of ``(model(X), Y)`` in torch (reduction, scale)."""
        from smtgrad.interop.torch_export import loss_function

        return loss_function(self.spec)

    def to_numpy(self, exact: bool = False) -> dict[str, Any]:
        """The witness, gradients and loss as float64 arrays (``W1, b1, ..., X, Y,
        grad_W1, ..., loss``; enclosures at their midpoints), or with ``exact=True`` the
        same keys as arrays of exact strings (see :mod:`smtgrad.interop.numpy_export`)."""
        witness = self._witness("to_numpy()")
        from smtgrad.interop.numpy_export import to_numpy

        return to_numpy(self.spec, witness, self.gradients, self.loss, exact=exact)

    def to_onnx(self, dtype: str = "float64") -> Any:
        """The witness network as an ``onnx.ModelProto`` (input ``X``, output ``yhat``;
        see :mod:`smtgrad.interop.onnx_export`). Needs ``pip install 'smtgrad[onnx]'``."""
        witness = self._witness("to_onnx()")
        from smtgrad.interop.onnx_export import to_onnx

        return to_onnx(self.spec, witness, dtype)

    def replay(self) -> Replay:
        """PyTorch autograd on the witness in float32 and float64 beside the exact
        gradients (:func:`smtgrad.interop.replay.replay`; ``.render()`` prints it)."""
        witness = self._witness("replay()")
        from smtgrad.interop.replay import replay

        return replay(self.spec, witness, self.gradients, self.loss, self.kinks)

    def save(self, path: str | Path) -> None:
        """Write the witness to ``path`` in the format its suffix names: ``.json`` (the
        contract JSON), ``.npz``, ``.pt`` or ``.onnx`` (as ``--save-witness``)."""
        witness = self._witness(f"save({str(path)!r})")
        from smtgrad.interop import save_witness

        save_witness(self.spec, witness, Path(path), self.to_dict(), self.gradients, self.loss)

    # -- notebooks ------------------------------------------------------------------------------

    def _repr_markdown_(self) -> str:
        """Jupyter shows the text report (the command line's) in a fenced block."""
        return f"```text\n{self.text()}```\n"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: the text report."""
        printer.text(repr(self) if cycle else self.text().rstrip("\n"))
