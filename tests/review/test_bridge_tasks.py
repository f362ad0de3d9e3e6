"""Review records become Label Studio tasks exactly once: across a kill -9 of the bridge, and across Label Studio
being down mid-stream. Real broker, real Label Studio, the bridge as ``slm review bridge``."""

from __future__ import annotations

import pytest

from devtools.label_studio.lifecycle import down, up
from tests.review.conftest import produce_reviews, review_record
from tests.support.kafka_io import committed_total
from tests.support.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 200


def _records(first: int, last: int) -> list[tuple[str, bytes]]:
    return [(f"r{n:03d}", review_record(f"r{n:03d}", f"item number {n} is so-so")) for n in range(first, last)]


def _project(client, title: str) -> int:
    project = client.find_project(title)
    assert project is not None, f"no project {title!r}"
    return project["id"]


def test_200_review_records_give_200_tasks_across_a_kill_9_and_replays(start_bridge, kafka_bootstrap, topic_prefix,
                                                                       label_studio_client):
    topic = f"{topic_prefix}sentiment.review"
    produce_reviews(kafka_bootstrap, topic, _records(0, 120))
    bridge = start_bridge("sentiment", SLM_REVIEW_BATCH="5").wait_ready(120)
    project = _project(label_studio_client, f"{topic_prefix}sentiment")
    wait_for(lambda: len(label_studio_client.review_ids(project)) >= 20, 120, what="the first tasks")
    bridge.kill()  # mid-stream: no shutdown, no final commit
    created_before = len(label_studio_client.review_ids(project))
    assert created_before < 120, "the bridge finished before it was killed: the test proves nothing"
    # The rest, and the first 30 again (a producer's retry, a service's replay): the same ids.
    produce_reviews(kafka_bootstrap, topic, _records(120, RECORDS) + _records(0, 30))
    created_before = len(label_studio_client.review_ids(project))
    restarted = start_bridge("sentiment", SLM_REVIEW_BATCH="5").wait_ready(120)
    wait_for(lambda: committed_total(kafka_bootstrap, f"{topic_prefix}bridge") >= RECORDS + 30, 300,
             what="every review record committed")
    ids = label_studio_client.review_ids(project)
    assert len(ids) == RECORDS
    assert sorted(ids) == [f"r{n:03d}" for n in range(RECORDS)]
    assert restarted.metric("slm_review_tasks_created_total") == RECORDS - created_before


def test_label_studio_down_mid_stream_loses_and_doubles_nothing(start_bridge, kafka_bootstrap, topic_prefix,
                                                               label_studio_client, label_studio_config):
    topic = f"{topic_prefix}sentiment.review"
    produce_reviews(kafka_bootstrap, topic, _records(0, 100))
    bridge = start_bridge("sentiment", SLM_REVIEW_BATCH="5").wait_ready(120)
    project = _project(label_studio_client, f"{topic_prefix}sentiment")
    wait_for(lambda: len(label_studio_client.review_ids(project)) >= 10, 120, what="the first tasks")
    down(label_studio_config)
    try:
        produce_reviews(kafka_bootstrap, topic, _records(100, RECORDS))
        # Down until the bridge has retried 14 times: about 30 s, its retries being at most 2 s apart here.
        wait_for(lambda: bridge.metric("slm_review_retries_total") >= 14, 180, what="the bridge retrying")
        assert not bridge.ready()
    finally:
        up(label_studio_config)
    wait_for(bridge.ready, 120, what="the bridge ready again")
    wait_for(lambda: len(label_studio_client.review_ids(project)) >= RECORDS, 300, what="every task")
    ids = label_studio_client.review_ids(project)
    assert sorted(ids) == [f"r{n:03d}" for n in range(RECORDS)]
