"""The profiler's pure parts: the classifier of py-spy's collapsed stacks, the table, the flame graph."""

from __future__ import annotations

import pytest

from bench.flamegraph import flamegraph_svg
from bench.profile_stacks import (CpuWindow, Profile, category_of_frame, classify, parse_collapsed, profile_table,
                                  sampled_threads)

HTTP = "HTTP server (uvicorn, httptools, h11, starlette, asyncio)"
OURS = "our own code (shared, services)"
PROCESS = 'process 11:"python -m _bentoml_impl.worker.service"'

# Outermost frame first, as py-spy --format raw --subprocesses --threads --native writes them.
COLLAPSED = f"""\
{PROCESS};thread (101);Runner.run (asyncio/runners.py:118);run_forever (loop.c:33192);epoll_pwait (libc.so.6) 50
{PROCESS};thread (101);Runner.run (asyncio/runners.py:118);RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:524) 10
{PROCESS};thread (101);Runner.run (asyncio/runners.py:118);AccessLogMiddleware.__call__ (bentoml/_internal/server/http/access.py:133);Logger.info (logging/__init__.py:1489) 20
{PROCESS};thread (102);Thread.run (threading.py:982);OnnxTextClassifier.predict_proba (shared/runtime/onnx_classifier.py:139);0x7f01 (tokenizers/tokenizers.abi3.so) 30
{PROCESS};thread (102);Thread.run (threading.py:982);OnnxTextClassifier.predict_proba (shared/runtime/onnx_classifier.py:142);Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406);0x7f02 (libc.so.6) 60
{PROCESS};thread (102);Thread.run (threading.py:982);OnnxTextClassifier.feeds (shared/runtime/onnx_classifier.py:125);zeros (numpy/core/numeric.py:10) 10
{PROCESS};thread (103);Thread.run (threading.py:982);KafkaConsumer.poll (kafka/consumer/group.py:690);crc32c_value (crc32c.cpython-311-x86_64-linux-gnu.so) 5
{PROCESS};thread (103);Thread.run (threading.py:982);Condition.wait (threading.py:327);0x7f03 (libc.so.6) 40
{PROCESS};thread (104);Thread.run (threading.py:982);Item.model_validate_json (pydantic/main.py:700) 10
{PROCESS};thread (104);_bootstrap (threading.py:1002);gc_collect_main (libpython3.11.so.1.0) 5
"""


def test_parse_collapsed_reads_frames_and_counts():
    stacks = parse_collapsed(COLLAPSED.splitlines() + [""])
    assert len(stacks) == 10
    assert stacks[0][1] == 50 and stacks[0][0][-1] == "epoll_pwait (libc.so.6)"
    assert sampled_threads(stacks) == {101, 102, 103, 104}


@pytest.mark.parametrize(("frame", "category"), [
    ("Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406)", "ONNX Runtime"),
    ("0x7feaa3b2efb2 (onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so)", "ONNX Runtime"),
    ("MlasGemm (libonnxruntime.so.1.20.1)", "ONNX Runtime"),
    ("encode_batch (tokenizers/tokenizers.abi3.so)", "tokenization (tokenizers)"),
    ("loads (json/__init__.py:346)", "JSON and pydantic"),
    ("dumps (orjson.cpython-311-x86_64-linux-gnu.so)", "JSON and pydantic"),
    ("validate_python (pydantic_core/core.py:1)", "JSON and pydantic"),
    ("Fetcher.fetched_records (kafka/consumer/fetcher.py:300)", "Kafka client (kafka-python)"),
    ("run (shared/kafka/loop.py:80)", OURS),  # ours, though it is about Kafka
    ("predict (services/sentiment/service.py:40)", OURS),
    ("ContextMiddleware.__call__ (_bentoml_impl/server/app.py:71)", "BentoML"),
    ("Handle__run (loop.c:70959)", HTTP),
    ("Condition.wait (threading.py:327)", "waiting (not CPU)"),
    ("epoll_pwait (libc.so.6)", "waiting (not CPU)"),
    ("0x7feab14a3f16 (libc.so.6)", None),
    ("Logger.info (logging/__init__.py:1489)", None),
    ("_run_code (<frozen runpy>:88)", None),
    (PROCESS, None),
    ("thread (101)", None),
])
def test_each_frame_belongs_to_its_category(frame, category):
    assert category_of_frame(frame) == category


def test_a_sample_counts_for_its_innermost_frame_that_has_a_category():
    stacks = dict((line.rsplit(" ", 1)[0], frames) for line, (frames, _) in
                  zip(COLLAPSED.splitlines(), parse_collapsed(COLLAPSED.splitlines())))
    by_line = [classify(frames) for frames in stacks.values()]
    assert by_line == ["waiting (not CPU)", HTTP, "BentoML", "tokenization (tokenizers)", "ONNX Runtime", OURS,
                       "Kafka client (kafka-python)", "waiting (not CPU)", "JSON and pydantic", "other"]


def test_cpu_per_item_splits_the_sampled_threads_cpu_by_samples_and_adds_the_unseen_threads():
    stacks = parse_collapsed(COLLAPSED.splitlines())
    # 150 busy samples (90 waiting left out); the sampled threads used 1.5 s, native threads 0.5 s more.
    cpu = CpuWindow({101: 0.3, 102: 1.0, 103: 0.05, 104: 0.15, 200: 0.5})
    rows = {where: (samples, share, ms) for where, samples, share, ms in Profile(stacks, 100, 100, cpu).rows()}
    assert rows["ONNX Runtime"][0] == 60
    assert rows["ONNX Runtime"][2] == pytest.approx(1500 * 60 / 150 / 100)  # 6 ms per item
    assert rows["ONNX Runtime"][1] == pytest.approx(100 * 600 / 2000)
    assert rows["other"][0] == 5
    unseen = next(where for where in rows if where.startswith("native threads"))
    assert rows[unseen] == (None, pytest.approx(25.0), pytest.approx(5.0))
    assert sum(share for _, share, _ in rows.values()) == pytest.approx(100.0)


def test_without_the_os_count_the_samples_alone_give_the_cpu():
    stacks = parse_collapsed(COLLAPSED.splitlines())
    rows = {where: ms for where, _, _, ms in Profile(stacks, 100, 10).rows()}
    assert rows["ONNX Runtime"] == pytest.approx(60 * 10 / 10)  # 60 samples of 10 ms over 10 items
    assert not any(where.startswith("native threads") for where in rows)


def test_profile_table_is_markdown_with_a_total():
    lines = profile_table(Profile(parse_collapsed(COLLAPSED.splitlines()), 100, 100, CpuWindow({102: 1.5, 200: 0.5})))
    assert lines[0] == "| where | samples | % of CPU | CPU-ms per item |"
    assert "| **total** | | 100.0 | 20.00 |" in lines
    assert lines[-1] == "100 items; 240 samples at 100/s, of which 90 in waits (left out)."


def test_flamegraph_svg_draws_each_frame_once_per_path():
    svg = flamegraph_svg(parse_collapsed(COLLAPSED.splitlines()), "sentiment: REST")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "sentiment: REST (240 samples)" in svg
    assert svg.count("<title>Thread.run (threading.py:982): 155 samples") == 1  # threads 102-104 merged
    assert "thread (101)" not in svg and "[libc.so.6]" in svg


def test_each_threads_cpu_is_split_by_its_own_samples():
    # The model thread's samples sit in ONNX Runtime but it barely ran; the event loop ran a whole second.
    stacks = [([PROCESS, "thread (1)", "Session.run (onnxruntime/capi/x.py:1)"], 90),
              ([PROCESS, "thread (2)", "RequestResponseCycle.send (uvicorn/protocols/http/h.py:1)"], 10)]
    rows = {where: ms for where, _, _, ms in Profile(stacks, 100, 1, CpuWindow({1: 0.01, 2: 1.0})).rows()}
    assert rows["ONNX Runtime"] == pytest.approx(10.0)
    assert rows[HTTP] == pytest.approx(1000.0)


def test_flamegraph_names_programs_not_the_folders_they_were_installed_in():
    stacks = [(['process 7:"/opt/app/.venv/bin/python /opt/app/.venv/bin/bentoml serve svc"',
                "predict (shared/serving.py:10)"], 3)]
    svg = flamegraph_svg(stacks, "sentiment: REST")
    assert "/opt/" not in svg and "python bentoml serve svc" in svg
    assert "predict (shared/serving.py:10)" in svg and 'xmlns="http://www.w3.org/2000/svg"' in svg
