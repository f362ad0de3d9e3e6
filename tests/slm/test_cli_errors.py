"""Every error the CLI raises on purpose is one line and exit 2; a bug keeps its stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from devtools.local_kafka import BrokerError
from shared.errors import SlmError
from shared.settings import REPO_ROOT
from slm.cli import main

SLM = str(Path(sys.executable).with_name("slm"))


def _slm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SLM, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_broker_error_is_an_slm_error():
    assert issubclass(BrokerError, SlmError)


def test_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(_slm("kafka", "up", "--port", str(port), "--data-dir", str(tmp_path)))
    assert line.startswith(f"error: 127.0.0.1:{port} is already in use by a process this tool did not start")


def test_invalid_arguments_and_settings_are_one_line(tmp_path):
    assert _one_line(_slm("train", "sentiment", "--epochs", "-1", "--out", str(tmp_path / "m"))) == \
        "error: epochs must be > 0, got -1.0"
    assert _one_line(_slm("kafka", "status", "--port", "70000", "--data-dir", str(tmp_path))) == \
        "error: port must be in 1..65535, got 70000"
    line = _one_line(_slm("serve", "transactions", "--max-replicas", "2", env={"SLM_RAY_CPUS_PER_REPLICA": "-1"}))
    assert line == "error: ReplicaSettings: cpus_per_replica: Input should be greater than 0"
    line = _one_line(_slm("serve", "transactions", env={"SLM_MAX_BATCH_SIZE": "0"}))
    assert line == "error: ServiceSettings: max_batch_size: Input should be greater than or equal to 1"


def test_a_value_error_that_is_no_argument_check_is_not_swallowed(monkeypatch):
    import slm.commands.model_commands

    def broken():
        raise ValueError("a bug, not a bad argument")

    monkeypatch.setattr(slm.commands.model_commands, "installed_folders", broken)
    result = CliRunner().invoke(main, ["models", "list"])
    assert isinstance(result.exception, ValueError) and result.exit_code == 1


def test_benchmarks_have_their_own_entry_point():
    from bench.command import main as bench_main

    assert CliRunner().invoke(main, ["bench", "--help"]).exit_code == 2  # no such slm command
    result = CliRunner().invoke(bench_main, ["--help"])
    assert result.exit_code == 0 and "--quick" in result.output
