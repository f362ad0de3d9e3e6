"""The fine-tuned weights in torch form, rebuilt from the served int8 ONNX graph's dequantized weights.

A model folder keeps ONNX graphs only (what the services run), and a release folder only the
served int8 graph (``model.onnx``; ``model.fp32.onnx`` is left out of git). The peers and the
torch limit need the same fine-tuned weights as a torch checkpoint, so they are read back
from the served graph, which any clone has:

- a static int8 graph (QDQ form) stores each weight as an int8 initializer ``<name>_quantized``
  with ``<name>_scale`` and ``<name>_zero_point``, fed to a ``DequantizeLinear`` node. Each such
  node whose inputs are all initializers is folded: ``(q - zero_point) * scale`` along the node's
  ``axis`` (per channel for the linear layers, per tensor for the embeddings), in float32;
- then, as in an fp32 graph, every weight is there under its torch name except the linear
  layers: torch's exporter writes those as a ``MatMul`` on a transposed copy named
  ``onnx::MatMul_N``, followed by an ``Add`` of the named bias. So each such weight is the
  transpose of the ``MatMul``'s (dequantized) input, named after the bias it is added to.
  Biases, LayerNorm weights and the classifier head are kept in float32 by the quantizer.

The result is the served model's weights exactly, run in fp32 with fp32 activations: the int8
graph also quantizes activations, so the two agree on labels, not on every logit. ``verify``
checks that before the model is saved as a ``from_pretrained`` folder under
``.cache/bench/torch/``: for an fp32 graph the logits within ``1e-3``, for an int8 graph the top
label on at least 90% of the texts (the release models' int8 graphs agree with their fp32
originals on 97-99%).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from shared.settings import REPO_ROOT

__all__ = ["TorchCheckpointError", "dequantize", "torch_checkpoint", "weights_from_onnx"]

logger = logging.getLogger(__name__)

CACHE = REPO_ROOT / ".cache" / "bench" / "torch"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class TorchCheckpointError(RuntimeError):
    """The ONNX graph cannot be mapped back to the torch model, or the result differs from it."""


def dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1) -> np.ndarray:
    """``DequantizeLinear``: ``(quantized - zero_point) * scale`` in float32, per tensor or along ``axis``."""
    zero_point = np.zeros_like(scale, dtype=np.int64) if zero_point is None else zero_point
    if scale.ndim == 1 and quantized.ndim > 1:
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    elif scale.ndim > 1:
        raise TorchCheckpointError(f"blocked quantization (scale of shape {scale.shape}) is not supported")
    return ((quantized.astype(np.int64) - zero_point.astype(np.int64)) * scale.astype(np.float32)).astype(np.float32)


def _fold_dequantized(graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of the ``DequantizeLinear`` nodes whose inputs are all initializers, by output name
    and under the weight's own name (``<name>_quantized`` without the suffix)."""
    folded = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in arrays for i in node.input if i):
            continue
        attributes = {a.name: a for a in node.attribute}
        if "block_size" in attributes and attributes["block_size"].i:
            raise TorchCheckpointError(f"{node.name}: blocked quantization is not supported")
        axis = attributes["axis"].i if "axis" in attributes else 1
        zero_point = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        array = dequantize(arrays[node.input[0]], arrays[node.input[1]], zero_point, axis)
        folded[node.output[0]] = array
        folded[node.input[0].removesuffix("_quantized")] = array
    return folded


def weights_from_onnx(onnx_path: Path) -> dict[str, np.ndarray]:
    """Torch state-dict names to float32 arrays, read from a graph exported by torch: fp32, or int8
    in QDQ form (its weights dequantized). Extra initializers (shapes, quantization parameters) are
    kept; the caller takes the names its model has."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    arrays.update(_fold_dequantized(graph, arrays))
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weights = {name: array for name, array in arrays.items() if not name.startswith("onnx::")}
    for node in graph.node:
        if node.op_type != "MatMul" or not node.input[1].startswith("onnx::"):
            continue
        biases = [i for add in consumers.get(node.output[0], []) if add.op_type == "Add"
                  for i in add.input if i.endswith(".bias") and i in arrays]
        if len(biases) != 1:
            raise TorchCheckpointError(f"no named bias follows {node.input[1]} in {onnx_path}")
        weights[biases[0].removesuffix(".bias") + ".weight"] = arrays[node.input[1]].T.copy()
    return weights


def _load_rebuilt(model_dir: Path, graph: str):
    import torch
    from transformers import AutoConfig

    from pipelines.common.modeling import MeanPoolingClassifier

    config = AutoConfig.from_pretrained(model_dir)
    model = MeanPoolingClassifier(config).eval()
    expected = model.state_dict()
    state = {k: torch.tensor(v) for k, v in weights_from_onnx(model_dir / graph).items() if k in expected}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise TorchCheckpointError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    return model


def _is_quantized(onnx_path: Path) -> bool:
    import onnx

    return any(node.op_type == "DequantizeLinear" for node in onnx.load(str(onnx_path)).graph.node)


def verify(model, model_dir: Path, texts: list[str], graph: str = "model.onnx", atol: float = 1e-3,
           min_agreement: float = 0.9) -> dict:
    """The torch model against the ONNX graph it came from, on ``texts``.

    Returns:
        ``max_logit_diff`` and ``label_agreement`` (share of texts with the same top label).

    Raises:
        TorchCheckpointError: an fp32 graph's logits differ by more than ``atol``, or an int8
            graph's top labels agree on fewer than ``min_agreement`` of the texts.
    """
    import torch
    from transformers import AutoTokenizer

    from shared.runtime.onnx_classifier import start_session

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    session = start_session(model_dir / graph)
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    feeds = {i.name: encoded[i.name] for i in session.get_inputs()}
    onnx_logits = session.run(None, feeds)[0]
    with torch.inference_mode():
        torch_logits = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    diff = float(np.abs(onnx_logits - torch_logits).max())
    agreement = float((onnx_logits.argmax(-1) == torch_logits.argmax(-1)).mean())
    if _is_quantized(model_dir / graph):
        if agreement < min_agreement:
            raise TorchCheckpointError(f"dequantized torch model agrees with {graph} on {agreement:.0%} of labels "
                                       f"(< {min_agreement:.0%})")
    elif diff > atol:
        raise TorchCheckpointError(f"rebuilt torch model differs from {graph} by {diff:.2e} (> {atol})")
    return {"max_logit_diff": round(diff, 4), "label_agreement": round(agreement, 3)}


def torch_checkpoint(model_dir: Path, texts: list[str], graph: str = "model.onnx") -> Path:
    """A ``from_pretrained`` folder with the weights of ``model_dir / graph`` (built once per graph).

    Args:
        model_dir (`Path`): the model folder (config, tokenizer).
        texts (`list[str]`): model inputs to verify the rebuilt model on (the first 64).
        graph (`str`, defaults to `"model.onnx"`): the served int8 graph, which every clone has;
            ``model.fp32.onnx`` where a training wrote it.
    """
    digest = hashlib.sha256((model_dir / graph).read_bytes()).hexdigest()[:12]
    out = CACHE / f"{model_dir.name}-{Path(graph).stem.replace('.', '-')}-{digest}"
    if (out / "model.safetensors").is_file():
        return out
    model = _load_rebuilt(model_dir, graph)
    check = verify(model, model_dir, texts[:64], graph)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, tmp / name)
    (tmp / "rebuilt_from.json").write_text(json.dumps({"graph": graph, "sha256_12": digest, **check}, indent=2))
    tmp.rename(out)
    logger.info('torch checkpoint rebuilt out="%s" graph="%s" max_logit_diff=%s label_agreement=%s', out, graph,
                check["max_logit_diff"], check["label_agreement"])
    return out
