"""The torch path on a GPU: the fine-tuned classifier in fp16 and fp32, alone and behind a pipeline.

``slm bench`` measures the torch limit and the peers on whatever device torch finds (fp16 on
CUDA). This script is the GPU part on its own, for a machine that has torch and a GPU but
not the services' stack (no Kafka, BentoML or Ray there): it needs only torch, transformers
and a torch checkpoint folder (``bench.torch_checkpoint``), and prints JSON.

    python -m bench.gpu --checkpoint .cache/bench/torch/sentiment-<hash> --texts texts.txt

Measured, each on the same texts (sorted by length within chunks of 8 batches, as the
limit in ``bench.harness`` does): items/s by batch size in fp16 and fp32, and a transformers
``pipeline`` fed one text at a time (the core of peer (a)).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

__all__ = ["main"]


def _items_per_s(classify, texts: list[str], batch: int, device: str) -> float:
    import torch

    classify(texts[:batch])  # warm-up (CUDA kernels, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(texts), batch * 8):
        chunk = sorted(texts[start:start + batch * 8], key=len)
        for k in range(0, len(chunk), batch):
            classify(chunk[k:k + batch])
    if device == "cuda":
        torch.cuda.synchronize()
    return round(len(texts) / (time.perf_counter() - started), 1)


def _classifier(model, tokenizer, max_length: int, device: str):
    import torch

    def classify(texts: list[str]) -> list[int]:
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        with torch.inference_mode():
            return model(**encoded).logits.argmax(-1).tolist()  # .tolist() waits for the GPU

    return classify


def main(argv: list[str] | None = None) -> dict:
    import torch
    from transformers import AutoTokenizer, pipeline

    from pipelines.common.modeling import MeanPoolingClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--texts", type=Path, required=True, help="one input text per line")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--items", type=int, default=4096)
    parser.add_argument("--batches", default="1,8,32,128,512")
    parser.add_argument("--rounds", type=int, default=2,
                        help="fp16 and fp32 take turns this many times; the best of each is kept "
                             "(the first round also pays for GPU clock ramp-up)")
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = [t for t in args.texts.read_text().splitlines() if t.strip()]
    texts = (texts * (args.items // len(texts) + 1))[:args.items]
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    report: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    "torch": torch.__version__, "items": len(texts), "by_batch": {}}
    for name, dtype in [("fp16", torch.float16), ("fp32", torch.float32)] * args.rounds:
        if device == "cpu" and dtype == torch.float16:
            continue
        model = MeanPoolingClassifier.from_pretrained(args.checkpoint, dtype=dtype).to(device).eval()
        classify = _classifier(model, tokenizer, args.max_length, device)
        previous = report["by_batch"].get(name, {})
        report["by_batch"][name] = {b: max(_items_per_s(classify, texts, b, device), previous.get(b, 0))
                                    for b in map(int, args.batches.split(","))}
        pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=model.device)
        one_at_a_time = texts[:512]
        pipe(one_at_a_time[:8], truncation=True, max_length=args.max_length)
        started = time.perf_counter()
        for text in one_at_a_time:
            pipe(text, truncation=True, max_length=args.max_length)
        report[f"pipeline_one_at_a_time_{name}"] = max(round(len(one_at_a_time) / (time.perf_counter() - started), 1),
                                                       report.get(f"pipeline_one_at_a_time_{name}", 0))
        print(json.dumps({name: report["by_batch"][name],
                          "pipeline one at a time": report[f"pipeline_one_at_a_time_{name}"]}), flush=True)
    for name in list(report["by_batch"]):
        best = max(report["by_batch"][name], key=report["by_batch"][name].get)
        report[f"limit_{name}"] = {"items_per_s": report["by_batch"][name][best], "best_batch": best}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
