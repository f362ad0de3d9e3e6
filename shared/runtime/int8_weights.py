"""The same int8 answers on every x86 CPU: signed weights where the CPU multiplies them exactly, unsigned elsewhere.

ONNX Runtime multiplies uint8 activations by int8 weights (u8s8). With VNNI (AVX-512 VNNI, AVX-VNNI)
it adds the products in 32 bits: exact. Without it (AVX2, AVX-512 without VNNI) it uses
``VPMADDUBSW``, which adds two u8 x s8 products into a signed 16-bit lane and saturates past 32,767:
the same graph answered 6 of 300 sentiment test posts differently on an AVX2 CPU than on a VNNI one.
With uint8 weights (u8u8) every x86 kernel widens to 16 bits before multiplying: exact too, but about
a third slower than VNNI's u8s8 on the CPU that measured it (models/README.md).

So the graphs keep the int8 weights the quantizer writes, and :func:`session_graph` decides per
machine: where a small graph built to saturate (:func:`u8s8_is_exact`) comes out exact, the graph
loads as it is; elsewhere its weights are made unsigned in memory, ``w + 128`` with the zero point
moved by 128, so that every product ``w - z`` is unchanged. Either way the answers are the exact
integer products the card was measured with.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

__all__ = ["PROBE_FILE", "QUANTIZED_WEIGHT_INPUTS", "probe_graph", "probe_products", "session_graph", "signed_weight_nodes", "u8s8_is_exact", "unsign_int8_weights"]

logger = logging.getLogger(__name__)

#: Operator -> (input index of the quantized weight, input index of its zero point). DequantizeLinear
#: is the QDQ form that static quantization writes; the others are what dynamic quantization writes.
QUANTIZED_WEIGHT_INPUTS = {
    "DequantizeLinear": (0, 2),
    "MatMulInteger": (1, 3),
    "DynamicQuantizeMatMul": (1, 3),
}
# The probe: activations that quantize to 255 times weights of 127, so that two neighbouring
# products (64,770) pass what a signed 16-bit lane holds. Stored as built by probe_graph() (a test
# holds them equal), so that a CPU with exact kernels loads no onnx package at all.
_PROBE_K, _PROBE_N, _PROBE_SCALE = 64, 4, 0.02
PROBE_FILE = Path(__file__).with_name("u8s8_probe.onnx")


def _constant_weights(graph, initializers) -> list[tuple[object, int, int]]:
    """(node, weight input, zero-point input) of every node that reads an int8 initializer as a quantized weight."""
    import onnx

    found = []
    for node in graph.node:
        positions = QUANTIZED_WEIGHT_INPUTS.get(node.op_type)
        if positions is None or len(node.input) <= positions[0]:
            continue
        weight = initializers.get(node.input[positions[0]])
        if weight is not None and weight.data_type == onnx.TensorProto.INT8:
            found.append((node, *positions))
    return found


def signed_weight_nodes(model_path: Path) -> list[str]:
    """Names of the nodes of ``model_path`` that read int8 (signed) weights: u8s8 products."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name: init for init in graph.initializer}
    return [node.name or node.output[0] for node, _, _ in _constant_weights(graph, initializers)]


def _unsign(model) -> int:
    """Make ``model``'s int8 weights unsigned in place (see the module docstring); returns the nodes changed.

    A weight without a zero point (0 by the operators' definition) gets one of 128, shaped as its
    scale (DequantizeLinear), or a scalar (the matrix products, whose zero point may be per column or one).
    """
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes = _constant_weights(graph, initializers)
    shifted: set[str] = set()

    def shift(name: str) -> None:
        if name in shifted:  # an initializer shared by several nodes moves once
            return
        values = numpy_helper.to_array(initializers[name]).astype(np.int16) + 128
        initializers[name].CopyFrom(numpy_helper.from_array(values.astype(np.uint8), name))
        shifted.add(name)

    for node, weight_at, zero_point_at in nodes:
        shift(node.input[weight_at])
        if len(node.input) > zero_point_at and node.input[zero_point_at]:
            zero_point = node.input[zero_point_at]
            if initializers[zero_point].data_type != onnx.TensorProto.INT8 and zero_point not in shifted:
                raise ValueError(f"{node.name}: zero point {zero_point} is not int8")
            shift(zero_point)
            continue
        shape = numpy_helper.to_array(initializers[node.input[1]]).shape if node.op_type == "DequantizeLinear" else ()
        name = f"{node.input[weight_at]}_unsigned_zero_point"
        graph.initializer.append(numpy_helper.from_array(np.full(shape, 128, dtype=np.uint8), name))
        initializers[name] = graph.initializer[-1]
        shifted.add(name)
        while len(node.input) <= zero_point_at:
            node.input.append("")
        node.input[zero_point_at] = name
    return len(nodes)


def unsign_int8_weights(src: Path, dst: Path | None = None) -> int:
    """Write ``src`` with its int8 weights made unsigned to ``dst`` (``src`` itself by default); returns
    how many nodes were changed."""
    import onnx

    model = onnx.load(str(src))
    changed = _unsign(model)
    onnx.save(model, str(dst or src))
    return changed


def probe_graph(signed: bool = True, weights: np.ndarray | None = None) -> bytes:
    """A one-product QDQ graph whose u8s8 form saturates a 16-bit lane: x (float) quantized to uint8 by
    ``_PROBE_SCALE``, times per-column int8 ``weights`` (default: +-127) scaled by 0.01; unsigned when
    ``signed`` is false."""
    from onnx import TensorProto, helper, numpy_helper

    if weights is None:
        weights = np.full((_PROBE_K, _PROBE_N), 127, dtype=np.int8)
        weights[:, 1] = -127
    rows, columns = weights.shape
    initializers = [numpy_helper.from_array(weights, "w"),
                    numpy_helper.from_array(np.full(columns, 0.01, np.float32), "w_scale"),
                    numpy_helper.from_array(np.zeros(columns, np.int8), "w_zero"),
                    numpy_helper.from_array(np.array(_PROBE_SCALE, np.float32), "x_scale"),
                    numpy_helper.from_array(np.array(0, np.uint8), "x_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["w_dq"], axis=1, name="weight"),
             helper.make_node("MatMul", ["x_dq", "w_dq"], ["y"])]
    graph = helper.make_graph(nodes, "u8s8_probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", rows])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", columns])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    if not signed:
        _unsign(model)
    return model.SerializeToString()


def probe_products(graph: bytes | str) -> tuple[np.ndarray, np.ndarray]:
    """(what ONNX Runtime computes, the exact products) of a :func:`probe_graph` on rows of 1 to 4 items."""
    import onnxruntime as ort

    x = np.full((4, _PROBE_K), 255 * _PROBE_SCALE, dtype=np.float32)
    x[1] *= 0.5
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # a few kilobytes once: no arena kept for the service's life
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    weights = np.full((_PROBE_K, _PROBE_N), 127.0)
    weights[:, 1] = -127
    exact = np.round(x / _PROBE_SCALE) @ weights * _PROBE_SCALE * 0.01
    computed = np.concatenate([session.run(None, {"x": x[:1]})[0], session.run(None, {"x": x})[0]])
    return computed, np.concatenate([exact[:1], exact])


@functools.cache
def u8s8_is_exact() -> bool:
    """Whether this CPU's u8s8 kernels, as ONNX Runtime picks them, compute exactly (VNNI) or saturate."""
    computed, exact = probe_products(str(PROBE_FILE))
    return bool(np.allclose(computed, exact, rtol=1e-5))


def session_graph(onnx_path: Path) -> str | bytes:
    """What to hand ONNX Runtime for ``onnx_path``: the path where this CPU multiplies its int8 weights
    exactly or the graph has none, else the graph with them made unsigned, serialized."""
    if u8s8_is_exact():
        return str(onnx_path)
    import onnx

    model = onnx.load(str(onnx_path))
    changed = _unsign(model)
    if not changed:
        return str(onnx_path)
    logger.info('int8 weights made unsigned in memory graph="%s" nodes=%d: this CPU\'s u8s8 kernels saturate '
                "(no VNNI); answers as on a VNNI CPU, computed more slowly", onnx_path.name, changed)
    return model.SerializeToString()
