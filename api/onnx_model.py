"""A snapshot as an ONNX model: per layer l, z^l = W^l a^{l-1} + b^l as a Gemm over a batch of
rows, then σ^l (the seed's eq. (2)), the output layer's activation included.

The graph's input is `x`, shape (N, n_0); its output `a_L`, shape (N, n_L): the same
a^L as POST /v1/jobs/{id}/predict. Rows are samples, so each layer is Gemm(A = a^{l-1},
B = W^l, C = b^l, transB = 1): W^l is stored as (n_l, n_{l-1}), weights[k][j] = w^l_kj.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from backprop import TrainSpec

INPUT, OUTPUT = "x", "a_L"
# Opset 17 and IR 8 are read by every onnxruntime since 1.14; the graph needs nothing newer.
OPSET, IR_VERSION = 17, 8
ELEMENT = {"float64": TensorProto.DOUBLE, "float32": TensorProto.FLOAT}
OPS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "identity": "Identity"}
SLOPE = "leaky_slope"  # the initializer holding leaky ReLU's slope, in the network's dtype


def build(spec: TrainSpec, Ws: list[np.ndarray], bs: list[np.ndarray], doc: str) -> bytes:
    """The serialized ModelProto for parameters W^1…W^L (each (n_l, n_{l-1})) and b^1…b^L
    (each (n_l,)), in the job's dtype; `doc` becomes the model's doc_string."""
    net, dtype = spec.network, np.dtype(spec.dtype)
    nodes, weights = [], []
    a = INPUT
    for l, (W, b) in enumerate(zip(Ws, bs, strict=True), start=1):
        weights += [numpy_helper.from_array(W.astype(dtype), f"W{l}"),
                    numpy_helper.from_array(b.astype(dtype), f"b{l}")]  # fmt: skip
        nodes.append(helper.make_node("Gemm", [a, f"W{l}", f"b{l}"], [f"z{l}"], transB=1))
        name = net.output_activation if l == len(Ws) else net.activation
        a = OUTPUT if l == len(Ws) else f"a{l}"
        nodes += _activation(name, f"z{l}", a)
    if "leaky_relu" in (net.activation, net.output_activation):
        weights.append(numpy_helper.from_array(np.array(net.leaky_slope, dtype), SLOPE))
    element = ELEMENT[spec.dtype]
    graph = helper.make_graph(
        nodes,
        "deltaflow",
        [helper.make_tensor_value_info(INPUT, element, ["N", net.layers[0]])],
        [helper.make_tensor_value_info(OUTPUT, element, ["N", net.layers[-1]])],
        initializer=weights,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deltaflow"
    )
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _activation(name: str, z: str, a: str) -> list[onnx.NodeProto]:
    """The nodes computing a = σ(z). Leaky ReLU is max(z, slope·z), as in the engine: ONNX's
    LeakyRelu holds its slope as a float32 attribute, which a float64 network would feel."""
    if name == "leaky_relu":
        scaled = f"{z}_scaled"
        return [helper.make_node("Mul", [z, SLOPE], [scaled]),
                helper.make_node("Max", [z, scaled], [a])]  # fmt: skip
    if name == "softmax":
        return [helper.make_node("Softmax", [z], [a], axis=1)]
    return [helper.make_node(OPS[name], [z], [a])]
