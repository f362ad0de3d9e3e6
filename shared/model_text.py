"""What the encoder reads for an item: its text, then its extra fields as ``name: value``.

Training (pipelines) and serving (the processors) both build their input here, so both see the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

__all__ = ["field_value_text", "model_text"]


def field_value_text(value) -> str:
    """One field value as the encoder sees it: numbers in one canonical spelling.

    A CSV holds ``"20.00"`` where a JSON request sends ``20`` or ``20.0``; all three must
    read the same to the model, so numbers lose trailing zeros (``20``, ``35.5``).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return format(number.normalize(), "f") if number != number.to_integral_value() else str(int(number))


def model_text(text: str, fields: dict, names: Sequence[str] | None = None) -> str:
    """The encoder's input: the text, then ``name: value`` for each non-empty extra field.

    Training (pipelines) and serving use this one function, so both see the same input.

    Args:
        text (`str`): the item's text.
        fields (`dict`): extra fields of the item.
        names (`Sequence[str] | None`): the fields the model was trained with, in training
            order; others are ignored. ``None`` takes every field in ``fields`` order.
    """
    names = list(fields) if names is None else names
    values = [(name, fields.get(name)) for name in names]
    extras = " | ".join(f"{k}: {field_value_text(v)}" for k, v in values if v is not None and str(v).strip())
    return f"{text} | {extras}" if extras else text
