"""The response cache: exact-match reuse, LRU bound, hit counts, and its place in the processors."""

from __future__ import annotations

from types import SimpleNamespace

from shared.cache import ResultCache
from shared.runtime.onnx_classifier import Prediction
from shared.schemas import TaskRequestV1
from shared.processors import ClassificationProcessor, Received


class Counting:
    def __init__(self) -> None:
        self.calls: list[list] = []

    def __call__(self, keys):
        self.calls.append(list(keys))
        return [f"answer:{k}" for k in keys]


def test_repeated_keys_are_computed_once_and_counted_as_hits():
    cache, compute = ResultCache(10, "t"), Counting()
    assert cache.get_or_compute(["a", "b", "a"], compute) == ["answer:a", "answer:b", "answer:a"]
    assert cache.get_or_compute(["b", "c"], compute) == ["answer:b", "answer:c"]
    assert compute.calls == [["a", "b"], ["c"]]
    assert (cache.hits, cache.misses) == (2, 3)
    assert cache.hit_rate == 0.4


def test_the_least_recently_used_goes_first():
    cache, compute = ResultCache(2, "t"), Counting()
    cache.get_or_compute(["a", "b"], compute)
    cache.get_or_compute(["a"], compute)          # a is now the most recent
    cache.get_or_compute(["c"], compute)          # evicts b
    cache.get_or_compute(["a", "b"], compute)
    assert compute.calls[-1] == ["b"]
    assert len(cache) == 2


def test_capacity_zero_always_computes():
    cache, compute = ResultCache(0, "t"), Counting()
    cache.get_or_compute(["a"], compute)
    cache.get_or_compute(["a"], compute)
    assert compute.calls == [["a"], ["a"]] and len(cache) == 0


class FakeClassifier:
    """The same answer for any text; records the texts it was run on."""

    model_id = "fake:1"
    info = SimpleNamespace(review_threshold=0.5, columns={"fields": ["amount"]})

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts):
        return list(texts)  # the text stands for its token ids

    def probabilities(self, encoded):
        self.seen.extend(encoded)
        return encoded

    def predictions(self, probs, threshold=None):
        return [Prediction(label="x", score=0.9, scores={"x": 0.9, "y": 0.1}, review=False) for _ in probs]


def test_classification_reuses_answers_for_what_the_model_reads():
    model = FakeClassifier()
    processor = ClassificationProcessor("transactions", model, cache_size=100)
    requests = [TaskRequestV1(id="1", text="shell  kings", fields={"amount": "20.00"}),
                TaskRequestV1(id="2", text="shell kings", fields={"amount": 20, "currency": "GBP"}),
                TaskRequestV1(id="3", text="shell kings", fields={"amount": 21})]
    results = processor.process([Received.now(r) for r in requests])
    # 1 and 2 read the same to the model (whitespace, canonical amount, unknown field ignored).
    assert model.seen == ["shell kings | amount: 20", "shell kings | amount: 21"]
    assert [r.id for r in results] == ["1", "2", "3"]
    assert results[0].label == results[1].label == "x"
    assert (processor.cache.hits, processor.cache.misses) == (1, 2)
    processor.process([Received.now(requests[2])])
    assert processor.cache.hits == 2 and len(model.seen) == 2


class Seen:
    """An observer that keeps the ids of the answers it was shown."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def observe(self, items, results) -> None:
        self.ids.extend(r.id for r in results)


def test_observers_see_answers_from_the_cache_and_from_the_model_once_each():
    from shared.observed import ObservedProcessor

    model, seen = FakeClassifier(), Seen()
    processor = ObservedProcessor(ClassificationProcessor("transactions", model, cache_size=100), [seen])
    first = processor.process([Received.now(TaskRequestV1(id="a", text="shell kings"))])
    again = processor.process([Received.now(TaskRequestV1(id="b", text="shell kings")),
                               Received.now(TaskRequestV1(id="c", text="tesco"))])
    assert [r.id for r in first + again] == ["a", "b", "c"]
    assert model.seen == ["shell kings", "tesco"]  # b came from the cache
    assert sorted(seen.ids) == ["a", "b", "c"]
