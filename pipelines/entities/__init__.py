"""Named entities in financial agreements (FIN, SEC loan agreements, CC BY 3.0)."""

from pipelines.tasks import TaskDataset

__all__ = ["DATASET"]

DATASET = TaskDataset.shipped(
    "entities", train="FIN5.train.txt.gz", test="FIN3.test.txt.gz",
    # 1,164 training sentences: many short epochs, small batches.
    training_defaults={"max_length": 128, "learning_rate": 1e-4, "epochs": 8, "batch_size": 16},
    # Enough steps that the quick model finds names, still well under a minute.
    quick_defaults={"epochs": 3, "batch_size": 16, "max_length": 128, "max_train_examples": 600},
)
