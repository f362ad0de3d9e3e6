"""Reading CoNLL files for entity extraction, any tag set, IO or IOB2.

One token per line, the token first and its tag last, separated by spaces or tabs (any
columns between are ignored); a blank line ends a sentence; ``-DOCSTART-`` lines are
skipped. Errors name the file, the line and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pipelines.common.data import open_text
from shared.errors import DataError
from shared.runtime.tagging import Span, parse_tag, spans_from_tags

__all__ = ["Sentence", "read_conll", "tag_scheme", "with_context"]


@dataclass(frozen=True)
class Sentence:
    """A tokenized sentence with its gold entities (token spans, end exclusive), the tokens of
    its neighbours in the same document (``left``/``right``, for context), and which document of
    its file it is in (``-DOCSTART-`` lines count them; 0 before the first)."""

    tokens: tuple[str, ...]
    spans: tuple[Span, ...]
    line: int  # first line of the sentence in its file, for messages
    left: tuple[str, ...] = ()
    right: tuple[str, ...] = ()
    document: int = 0

    @property
    def types(self) -> set[str]:
        return {kind for kind, _, _ in self.spans}


def tag_scheme(tags: set[str]) -> str:
    """``IOB2`` when any tag opens with ``B-``, else ``IO``."""
    return "IOB2" if any(t.startswith("B-") for t in tags) else "IO"


def with_context(sentences: list[Sentence], documents: list[int], words: int) -> list[Sentence]:
    """Each sentence with up to ``words // 2`` tokens of the sentences before and after it,
    never across a document boundary."""
    if words <= 0:
        return sentences
    half = words // 2
    out = []
    for i, sentence in enumerate(sentences):
        left: list[str] = []
        j = i - 1
        while j >= 0 and documents[j] == documents[i] and len(left) < half:
            left = list(sentences[j].tokens) + left
            j -= 1
        right: list[str] = []
        j = i + 1
        while j < len(sentences) and documents[j] == documents[i] and len(right) < half:
            right += sentences[j].tokens
            j += 1
        out.append(replace(sentence, left=tuple(left[-half:]), right=tuple(right[:half])))
    return out


def read_conll(path: str | Path, context_words: int = 0) -> list[Sentence]:
    """Every sentence of ``path`` (plain or ``.gz``), with ``context_words`` of neighbours.

    Raises:
        DataError: missing file, a line without a tag, an unknown tag scheme, no sentences.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    sentences: list[Sentence] = []
    documents: list[int] = []
    document = 0
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush() -> None:
        if tokens:
            sentences.append(Sentence(tuple(tokens), tuple(spans_from_tags(tags)), first_line, document=document))
            documents.append(document)
            tokens.clear()
            tags.clear()

    lineno = 0
    try:
        with open_text(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    flush()
                    continue
                if parts[0] == "-DOCSTART-":
                    flush()
                    document += 1
                    continue
                if len(parts) < 2:
                    raise DataError(f"{path}:{lineno}: expected a token and a tag separated by a space or tab, "
                                    f"got {line.strip()!r}")
                tag = parts[-1]
                try:
                    parse_tag(tag)
                except ValueError as exc:
                    raise DataError(f"{path}:{lineno}: {exc}") from None
                if not tokens:
                    first_line = lineno
                tokens.append(parts[0])
                tags.append(tag)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{lineno + 1}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
    flush()
    if not sentences:
        raise DataError(f"{path}: no sentences found (expected CoNLL: token ... tag per line, blank line between "
                        "sentences)")
    return with_context(sentences, documents, context_words)
