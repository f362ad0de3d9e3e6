"""Int8 weights stored unsigned, so that a quantized graph gives the same answers on every x86 CPU.

ONNX Runtime multiplies uint8 activations by int8 weights (u8s8) with VNNI instructions where the
CPU has them, and with AVX2's ``VPMADDUBSW`` where it does not. ``VPMADDUBSW`` adds two u8 x s8
products into a signed 16-bit lane and saturates when they pass 32,767, so the same graph gives
different scores on an AVX2 machine than on an AVX-512 VNNI one (the release sentiment model
answered 6 of 300 test items differently). With uint8 weights (u8u8) every x86 kernel widens to
16 bits before multiplying and nothing saturates.

The change is exact: an int8 weight ``w`` with zero point ``z`` becomes ``w + 128`` with zero point
``z + 128``, and every product uses ``w - z``, which does not change. A graph converted this way
answers bit for bit as the int8 graph did on a VNNI CPU, where nothing saturated either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["QUANTIZED_WEIGHT_INPUTS", "signed_weight_nodes", "unsign_int8_weights"]

#: Operator -> (input index of the quantized weight, input index of its zero point). DequantizeLinear
#: is the QDQ form that static quantization writes; the others are what dynamic quantization writes.
QUANTIZED_WEIGHT_INPUTS = {
    "DequantizeLinear": (0, 2),
    "MatMulInteger": (1, 3),
    "DynamicQuantizeMatMul": (1, 3),
}


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
    """Names of the nodes of ``model_path`` that read int8 (signed) weights: whose answers depend on the CPU."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name: init for init in graph.initializer}
    return [node.name or node.output[0] for node, _, _ in _constant_weights(graph, initializers)]


def unsign_int8_weights(src: Path, dst: Path | None = None) -> int:
    """Rewrite ``src``'s int8 weights as uint8 with zero points moved by 128 (see the module docstring).

    Writes ``dst`` (``src`` itself by default) and returns how many nodes were changed. A weight
    without a zero point (0 by the operators' definition) gets one of 128, shaped as its scale
    (DequantizeLinear), or a scalar (the matrix products, whose zero point may be per column or one).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
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
                raise ValueError(f"{src}: {node.name}: zero point {zero_point} is not int8")
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
    onnx.save(model, str(dst or src))
    return len(nodes)
