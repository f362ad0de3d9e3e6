"""Choose the graph a model folder serves: int8 where it keeps the fp32 model's answers, else fp32.

The ladder, each rung measured by its agreement with the fp32 graph on the dev items:

1. **static int8** (QDQ, per-channel int8 weights, uint8 activations with ranges calibrated on
   training items). Only matrix products with a weight and the embedding tables are quantized,
   and their outputs stay float (ONNX Runtime fuses each into one integer kernel). Calibrated
   scales make an item's score independent of the other items in its run, which dynamic
   quantization's per-run activation ranges do not.
2. **static int8 with the most sensitive layers' inputs left unquantized**: the weighted matrix
   products whose input activation loses most to the calibrated range (signal-to-quantization-
   noise ratio on calibration items) read their float input, 2, then 4, then 8 of them. Their
   weights stay int8, so the graph keeps its int8 size (a float copy of one feed-forward weight
   would add 1.8 MB). ONNX Runtime's full graph optimisation runs each such layer as
   MatMulNBits (8-bit weights in blocks of 32), which quantizes the input row by row at run
   time: finer than one calibrated range, and still independent of the other items in a run.
3. **dynamic int8** (activation ranges per run).
4. **fp32**: the exported graph itself. The model is saved and served either way; a training
   asked for ``--require-int8`` stops instead.

Every int8 rung keeps the signed weights the quantizer writes; a CPU whose int8 kernels would
saturate on them gets them unsigned at load (:mod:`shared.runtime.int8_weights`): the same answers.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import ModelError

__all__ = ["CalibrationFeeds", "ServedGraph", "choose_served_graph", "prepare_for_quantization", "quantize_dynamic_int8",
           "quantize_static_int8", "sensitive_matmuls"]

logger = logging.getLogger(__name__)

Feeds = dict[str, np.ndarray]
FP32_LAYER_STEPS = (2, 4, 8)
STATIC_OPTIONS = {
    # Only products with a constant weight: the attention products of two activations lose
    # most and gain least.
    "MatMulConstBOnly": True,
    # Float outputs: the quantized product feeds its bias add and residual in float, which
    # ONNX Runtime fuses into MatMulIntegerToFloat (a sentiment model agreed with fp32 on 0.905
    # of items with quantized outputs, 0.972 without).
    "OpTypesToExcludeOutputQuantization": ["MatMul", "Gather"],
}


class CalibrationFeeds:
    """ONNX Runtime's calibration reader over prepared input batches (any input names)."""

    def __init__(self, batches: Sequence[Feeds]) -> None:
        self.batches = list(batches)
        self._next = 0

    def get_next(self) -> Feeds | None:
        if self._next >= len(self.batches):
            return None
        self._next += 1
        return self.batches[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


@dataclass
class ServedGraph:
    """What :func:`choose_served_graph` put in ``model.onnx``, and every rung it tried."""

    precision: str
    agreement: float
    fp32_layers: list[str] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"served": self.precision, "agreement_with_fp32": round(self.agreement, 4),
                "fp32_layers": self.fp32_layers, "tried": self.tried}


def _calibration_reader(batches: Sequence[Feeds]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationFeeds, CalibrationDataReader):
        pass

    return Reader(batches)


def prepare_for_quantization(fp32_path: Path, out_path: Path) -> Path:
    """ONNX Runtime's recommended pre-pass (graph optimisation; its symbolic shape inference does
    not complete on these graphs, so it is skipped). Layer names in ``fp32_layers`` refer to it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)
    return out_path


def quantize_static_int8(fp32_path: Path, out_path: Path, calibration: Sequence[Feeds],
                         fp32_layers: Sequence[str] = ()) -> Path:
    """QDQ static int8 of ``fp32_path`` (see the module docstring); the ``fp32_layers`` read their
    input in float and keep their int8 weights."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(str(fp32_path), str(out_path), _calibration_reader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, op_types_to_quantize=["MatMul", "Gather"], activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, extra_options=STATIC_OPTIONS)
    if fp32_layers:  # named for the training record; they compute with float inputs, not fp32 weights
        _unquantize_inputs(out_path, set(fp32_layers))
    return out_path


def _unquantize_inputs(qdq_path: Path, layers: set[str]) -> None:
    """Feed each of ``layers`` the float tensor its activation quantize/dequantize pair was made
    from, then drop the pairs nothing reads any more (the weights' dequantize nodes stay)."""
    import onnx

    model = onnx.load(str(qdq_path))
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    found = set()
    for node in graph.node:
        if node.name not in layers:
            continue
        dequantize = producer.get(node.input[0])
        quantize = producer.get(dequantize.input[0]) if dequantize is not None else None
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or quantize is None \
                or quantize.op_type != "QuantizeLinear":
            raise ModelError(f"{qdq_path.name}: layer {node.name} has no quantized input to leave in float")
        node.input[0] = quantize.input[0]
        found.add(node.name)
    if missing := layers - found:
        raise ModelError(f"{qdq_path.name}: no layer named {', '.join(sorted(missing))}")
    graph_outputs = {output.name for output in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | graph_outputs
        unread = [node for node in graph.node if not any(output in read for output in node.output)]
        if not unread:
            break
        for node in unread:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for initializer in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(initializer)
    onnx.save(model, str(qdq_path))


def quantize_dynamic_int8(fp32_path: Path, out_path: Path) -> Path:
    """Dynamic int8 by optimum's ORTQuantizer: per-channel weights, activation ranges per run."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from pipelines.common.export import cpu_quantization_preset

    with tempfile.TemporaryDirectory(prefix="slm-dynamic-") as tmp:
        shutil.copyfile(fp32_path, Path(tmp) / "model.onnx")
        if (fp32_path.parent / "config.json").is_file():  # optimum reads the model's config beside it
            shutil.copyfile(fp32_path.parent / "config.json", Path(tmp) / "config.json")
        quantizer = ORTQuantizer.from_pretrained(tmp, file_name="model.onnx")
        config = getattr(AutoQuantizationConfig, cpu_quantization_preset())(is_static=False, per_channel=True)
        quantizer.quantize(quantization_config=config, save_dir=Path(tmp) / "int8")
        (quantized,) = (Path(tmp) / "int8").glob("*.onnx")
        shutil.copyfile(quantized, out_path)
    return out_path


def sensitive_matmuls(fp32_path: Path, int8_path: Path, calibration: Sequence[Feeds], work_dir: Path) -> list[str]:
    """Weighted MatMul nodes, worst first, by how much their input activation loses to int8.

    The loss is the signal-to-quantization-noise ratio of each activation before and after its
    quantize/dequantize pair in ``int8_path`` (ONNX Runtime's QDQ debugging tools), on ``calibration``.
    """
    import onnx
    from onnxruntime.quantization import qdq_loss_debug

    augmented_fp32, augmented_int8 = work_dir / "debug-fp32.onnx", work_dir / "debug-int8.onnx"
    qdq_loss_debug.modify_model_output_intermediate_tensors(fp32_path, augmented_fp32)
    qdq_loss_debug.modify_model_output_intermediate_tensors(int8_path, augmented_int8)
    reader = _calibration_reader(calibration)
    float_values = qdq_loss_debug.collect_activations(str(augmented_fp32), reader)
    reader.rewind()
    int8_values = qdq_loss_debug.collect_activations(str(augmented_int8), reader)
    errors = qdq_loss_debug.compute_activation_error(
        qdq_loss_debug.create_activation_matching(int8_values, float_values))
    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in weights:
            consumers.setdefault(node.input[0], []).append(node.name)
    ranked = sorted((err["qdq_err"], tensor) for tensor, err in errors.items()
                    if tensor in consumers and "qdq_err" in err)
    return [name for _, tensor in ranked for name in consumers[tensor]]


def choose_served_graph(model_dir: Path, calibration: Sequence[Feeds], agreement: Callable[[Path], float],
                        min_agreement: float, *, require_int8: bool = False,
                        fp32_file: str = "model.fp32.onnx", served_file: str = "model.onnx") -> ServedGraph:
    """Write ``model_dir/served_file`` from ``model_dir/fp32_file`` by the ladder in the module docstring.

    Args:
        calibration (`Sequence[dict]`): input batches of training items, fed as the model is fed.
        agreement (`Callable[[Path], float]`): share of dev items on which a candidate graph gives
            the fp32 graph's answer (1.0: all of them).
        min_agreement (`float`): the least agreement an int8 graph must reach to be served.
        require_int8 (`bool`, defaults to `False`): raise :class:`ModelError` instead of serving fp32.
    """
    from tqdm.auto import tqdm

    fp32_path, served_path = model_dir / fp32_file, model_dir / served_file
    tried: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="slm-quantize-") as tmp, \
            tqdm(total=len(FP32_LAYER_STEPS) + 2, desc="int8: static, sensitive layers, dynamic", unit="rung",
                 leave=False) as bar:
        work = Path(tmp)
        prepared = prepare_for_quantization(fp32_path, work / "prepared.onnx")

        def rung(precision: str, make: Callable[[Path], Path], fp32_layers: Sequence[str] = ()) -> ServedGraph | None:
            started = time.perf_counter()
            candidate = make(work / f"candidate-{len(tried)}.onnx")
            score = agreement(candidate)
            tried.append({"precision": precision, "fp32_layers": len(fp32_layers), "agreement": round(score, 4),
                          "seconds": round(time.perf_counter() - started, 1)})
            logger.info('quantization precision=%s fp32_layers=%d agreement="%.4f" minimum=%s', precision,
                        len(fp32_layers), score, min_agreement)
            bar.update()
            if score < min_agreement:
                return None
            shutil.copyfile(candidate, served_path)
            return ServedGraph(precision, score, list(fp32_layers), tried)

        static = work / "static.onnx"
        chosen = rung("int8-static", lambda out: shutil.copyfile(
            quantize_static_int8(prepared, static, calibration), out))
        if chosen:
            return chosen
        ranked = sensitive_matmuls(prepared, static, calibration[:4], work)
        for count in FP32_LAYER_STEPS:
            layers = ranked[:count]
            chosen = rung("int8-static", lambda out, layers=layers: quantize_static_int8(prepared, out, calibration,
                                                                                         layers), layers)
            if chosen:
                return chosen
            if count >= len(ranked):
                break
        chosen = rung("int8-dynamic", lambda out: quantize_dynamic_int8(fp32_path, out))
        if chosen:
            return chosen
    best = max(tried, key=lambda t: t["agreement"])
    message = (f"no int8 graph agrees with fp32 on {min_agreement} of dev items (best: {best['agreement']:.3f}, "
               f"{best['precision']} with {best['fp32_layers']} layer(s) reading float inputs)")
    if require_int8:
        raise ModelError(f"{message}; --require-int8 was given, so nothing is saved (without it the model is "
                         "saved and served in fp32)")
    logger.warning("%s: the model is served in fp32 (slower, about 4x the size)", message)
    shutil.copyfile(fp32_path, served_path)
    return ServedGraph("fp32", 1.0, [], tried)
