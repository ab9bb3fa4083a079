"""The witness network as an ONNX model (the ``.onnx`` file of ``--save-witness``).

Built with the ``onnx.helper`` API (no torch needed): input ``X`` (M x inputs, M
dynamic), output ``yhat`` (M x outputs), one ``Gemm`` (``transB=1``: W_l is units x
previous, as ``torch.nn.Linear``) and the activation's nodes per layer, the witness's
values as initializers (enclosures at their midpoints, see
:mod:`smtgrad.interop.values`). Opset 17, IR version 8; the spec's name and smtgrad's
version are in ``metadata_props``.

The default element type is float64 (``DOUBLE``). onnxruntime has no double kernel
for ``Softplus``, ``Elu`` and ``Erf``, and ``LeakyRelu``'s slope is a float32 attribute,
so in float64 softplus is written as ``relu(x) + log(1 + exp(-|x|))``, elu as
``where(x > 0, x, exp(min(x, 0)) - 1)``, leaky_relu as ``where(x < 0, slope * x, x)``,
and gelu's ``erf`` is evaluated in float32 (``Cast`` around ``Erf``): a gelu network
replays to about 1e-7, every other one to float64 precision. ``dtype="float32"`` uses
the native operators throughout.

May import onnx and numpy (required here), :mod:`smtgrad.interop`, :mod:`smtgrad.spec`
and :mod:`smtgrad.reference`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from smtgrad import __version__
from smtgrad.interop import ExportError, _write, require
from smtgrad.interop.values import floats
from smtgrad.reference.witness import Witness
from smtgrad.spec import Layer, Spec

OPSET = 17
IR_VERSION = 8


class _Graph:
    """Nodes and initializers under construction, with fresh names."""

    def __init__(self, onnx: Any, np: Any, dtype: str) -> None:
        self.onnx = onnx
        self.np = np
        self.float64 = dtype == "float64"
        self.np_type = np.float64 if self.float64 else np.float32
        self.elem_type = onnx.TensorProto.DOUBLE if self.float64 else onnx.TensorProto.FLOAT
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def constant(self, stem: str, value: Any) -> str:
        name = self.name(stem)
        array = self.np.array(value, dtype=self.np_type)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes: Any) -> str:
        output = self.name(stem)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], **attributes))
        return output

    def activation(self, layer: Layer, u: str, stem: str) -> str:
        name = layer.activation.name
        if name == "linear":
            return u
        if name == "relu":
            return self.node("Relu", [u], stem)
        if name == "leaky_relu":
            if not self.float64:
                return self.node("LeakyRelu", [u], stem, alpha=float(layer.slope))
            # LeakyRelu's alpha is a float32 attribute: 1/10 would become 0.10000000149.
            scaled = self.node("Mul", [u, self.constant("slope", float(layer.slope))], stem)
            negative = self.node("Less", [u, self.constant("zero", 0)], stem)
            return self.node("Where", [negative, scaled, u], stem)
        if name == "abs":
            return self.node("Abs", [u], stem)
        if name == "hardtanh":
            return self.node("Clip", [u, self.constant("minus_one", -1),
                                      self.constant("one", 1)], stem)
        if name == "sigmoid":
            return self.node("Sigmoid", [u], stem)
        if name == "tanh":
            return self.node("Tanh", [u], stem)
        if name == "softmax":
            return self.node("Softmax", [u], stem, axis=-1)
        if name == "softplus":
            if not self.float64:
                return self.node("Softplus", [u], stem)
            # relu(x) + log(1 + exp(-|x|)): no overflow, and onnxruntime has double kernels.
            tail = self.node("Exp", [self.node("Neg", [self.node("Abs", [u], stem)], stem)],
                             stem)
            log = self.node("Log", [self.node("Add", [tail, self.constant("one", 1)], stem)],
                            stem)
            return self.node("Add", [self.node("Relu", [u], stem), log], stem)
        if name == "elu":
            if not self.float64:
                return self.node("Elu", [u], stem, alpha=1.0)
            negative = self.node("Exp", [self.node("Min", [u, self.constant("zero", 0)], stem)],
                                 stem)
            negative = self.node("Sub", [negative, self.constant("one", 1)], stem)
            positive = self.node("Greater", [u, self.constant("zero", 0)], stem)
            return self.node("Where", [positive, u, negative], stem)
        if name == "silu":
            return self.node("Mul", [u, self.node("Sigmoid", [u], stem)], stem)
        if name == "gelu":
            scaled = self.node("Mul", [u, self.constant("inv_sqrt2", 1 / math.sqrt(2))], stem)
            if self.float64:
                single = self.node("Cast", [scaled], stem, to=self.onnx.TensorProto.FLOAT)
                erf = self.node("Cast", [self.node("Erf", [single], stem)], stem,
                                to=self.onnx.TensorProto.DOUBLE)
            else:
                erf = self.node("Erf", [scaled], stem)
            half = self.node("Mul", [u, self.constant("half", 0.5)], stem)
            return self.node("Mul", [half, self.node("Add", [erf, self.constant("one", 1)],
                                                     stem)], stem)
        raise ExportError(f"no ONNX form for the activation {name!r}")


def to_onnx(spec: Spec, witness: Witness, dtype: str = "float64") -> Any:
    """The witness network as an ``onnx.ModelProto`` (checked by ``onnx.checker``)."""
    if dtype not in ("float32", "float64"):
        raise ExportError(f"dtype must be float32 or float64, found {dtype!r}")
    require("onnx", "the ONNX export")
    np = require("numpy", "the ONNX export")
    import onnx
    import onnx.checker
    import onnx.helper
    import onnx.numpy_helper

    graph = _Graph(onnx, np, dtype)
    network = spec.network
    current = "X"
    for index, layer in enumerate(network.layers, start=1):
        weight = graph.constant(f"W{index}", floats(witness.parameters.weights[index - 1]))
        bias = graph.constant(f"b{index}", floats(witness.parameters.biases[index - 1]))
        u = graph.node("Gemm", [current, weight, bias], f"u{index}", transB=1)
        current = graph.activation(layer, u, f"h{index}")
    graph.nodes.append(onnx.helper.make_node("Identity", [current], ["yhat"]))
    helper = onnx.helper
    model_graph = helper.make_graph(
        graph.nodes, f"smtgrad_{spec.name}",
        [helper.make_tensor_value_info("X", graph.elem_type, ["M", network.inputs])],
        [helper.make_tensor_value_info("yhat", graph.elem_type, ["M", network.outputs])],
        initializer=graph.initializers)
    model = helper.make_model(model_graph, producer_name="smtgrad", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              doc_string=f"smtgrad witness network of the spec {spec.name!r}; "
                                         f"values rounded to {dtype} (enclosures at their "
                                         "midpoints)")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"smtgrad.spec": spec.name, "smtgrad.version": __version__,
                                   "smtgrad.dtype": dtype})
    onnx.checker.check_model(model)
    return model


def save_onnx(spec: Spec, witness: Witness, path: Path, dtype: str = "float64") -> None:
    """Write the ``.onnx`` file."""
    _write(path, to_onnx(spec, witness, dtype).SerializeToString())
