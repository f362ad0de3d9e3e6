"""Int8 weights: exact products on a CPU without VNNI (emulated) as on one with it.

The emulator is Debian's ``qemu-user`` (``make test`` installs it): ``-cpu Haswell`` has AVX2 and no
AVX-512 or VNNI, so ONNX Runtime picks the kernels such a machine would run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.runtime.int8_weights import probe_graph, signed_weight_nodes, unsign_int8_weights
from tests.support.processes import REPO_ROOT

K, N = 64, 4
ACTIVATION_SCALE, WEIGHT_SCALE = 0.02, 0.01
RUN_GRAPH = """
import json, sys
import numpy as np, onnxruntime as ort
from shared.runtime.int8_weights import session_graph, u8s8_is_exact
x = np.array(json.loads(sys.argv[2]), dtype=np.float32)
run = lambda graph: ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].tolist()
print(json.dumps({"exact_kernels": u8s8_is_exact(), "as_stored": run(sys.argv[1]),
                  "as_served": run(session_graph(__import__("pathlib").Path(sys.argv[1])))}))
"""


def _weights() -> np.ndarray:
    # Neighbouring products of 255 x 127 add up past what a signed 16-bit lane holds (32,767).
    w = np.full((K, N), 127, dtype=np.int8)
    w[:, 1] = -127
    w[::3, 2] = 5
    w[:, 3] = np.arange(K) % 50 - 25
    return w


def _qdq_matmul(path: Path) -> Path:
    """x (float) -> quantize to uint8 -> dequantize -> MatMul by dequantized per-column int8 weights."""
    path.write_bytes(probe_graph(weights=_weights()))
    return path


def _inputs() -> np.ndarray:
    x = np.full((3, K), 5.1, dtype=np.float32)  # quantizes to 255
    x[1] *= 0.5
    x[2, ::2] = 0
    return x


def _exact(x: np.ndarray) -> np.ndarray:
    quantized = np.clip(np.round(x / ACTIVATION_SCALE), 0, 255)
    return quantized @ _weights().astype(np.float64) * ACTIVATION_SCALE * WEIGHT_SCALE


def _run(graph: Path, x: np.ndarray, emulated_cpu: str | None = None) -> dict:
    """What ONNX Runtime computes for ``graph`` loaded as stored and as the services load it, and
    whether the CPU's u8s8 kernels are exact; on this machine, or on ``emulated_cpu`` under qemu."""
    command = [sys.executable, "-c", RUN_GRAPH, str(graph), json.dumps(x.tolist())]
    if emulated_cpu:
        command = [shutil.which("qemu-x86_64"), "-cpu", emulated_cpu, *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True, cwd=REPO_ROOT)
    return json.loads(done.stdout)


def test_unsigning_keeps_every_dequantized_weight_and_leaves_no_signed_one(tmp_path):
    import onnx
    from onnx.reference import ReferenceEvaluator

    signed = _qdq_matmul(tmp_path / "signed.onnx")
    unsigned = tmp_path / "unsigned.onnx"

    assert signed_weight_nodes(signed) == ["weight"]
    assert unsign_int8_weights(signed, unsigned) == 1
    assert signed_weight_nodes(unsigned) == []
    weights = {init.name: init for init in onnx.load(str(unsigned)).graph.initializer}
    assert weights["w"].data_type == weights["w_zero"].data_type == onnx.TensorProto.UINT8
    # The ONNX reference evaluator (no CPU kernels involved): the same products, bit for bit.
    x = _inputs()
    before = ReferenceEvaluator(str(signed)).run(None, {"x": x})[0]
    after = ReferenceEvaluator(str(unsigned)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(before, after)


def test_a_weight_without_zero_point_gets_one_shaped_as_its_scale(tmp_path):
    import onnx
    from onnx.reference import ReferenceEvaluator

    signed = _qdq_matmul(tmp_path / "signed.onnx")
    model = onnx.load(str(signed))
    weight_node = next(node for node in model.graph.node if node.name == "weight")
    del weight_node.input[2]
    onnx.save(model, str(signed))

    unsign_int8_weights(signed, tmp_path / "unsigned.onnx")

    x = _inputs()
    np.testing.assert_array_equal(ReferenceEvaluator(str(signed)).run(None, {"x": x})[0],
                                  ReferenceEvaluator(str(tmp_path / "unsigned.onnx")).run(None, {"x": x})[0])


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None,
                    reason="qemu-x86_64 (Debian qemu-user) is not installed; `make test` installs it")
def test_without_vnni_the_signed_graph_saturates_and_the_served_one_computes_exactly(tmp_path):
    graph = _qdq_matmul(tmp_path / "signed.onnx")
    x = _inputs()
    exact = _exact(x)

    haswell = _run(graph, x, emulated_cpu="Haswell")
    here = _run(graph, x)

    # AVX2's u8s8 kernel saturates: what the release models suffered on such machines.
    assert haswell["exact_kernels"] is False
    assert not np.allclose(haswell["as_stored"], exact, rtol=1e-4)
    np.testing.assert_allclose(haswell["as_served"], exact, rtol=1e-5)
    np.testing.assert_allclose(here["as_served"], exact, rtol=1e-5)
    # Here the graph is served as stored exactly when this CPU's u8s8 kernels are exact.
    assert np.allclose(here["as_stored"], exact, rtol=1e-5) == here["exact_kernels"]


def test_the_probe_saturates_only_in_its_signed_form_where_kernels_saturate():
    from shared.runtime.int8_weights import probe_graph, probe_products, u8s8_is_exact

    computed, exact = probe_products(probe_graph(signed=False))
    np.testing.assert_allclose(computed, exact, rtol=1e-5)  # u8u8: exact on every CPU
    computed, exact = probe_products(probe_graph(signed=True))
    assert np.allclose(computed, exact, rtol=1e-5) == u8s8_is_exact()


def test_the_stored_probe_is_the_one_its_builder_makes():
    import onnx

    from shared.runtime.int8_weights import PROBE_FILE, probe_graph

    assert onnx.load(str(PROBE_FILE)) == onnx.load_from_string(probe_graph())
