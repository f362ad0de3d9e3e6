"""``slm bench``'s arithmetic and report, without services (the run itself is a benchmark, not a test)."""

from __future__ import annotations

import asyncio

from bench.harness import BenchPlan, ratios, rest_load, results_table, tokens_per_item


def test_quick_plan_is_smaller_than_the_full_one(tmp_path):
    full = BenchPlan.for_run(["sentiment"], tmp_path, "127.0.0.1:9092", quick=False)
    quick = BenchPlan.for_run(["sentiment"], tmp_path, "127.0.0.1:9092", quick=True)
    assert full.concurrencies == [1, 8, 32, 128]
    assert set(quick.concurrencies) < set(full.concurrencies)
    assert {1, 32, 128} <= set(quick.concurrencies)  # the three points, even in a smoke run
    assert 1 in quick.batch_sizes and quick.shapes  # the batch-1 time and a length-sorted limit
    assert len(quick.shapes) < len(full.shapes)
    assert quick.rest_seconds < full.rest_seconds and quick.kafka_records < full.kafka_records


def _system(rates: dict[int, float], cold: float, rss: float) -> dict:
    return {"rest": {"single": [{"concurrency": c, "items_per_s": v, "p99": round(1000 / v, 2)} for c, v in rates.items()],
                     "batch16": [{"concurrency": 32, "items_per_s": 2 * max(rates.values())}]},
            "cold_start_s": cold, "rss_mb": rss}


RESULT = {"task": "sentiment", "tokens_per_item": 20.0,
          "limit_int8": {"items_per_s": 200.0, "best_batch": "sorted 32", "batch1_ms": 8.0,
                         "by_batch": {"1": 125.0, "sorted 32": 200.0}},
          "limit_fp32_torch": {"items_per_s": 80.0, "best_batch": 64},
          "kafka": {"full_speed": {"items_per_s": 170.0}, "half_speed": {"rate": 85.0, "p99": 40.0}},
          **_system({1: 50.0, 32: 150.0}, 3.5, 480.0),
          "peers": {"fastapi": _system({1: 20.0, 32: 25.0}, 6.0, 700.0),
                    "ray": _system({1: 10.0, 32: 100.0}, 15.0, 1500.0)},
          "peers_model": "torch fp32 with the served int8 graph's weights, dequantized"}
RESULT["ratios"] = ratios(RESULT)


def test_ratios_to_the_limit_and_to_each_peer():
    assert RESULT["ratios"] == {"rest_c1_over_limit": 0.25, "rest_c32_over_limit": 0.75, "kafka_over_limit": 0.85,
                                "rest_c1_time_over_batch1": 2.5, "rest_p99_at_half_over_batch1": None,
                                "kafka_p99_at_half_over_batch1": 5.0,
                                "rest_c32_over_fastapi": 6.0, "rest_c32_over_ray": 1.5}


def test_results_md_has_the_summary_the_figures_the_targets_and_the_peers():
    lines = results_table([RESULT], [1, 32]).splitlines()
    summary = lines.index(next(line for line in lines if line.startswith("| task |")))
    assert lines[summary + 2] == ("| sentiment | 200.0 (sorted 32) | 8 | 50 | 150 | 0.75 | 170 | 0.85 |  | 40 | 3.5 "
                                  "| 480 | 20 | 3400 |")
    assert "| REST c=32 | 150 | 0.75 |  | 6.67 | 0.8 |" in lines
    assert "| figure | value | target | met |" in lines
    assert "| REST c=32 / best limit | 0.75 | >= 0.8 | no |" in lines
    assert "| REST c=32 / peer (a) c=32 | 6 | >= 4 | yes |" in lines
    assert "| RSS of the service (MB) | 480 | <= 400 | no |" in lines
    service = next(line for line in lines if line.startswith("| slm serve"))
    assert service == "| slm serve (this service) | 50 | 150 | 6.67 | 300 | 3.5 | 480 | 0.75 | 1.00 |"
    fastapi = next(line for line in lines if line.startswith("| peer (a)"))
    assert fastapi.endswith("| 20 | 25 | 40 | 50 | 6 | 700 | 0.12 | 6.00 |")
    assert any("dequantized" in line for line in lines if line.startswith("Against the peers"))


def test_tokens_per_item_counts_special_tokens_without_truncation(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tokenizer.enable_truncation(4)
    tokenizer.enable_padding(pad_id=0, pad_token="[UNK]")  # pads to the longest input of a batch
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    assert tokens_per_item(tmp_path, ["one two", "one two three four five six"]) == 6.0  # (4 + 8) / 2


def test_rest_load_counts_items_and_errors_against_a_real_server():
    from aiohttp import web

    calls = []

    async def predict(request: web.Request) -> web.Response:
        calls.append(await request.read())
        return web.json_response([], status=200 if len(calls) % 2 else 503)

    async def scenario() -> dict:
        app = web.Application()
        app.router.add_post("/predict", predict)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            return await rest_load(f"http://127.0.0.1:{port}/predict", [b'{"items": [1, 2]}'], 2, 2, 0.2)
        finally:
            await runner.cleanup()

    result = asyncio.run(scenario())
    assert result["requests"] + result["errors"] == len(calls) > 0
    assert result["errors"] == len(calls) // 2
    assert result["items_per_s"] > 0 and 0 <= result["client_cpu"]
    assert calls[0] == b'{"items": [1, 2]}'
