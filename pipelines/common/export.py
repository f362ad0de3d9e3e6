"""Export a fine-tuned checkpoint with optimum to ONNX and quantize it to int8.

Dynamic int8 quantization (weights per channel, activations at run time) needs no
calibration data and suits encoder classifiers on CPU. The preset follows the CPU that
runs the export (AVX-512 VNNI where present, AVX2 otherwise); the int8 graph runs on any
x86-64 CPU either way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

__all__ = ["TOKENIZER_FILES", "cpu_quantization_preset", "export_int8"]

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json")


def cpu_quantization_preset() -> str:
    """``avx512_vnni`` when this CPU has VNNI, else ``avx2`` (read from /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "avx2"
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


def _load_for_export(checkpoint_dir: Path, onnx_task: str):
    if onnx_task == "token-classification":
        from transformers import BertForTokenClassification

        return BertForTokenClassification.from_pretrained(checkpoint_dir).eval()
    from pipelines.common.modeling import MeanPoolingClassifier

    return MeanPoolingClassifier.from_pretrained(checkpoint_dir).eval()


def export_int8(checkpoint_dir: Path, out_dir: Path, preset: str | None = None,
                onnx_task: str = "text-classification") -> tuple[Path, Path]:
    """Write ``model.fp32.onnx`` and ``model.onnx`` (int8) plus the tokenizer into ``out_dir``.

    Args:
        onnx_task (`str`): ``text-classification`` (our mean-pooling head, logits per item)
            or ``token-classification`` (logits per token).

    Returns:
        (fp32 path, int8 path).
    """
    from optimum.exporters.onnx import export
    from optimum.exporters.onnx.model_configs import BertOnnxConfig

    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from tqdm.auto import tqdm

    preset = preset or cpu_quantization_preset()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="slm-onnx-") as tmp, \
            tqdm(total=2, desc="export onnx fp32 -> int8", unit="step", leave=False) as bar:
        fp32_dir = Path(tmp) / "fp32"
        fp32_dir.mkdir()
        model = _load_for_export(checkpoint_dir, onnx_task)
        # The head may be ours, so optimum cannot infer the architecture from a model id: give
        # it the BERT config for the task (inputs input_ids/attention_mask/token_type_ids,
        # output logits, dynamic batch and sequence axes).
        onnx_config = BertOnnxConfig(model.config, task=onnx_task)
        export(model, onnx_config, fp32_dir / "model.onnx", opset=onnx_config.DEFAULT_ONNX_OPSET)
        model.config.save_pretrained(fp32_dir)
        bar.update()
        quantizer = ORTQuantizer.from_pretrained(fp32_dir)
        config = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=True)
        int8_dir = Path(tmp) / "int8"
        quantizer.quantize(quantization_config=config, save_dir=int8_dir)
        bar.update()
        (quantized,) = int8_dir.glob("*.onnx")
        shutil.copyfile(fp32_dir / "model.onnx", out_dir / "model.fp32.onnx")
        shutil.copyfile(quantized, out_dir / "model.onnx")
    for name in TOKENIZER_FILES:
        source = checkpoint_dir / name
        if source.is_file():
            shutil.copyfile(source, out_dir / name)
    logger.info('exported fp32="%s" int8="%s" preset=%s', out_dir / "model.fp32.onnx", out_dir / "model.onnx", preset)
    return out_dir / "model.fp32.onnx", out_dir / "model.onnx"
