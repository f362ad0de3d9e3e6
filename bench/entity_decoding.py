"""Entity F1 of one model folder under both decoders: each token's best tag, and Viterbi over
valid IOB2 sequences (what the service runs).

    python -m bench.entity_decoding MODEL_DIR CONLL_FILE [CONLL_FILE ...]

Prints one JSON object per file: F1, precision and recall of the served graph and of the fp32
graph (when the folder has it) with each decoder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.common.export import FP32_FILE
from pipelines.common.metrics import entity_metrics
from pipelines.common.token_files import read_conll
from pipelines.token_classification import predicted_spans
from shared.runtime import OnnxEntityRecognizer, open_model_folder

__all__ = ["compare_decoders"]


def compare_decoders(model_dir: Path, conll_file: Path) -> dict:
    """``{graph: {decoder: {f1, precision, recall}}}`` for ``conll_file``."""
    info = open_model_folder(model_dir)
    sentences = read_conll(conll_file, info.training.get("args", {}).get("context_words", 0))
    gold = [list(s.spans) for s in sentences]
    graphs = {info.precision: "model.onnx"}
    if (Path(model_dir) / FP32_FILE).is_file() and info.precision != "fp32":
        graphs["fp32"] = FP32_FILE
    report: dict = {"model": info.model_id, "data": Path(conll_file).name}
    for name, graph in graphs.items():
        model = OnnxEntityRecognizer(model_dir, onnx_file=graph)
        report[name] = {}
        for decoder, constrained in (("argmax", False), ("viterbi", True)):
            model.tagger.constrained = constrained
            metrics = entity_metrics(gold, predicted_spans(model.tagger, sentences, model.run_logits)[0])
            report[name][decoder] = {k: round(metrics[k], 4) for k in ("f1", "precision", "recall")}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("conll_files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    for conll_file in args.conll_files:
        print(json.dumps(compare_decoders(args.model_dir, conll_file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
