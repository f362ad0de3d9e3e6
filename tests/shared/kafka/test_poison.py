"""Locating and salvaging undecodable records, with a scripted consumer (no broker)."""

from __future__ import annotations

from types import SimpleNamespace

from kafka import TopicPartition
from kafka.errors import CorruptRecordError

from shared.kafka.poison import locate_undecodable, salvage

TP = TopicPartition("t.requests", 0)


class ScriptedConsumer:
    """Offsets in ``bad`` raise when polled; others return one record; ``end`` is the high watermark."""

    def __init__(self, bad: set[int], end: int) -> None:
        self.bad, self.end, self.position = bad, end, 0

    def assign(self, partitions) -> None:
        pass

    def seek(self, tp, offset: int) -> None:
        self.position = offset

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        if self.position >= self.end:
            return {}
        if self.position in self.bad:
            raise CorruptRecordError(f"offset {self.position} does not decode")
        record = SimpleNamespace(offset=self.position, value=b"v%d" % self.position)
        self.position += 1
        return {TP: [record]}

    def close(self, autocommit: bool = True) -> None:
        pass


def test_the_region_ends_at_the_first_readable_offset_even_with_more_poison_behind_it():
    # 100-102 do not decode, 103 does, 104-110 do not: a doubling search jumped from 102 to 104
    # and dead-lettered the good record at 103.
    bad = {100, 101, 102, *range(104, 111)}
    found = locate_undecodable(lambda: ScriptedConsumer(bad, 120), {TP: 100}, {TP: 120}, timeout_s=0.05)
    assert (found.first, found.end) == (100, 103)
    assert "offset 100 does not decode" in found.error


def test_salvage_reads_on_past_an_offset_that_fails():
    consumer = ScriptedConsumer({101}, 120)
    found = salvage(consumer, TP, 100, 104, timeout_s=1.0)
    assert sorted(found) == [100, 102, 103]
