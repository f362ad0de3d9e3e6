"""Training writes the model's drift reference from its test split, listed in the manifest."""

from __future__ import annotations

from shared.drift import REFERENCE_FILE, DriftReference
from shared.runtime import open_model_folder

import pytest

pytestmark = pytest.mark.slow


def test_training_writes_the_drift_reference_of_its_test_split(quick_model_dir):
    info = open_model_folder(quick_model_dir)  # the manifest lists it, with its hash
    assert REFERENCE_FILE in info.files
    reference = DriftReference.read(quick_model_dir)
    assert reference.model == info.model_id and reference.task == "sentiment"
    # --quick scores 500 test items; the reference is the served model's answers on the same sample.
    assert reference.items == info.training["args"]["max_test_examples"] == 500
    assert reference.source["file"] == info.training["data"]["test"]["file"]
    assert set(reference.features) == {"label", "score", "length"}
    assert set(reference.features["label"].bins.categories) <= set(info.labels)
    assert all(sum(f.counts) == 500 for f in reference.features.values())
