"""Decoding a request record's value, with a typed reason for every way it can fail."""

from __future__ import annotations

import json

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


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


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
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError("not_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MessageError("not_json", f"value is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, huge integers, absurd nesting
        raise MessageError("not_json", f"value is not acceptable JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError("schema", f"value must be a JSON object, got {type(payload).__name__}")
    if isinstance(payload.get("text"), str) and not payload["text"].strip():
        raise MessageError("empty_text", "text is empty or whitespace only")
    try:
        return TaskRequestV1.model_validate(payload)
    except ValidationError as exc:
        raise MessageError("schema", validation_summary(exc)) from None
