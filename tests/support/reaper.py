"""Run a command so that every process it starts ends with it: ``python reaper.py COMMAND...``.

Servers such as BentoML start workers in sessions of their own; when the server exits (or is
killed) they are orphaned and live on. This process becomes the *child subreaper* of what it runs
(Linux ``PR_SET_CHILD_SUBREAPER``): orphans are reparented to it instead of to init, so once the
command has ended, whatever is left is among its own children, and it kills and reaps them. A
SIGTERM to it kills the command first. Its exit status is the command's (128 + signal if killed).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

import psutil

PR_SET_CHILD_SUBREAPER = 36


def main(command: list[str]) -> int:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    proc = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.kill())
    code = proc.wait()
    left = psutil.Process().children(recursive=True)
    for process in left:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=30)  # our children now: waiting reaps them
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
