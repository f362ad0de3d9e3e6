"""Tag schemes and windows for token classification, shared by training and serving.

Entities are spans ``(type, start, end)`` over a token sequence, ``end`` exclusive. Files
may tag them IO (``I-PER`` only) or IOB2 (``B-PER`` opens, ``I-PER`` continues); the model
always learns IOB2 so that two adjacent entities of one type stay two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["N_SHAPES", "OUTSIDE", "Span", "iob2_tags", "iob2_transitions", "parse_tag", "plan_windows",
           "spans_from_tags", "token_shapes", "viterbi_path", "window_owners", "word_shape"]

OUTSIDE = "O"
_TAG = re.compile(r"^([BI])-(\S+)$")

Span = tuple[str, int, int]


def parse_tag(tag: str) -> tuple[str, str] | None:
    """``None`` for ``O``, else ``(prefix, type)``.

    Raises:
        ValueError: the tag is neither ``O`` nor ``B-<type>`` / ``I-<type>``.
    """
    if tag == OUTSIDE:
        return None
    match = _TAG.match(tag)
    if match is None:
        raise ValueError(f"unknown tag {tag!r}: expected O, B-<type> or I-<type> (IO or IOB2 scheme)")
    return match.group(1), match.group(2)


def spans_from_tags(tags: Sequence[str]) -> list[Span]:
    """Entity spans of a tag sequence, read the way seqeval reads IO, IOB1 and IOB2.

    ``B-X`` opens a span; ``I-X`` continues a span of type X and opens one after anything else.
    """
    spans: list[Span] = []
    current: list | None = None
    for i, tag in enumerate(tags):
        parsed = parse_tag(tag)
        if parsed is None:
            current = None
            continue
        prefix, kind = parsed
        if prefix == "I" and current is not None and current[0] == kind:
            current[2] = i + 1
            continue
        current = [kind, i, i + 1]
        spans.append(current)  # type: ignore[arg-type]
    return [(kind, start, end) for kind, start, end in spans]


def iob2_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which IOB2 tags may open a sequence, and which may follow which.

    ``I-X`` only continues ``B-X`` or ``I-X``; everything else may follow anything. Returns
    (allowed at the start, shape (L,); allowed from row to column, shape (L, L)).
    """
    parsed = [parse_tag(label) for label in labels]
    start = np.array([p is None or p[0] == "B" for p in parsed])
    allowed = np.ones((len(labels), len(labels)), dtype=bool)
    for j, tag in enumerate(parsed):
        if tag is not None and tag[0] == "I":
            allowed[:, j] = [p is not None and p[1] == tag[1] for p in parsed]
    return start, allowed


def viterbi_path(probs: np.ndarray, start: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The most probable tag sequence under the transition constraints (label index per token).

    ``probs`` (tokens, labels) are the model's per-token probabilities; the path maximises the
    sum of their logs over sequences that only use allowed transitions, so an ``I-X`` is never
    read without the ``B-X`` before it: a span's type is decided by all of its tokens together.
    """
    log_probs = np.log(np.clip(probs, 1e-12, 1.0))
    forbidden = np.where(allowed, 0.0, -np.inf)
    score = np.where(start, log_probs[0], -np.inf)
    back = np.zeros(probs.shape, dtype=np.int64)
    for i in range(1, len(probs)):
        candidates = score[:, None] + forbidden  # (previous, current)
        back[i] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[i]
    path = np.empty(len(probs), dtype=np.int64)
    path[-1] = int(score.argmax())
    for i in range(len(probs) - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def iob2_tags(spans: Sequence[Span], length: int) -> list[str]:
    """IOB2 tags of ``length`` tokens holding ``spans``."""
    tags = [OUTSIDE] * length
    for kind, start, end in spans:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def plan_windows(n_tokens: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``[start, end)`` of at most ``size`` tokens covering ``n_tokens``, consecutive
    windows sharing ``overlap`` tokens so an entity cut by one edge is whole in the next."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size} overlap={overlap}")
    if n_tokens <= size:
        return [(0, n_tokens)]
    step = size - overlap
    windows = []
    start = 0
    while True:
        end = min(start + size, n_tokens)
        windows.append((start, end))
        if end == n_tokens:
            return windows
        start += step


def window_owners(windows: Sequence[tuple[int, int]], n_tokens: int) -> list[int]:
    """For each token, the window in which it sits farthest from an edge (most context both sides)."""
    owners = [0] * n_tokens
    margins = [-1] * n_tokens
    for w, (start, end) in enumerate(windows):
        for i in range(start, end):
            # A window edge that is also the text's edge costs no context.
            left = i - start if start > 0 else n_tokens
            right = end - 1 - i if end < n_tokens else n_tokens
            margin = min(left, right)
            if margin > margins[i]:
                owners[i], margins[i] = w, margin
    return owners


# Word shapes: what an uncased encoder cannot see and a name often shows. 0 is for
# [CLS]/[SEP]/padding; every subword of a word gets the shape of the whole word.
SHAPE_SPECIAL, SHAPE_LOWER, SHAPE_TITLE, SHAPE_UPPER, SHAPE_MIXED, SHAPE_NO_LETTER = range(6)
N_SHAPES = 6


def word_shape(word: str) -> int:
    """``lower``, ``Title``, ``UPPER`` (two or more letters), ``mIxed`` or no letter at all."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return SHAPE_NO_LETTER
    uppers = sum(c.isupper() for c in letters)
    if uppers == 0:
        return SHAPE_LOWER
    if uppers == len(letters):
        return SHAPE_UPPER if len(letters) > 1 else SHAPE_TITLE
    if letters[0].isupper() and uppers == 1:
        return SHAPE_TITLE
    return SHAPE_MIXED


def token_shapes(text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]) -> list[int]:
    """The shape of each token's whole word in ``text`` (words as the tokenizer pre-splits them)."""
    spans: dict[int, list[int]] = {}
    for (start, end), word in zip(offsets, word_ids):
        if word is None:
            continue
        span = spans.setdefault(word, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    shapes = {word: word_shape(text[start:end]) for word, (start, end) in spans.items()}
    return [SHAPE_SPECIAL if word is None else shapes[word] for word in word_ids]
