"""Queue of an IT-helpdesk ticket (Endava tickets, CC0): 8 queues."""

from pipelines.common.data import ColumnMapping
from pipelines.tasks import TaskDataset

__all__ = ["DATASET"]

DATASET = TaskDataset.shipped(
    "helpdesk", train="train.csv.gz", test="test.csv.gz",
    columns=ColumnMapping(text="Document", label="Topic_group"),
    # Median ticket is 25 tokens, 99% fit in 256; length-bucketed batches keep the long
    # tail from padding the short ones.
    training_defaults={"max_length": 256, "learning_rate": 8e-5, "epochs": 3},
)
