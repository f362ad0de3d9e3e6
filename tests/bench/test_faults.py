"""The fault-injection script's counting, without services (the run itself is a benchmark)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import pytest

from bench.faults import ScenarioResult, _measure, main, table


@dataclass
class Rec:
    value: bytes
    headers: list = field(default_factory=list)


class FakeTail:
    def __init__(self, records) -> None:
        self.records = records


class FakeStream:
    def __init__(self, ids, bad=0) -> None:
        self.sent_ids, self.sent_bad, self.error = ids, bad, ""
        self.done = threading.Event()
        self.done.set()


def _answer(request_id: str) -> Rec:
    return Rec(json.dumps({"id": request_id}).encode())


def test_lost_duplicates_and_dead_letters_are_counted_per_request():
    stream = FakeStream([f"s-{i}" for i in range(5)], bad=2)
    results = FakeTail([(1.0, _answer("s-0")), (1.5, _answer("s-1")), (4.0, _answer("s-1")), (4.2, _answer("s-3"))])
    dlq = FakeTail([(2.0, Rec(b"x", [("error.type", b"not_json")]))])
    result = ScenarioResult("t")
    _measure(result, stream, results, dlq, deadline=0, settle_s=0)
    assert (result.sent, result.unique_answered, result.duplicates, result.dlq) == (7, 3, 1, 1)
    assert result.lost == 2 + 1  # s-2 and s-4 unanswered, one bad record not dead-lettered
    assert result.dlq_types == {"not_json": 1}
    assert result.longest_gap_s == 2.5
    assert "| t | 7 | 3 | 3 | 1 | 1 (not_json 1) |" in table([result])


def test_the_stream_is_bounded():
    with pytest.raises(SystemExit):
        main(["--model", "m", "--records", "1000000"])
