"""The one helper that starts, waits for and stops server processes (slm up, bench, the tests)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from devtools.host_tools import free_port
from devtools.service_process import ServerProcess, ServiceExited, ServiceNotReady, stop_recorded, wait_ready

# /readyz answers 200 after a short start-up; SIGTERM ends it. With "orphan", it first starts a child
# in a session of its own that ignores SIGTERM (a worker that would outlive the server).
SERVER = """
import http.server, signal, subprocess, sys, time
if sys.argv[2] == "orphan":
    subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
                     start_new_session=True)
time.sleep(0.3)
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server.serve_forever()
"""


def _server(tmp_path, mode: str = "plain") -> ServerProcess:
    port = free_port()
    return ServerProcess([sys.executable, "-c", SERVER, str(port), mode], tmp_path / "server.log", port=port,
                         name="test server")


def test_a_server_is_ready_then_stops_on_sigterm_and_leaves_nothing(tmp_path):
    server = _server(tmp_path).wait_ready(30)
    assert server.cold_start_s is not None and server.cold_start_s >= 0.3
    assert server.stop() == 0
    assert server.outlived == [] and not psutil.pid_exists(server.pid)


def test_a_worker_that_outlives_the_server_is_reported_and_killed(tmp_path):
    server = _server(tmp_path, "orphan").wait_ready(30)
    assert server.stop(workers_timeout=1) == 0
    (orphan,) = server.outlived
    time.sleep(0.2)
    assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE


def test_a_server_that_exits_or_never_answers_is_named(tmp_path):
    gone = ServerProcess([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "gone.log", port=free_port(),
                         name="gone server")
    with pytest.raises(ServiceExited, match="gone server exited with 3"):
        gone.wait_ready(30)
    silent = ServerProcess([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "silent.log",
                           port=free_port(), name="silent server")
    try:
        with pytest.raises(ServiceNotReady, match="not ready within 1s: silent server"):
            wait_ready([silent], 1)
    finally:
        assert silent.stop() == -15


def test_a_recorded_pid_of_another_program_is_left_alone():
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stop_recorded(other.pid).returncode is None
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
