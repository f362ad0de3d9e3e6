"""A test that runs a server to its exit leaves none of its workers behind, also the ones in sessions of their own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import ended, run_to_exit

# A server that starts a worker in a session of its own (as BentoML does), prints its pid, and exits
# (or, given "hang", keeps running).
SERVER = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print(worker.pid, flush=True)
if sys.argv[1] == "hang":
    time.sleep(300)
sys.exit(2)
"""


def test_a_worker_in_its_own_session_is_killed_when_its_server_exits():
    done = run_to_exit([sys.executable, "-c", SERVER, "exit"], 60)

    assert done.returncode == 2
    assert ended(int(done.stdout.split()[0])), "the worker outlived its server"


def test_a_server_that_runs_past_its_timeout_is_killed_with_its_worker():
    with pytest.raises(subprocess.TimeoutExpired) as timed_out:
        run_to_exit([sys.executable, "-c", SERVER, "hang"], 3)

    assert ended(int(timed_out.value.stdout.split()[0])), "the worker outlived its server"
