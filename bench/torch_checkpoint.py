"""The fine-tuned weights in torch form, rebuilt from the model folder's fp32 ONNX graph.

A model folder keeps ONNX graphs only (what the services run). The peers and the fp32 torch
limit need the same fine-tuned weights as a torch checkpoint. The fp32 graph holds every
weight, under its torch name, except the linear layers: torch's exporter writes those
as a ``MatMul`` on a transposed copy named ``onnx::MatMul_N``, followed by an ``Add`` of the
named bias. So each such weight is the transpose of the ``MatMul`` initializer, named after
the bias it is added to.

The rebuilt model must reproduce the ONNX graph's logits (``verify``) before it is saved as
a standard ``from_pretrained`` folder under ``.cache/bench/torch/``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np

from shared.settings import REPO_ROOT

__all__ = ["TorchCheckpointError", "torch_checkpoint", "weights_from_onnx"]

logger = logging.getLogger(__name__)

CACHE = REPO_ROOT / ".cache" / "bench" / "torch"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class TorchCheckpointError(RuntimeError):
    """The ONNX graph cannot be mapped back to the torch model, or the result differs from it."""


def weights_from_onnx(onnx_path: Path) -> dict[str, np.ndarray]:
    """Torch state-dict names to arrays, read from an fp32 graph exported by torch."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
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


def _load_rebuilt(model_dir: Path):
    import torch
    from transformers import AutoConfig

    from pipelines.common.modeling import MeanPoolingClassifier

    config = AutoConfig.from_pretrained(model_dir)
    model = MeanPoolingClassifier(config).eval()
    state = {k: torch.tensor(v) for k, v in weights_from_onnx(model_dir / "model.fp32.onnx").items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise TorchCheckpointError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    return model


def verify(model, model_dir: Path, texts: list[str], atol: float = 1e-3) -> float:
    """Largest absolute logit difference between the torch model and the fp32 ONNX graph."""
    import torch
    from transformers import AutoTokenizer

    from shared.runtime.onnx_classifier import start_session

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    session = start_session(model_dir / "model.fp32.onnx")
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    feeds = {i.name: encoded[i.name] for i in session.get_inputs()}
    onnx_logits = session.run(None, feeds)[0]
    with torch.inference_mode():
        torch_logits = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    diff = float(np.abs(onnx_logits - torch_logits).max())
    if diff > atol:
        raise TorchCheckpointError(f"rebuilt torch model differs from the ONNX graph by {diff:.2e} (> {atol})")
    return diff


def torch_checkpoint(model_dir: Path, texts: list[str]) -> Path:
    """A ``from_pretrained`` folder with the model's fine-tuned weights (built once per model)."""
    digest = hashlib.sha256((model_dir / "model.fp32.onnx").read_bytes()).hexdigest()[:12]
    out = CACHE / f"{model_dir.name}-{digest}"
    if (out / "model.safetensors").is_file():
        return out
    model = _load_rebuilt(model_dir)
    diff = verify(model, model_dir, texts[:32])
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, tmp / name)
    tmp.rename(out)
    logger.info("torch checkpoint %s rebuilt from the fp32 ONNX graph (max logit difference %.1e)", out, diff)
    return out
