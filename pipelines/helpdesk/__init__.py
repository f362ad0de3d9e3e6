"""Queue of an IT-helpdesk ticket (Endava tickets, CC0): 8 queues."""

from pipelines.common.data import ColumnMapping
from pipelines.tasks import TaskDataset, data_dir

__all__ = ["DATASET"]

DATASET = TaskDataset(
    task="helpdesk",
    train_file=data_dir("helpdesk") / "train.csv.gz",
    test_file=data_dir("helpdesk") / "test.csv.gz",
    columns=ColumnMapping(text="Document", label="Topic_group"),
    # Median ticket is 25 tokens, 99% fit in 256; length-bucketed batches keep the long
    # tail from padding the short ones.
    training_defaults={"max_length": 256, "learning_rate": 8e-5, "epochs": 3},
)
