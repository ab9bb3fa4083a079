"""A witness as NumPy arrays, and the ``.npz`` file of ``--save-witness``.

Keys: the parameters ``W1, b1, ..., WL, bL`` (W_l of shape units x previous, as
``torch.nn.Linear``), the data ``X`` (M x inputs) and ``Y`` (M x outputs; for class
targets a vector of M class indices, int64), and when known the exact gradients
``grad_W1, ...`` and the ``loss``. Values are float64, converted by
:func:`smtgrad.interop.values.to_float` (enclosures as their midpoints). With
``exact=True`` the same keys hold the exact strings of the result JSON instead (NumPy
unicode arrays), so nothing is lost; the ``.npz`` file holds both, the strings under
``<key>_exact``, and the spec's name under ``spec``. It loads without pickle:
``numpy.load(path)``.

May import numpy (required here), :mod:`smtgrad.interop`, :mod:`smtgrad.spec` and
:mod:`smtgrad.reference`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from smtgrad.interop import _write, require
from smtgrad.interop.values import floats, texts
from smtgrad.reference.witness import Witness
from smtgrad.spec import Spec, TargetKind


def blocks(spec: Spec, witness: Witness, gradients: dict[str, Any] | None = None,
           loss: Any = None) -> dict[str, Any]:
    """The exact nested tuples behind every key, in order (parameters, X, Y, gradients,
    loss)."""
    result: dict[str, Any] = {}
    for name in spec.network.parameter_shapes():
        result[name] = witness.parameters.block(name)
    result["X"] = witness.inputs
    result["Y"] = witness.targets
    if gradients is not None:
        for name in spec.network.parameter_shapes():
            if name in gradients:
                result[f"grad_{name}"] = gradients[name]
    if loss is not None:
        result["loss"] = loss
    return result


def to_numpy(spec: Spec, witness: Witness, gradients: dict[str, Any] | None = None,
             loss: Any = None, exact: bool = False) -> dict[str, Any]:
    """The witness (and gradients, loss) as float64 arrays, or with ``exact`` as arrays of
    exact strings. Class targets ``Y`` are int64 class indices."""
    np = require("numpy", "the NumPy export")
    arrays: dict[str, Any] = {}
    for key, value in blocks(spec, witness, gradients, loss).items():
        if exact:
            arrays[key] = np.array(texts(value), dtype=np.str_)
        elif key == "Y" and spec.targets is TargetKind.CLASS:
            arrays[key] = np.array([int(label) for label in value], dtype=np.int64)
        else:
            arrays[key] = np.array(floats(value), dtype=np.float64)
    return arrays


def npz_arrays(spec: Spec, witness: Witness, gradients: dict[str, Any] | None = None,
               loss: Any = None) -> dict[str, Any]:
    """What the ``.npz`` file holds: the float arrays, ``<key>_exact`` strings, ``spec``."""
    np = require("numpy", "the NumPy export")
    arrays = to_numpy(spec, witness, gradients, loss)
    for key, value in to_numpy(spec, witness, gradients, loss, exact=True).items():
        arrays[f"{key}_exact"] = value
    arrays["spec"] = np.array(spec.name, dtype=np.str_)
    return arrays


def save_npz(spec: Spec, witness: Witness, path: Path, gradients: dict[str, Any] | None = None,
             loss: Any = None) -> None:
    """Write the ``.npz`` file (uncompressed; loadable with ``allow_pickle=False``)."""
    np = require("numpy", "the NumPy export")
    buffer = io.BytesIO()
    np.savez(buffer, **npz_arrays(spec, witness, gradients, loss))
    _write(path, buffer.getvalue())
