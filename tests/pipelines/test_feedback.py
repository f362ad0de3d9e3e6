"""Feedback export: the join by id, duplicates, conflicts, unmatched and invalid verdicts, and the files."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from pipelines.classification import ClassificationRecipe
from pipelines.common.data import ColumnMapping, read_examples
from pipelines.common.token_files import read_conll
from pipelines.feedback import conll_tokens, join_feedback, model_label_names, write_training_file
from pipelines.tasks import dataset_for
from shared.errors import DataError


@dataclass
class Record:
    value: bytes | None
    offset: int
    timestamp: int = 0
    partition: int = 0


def _review(item_id: str, text: str, offset: int, fields: dict | None = None, with_input: bool = True,
            partition: int = 0) -> Record:
    value = {"id": item_id, "task": "sentiment", "label": "neutral", "score": 0.4, "review": True}
    if with_input:
        value["input"] = {"text": text, "fields": fields or {}}
    return Record(json.dumps(value).encode(), offset, timestamp=1000 + offset, partition=partition)


def _verdict(item_id, label, offset: int, timestamp: int | None = None, partition: int = 0) -> Record:
    return Record(json.dumps({"id": item_id, "label": label}).encode(), offset,
                  timestamp=2000 + offset if timestamp is None else timestamp, partition=partition)


REVIEWS = [_review("a", "shares soar", 0), _review("b", "shares sink", 1), _review("c", "flat day", 2),
           _review("hidden", "secret", 3, with_input=False)]


def test_each_id_is_joined_once_with_its_last_label_and_every_case_is_counted():
    feedback = [
        _verdict("a", "bullish", 0),
        _verdict("b", "bullish", 1),
        _verdict("a", "bullish", 2),         # duplicate of a's verdict
        _verdict("b", "bearish", 3),         # conflict: b's label changes, the later one wins
        _verdict("nobody", "bullish", 4),    # no review record
        _verdict("hidden", "bullish", 5),    # review record written without input
        Record(b"not json", 6),
        Record(b'["a", "bullish"]', 7),
        Record(json.dumps({"id": "c"}).encode(), 8),
        Record(json.dumps({"id": "c", "label": "   "}).encode(), 9),
        Record(None, 10),
        Record(b"\xff\xfe", 11),
    ]
    export = join_feedback(REVIEWS, feedback, entities=False)
    assert {item.id: item.label for item in export.items} == {"a": "bullish", "b": "bearish"}
    counts = export.counts
    assert (counts.joined, counts.duplicates, counts.conflicts_overridden, counts.without_review,
            counts.review_without_input, counts.invalid) == (2, 1, 1, 1, 1, 6)
    assert (counts.feedback_records, counts.review_records) == (12, 4)
    assert sum(export.invalid_reasons.values()) == 6
    assert "shares" not in " ".join(export.invalid_reasons)


def test_an_invalid_later_verdict_does_not_replace_a_valid_one():
    export = join_feedback(REVIEWS, [_verdict("a", "bullish", 0), _verdict("a", 7, 1)], entities=False)
    assert [(i.id, i.label) for i in export.items] == [("a", "bullish")]
    assert (export.counts.invalid, export.counts.conflicts_overridden) == (1, 0)


def test_the_last_verdict_wins_by_offset_within_a_partition_and_by_timestamp_across():
    # Offset order decides inside a partition, whatever the clients' clocks say.
    same_partition = [_verdict("a", "bearish", 5, timestamp=10), _verdict("a", "bullish", 4, timestamp=99)]
    assert join_feedback(REVIEWS, same_partition, entities=False).items[0].label == "bearish"
    # Across partitions the timestamp decides; the input order of the records does not matter.
    across = [_verdict("a", "bearish", 0, timestamp=50, partition=1), _verdict("a", "bullish", 9, timestamp=20)]
    for records in (across, across[::-1]):
        assert join_feedback(REVIEWS, records, entities=False).items[0].label == "bearish"


def test_the_last_review_record_of_an_id_gives_its_input():
    reviews = [_review("a", "first copy", 0), _review("a", "second copy", 1)]
    (item,) = join_feedback(reviews, [_verdict("a", "bullish", 0)], entities=False).items
    assert item.text == "second copy"


def test_a_review_copy_without_input_does_not_hide_an_earlier_one_with_it():
    reviews = [_review("a", "shares soar", 0), _review("a", "", 1, with_input=False)]
    (item,) = join_feedback(reviews, [_verdict("a", "bullish", 0)], entities=False).items
    assert item.text == "shares soar"


def test_a_classification_file_reads_back_with_the_tasks_columns(tmp_path):
    reviews = [_review("t1", "SHELL KINGS 587", 0, fields={"amount": 20.0, "directorate": "Local Services"}),
               _review("t2", "TESCO STORE", 1, fields={"amount": 3.5})]
    export = join_feedback(reviews, [_verdict("t1", "Fuel", 0), _verdict("t2", "Food", 1)], entities=False)
    columns = dataset_for("transactions").columns
    for name in ("feedback.jsonl", "feedback.csv"):
        path = write_training_file(export.items, tmp_path / name, entities=False, columns=columns)
        examples = read_examples(path, columns)
        assert [(e.text, e.label, e.fields) for e in examples] == [
            ("SHELL KINGS 587", "Fuel", {"amount": "20", "directorate": "Local Services"}),
            ("TESCO STORE", "Food", {"amount": "3.5", "directorate": ""})]


def test_sentiment_feedback_labels_are_the_names_the_model_answers_with(tmp_path):
    export = join_feedback(REVIEWS, [_verdict("a", "bullish", 0)], entities=False)
    dataset = dataset_for("sentiment")
    path = write_training_file(export.items, tmp_path / "f.csv", entities=False, columns=dataset.columns)
    recipe = ClassificationRecipe.for_training(ClassificationRecipe().column_choice, baseline=False, dataset=dataset)
    assert [(e.text, e.label) for e in recipe.read(path)] == [("shares soar", "bullish")]


def test_an_unknown_suffix_is_refused_for_classification(tmp_path):
    export = join_feedback(REVIEWS, [_verdict("a", "bullish", 0)], entities=False)
    with pytest.raises(DataError, match="unsupported suffix"):
        write_training_file(export.items, tmp_path / "f.parquet", entities=False, columns=ColumnMapping())


TEXT = "Loan to Acme Corp, signed by Jane Doe in Paris."


def _spans(*spans):
    return [{"type": t, "start": s, "end": e, "text": TEXT[s:e]} for t, s, e in spans]


def test_entity_feedback_is_checked_against_the_reviewed_text():
    reviews = [_review("e", TEXT, 0)]
    good = _spans(("ORG", 8, 17), ("PER", 29, 37))
    bad = [
        [{"type": "ORG", "start": 8, "end": 99}],                  # past the end
        [{"type": "ORG", "start": 8, "end": 17, "text": "Acme"}],  # text differs
        [{"type": "two words", "start": 8, "end": 17}],            # type with a space cannot be a tag
        _spans(("ORG", 8, 17), ("ORG", 13, 20)),                   # overlap
        [{"type": "ORG", "start": "8", "end": 17}],                # offsets not integers
        "ORG",                                                     # not a list of spans
    ]
    feedback = [_verdict("e", label, i) for i, label in enumerate(bad)] + [_verdict("e", good, 10)]
    export = join_feedback(reviews, feedback, entities=True)
    assert export.counts.invalid == len(bad)
    assert export.items[0].label == (("ORG", 8, 17), ("PER", 29, 37))
    # The same spans in another order (and without score or text) repeat the verdict.
    again = [_verdict("e", good, 0), _verdict("e", [{"type": "PER", "start": 29, "end": 37}, {"type": "ORG", "start": 8, "end": 17}], 1)]
    assert join_feedback(reviews, again, entities=True).counts.duplicates == 1


def test_entity_spans_become_whole_conll_tokens():
    tokens = conll_tokens(TEXT, (("ORG", 8, 17), ("PER", 29, 37), ("LOC", 41, 46)))
    assert tokens == [("Loan", "O"), ("to", "O"), ("Acme", "B-ORG"), ("Corp", "I-ORG"), (",", "O"),
                      ("signed", "O"), ("by", "O"), ("Jane", "B-PER"), ("Doe", "I-PER"), ("in", "O"),
                      ("Paris", "B-LOC"), (".", "O")]


def test_an_entities_file_reads_back_as_training_sentences(tmp_path):
    reviews = [_review("e1", TEXT, 0), _review("e2", "No names here", 1)]
    feedback = [_verdict("e1", _spans(("ORG", 8, 17), ("PER", 29, 37)), 0), _verdict("e2", [], 1)]
    path = write_training_file(join_feedback(reviews, feedback, entities=True).items, tmp_path / "f.conll",
                               entities=True)
    first, second = read_conll(path, context_words=8)
    assert first.tokens[2:4] == ("Acme", "Corp") and first.spans == (("ORG", 2, 4), ("PER", 7, 9))
    assert second.spans == () and second.tokens == ("No", "names", "here")
    # Separate documents: one reviewed text is never the context of another.
    assert first.right == () and second.left == ()


def _csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows), encoding="utf-8")
    return path


def test_training_reads_every_data_file_and_keeps_every_feedback_row_out_of_dev(tmp_path):
    from pipelines.common.args import TrainingArgs
    from pipelines.recipe import read_training_data

    first = _csv(tmp_path / "a.csv", [(f"up {i}", "bullish") for i in range(30)])
    second = _csv(tmp_path / "b.csv", [(f"down {i}", "bearish") for i in range(30)])
    feedback = _csv(tmp_path / "feedback.csv", [(f"fed back {i}", "neutral") for i in range(5)])
    # A cap smaller than the data: --quick's subsample must not drop the corrections.
    args = TrainingArgs.quick(max_train_examples=20, dev_fraction=0.2)
    data = read_training_data(ClassificationRecipe(), [first, second], args, feedback_files=[feedback])
    train_texts, dev_texts = {e.text for e in data.train}, {e.text for e in data.dev}
    assert {f"fed back {i}" for i in range(5)} <= train_texts
    assert not any(t.startswith("fed back") for t in dev_texts)
    assert len(data.train) == 25 and data.labels == ["bearish", "bullish", "neutral"]
    assert any(t.startswith("up") for t in dev_texts) and any(t.startswith("down") for t in dev_texts)


def test_a_label_the_model_does_not_have_is_invalid_unless_new_labels_are_allowed():
    feedback = [_verdict("a", "bulish", 0), _verdict("b", "bearish", 1)]
    known = model_label_names(["bearish", "bullish", "neutral"], entities=False)
    export = join_feedback(REVIEWS, feedback, entities=False, labels=known)
    assert [(i.id, i.label) for i in export.items] == [("b", "bearish")]
    assert export.invalid_reasons == {"label not among the model's labels": 1}
    # A customer adding a class on purpose: no label set, the new one is kept.
    assert {i.label for i in join_feedback(REVIEWS, feedback, entities=False).items} == {"bulish", "bearish"}


def test_a_span_type_the_model_does_not_have_is_invalid():
    known = model_label_names(["O", "B-ORG", "I-ORG", "B-PER", "I-PER"], entities=True)
    assert known == {"ORG", "PER"}
    feedback = [_verdict("e", _spans(("ORG", 8, 17), ("PERS", 29, 37)), 0)]
    export = join_feedback([_review("e", TEXT, 0)], feedback, entities=True, labels=known)
    assert export.items == [] and export.invalid_reasons == {"a span's type is not among the model's entity types": 1}


def test_span_edges_on_whitespace_are_moved_in_so_every_entity_starts_with_b():
    # " Acme Corp," from the space before it to the comma's space after: the tags must still be B-, I-.
    feedback = [_verdict("e", [{"type": "ORG", "start": 7, "end": 17}, {"type": "PER", "start": 29, "end": 38}], 0)]
    (item,) = join_feedback([_review("e", TEXT, 0)], feedback, entities=True).items
    assert item.label == (("ORG", 8, 17), ("PER", 29, 37))
    tags = dict(conll_tokens(item.text, item.label))
    assert (tags["Acme"], tags["Corp"], tags["Jane"], tags["Doe"]) == ("B-ORG", "I-ORG", "B-PER", "I-PER")


def test_invalid_reasons_never_quote_a_records_offsets():
    bad = [{"type": "ORG", "start": "secret-words-xyz", "end": ["more secret"]}]
    export = join_feedback([_review("e", TEXT, 0)], [_verdict("e", bad, 0)], entities=True)
    (reason,) = export.invalid_reasons
    assert "secret" not in reason and reason == "span offsets are not integers (str..list)"


def _fields_csv(path, rows):
    path.write_text("text,label,amount\n" + "".join(f"{t},{l},{a}\n" for t, l, a in rows), encoding="utf-8")
    return path


def test_a_verdict_replaces_the_training_rows_with_its_text_and_fields(tmp_path):
    from pipelines.common.args import TrainingArgs
    from pipelines.common.data import ColumnChoice
    from pipelines.recipe import read_training_data

    filler = [(f"up {i}", "bullish", "1") for i in range(20)] + [(f"down {i}", "bearish", "1") for i in range(20)]
    # Two copies under the old label (the CSV spells the amount "20.00"), and the same text with another amount.
    original = _fields_csv(tmp_path / "train.csv", [*filler, ("shares soar", "bearish", "20.00"),
                                                    ("shares soar", "bearish", "20.00"), ("shares soar", "bearish", "35")])
    reviews = [_review("a", "shares soar", 0, fields={"amount": 20})]
    columns = ColumnMapping(fields=("amount",))
    feedback = write_training_file(join_feedback(reviews, [_verdict("a", "bullish", 0)], entities=False).items,
                                   tmp_path / "feedback.csv", entities=False, columns=columns)
    recipe = ClassificationRecipe(ColumnChoice(), columns)
    data = read_training_data(recipe, [original], TrainingArgs.quick(dev_fraction=0.2), feedback_files=[feedback])
    every = [(e.text, e.label) for e in data.train + data.dev]
    assert [e for e in every if e[0] == "shares soar | amount: 20"] == [("shares soar | amount: 20", "bullish")]
    assert ("shares soar | amount: 35", "bearish") in every  # another input: kept
    assert (data.feedback.replaced, data.feedback.superseded) == (2, 0)
    assert len(every) == len(filler) + 2


def test_of_several_verdicts_on_one_input_the_last_file_and_row_wins(tmp_path):
    from pipelines.common.args import TrainingArgs
    from pipelines.recipe import read_training_data

    original = _csv(tmp_path / "train.csv", [(f"up {i}", "bullish") for i in range(20)]
                    + [(f"down {i}", "bearish") for i in range(20)])
    first = _csv(tmp_path / "first.csv", [("shares soar", "bearish"), ("flat day", "neutral")])
    second = _csv(tmp_path / "second.csv", [("shares soar", "neutral"), ("shares soar", "bullish")])
    data = read_training_data(ClassificationRecipe(), [original], TrainingArgs.quick(), feedback_files=[first, second])
    assert [(e.text, e.label) for e in data.train if e.text in ("shares soar", "flat day")] == [
        ("flat day", "neutral"), ("shares soar", "bullish")]
    assert (data.feedback.replaced, data.feedback.superseded) == (0, 2)


def _conll(path, documents):
    """``documents``: lists of sentences, each a list of (token, tag)."""
    with open(path, "w", encoding="utf-8") as handle:
        for sentences in documents:
            handle.write("-DOCSTART- O\n\n")
            for sentence in sentences:
                handle.write("".join(f"{token} {tag}\n" for token, tag in sentence) + "\n")
    return path


def _untagged(text):
    return [(token, "O") for token in text.split()]


def test_an_entity_verdict_replaces_the_sentence_or_the_whole_document_with_its_tokens(tmp_path):
    from pipelines.common.args import TrainingArgs
    from pipelines.recipe import read_training_data
    from pipelines.token_classification import EntityRecipe

    filler = [[[("Borrower", "I-PER"), ("pays", "O"), (f"{i}", "O"), (".", "O")]] for i in range(12)]
    # The reviewed sentence with the old tags, "Corp," one token where the verdict's span cuts it in two.
    stale = [[("Loan", "O"), ("to", "O"), ("Acme", "O"), ("Corp,", "O"), *_untagged("signed by Jane Doe in Paris.")]]
    # A document of two sentences whose text the reviewer saw as one input, and a document holding
    # only the first of them with another sentence: a part of that text, kept.
    whole = [_untagged("Lender agrees ."), _untagged("Borrower pays .")]
    partial = [_untagged("Lender agrees ."), _untagged("Nothing else .")]
    original = _conll(tmp_path / "train.conll", [*filler, stale, whole, partial])
    reviews = [_review("e1", TEXT, 0), _review("e2", "Lender agrees . Borrower pays .", 1)]
    verdicts = [_verdict("e1", _spans(("ORG", 8, 17), ("PER", 29, 37)), 0),
                _verdict("e2", [{"type": "PER", "start": 0, "end": 6}, {"type": "PER", "start": 16, "end": 24}], 1)]
    feedback = write_training_file(join_feedback(reviews, verdicts, entities=True).items, tmp_path / "f.conll",
                                   entities=True)
    data = read_training_data(EntityRecipe(), [original], TrainingArgs.quick(), feedback_files=[feedback])
    sentences = {(" ".join(s.tokens), s.spans) for s in data.train + data.dev}
    assert not any(text.startswith("Loan to Acme") and not spans for text, spans in sentences)
    assert ("Loan to Acme Corp , signed by Jane Doe in Paris.", (("ORG", 2, 4), ("PER", 7, 9))) in sentences
    assert ("Lender agrees . Borrower pays .", (("PER", 0, 1), ("PER", 3, 4))) in sentences
    assert ("Borrower pays .", ()) not in sentences
    assert {("Lender agrees .", ()), ("Nothing else .", ())} <= sentences  # the partial document is kept
    assert (data.feedback.replaced, data.feedback.superseded) == (3, 0)
    assert len(data.train) + len(data.dev) == len(filler) + 2 + 2
