"""The served-graph ladder: static int8, then sensitive layers reading float inputs, then dynamic int8, then fp32.

A two-layer ONNX graph stands in for the encoder, so the real quantizers run in a second; the
agreement with fp32 is scripted, which is what decides each rung.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines.common.quantize import choose_served_graph, quantize_static_int8
from shared.errors import ModelError


@pytest.fixture
def model_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(16, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="hidden/MatMul"),
         helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w2"], ["logits"], name="head/MatMul")],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "model.fp32.onnx")
    return tmp_path


CALIBRATION = [{"x": np.random.default_rng(i).normal(size=(4, 8)).astype(np.float32)} for i in range(4)]


def scripted(*scores: float):
    """An agreement function answering ``scores`` in turn, recording the graphs it was shown."""
    shown: list[bytes] = []

    def agreement(graph: Path) -> float:
        shown.append(graph.read_bytes())
        return scores[len(shown) - 1]

    agreement.shown = shown
    return agreement


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(path).graph.node}


def test_static_int8_is_served_when_it_agrees(model_dir):
    served = choose_served_graph(model_dir, CALIBRATION, scripted(0.99), 0.97)
    assert served.precision == "int8-static" and served.fp32_layers == []
    assert [t["precision"] for t in served.tried] == ["int8-static"]
    assert "DequantizeLinear" in _ops(model_dir / "model.onnx")


def test_sensitive_layers_stay_fp32_when_static_int8_falls_short(model_dir):
    agreement = scripted(0.90, 0.98)
    served = choose_served_graph(model_dir, CALIBRATION, agreement, 0.97)
    assert served.precision == "int8-static"
    assert sorted(served.fp32_layers) == ["head/MatMul", "hidden/MatMul"]
    assert [(t["precision"], t["fp32_layers"], t["agreement"]) for t in served.tried] == [
        ("int8-static", 0, 0.9), ("int8-static", 2, 0.98)]
    assert (model_dir / "model.onnx").read_bytes() == agreement.shown[-1]


def test_sensitive_layers_read_float_inputs_and_keep_int8_weights(model_dir):
    choose_served_graph(model_dir, CALIBRATION, scripted(0.90, 0.98), 0.97)
    graph = onnx.load(model_dir / "model.onnx").graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    layers = {node.name: node for node in graph.node if node.op_type == "MatMul"}
    assert sorted(layers) == ["head/MatMul", "hidden/MatMul"]
    for node in layers.values():
        assert producer.get(node.input[0]) != "DequantizeLinear"  # the activation stays float
        assert producer.get(node.input[1]) == "DequantizeLinear"  # the weight is stored in int8
    int8_matrices = [init for init in graph.initializer if init.data_type == TensorProto.INT8 and len(init.dims) == 2]
    assert sorted(tuple(init.dims) for init in int8_matrices) == [(8, 16), (16, 3)]
    assert "QuantizeLinear" not in _ops(model_dir / "model.onnx")  # no activation is quantized any more


def test_a_quantized_input_shared_with_other_layers_stays_for_them(tmp_path):
    # Like an encoder's query, key and value products, two layers read one activation.
    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), name) for name in ("wq", "wk")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "wq"], ["q"], name="query/MatMul"),
         helper.make_node("MatMul", ["x", "wk"], ["k"], name="key/MatMul")],
        "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4]) for name in ("q", "k")], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "fp32.onnx")

    out = quantize_static_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", CALIBRATION, ["query/MatMul"])

    quantized = onnx.load(out).graph
    producer = {output: node.op_type for node in quantized.node for output in node.output}
    reads = {node.name: node.input[0] for node in quantized.node if node.op_type == "MatMul"}
    assert reads["query/MatMul"] == "x"
    assert producer[reads["key/MatMul"]] == "DequantizeLinear"
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    q, k = session.run(None, CALIBRATION[0])
    assert q.shape == k.shape == (4, 4)


def test_a_layer_that_is_not_there_is_named(model_dir):
    with pytest.raises(ModelError, match="no layer named missing/MatMul"):
        quantize_static_int8(model_dir / "model.fp32.onnx", model_dir / "int8.onnx", CALIBRATION, ["missing/MatMul"])


def test_fp32_is_served_when_no_int8_graph_agrees(model_dir):
    served = choose_served_graph(model_dir, CALIBRATION, scripted(0.5, 0.6, 0.7), 0.97)
    assert served.precision == "fp32" and served.agreement == 1.0
    assert [t["precision"] for t in served.tried] == ["int8-static", "int8-static", "int8-dynamic"]
    assert (model_dir / "model.onnx").read_bytes() == (model_dir / "model.fp32.onnx").read_bytes()


def test_require_int8_turns_the_fp32_fallback_into_an_error(model_dir):
    with pytest.raises(ModelError, match=r"best: 0\.700, int8-dynamic .* --require-int8 was given"):
        choose_served_graph(model_dir, CALIBRATION, scripted(0.5, 0.6, 0.7), 0.97, require_int8=True)
    assert not (model_dir / "model.onnx").exists()
