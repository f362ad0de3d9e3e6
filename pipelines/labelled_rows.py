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
    from pipelines.tasks import EntityDataset, dataset_for

    dataset = dataset_for(task)
    if isinstance(dataset, EntityDataset):
        from pipelines.common.token_files import read_conll
        from pipelines.token_classification import sentence_text

        requests, gold = [], []
        for sentence in read_conll(dataset.test_file)[:limit]:
            text, starts = sentence_text(sentence.tokens)
            requests.append({"text": text})
            gold.append({(kind, starts[s], starts[e - 1] + len(sentence.tokens[e - 1])) for kind, s, e in sentence.spans})
        return requests, gold, "f1"
    from pipelines.classification import rename_labels
    from pipelines.common.data import read_examples

    examples = rename_labels(read_examples(dataset.test_file, dataset.columns), dataset.label_names)[:limit]
    return [{"text": ex.text, "fields": ex.fields} for ex in examples], [ex.label for ex in examples], "accuracy"
