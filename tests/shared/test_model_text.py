"""The encoder input: training (CSV strings) and serving (JSON values) must read the same."""

import numpy as np

from pipelines.common.training import length_bucketed_batches
from shared.model_text import field_value_text, model_text


def test_numbers_read_the_same_from_csv_and_json():
    assert {field_value_text(v) for v in ("20.00", 20, 20.0, " 20 ")} == {"20"}
    assert field_value_text("35.50") == field_value_text(35.5) == "35.5"
    assert field_value_text(True) == "true"
    assert field_value_text(" CYP&F  ") == "CYP&F"
    assert field_value_text("nan") == "nan" and field_value_text("abc") == "abc"


def test_model_fields_in_training_order_and_others_ignored():
    fields = {"currency": "GBP", "directorate": "Local Services", "amount": "12.50"}
    assert model_text("tesco", fields, ["amount", "directorate"]) == "tesco | amount: 12.5 | directorate: Local Services"
    assert model_text("tesco", {"amount": None, "directorate": " "}, ["amount", "directorate"]) == "tesco"
    assert model_text("tesco", {}, None) == "tesco"


def test_bucketed_batches_cover_every_item_once_and_group_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(1, 300, size=1000))
    batches = length_bucketed_batches(lengths, 32, rng, pool_batches=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches])
    random_spread = np.mean([np.ptp(np.asarray(lengths)[rng.permutation(1000)[:32]]) for _ in range(20)])
    assert spread < random_spread / 3
