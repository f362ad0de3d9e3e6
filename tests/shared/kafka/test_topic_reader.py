"""The tools' one read of a topic (shared.kafka.topic_reader): all of it or its last offsets, and record values
as JSON objects."""

from __future__ import annotations

import pytest

from shared.kafka.clients import client_options
from shared.kafka.topic_reader import NotAJsonObject, json_object, read_topic_or_none
from tests.support.kafka_io import produce


def test_a_record_value_is_a_json_object_or_a_reason_that_quotes_nothing():
    assert json_object(b'{"id": "a"}') == {"id": "a"}
    for value, reason in [(None, "empty value"), (b"", "empty value"), (b"\xff\xfe", "not UTF-8"),
                          (b"secret-words", "not JSON"), (b'["secret-words"]', "not a JSON object (list)")]:
        with pytest.raises(NotAJsonObject, match=reason.replace("(", r"\(").replace(")", r"\)")) as raised:
            json_object(value)
        assert "secret" not in str(raised.value)


@pytest.mark.integration
def test_a_topic_is_read_whole_or_from_its_last_offsets(kafka_bootstrap, topic_prefix):
    options = client_options(kafka_bootstrap)
    topic = f"{topic_prefix}reader"
    produce(kafka_bootstrap, topic, [(b"k", str(i).encode(), []) for i in range(5)])  # one key: one partition
    assert [r.value for r in read_topic_or_none(options, topic, timeout_s=60)] == [b"0", b"1", b"2", b"3", b"4"]
    assert [r.value for r in read_topic_or_none(options, topic, timeout_s=60, last=2)] == [b"3", b"4"]
    assert [r.value for r in read_topic_or_none(options, topic, timeout_s=60, last=99)] == [b"0", b"1", b"2", b"3", b"4"]
    assert read_topic_or_none(options, topic, timeout_s=60, last=0) == []


@pytest.mark.integration
def test_reading_a_missing_topic_does_not_create_it(kafka_bootstrap, topic_prefix):
    options = client_options(kafka_bootstrap)
    topic = f"{topic_prefix}never-written"
    assert read_topic_or_none(options, topic, timeout_s=30) is None
    # Auto-creation on the first read would let this one find an empty topic.
    assert read_topic_or_none(options, topic, timeout_s=30, last=5) is None
