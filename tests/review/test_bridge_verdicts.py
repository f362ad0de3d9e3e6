"""Verdicts come back: an annotation made in Label Studio becomes a ``<task>.feedback`` record that ``slm feedback
export`` joins (its webhook at once; the sweep for one made while the bridge was down); a skipped one publishes
nothing; an updated one publishes again and wins. Real broker, real Label Studio, the bridge as a process."""

from __future__ import annotations

import json

import httpx
import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from pipelines.feedback import join_feedback
from shared.review.bridge import SECRET_HEADER
from tests.review.conftest import produce_reviews, review_record
from tests.support.kafka_io import drain
from tests.support.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def _span(text: str, start: int, end: int, kind: str) -> dict:
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [kind]}}


def _tasks_of(client, title: str, ids: list[str]) -> tuple[int, dict[str, int]]:
    project = client.find_project(title)["id"]
    wait_for(lambda: len(client.find_tasks(project, ids)) == len(ids), 120, what="the bridge's tasks")
    return project, client.find_tasks(project, ids)


def _verdicts(records) -> list[dict]:
    return [json.loads(record.value) for record in records]


def _by_id(verdicts: list[dict]) -> list[tuple[str, str]]:
    """(id, label) by id; an id's records in publishing order (keyed by id: one partition each)."""
    return [(v["id"], v["label"]) for v in sorted(verdicts, key=lambda v: v["id"])]


def test_submitted_skipped_and_updated_annotations(start_bridge, kafka_bootstrap, topic_prefix, label_studio_client):
    reviews = [(f"s{n}", review_record(f"s{n}", text, label="bullish"))
               for n, text in enumerate(["shares flat after the call", "guidance unchanged", "margins under pressure"])]
    # s0's answer was traced: its verdict continues that trace.
    produce_reviews(kafka_bootstrap, f"{topic_prefix}sentiment.review", reviews,
                    headers={"s0": [("traceparent", f"00-{TRACE}-b7ad6b7169203331-01".encode())]})
    # One sweep, at start: a later one could publish the update before its webhooks arrive (then rightly skipped).
    start_bridge("sentiment", SLM_REVIEW_SWEEP_INTERVAL_S="3600", OTEL_SDK_DISABLED="false").wait_ready(120)
    _, tasks = _tasks_of(label_studio_client, f"{topic_prefix}sentiment", ["s0", "s1", "s2"])

    # The model's answer came along as a prediction with its score.
    task = label_studio_client._call("GET", f"/api/tasks/{tasks['s0']}")
    assert task["predictions"][0]["result"] == _choice("bullish")
    assert task["predictions"][0]["score"] == pytest.approx(0.41)

    post = label_studio_client._call
    post("POST", f"/api/tasks/{tasks['s0']}/annotations/", json={"result": _choice("neutral")})
    post("POST", f"/api/tasks/{tasks['s1']}/annotations/", json={"result": [], "was_cancelled": True})
    last = post("POST", f"/api/tasks/{tasks['s2']}/annotations/", json={"result": _choice("bullish")})
    post("PATCH", f"/api/annotations/{last['id']}/", json={"result": _choice("bearish")})

    topic = f"{topic_prefix}sentiment.feedback"
    records = drain(kafka_bootstrap, topic, until=lambda rs: any(
        v["id"] == "s2" and v["label"] == "bearish" for v in _verdicts(rs)), timeout=120)
    verdicts = _verdicts(records)
    assert _by_id(verdicts) == [("s0", "neutral"), ("s2", "bullish"), ("s2", "bearish")]
    assert all(v["source"] == "label-studio" and record.key == v["id"].encode()
               for v, record in zip(verdicts, records))
    traces = {v["id"]: dict(record.headers)["traceparent"].decode().split("-")[1]
              for v, record in zip(verdicts, records)}
    assert traces["s0"] == TRACE and traces["s2"] != TRACE

    review_topic = drain(kafka_bootstrap, f"{topic_prefix}sentiment.review", until=lambda rs: len(rs) >= 3)
    export = join_feedback(review_topic, records, entities=False, labels={"bearish", "bullish", "neutral"})
    assert {item.id: item.label for item in export.items} == {"s0": "neutral", "s2": "bearish"}
    assert export.counts.conflicts_overridden == 1


def test_entity_spans_come_back_with_character_offsets(start_bridge, kafka_bootstrap, topic_prefix,
                                                       label_studio_client):
    text = "Angela Merkel met executives of Siemens in Munich ."
    predicted = [{"type": "ORG", "text": "Angela Merkel", "start": 0, "end": 13, "score": 0.38}]
    produce_reviews(kafka_bootstrap, f"{topic_prefix}entities.review",
                    [("e0", review_record("e0", text, task="entities", entities=predicted))])
    start_bridge("entities").wait_ready(120)
    _, tasks = _tasks_of(label_studio_client, f"{topic_prefix}entities", ["e0"])
    task = label_studio_client._call("GET", f"/api/tasks/{tasks['e0']}")
    (region,) = task["predictions"][0]["result"]
    assert region["value"] == {"start": 0, "end": 13, "text": "Angela Merkel", "labels": ["ORG"]}

    corrected = [_span(text, 0, 13, "PER"), _span(text, 32, 39, "ORG"), _span(text, 43, 49, "LOC")]
    label_studio_client._call("POST", f"/api/tasks/{tasks['e0']}/annotations/", json={"result": corrected})
    records = drain(kafka_bootstrap, f"{topic_prefix}entities.feedback", until=lambda rs: len(rs) >= 1, timeout=120)
    (verdict,) = _verdicts(records)
    assert verdict["label"] == [{"type": "PER", "start": 0, "end": 13, "text": "Angela Merkel"},
                                {"type": "ORG", "start": 32, "end": 39, "text": "Siemens"},
                                {"type": "LOC", "start": 43, "end": 49, "text": "Munich"}]
    review_topic = drain(kafka_bootstrap, f"{topic_prefix}entities.review", until=lambda rs: len(rs) >= 1)
    (item,) = join_feedback(review_topic, records, entities=True, labels={"PER", "ORG", "LOC", "MISC"}).items
    assert item.label == (("PER", 0, 13), ("ORG", 32, 39), ("LOC", 43, 49))


def test_an_annotation_made_while_the_bridge_was_down_is_swept_up(start_bridge, kafka_bootstrap, topic_prefix,
                                                                  label_studio_client):
    produce_reviews(kafka_bootstrap, f"{topic_prefix}sentiment.review",
                    [(f"w{n}", review_record(f"w{n}", f"quarter number {n} was fine")) for n in range(2)])
    bridge = start_bridge("sentiment").wait_ready(120)
    _, tasks = _tasks_of(label_studio_client, f"{topic_prefix}sentiment", ["w0", "w1"])
    label_studio_client._call("POST", f"/api/tasks/{tasks['w0']}/annotations/", json={"result": _choice("bearish")})
    topic = f"{topic_prefix}sentiment.feedback"
    drain(kafka_bootstrap, topic, until=lambda rs: len(rs) >= 1, timeout=120)
    assert bridge.stop(timeout=20) == 0

    # The webhook has nowhere to go now: Label Studio gives up on it and keeps the annotation.
    label_studio_client._call("POST", f"/api/tasks/{tasks['w1']}/annotations/", json={"result": _choice("neutral")})
    restarted = start_bridge("sentiment").wait_ready(120)
    records = drain(kafka_bootstrap, topic, until=lambda rs: any(json.loads(r.value)["id"] == "w1" for r in rs),
                    timeout=120)
    assert _by_id(_verdicts(records)) == [("w0", "bearish"), ("w1", "neutral")]
    assert restarted.metric("slm_review_verdicts_published_total") == 1  # w0 is behind the watermark


def test_an_annotation_older_than_the_feedback_topics_retention_is_not_published(start_bridge, kafka_bootstrap,
                                                                                 topic_prefix, label_studio_client):
    produce_reviews(kafka_bootstrap, f"{topic_prefix}sentiment.review",
                    [(f"r{n}", review_record(f"r{n}", f"quarter number {n} was fine")) for n in range(2)])
    bridge = start_bridge("sentiment").wait_ready(120)
    _, tasks = _tasks_of(label_studio_client, f"{topic_prefix}sentiment", ["r0", "r1"])
    assert bridge.stop(timeout=20) == 0

    # r0 is annotated while the bridge is down, and then (as if long ago) falls outside the topic's retention:
    # had its verdict been published, the topic would have deleted it by now. The bridge reads the retention
    # as it starts; it is back to a day before r1's verdict, so the broker deletes nothing this test reads.
    label_studio_client._call("POST", f"/api/tasks/{tasks['r0']}/annotations/", json={"result": _choice("neutral")})
    topic = f"{topic_prefix}sentiment.feedback"
    _set_retention(kafka_bootstrap, topic, "1")
    restarted = start_bridge("sentiment").wait_ready(120)
    _set_retention(kafka_bootstrap, topic, "86400000")
    # r1, annotated now, is published after the first sweep (one thread does both, the sweep first).
    label_studio_client._call("POST", f"/api/tasks/{tasks['r1']}/annotations/", json={"result": _choice("bullish")})
    records = drain(kafka_bootstrap, topic, until=lambda rs: any(json.loads(r.value)["id"] == "r1" for r in rs),
                    timeout=120)
    assert _by_id(_verdicts(records)) == [("r1", "bullish")]
    assert restarted.metric("slm_review_verdicts_published_total") == 1


def _set_retention(bootstrap: str, topic: str, milliseconds: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": milliseconds})])
    finally:
        admin.close()


def test_the_webhook_wants_the_shared_secret(start_bridge):
    bridge = start_bridge("sentiment", SLM_REVIEW_WEBHOOK_SECRET="s3cret").wait_ready(120)
    body = {"action": "ANNOTATION_CREATED", "task": {"data": {"slm_id": "x"}}, "annotation": {"result": _choice("bearish")}}
    assert httpx.post(f"{bridge.url}/webhook", json=body, timeout=10).status_code == 401
    assert httpx.post(f"{bridge.url}/webhook", json=body, headers={SECRET_HEADER: "wrong"}, timeout=10).status_code == 401
    accepted = httpx.post(f"{bridge.url}/webhook", json=body, headers={SECRET_HEADER: "s3cret"}, timeout=10)
    assert accepted.status_code == 200 and accepted.json()["accepted"] is True
