"""CoNLL-2003 English: where the entities pipeline lands on the best-known NER benchmark.

Trains ``slm train entities`` on the train split (dev: the valid split) and scores the served
model on the test split (with both entity decoders, :mod:`bench.entity_decoding`), with the same code a customer's CoNLL file goes through. The data
is Reuters newswire under a research licence: it is read from the team's handout folder
(``../shared/data/entities/conll2003``) and never copied into the repository; the model
goes under ``.cache/bench/``.

    python -m bench.ner_benchmark [--data-dir DIR] [--epochs 3]

Reference (Devlin et al. 2019, test F1): BERT-base 92.4, BERT-large 92.8; both cased, and
about 5x (base) the parameters of all-MiniLM-L6-v2, which is uncased.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bench.entity_decoding import compare_decoders
from pipelines.common.args import TrainingArgs
from pipelines.recipe import train_model
from pipelines.token_classification import EntityRecipe
from shared.settings import REPO_ROOT

BERT_BASE_F1 = 0.924
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "entities" / "conll2003"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".cache" / "bench" / "ner")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--average-checkpoints", type=int, default=0,
                        help="Average the weights of this many best dev epochs (see TrainingArgs).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    files = {split: args.data_dir / f"{split}.txt" for split in ("train", "valid", "test")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        print(f"error: CoNLL-2003 files not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    training = TrainingArgs(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                            max_length=args.max_length, average_checkpoints=args.average_checkpoints)
    trained = train_model(EntityRecipe(), "entities", files["train"], args.out, training, eval_file=files["test"],
                          dev_file=files["valid"], model_name="conll2003-minilm-l6")
    info, test = trained.info, trained.metrics.test
    report = {
        "benchmark": "CoNLL-2003 English test, entity-level micro F1 (seqeval rules)",
        "served": info.precision,
        "served_metrics": {k: round(getattr(test.served, k), 4) for k in ("f1", "precision", "recall")},
        "fp32": {k: round(getattr(test.fp32, k), 4) for k in ("f1", "precision", "recall")},
        "per_type_served_f1": {k: round(v.f1, 4) for k, v in test.served.per_type.items()},
        "decoders": compare_decoders(args.out, files["test"]),
        "bert_base_f1": BERT_BASE_F1,
        "ratio_served_to_bert_base": round(test.served.f1 / BERT_BASE_F1, 4),
        "train_seconds": info.training["train_seconds"],
        "best_epoch": info.training["best_epoch"],
        "model": str(args.out),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
