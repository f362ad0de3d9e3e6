"""Reading labelled classification files (CSV or JSONL, optionally gzip-compressed).

Errors name the file, the line and the problem, so a customer can fix their file
without reading a stack trace.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from shared.errors import DataError

__all__ = ["ColumnChoice", "ColumnMapping", "Example", "open_text", "read_examples", "split_dev"]

T = TypeVar("T")


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of a file hold the text, the label and the optional extra fields.

    Args:
        text (`str`, defaults to `"text"`): column with the input text.
        label (`str`, defaults to `"label"`): column with the gold label.
        fields (`tuple[str, ...]`, defaults to `()`): extra columns passed as ``fields``.
    """

    text: str = "text"
    label: str = "label"
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "fields": list(self.fields)}

    @classmethod
    def from_dict(cls, data: dict) -> "ColumnMapping":
        return cls(text=data["text"], label=data["label"], fields=tuple(data.get("fields", ())))


@dataclass(frozen=True)
class ColumnChoice:
    """Columns a user named (``--text-col``, ``--label-col``, ``--field-cols``); ``None``: not named.

    Args:
        text (`str | None`): column with the text.
        label (`str | None`): column with the label.
        fields (`str | None`): comma-separated extra columns.
    """

    text: str | None = None
    label: str | None = None
    fields: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.text or self.label or self.fields)

    def over(self, base: ColumnMapping) -> ColumnMapping:
        """``base`` with the named columns in place of its own."""
        fields = tuple(c.strip() for c in self.fields.split(",") if c.strip()) if self.fields else base.fields
        return ColumnMapping(text=self.text or base.text, label=self.label or base.label, fields=fields)


@dataclass(frozen=True)
class Example:
    """One labelled item: ``label`` is the raw label string as found in the file."""

    text: str
    label: str
    fields: dict[str, str] = field(default_factory=dict)


def open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: spreadsheet exports start with a byte-order mark that would glue onto the first header.
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".csv", ".tsv", ".txt", ""):
        return "csv"
    raise DataError(f"{path}: unsupported file type {last!r} (use .csv, .tsv or .jsonl)")


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row dict) pairs; line numbers are 1-based as an editor shows them."""
    lineno = 0
    try:
        for lineno, row in _parse_rows(path):
            yield lineno, row
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{lineno + 1}: not UTF-8 text ({exc.reason} at byte {exc.start} of a block); "
                        "save the file as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}:{lineno + 1}: malformed CSV ({exc})") from None


def _parse_rows(path: Path) -> Iterator[tuple[int, dict]]:
    fmt = _file_format(path)
    with open_text(path) as handle:
        if fmt == "jsonl":
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
            return
        dialect = "excel-tab" if path.name.lower().replace(".gz", "").endswith(".tsv") else "excel"
        reader = csv.DictReader(handle, dialect=dialect)
        if not reader.fieldnames:
            raise DataError(f"{path}:1: empty file, expected a header row")
        for row in reader:
            # reader.line_num is the physical line where the record ended (quoted newlines allowed).
            yield reader.line_num, row


def read_examples(path: str | Path, columns: ColumnMapping, *, require_label: bool = True) -> list[Example]:
    """Read every row of ``path`` into :class:`Example` objects.

    Raises:
        DataError: missing file, missing column, empty text or empty label, naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    examples: list[Example] = []
    needed = [columns.text, *( [columns.label] if require_label else []), *columns.fields]
    for lineno, row in _rows(path):
        missing = [name for name in needed if name not in row]
        if missing:
            present = ", ".join(sorted(str(k) for k in row)) or "none"
            raise DataError(f"{path}:{lineno}: missing column(s) {', '.join(missing)} (found: {present})")
        text = str(row[columns.text] if row[columns.text] is not None else "").strip()
        if not text:
            raise DataError(f"{path}:{lineno}: empty text in column {columns.text!r}")
        label = str(row[columns.label] if row[columns.label] is not None else "").strip() if require_label else ""
        if require_label and not label:
            raise DataError(f"{path}:{lineno}: empty label in column {columns.label!r}")
        fields = {name: "" if row[name] is None else str(row[name]) for name in columns.fields}
        examples.append(Example(text=text, label=label, fields=fields))
    if not examples:
        raise DataError(f"{path}: no rows found")
    return examples


def _label(item) -> str:
    return item.label


def split_dev(items: Sequence[T], fraction: float, seed: int, *,
              stratify: Callable[[T], str] | None = _label) -> tuple[list[T], list[T]]:
    """Carve a dev split out of ``items``: the one splitter of every task kind.

    Stratified by ``stratify`` (the label, by default): each label gives ``fraction`` of its
    items and keeps at least one for training, and both parts are shuffled. With
    ``stratify=None`` (entity sentences, which have no one label): one seeded shuffle, the
    first ``fraction`` (at least one item) for dev.
    """
    rng = random.Random(seed)
    if stratify is None:
        shuffled = list(items)
        rng.shuffle(shuffled)
        n_dev = max(1, int(round(len(shuffled) * fraction)))
        return shuffled[n_dev:], shuffled[:n_dev]
    by_label: dict[str, list[T]] = {}
    for item in items:
        by_label.setdefault(stratify(item), []).append(item)
    train: list[T] = []
    dev: list[T] = []
    for label in sorted(by_label):
        group = by_label[label][:]
        rng.shuffle(group)
        n_dev = int(round(len(group) * fraction)) if len(group) > 1 else 0
        n_dev = min(n_dev, len(group) - 1)
        dev.extend(group[:n_dev])
        train.extend(group[n_dev:])
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev
