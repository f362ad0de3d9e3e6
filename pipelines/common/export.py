"""Export a fine-tuned checkpoint with optimum to ONNX (fp32), with its tokenizer.

Quantization is :mod:`pipelines.common.quantize`. The dynamic int8 preset follows the CPU
that runs the export (AVX-512 VNNI where present, AVX2 otherwise); the int8 graph runs on
any x86-64 CPU either way.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

__all__ = ["FP32_FILE", "TOKENIZER_FILES", "cpu_quantization_preset", "export_fp32"]

logger = logging.getLogger(__name__)

FP32_FILE = "model.fp32.onnx"
# tokenizer.json holds the vocabulary (the runtime reads only it); the config files let
# transformers load the folder (the benchmark's torch peers). vocab.txt would repeat tokenizer.json.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")


def cpu_quantization_preset() -> str:
    """``avx512_vnni`` when this CPU has VNNI, else ``avx2`` (read from /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "avx2"
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


def _onnx_config(model, onnx_task: str):
    """optimum's BERT config for the task; for our cased token classifier, plus ``case_ids``."""
    from optimum.exporters.onnx.model_configs import BertOnnxConfig

    if onnx_task != "token-classification":
        return BertOnnxConfig(model.config, task=onnx_task)
    from optimum.utils import DummyTextInputGenerator

    from shared.runtime.tagging import N_SHAPES

    class CaseIdsGenerator(DummyTextInputGenerator):
        SUPPORTED_INPUT_NAMES = (*DummyTextInputGenerator.SUPPORTED_INPUT_NAMES, "case_ids")

        def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64",
                     float_dtype: str = "fp32"):
            if input_name == "case_ids":
                return self.random_int_tensor([self.batch_size, self.sequence_length], max_value=N_SHAPES,
                                              framework=framework, dtype=int_dtype)
            return super().generate(input_name, framework, int_dtype, float_dtype)

    class CasedTokenClassifierOnnxConfig(BertOnnxConfig):
        DUMMY_INPUT_GENERATOR_CLASSES = (CaseIdsGenerator,)

        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            axes = {0: "batch_size", 1: "sequence_length"}
            return {"input_ids": axes, "attention_mask": axes, "case_ids": axes}

    return CasedTokenClassifierOnnxConfig(model.config, task=onnx_task)


def _load_for_export(checkpoint_dir: Path, onnx_task: str):
    from pipelines.common.modeling import CasedTokenClassifier, MeanPoolingClassifier

    model_class = CasedTokenClassifier if onnx_task == "token-classification" else MeanPoolingClassifier
    return model_class.from_pretrained(checkpoint_dir).eval()


def export_fp32(checkpoint_dir: Path, out_dir: Path, onnx_task: str = "text-classification") -> Path:
    """Write ``model.fp32.onnx`` (optimum's ONNX export) and the tokenizer files into ``out_dir``.

    :func:`pipelines.common.quantize.choose_served_graph` then writes the served ``model.onnx``.

    Args:
        onnx_task (`str`): ``text-classification`` (our mean-pooling head, logits per item)
            or ``token-classification`` (our cased token head, logits per token).

    Returns:
        The fp32 graph's path.
    """
    from optimum.exporters.onnx import export

    out_dir.mkdir(parents=True, exist_ok=True)
    model = _load_for_export(checkpoint_dir, onnx_task)
    # The heads are ours, so optimum cannot infer the architecture from a model id: give
    # it the BERT config for the task (inputs input_ids/attention_mask/token_type_ids or
    # case_ids, output logits, dynamic batch and sequence axes).
    onnx_config = _onnx_config(model, onnx_task)
    fp32_path = out_dir / FP32_FILE
    export(model, onnx_config, fp32_path, opset=onnx_config.DEFAULT_ONNX_OPSET)
    for name in TOKENIZER_FILES:
        source = checkpoint_dir / name
        if source.is_file():
            shutil.copyfile(source, out_dir / name)
    logger.info('exported fp32="%s"', fp32_path)
    return fp32_path
