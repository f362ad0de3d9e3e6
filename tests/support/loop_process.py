"""A consumer loop with the keyword fake model in a process of its own, to be killed with -9.

``python -m tests.support.loop_process READY_FILE``: settings from ``SLM_KAFKA_*``; the file
is written once the loop has joined its group and holds partitions.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from shared.kafka import TaskConsumerLoop
from shared.kafka.settings import KafkaSettings
from shared.telemetry import setup_logging
from tests.support.fakes import FakeProcessor


def main(ready_file: str) -> None:
    setup_logging()
    loop = TaskConsumerLoop(FakeProcessor(), KafkaSettings())
    loop.start()
    if not loop.wait_ready(120):
        sys.exit("the loop never joined its group")
    Path(ready_file).write_text("ready\n")
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(sys.argv[1])
