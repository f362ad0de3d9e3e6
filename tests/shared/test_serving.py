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
