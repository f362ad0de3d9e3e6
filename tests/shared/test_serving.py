from shared.serving import cpu_quota, onnx_threads_for
from shared.settings import ServiceSettings


def test_cpu_quota_reads_cgroup_v2(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert cpu_quota(cpu_max) == 1.5
    cpu_max.write_text("max 100000\n")
    assert cpu_quota(cpu_max) is None
    assert cpu_quota(tmp_path / "absent") is None


def test_explicit_thread_setting_wins():
    assert onnx_threads_for(ServiceSettings(onnx_threads=3)) == 3
    assert onnx_threads_for(ServiceSettings()) >= 1


def test_the_kafka_loop_processor_goes_through_the_batcher_and_answers_in_order():
    from tests.shared.test_cache import FakeClassifier

    from shared.processors import ClassificationProcessor, Received
    from shared.rest_batching import MicroBatcher
    from shared.schemas import TaskRequestV1
    from shared.serving import BatchedProcessor

    processor = ClassificationProcessor("transactions", FakeClassifier())
    runs: list[int] = []

    def run(prepared, tags):
        runs.append(len(prepared))
        return processor.run(prepared)

    batcher = MicroBatcher(processor.prepare, run, processor.budget, max_queue_ms=1)
    batched = BatchedProcessor(processor, batcher)
    try:
        items = [Received.now(TaskRequestV1(id=str(k), text="x" * (k + 1))) for k in range(5)]
        results = batched.process(items)
    finally:
        batcher.close()
    assert [r.id for r in results] == ["0", "1", "2", "3", "4"]
    assert sum(runs) == 5 and batched.task == "transactions"  # the model ran them, through the batcher's runs
