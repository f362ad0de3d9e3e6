"""Sentiment of financial news headlines and posts (Twitter Financial News, MIT)."""

from pipelines.common.data import ColumnMapping
from pipelines.tasks import TaskDataset, data_dir

__all__ = ["DATASET"]

DATASET = TaskDataset(
    task="sentiment",
    train_file=data_dir("sentiment") / "sent_train.csv.gz",
    test_file=data_dir("sentiment") / "sent_valid.csv.gz",
    columns=ColumnMapping(text="text", label="label"),
    label_names={"0": "bearish", "1": "bullish", "2": "neutral"},
    # Headlines and posts: 96 tokens cover them, URLs included.
    training_defaults={"max_length": 96},
)
