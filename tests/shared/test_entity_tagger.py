"""EntityTagger with the real tokenizer and a rule-based stand-in for the network.

The stand-in tags every subword of a listed name, so what is tested is the tagger's own
work: windowing, merging windows, word snapping and character offsets.
"""

import numpy as np
import pytest
from tokenizers import Tokenizer

from pipelines.common.base_model import base_model_path
from shared.runtime.onnx_token_classifier import EntityTagger

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return Tokenizer.from_file(str(base_model_path() / "tokenizer.json")).to_str()


def rule_network(tokenizer: Tokenizer, names: dict[str, str]):
    """A 'network' that tags the tokens of each name as its type: B on the first, I after."""
    ids_of = {}
    for name, kind in names.items():
        for i, token_id in enumerate(tokenizer.encode(name, add_special_tokens=False).ids):
            ids_of.setdefault(token_id, f"{'B' if i == 0 else 'I'}-{kind}")
    calls = []

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        calls.append(ids.shape)
        logits = np.zeros((*ids.shape, len(LABELS)), dtype=np.float32)
        logits[..., 0] = 5.0
        for (row, col), token_id in np.ndenumerate(ids):
            if mask[row, col] and token_id in ids_of:
                logits[row, col, LABELS.index(ids_of[token_id])] = 10.0
        return logits

    return run, calls


def make_tagger(tokenizer_json: str, max_length: int = 32) -> EntityTagger:
    return EntityTagger(Tokenizer.from_str(tokenizer_json), LABELS, max_length=max_length)


def test_offsets_index_the_original_unicode_string(tokenizer_json):
    tagger = make_tagger(tokenizer_json)
    text = "🚀 Zoë Müller (née Åström) joined ＡＣＭＥ — really."
    run, _ = rule_network(tagger.tokenizer, {"zoe muller": "PER"})
    (entities,) = tagger.predict([text], run)
    assert [e.text for e in entities] == ["Zoë Müller"]
    entity = entities[0]
    assert text[entity.start:entity.end] == entity.text and entity.type == "PER"


def test_entities_at_window_edges_are_found_whole(tokenizer_json):
    tagger = make_tagger(tokenizer_json, max_length=16)  # 14 tokens per window
    run, calls = rule_network(tagger.tokenizer, {"washington mutual": "ORG"})
    # One-token filler words: the first name sits on tokens 13-14, across window 0's edge at 14.
    text = " ".join(["the"] * 13 + ["Washington Mutual"] + ["pays"] * 20 + ["Washington Mutual"] + ["now"] * 9)
    # Place the first name so that a window edge falls inside it.
    encoding = tagger.encode(text)
    name_start = next(i for i, (a, _) in enumerate(encoding.offsets) if a == text.index("Washington"))
    crossing = [(s, e) for s, e in tagger.windows(len(encoding.ids)) if s <= name_start < e <= name_start + 1]
    assert crossing, "test set-up: no window edge inside the first name"
    (entities,) = tagger.predict([text], run)
    assert sum(shape[0] for shape in calls) > 3  # really split into windows
    assert [(e.type, e.text) for e in entities] == [("ORG", "Washington Mutual")] * 2
    for e in entities:
        assert text[e.start:e.end] == "Washington Mutual"


def test_a_span_ending_inside_a_word_grows_to_the_whole_word(tokenizer_json):
    tagger = make_tagger(tokenizer_json)
    tokens = tagger.tokenizer.encode("Blankenship", add_special_tokens=False).ids
    assert len(tokens) > 1  # several subwords
    first_piece = tagger.tokenizer.decode(tokens[:1])

    def run(feeds):
        ids = feeds["input_ids"]
        logits = np.zeros((*ids.shape, len(LABELS)), dtype=np.float32)
        logits[..., 0] = 5.0
        logits[ids == tokens[0], 1] = 10.0  # only the first piece is tagged
        return logits

    (entities,) = tagger.predict([f"Mr {first_piece} met Blankenship."], run)
    assert [e.text for e in entities][-1] == "Blankenship"


def test_empty_and_unknown_only_texts_give_no_entities(tokenizer_json):
    tagger = make_tagger(tokenizer_json)
    run, _ = rule_network(tagger.tokenizer, {"acme": "ORG"})
    assert tagger.predict(["\u200b", "acme"], run) == [[], tagger.predict(["acme"], run)[0]]
    assert tagger.predict(["acme"], run)[0][0].text == "acme"


def test_case_ids_carry_each_words_shape_to_every_subword(tokenizer_json):
    tagger = EntityTagger(Tokenizer.from_str(tokenizer_json), LABELS, max_length=32, case_features=True)
    seen = []

    def run(feeds):
        seen.append(feeds)
        return np.zeros((*feeds["input_ids"].shape, len(LABELS)), dtype=np.float32)

    tagger.predict(["Blankenship of USA signed a delaware lease, 2024"], run)
    (feeds,) = seen
    tokens = [tagger.tokenizer.id_to_token(i) for i in feeds["input_ids"][0]]
    shapes = dict(zip(tokens, feeds["case_ids"][0]))
    assert feeds["case_ids"][0][0] == 0 and feeds["case_ids"][0][-1] == 0  # [CLS], [SEP]
    pieces = tagger.tokenizer.encode("Blankenship", add_special_tokens=False).tokens
    assert {int(shapes[p]) for p in pieces} == {2}  # every piece of a Title word is Title
    assert (shapes["usa"], shapes["delaware"], shapes["202"], shapes["##4"]) == (3, 1, 5, 5)
