"""Every way a request value can fail, and the DLQ headers that report it."""

import json

import pytest

from shared.errors import MessageError
from shared.kafka import DLQ_HEADERS, decode_request, dlq_headers

LIMIT = 16_384


def _error_type(value: bytes | None) -> str:
    with pytest.raises(MessageError) as info:
        decode_request(value, LIMIT)
    return info.value.error_type


def test_valid_request_is_parsed():
    request = decode_request(json.dumps({"id": "a1", "text": "Shares rise", "fields": {"x": 1}}).encode(), LIMIT)
    assert (request.id, request.text, request.fields) == ("a1", "Shares rise", {"x": 1})


def test_id_is_optional():
    assert decode_request(b'{"text": "Shares rise"}', LIMIT).id is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"\xff\xfe not utf-8", "not_utf8"),
        (b"{not json", "not_json"),
        (b'["a", "list"]', "schema"),
        (b'{"id": "x"}', "schema"),
        (b'{"text": 42}', "schema"),
        (b'{"text": "ok", "unexpected": 1}', "schema"),
        (b'{"text": "   "}', "empty_text"),
        (b'{"text": ""}', "empty_text"),
        (json.dumps({"text": "x" * 20_000}).encode(), "too_large"),
        (b"[" * 1100 + b"]" * 1100, "not_json"),  # nesting past the parser's limit (orjson's: 1024)
        (b'{"text": "a", "fields": {"n": ' + b"9" * 5000 + b"}}", "not_json"),  # int too long to convert
        (b'{"text": "a", "fields": {"n": NaN}}', "not_json"),
        (b'{"text": "a", "fields": {"n": 1e400}}', "not_json"),  # a double's overflow, not Infinity
        (b'{"text": "\\ud800"}', "not_json"),  # an unpaired surrogate: no UTF-8 can carry it on
        (b'{"text": "caf\xe9"}', "not_utf8"),  # Latin-1 inside an otherwise valid document
    ],
)
def test_bad_values_get_a_typed_reason(value, expected):
    assert _error_type(value) == expected


def test_schema_message_names_the_field():
    with pytest.raises(MessageError) as info:
        decode_request(b'{"id": "x"}', LIMIT)
    assert "text" in info.value.message


def test_reasons_name_the_failure_and_where_it_is():
    with pytest.raises(MessageError) as info:
        decode_request(b"\xff\xfe not utf-8", LIMIT)
    assert info.value.message == "value is not UTF-8: invalid start byte at byte 0"
    with pytest.raises(MessageError) as info:
        decode_request(b'{"text": "ok",\n nope}', LIMIT)
    assert info.value.message.startswith("value is not JSON: ")
    assert info.value.message.endswith(" at line 2 column 2")


def test_dlq_headers_keep_originals_and_add_the_reason():
    original = [("traceparent", b"00-abc-def-01"), ("correlation-id", b"c-1"), ("error.type", b"stale")]
    headers = dlq_headers(original, MessageError("not_json", "value is not JSON"), "sentiment.requests", 2, 17)
    as_dict = dict(headers)
    assert as_dict["traceparent"] == b"00-abc-def-01"
    assert as_dict["correlation-id"] == b"c-1"
    assert as_dict["error.type"] == b"not_json"
    assert as_dict["error.message"] == b"value is not JSON"
    assert (as_dict["source.topic"], as_dict["source.partition"], as_dict["source.offset"]) == (
        b"sentiment.requests", b"2", b"17")
    assert [k for k, _ in headers if k == "error.type"] == ["error.type"]  # the stale one is replaced
    assert set(DLQ_HEADERS) <= set(as_dict)
