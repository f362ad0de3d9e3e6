"""Expense category of a purchase-card transaction (Birmingham City Council, OGL v3).

The encoder reads the merchant string with the amount and the paying directorate folded
in (``"shell kings 587 | amount: 20 | directorate: Adult & Communities"``): the same
merchant is coded differently by different units and at different amounts, which is the
signal a merchant-only model cannot see. All 124 categories are kept, rare ones included:
merging the tail into "other" would turn every rare-category row into a guaranteed miss
and hide what the model does know; low-scoring tail predictions go to review instead.
"""

from pipelines.common.data import ColumnMapping
from pipelines.tasks import TaskDataset

__all__ = ["DATASET"]

DATASET = TaskDataset.shipped(
    "transactions", train="train.csv.gz", test="test.csv.gz",
    columns=ColumnMapping(text="merchant", label="category", fields=("amount", "directorate")),
    # Merchant strings are short (18 characters): 48 tokens hold them with both fields.
    training_defaults={"max_length": 48, "learning_rate": 1e-4, "epochs": 4},
)
