"""The one builder of DLQ records: key, value (cut), original headers, then why and where."""

from __future__ import annotations

from shared.errors import MessageError
from shared.kafka import DLQ_HEADERS, dead_letter

SOURCE = ("sentiment.requests", 2, 41)


def test_a_dead_letter_keeps_key_value_and_headers_and_says_why_and_where():
    out = dead_letter("sentiment.dlq", SOURCE, MessageError("not_json", "value is not JSON"), key=b"k", value=b"{bad",
                      headers=[("correlation-id", b"c"), ("error.type", b"stale"), ("x-null", None)],
                      max_value_bytes=1000)
    assert (out.topic, out.key, out.value, out.source) == ("sentiment.dlq", b"k", b"{bad", SOURCE)
    assert out.headers == [("correlation-id", b"c"), ("x-null", b""), ("error.type", b"not_json"),
                           ("error.message", b"value is not JSON"), ("source.topic", b"sentiment.requests"),
                           ("source.partition", b"2"), ("source.offset", b"41")]
    assert [k for k, _ in out.headers][-5:] == list(DLQ_HEADERS)


def test_a_long_value_is_cut_and_a_keyless_valueless_record_gets_an_empty_key():
    error = MessageError("too_large", "too large")
    cut = dead_letter("t.dlq", SOURCE, error, key=None, value=b"x" * 10, headers=None, max_value_bytes=4)
    assert cut.key is None and cut.value == b"xxxx"
    assert dict(cut.headers)["original.size"] == b"10" and dict(cut.headers)["original.truncated"] == b"true"
    pointer = dead_letter("t.dlq", SOURCE, error, key=None, value=None, headers=None, max_value_bytes=4)
    assert pointer.key == b"" and pointer.value is None
