"""Reviewers' verdicts in place of the training items they answer, when ``slm train --feedback`` merges them.

A feedback file (:mod:`pipelines.feedback`) often holds inputs that the original training data has
too, under the label the reviewer corrected: trained on both, the model would learn the conflict,
and the more copies the old label has, the less the verdict counts. So a verdict replaces them:
each training item whose input is a reviewed one is dropped, and of several verdicts on one input
only the last is kept (files in the order given, rows in file order: the export writes the final
verdicts in the order they arrived).

What "the same input" is, the kind says (:attr:`pipelines.recipe.KindRecipe.same_input`): for
classification the text with its fields as the encoder reads them; for entities the characters of
the tokens, so that a sentence whose verdict cut a token in two (``Acme,`` into ``Acme`` and ``,``) is
still the same sentence. A kind whose items sit in documents (:attr:`pipelines.recipe.KindRecipe.document`)
also has each whole document replaced by a verdict on the document's text sent as one input.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Generic, TypeVar

__all__ = ["FeedbackCounts", "FeedbackMerge", "replace_reviewed"]

T = TypeVar("T")


@dataclass(frozen=True)
class FeedbackCounts:
    """What merging the feedback did to the training data.

    Args:
        replaced (`int`): items of the original training files dropped for a verdict on the same input.
        superseded (`int`): feedback items dropped for a later verdict on the same input.
    """

    replaced: int = 0
    superseded: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FeedbackMerge(Generic[T]):
    """The original training items left, the feedback items kept, and the counts."""

    original: list[T]
    feedback: list[T]
    counts: FeedbackCounts


def _last_verdicts(feedback: Sequence[T], same_input: Callable[[T], str]) -> list[T]:
    last: dict[str, T] = {}
    for item in feedback:
        key = same_input(item)
        last.pop(key, None)  # popped so the dict keeps the order of the verdicts kept
        last[key] = item
    return list(last.values())


def _answered(items: Sequence[T], reviewed: set[str], same_input: Callable[[T], str],
              document: Callable[[T], Hashable] | None) -> set[int]:
    """Indices of ``items`` a reviewed input answers: the item itself, or its whole document."""
    answered = {i for i, item in enumerate(items) if same_input(item) in reviewed}
    if document is not None:
        # A document's items are consecutive in its file; its input is theirs joined.
        for _, run in itertools.groupby(range(len(items)), key=lambda i: document(items[i])):
            run = list(run)
            if len(run) > 1 and "".join(same_input(items[i]) for i in run) in reviewed:
                answered.update(run)
    return answered


def replace_reviewed(original: Sequence[Sequence[T]], feedback: Sequence[T], same_input: Callable[[T], str],
                     document: Callable[[T], Hashable] | None = None) -> FeedbackMerge[T]:
    """The original items without those a verdict answers, and each input's last verdict.

    Args:
        original (`Sequence[Sequence]`): the items of each original training file, as read (a document
            never spans two files).
        feedback (`Sequence`): the items of the feedback files, in order.
        same_input (`Callable`): an item's input as a string; equal strings are the same input. With
            ``document``, a document's input is its items' strings joined without a separator.
        document (`Callable`, *optional*): the document an item belongs to; ``None``: items stand alone.
    """
    kept_feedback = _last_verdicts(feedback, same_input)
    reviewed = {same_input(item) for item in kept_feedback}
    kept, replaced = [], 0
    for items in original:
        answered = _answered(items, reviewed, same_input, document) if reviewed else set()
        kept += [item for i, item in enumerate(items) if i not in answered]
        replaced += len(answered)
    counts = FeedbackCounts(replaced=replaced, superseded=len(feedback) - len(kept_feedback))
    return FeedbackMerge(kept, kept_feedback, counts)
