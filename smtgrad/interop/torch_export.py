"""A witness as a PyTorch model and tensors, the ``.pt`` file, and the spec's loss in torch.

:func:`to_torch` returns ``(model, X, Y)``: ``model`` a ``torch.nn.Sequential`` of
``nn.Linear`` and activation modules, one pair per layer (``nn.Identity`` for a linear
layer), so layer l's weight is ``model[2 * (l - 1)].weight`` and the state_dict keys
are ``0.weight, 0.bias, 2.weight, ...``; the witness's values are loaded (enclosures
as their midpoints, see :mod:`smtgrad.interop.values`). ``X`` is M x inputs, ``Y`` is
M x outputs, or for class targets a vector of int64 class indices (what
``nll_loss`` takes). The default dtype is float64.

Activations map to ``nn.ReLU``, ``nn.LeakyReLU(slope)``, :class:`Abs` (torch has no
module for it), ``nn.Hardtanh``, ``nn.Sigmoid``, ``nn.Tanh``, ``nn.Softmax(dim=-1)``,
``nn.Softplus(threshold=40)`` (torch's default threshold 20 replaces softplus by x
beyond 20, an error of 2e-9 that float64 would show), ``nn.ELU``, ``nn.SiLU`` and
``nn.GELU`` (the exact erf form). The model outputs what the spec's output activation
gives: probabilities for sigmoid and softmax, so :func:`loss_function` applies
``binary_cross_entropy`` or ``nll_loss`` to ``log`` of them, as smtgrad's loss does.

torch's derivatives at kinks are smtgrad's convention 0 (relu'(0) = 0,
leaky_relu'(0) = slope, abs'(0) = 0, hardtanh'(+-1) = 0); the convention
``relu_grad_at_zero: 1`` has no torch counterpart (the replay says so when a sample
sits on a kink).

May import torch (required here), :mod:`smtgrad.interop`, :mod:`smtgrad.spec` and
:mod:`smtgrad.reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from smtgrad.interop import ExportError, require

require("torch", "the PyTorch export")  # a MissingDependency (exit 2) before the import
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from smtgrad.interop.values import floats  # noqa: E402
from smtgrad.reference.network import Parameters  # noqa: E402
from smtgrad.reference.witness import Witness, witness_to_json  # noqa: E402
from smtgrad.spec import Layer, LossKind, Network, Spec, TargetKind  # noqa: E402

#: Softplus is replaced by x only where x > this (log(1 + e^-40) < 5e-18).
SOFTPLUS_THRESHOLD = 40.0


class Abs(nn.Module):  # type: ignore[misc,unused-ignore]
    """|x| elementwise (torch has ``torch.abs`` but no module); autograd's abs'(0) = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)


def activation_module(layer: Layer) -> nn.Module:
    """The torch module of one layer's activation."""
    name = layer.activation.name
    factories: dict[str, Callable[[], nn.Module]] = {
        "linear": nn.Identity,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(negative_slope=float(layer.slope)),
        "abs": Abs,
        "hardtanh": nn.Hardtanh,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "softmax": lambda: nn.Softmax(dim=-1),
        "softplus": lambda: nn.Softplus(beta=1.0, threshold=SOFTPLUS_THRESHOLD),
        "elu": lambda: nn.ELU(alpha=1.0),
        "silu": nn.SiLU,
        "gelu": lambda: nn.GELU(approximate="none"),
    }
    if name not in factories:
        raise ExportError(f"no torch module for the activation {name!r}")
    return factories[name]()


def state_dict_keys(network: Network) -> dict[str, str]:
    """smtgrad's block names -> the state_dict keys of :func:`build_model`'s model."""
    keys: dict[str, str] = {}
    for index in range(network.depth):
        keys[f"W{index + 1}"] = f"{2 * index}.weight"
        keys[f"b{index + 1}"] = f"{2 * index}.bias"
    return keys


def build_model(network: Network, parameters: Parameters | None = None,
                dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``nn.Sequential`` of ``nn.Linear`` + activation per layer; with ``parameters``,
    their values loaded (as floats of ``dtype``)."""
    modules: list[nn.Module] = []
    previous = network.inputs
    for index, layer in enumerate(network.layers):
        linear = nn.Linear(previous, layer.units, dtype=dtype)
        if parameters is not None:
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(floats(parameters.weights[index]), dtype=dtype))
                linear.bias.copy_(torch.tensor(floats(parameters.biases[index]), dtype=dtype))
        modules.extend([linear, activation_module(layer)])
        previous = layer.units
    return nn.Sequential(*modules)


def data_tensors(spec: Spec, witness: Witness, dtype: torch.dtype = torch.float64
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``X`` (M x inputs) and ``Y`` (M x outputs, or int64 class indices)."""
    inputs = torch.tensor(floats(witness.inputs), dtype=dtype)
    if spec.targets is TargetKind.CLASS:
        targets = torch.tensor([int(label) for label in witness.targets], dtype=torch.int64)
    else:
        targets = torch.tensor(floats(witness.targets), dtype=dtype)
    return inputs, targets


def to_torch(spec: Spec, witness: Witness, dtype: torch.dtype = torch.float64
             ) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """``(model, X, Y)``: the witness network with its values loaded, and its data."""
    inputs, targets = data_tensors(spec, witness, dtype)
    return build_model(spec.network, witness.parameters, dtype), inputs, targets


def loss_function(spec: Spec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The spec's loss on ``(model(X), Y)``: mse, bce or cross-entropy (``nll_loss`` on
    the log of the softmax output), with the spec's reduction and scale."""
    reduction = spec.loss.reduction.value
    scale = spec.loss.scale
    kind = spec.loss.kind

    def loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if kind is LossKind.MSE:
            value = F.mse_loss(predictions, targets, reduction=reduction)
        elif kind is LossKind.BCE:
            value = F.binary_cross_entropy(predictions, targets, reduction=reduction)
        else:
            value = F.nll_loss(torch.log(predictions), targets, reduction=reduction)
        return value if scale == 1 else value * float(scale)

    return loss


def _architecture(spec: Spec) -> dict[str, Any]:
    return {
        "inputs": spec.network.inputs,
        "layers": [{"units": layer.units, "activation": layer.activation.name,
                    "slope": str(layer.slope)} for layer in spec.network.layers],
        "loss": {"kind": spec.loss.kind.value, "reduction": spec.loss.reduction.value,
                 "scale": str(spec.loss.scale)},
        "targets": spec.targets.value,
    }


def save_pt(spec: Spec, witness: Witness, path: Path) -> None:
    """Write ``{"state_dict", "X", "Y", "spec", "network", "exact"}`` with ``torch.save``.

    ``state_dict`` matches :func:`build_model`'s ``nn.Sequential`` (float64);
    ``network`` describes it (inputs, layers, loss, targets); ``exact`` is the witness as
    the exact strings of the result JSON. Loads with ``torch.load(path)``
    (``weights_only`` safe); :func:`load_pt` rebuilds the model.
    """
    model, inputs, targets = to_torch(spec, witness)
    payload = {"state_dict": model.state_dict(), "X": inputs, "Y": targets, "spec": spec.name,
               "network": _architecture(spec),
               "exact": witness_to_json(witness, spec.network)}
    try:
        torch.save(payload, str(path))
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None


def load_pt(path: str | Path) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """``(model, X, Y)`` from a file written by :func:`save_pt`."""
    from fractions import Fraction

    from smtgrad import activations

    payload = torch.load(str(path), weights_only=True)
    description = payload["network"]
    layers = tuple(Layer(units=int(item["units"]),
                         activation=activations.get(item["activation"]),
                         slope=Fraction(item["slope"])) for item in description["layers"])
    model = build_model(Network(inputs=int(description["inputs"]), layers=layers))
    model.load_state_dict(payload["state_dict"])
    return model, payload["X"], payload["Y"]
