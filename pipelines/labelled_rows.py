"""A task's labelled test set as the services receive it: request values and the gold answers.

The demo streams these through Kafka and scores the results against the gold answers; the
benchmarks and the service tests send them too.
"""

from __future__ import annotations

__all__ = ["load_rows"]


def load_rows(task: str, limit: int | None) -> tuple[list[dict], list, str]:
    """The task's test set as request values, their gold answers, and the metric name.

    Classification gold is the label; entities gold is the set of ``(type, start, end)``
    character spans in the sentence's tokens joined by spaces (the text we send).
    """
    from pipelines.kinds import recipe_class
    from pipelines.tasks import dataset_for
    from shared.task_kinds import kind_of_task

    kind = kind_of_task(task)
    requests, gold = recipe_class(kind).request_rows(dataset_for(task), limit)
    return requests, gold, kind.quality_metric
