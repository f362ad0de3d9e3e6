"""The peers' torch weights read back from a served int8 graph: DequantizeLinear folded, names mapped."""

from __future__ import annotations

import numpy as np
import pytest

from bench.torch_checkpoint import TorchCheckpointError, dequantize, weights_from_onnx


def test_dequantize_per_tensor_and_per_channel():
    q = np.array([[-128, 0, 127], [10, 20, 30]], dtype=np.int8)
    assert np.allclose(dequantize(q, np.array(0.5, dtype=np.float32), np.array(2, dtype=np.int8)),
                       (q.astype(np.float32) - 2) * 0.5)
    scale, zero = np.array([1.0, 0.1, 0.01], dtype=np.float32), np.array([0, 1, -1], dtype=np.int8)
    expected = (q.astype(np.float32) - zero[None, :]) * scale[None, :]
    assert np.allclose(dequantize(q, scale, zero, axis=1), expected)
    assert dequantize(q, scale, zero, axis=1).dtype == np.float32
    with pytest.raises(TorchCheckpointError, match="blocked quantization"):
        dequantize(q, np.ones((2, 3), dtype=np.float32), None)


def _tiny_qdq_graph(path, w_q, w_scale, w_zero, emb_q, bias):
    """x @ DequantizeLinear(W) + dense.bias, and Gather(DequantizeLinear(emb), ids): what torch's
    exporter and ORT's static quantizer write for a linear layer and an embedding."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(w_q, "onnx::MatMul_7_quantized"),
             numpy_helper.from_array(w_scale, "onnx::MatMul_7_scale"),
             numpy_helper.from_array(w_zero, "onnx::MatMul_7_zero_point"),
             numpy_helper.from_array(bias, "dense.bias"),
             numpy_helper.from_array(emb_q, "emb.weight_quantized"),
             numpy_helper.from_array(np.array(0.25, dtype=np.float32), "emb.weight_scale"),
             numpy_helper.from_array(np.array(3, dtype=np.int8), "emb.weight_zero_point")]
    nodes = [helper.make_node("DequantizeLinear", ["onnx::MatMul_7_quantized", "onnx::MatMul_7_scale",
                                                   "onnx::MatMul_7_zero_point"], ["onnx::MatMul_7_DequantizeLinear_Output"],
                              axis=1),
             helper.make_node("MatMul", ["x", "onnx::MatMul_7_DequantizeLinear_Output"], ["mm"]),
             helper.make_node("Add", ["dense.bias", "mm"], ["y"]),
             helper.make_node("DequantizeLinear", ["emb.weight_quantized", "emb.weight_scale", "emb.weight_zero_point"],
                              ["emb.weight_DequantizeLinear_Output"]),
             helper.make_node("Gather", ["emb.weight_DequantizeLinear_Output", "ids"], ["e"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4]),
                                              helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3]),
                               helper.make_tensor_value_info("e", TensorProto.FLOAT, [None, 2])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_weights_from_a_qdq_graph_are_the_dequantized_weights_under_torch_names(tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    w_q = rng.integers(-128, 128, size=(4, 3), dtype=np.int8)  # ONNX's MatMul weight: (in, out)
    w_scale = np.array([0.02, 0.05, 0.1], dtype=np.float32)
    w_zero = np.array([0, 3, -2], dtype=np.int8)
    emb_q = rng.integers(-128, 128, size=(5, 2), dtype=np.int8)
    bias = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    path = tmp_path / "model.onnx"
    _tiny_qdq_graph(path, w_q, w_scale, w_zero, emb_q, bias)

    weights = weights_from_onnx(path)
    assert weights["dense.weight"].shape == (3, 4)  # torch's Linear: (out, in)
    assert np.allclose(weights["emb.weight"], (emb_q.astype(np.float32) - 3) * 0.25)
    assert np.array_equal(weights["dense.bias"], bias)

    # The torch layer computes what the graph computes.
    x = rng.normal(size=(2, 4)).astype(np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no int8 fusion: exact float
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    y, e = session.run(None, {"x": x, "ids": np.array([1, 4], dtype=np.int64)})
    assert np.allclose(x @ weights["dense.weight"].T + weights["dense.bias"], y, atol=1e-5)
    assert np.allclose(weights["emb.weight"][[1, 4]], e)
