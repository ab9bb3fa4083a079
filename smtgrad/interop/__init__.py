"""Witnesses for other tools: floats (:mod:`.values`), NumPy (:mod:`.numpy_export`),
PyTorch (:mod:`.torch_export`), ONNX (:mod:`.onnx_export`), autograd replay
(:mod:`.replay`) and ``--save-witness`` (:func:`save_witness`).

Nothing here is trusted: every verdict and every exact value comes from the verifier;
this package only converts what it found into floats and tensors. Only
:mod:`smtgrad.views` (the methods of ``Result`` and ``CheckResult``) and :mod:`smtgrad.cli`
import it, and lazily: ``import smtgrad`` and ``smtgrad solve`` never import torch, numpy or
onnx. The
modules here import their optional dependency at the top; :func:`require` turns a
missing one into :class:`MissingDependency` (exit 2, with the ``pip install`` line).

May import :mod:`smtgrad.spec`, :mod:`smtgrad.numbers`, :mod:`smtgrad.reference`,
:mod:`smtgrad.errors` and the optional packages numpy, torch, onnx and onnxruntime;
never the search code.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from smtgrad.errors import InputError

if TYPE_CHECKING:
    from smtgrad.reference.witness import Witness
    from smtgrad.spec import Spec

#: Each optional module, with the extra that installs it.
EXTRAS = {"torch": "torch", "numpy": "numpy", "onnx": "onnx", "onnxruntime": "onnx"}

#: What ``--save-witness`` writes, by suffix, and the modules each format needs.
FORMATS: dict[str, tuple[str, ...]] = {
    ".json": (),
    ".npz": ("numpy",),
    ".pt": ("torch",),
    ".onnx": ("onnx", "numpy"),
}


class MissingDependency(InputError, ImportError):
    """An optional package that an export or a replay needs is not installed (exit 2)."""

    label = "missing dependency"

    def __init__(self, module: str, purpose: str) -> None:
        self.module = module
        extra = EXTRAS.get(module, module)
        super().__init__(f"{purpose} needs {module}, which is not installed; install it with "
                         f"pip install 'smtgrad[{extra}]'")


class NoWitness(InputError, ValueError):
    """An export or replay of a result without a witness (unsat or unknown)."""

    label = "no witness"


class ExportError(InputError, ValueError):
    """An export that cannot be made: an unknown suffix, an unwritable file, ..."""

    label = "cannot export"


def available(module: str) -> bool:
    """Whether an optional module can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional module, or raise :class:`MissingDependency` naming the extra."""
    if not available(module):
        raise MissingDependency(module, purpose)
    try:
        return importlib.import_module(module)
    except ImportError as error:  # installed but broken (a missing shared library, say)
        raise MissingDependency(module, f"{purpose} (import failed: {error})") from None


def save_format(path: Path) -> str:
    """The format of ``--save-witness PATH`` from its suffix; checks the dependencies.

    Called before a solve, so that a bad suffix or a missing package fails at once
    (:class:`ExportError` or :class:`MissingDependency`, exit 2).
    """
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(FORMATS)
        shown = f"the suffix {suffix!r}" if suffix else "no suffix"
        raise ExportError(f"{path}: {shown} names no format; --save-witness writes {known}")
    for module in FORMATS[suffix]:
        if not available(module):
            raise MissingDependency(module, f"--save-witness {path.name}")
    return suffix


def save_witness(spec: Spec, witness: Witness, path: Path, data: dict[str, Any] | None = None,
                 gradients: dict[str, Any] | None = None, loss: Any = None) -> None:
    """Write a witness in the format that ``path``'s suffix names.

    ``.json``: ``data`` (the contract JSON of the result, required for this suffix);
    ``.npz``: :func:`smtgrad.interop.numpy_export.save_npz`; ``.pt``:
    :func:`smtgrad.interop.torch_export.save_pt`; ``.onnx``:
    :func:`smtgrad.interop.onnx_export.save_onnx`.
    """
    suffix = save_format(path)
    if suffix == ".json":
        import json

        if data is None:
            raise ExportError(f"{path}: a JSON export needs the result's JSON")
        _write(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    elif suffix == ".npz":
        from smtgrad.interop.numpy_export import save_npz

        save_npz(spec, witness, path, gradients, loss)
    elif suffix == ".pt":
        from smtgrad.interop.torch_export import save_pt

        save_pt(spec, witness, path)
    else:
        from smtgrad.interop.onnx_export import save_onnx

        save_onnx(spec, witness, path)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None


__all__ = ["EXTRAS", "FORMATS", "ExportError", "MissingDependency", "NoWitness", "available",
           "require", "save_format", "save_witness"]
