import pytest
from pydantic import ValidationError

from shared.kafka.topics import TaskTopics
from shared.schemas import MAX_TEXT_CHARS, TaskRequestV1


def test_request_rejects_blank_text_and_unknown_keys():
    with pytest.raises(ValidationError, match="empty or whitespace"):
        TaskRequestV1(text=" \n ")
    with pytest.raises(ValidationError, match="Extra inputs"):
        TaskRequestV1.model_validate({"text": "a", "colour": "red"})


def test_request_length_limit():
    TaskRequestV1(text="x" * MAX_TEXT_CHARS)
    with pytest.raises(ValidationError):
        TaskRequestV1(text="x" * (MAX_TEXT_CHARS + 1))


def test_topic_names_follow_the_contract():
    topics = TaskTopics("sentiment")
    assert topics.all() == ["sentiment.requests", "sentiment.results", "sentiment.review", "sentiment.dlq",
                            "sentiment.feedback"]
    assert topics.group == "slm-sentiment"
    assert TaskTopics("sentiment", "team-a.").requests == "team-a.sentiment.requests"
