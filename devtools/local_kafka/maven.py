"""The broker's jars: ``kafka_2.13`` and its runtime dependencies, fetched from Maven Central once.

``mvn`` copies what ``kafka-pom.xml`` (next to this module; :data:`~devtools.local_kafka.config.POM`) lists into
``<cache_dir>/kafka-<version>/libs``; the broker then runs from those jars with ``java``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Final

from devtools.errors import BrokerError
from devtools.host_tools import require, tail
from devtools.local_kafka.config import POM, BrokerConfig, kafka_version
from devtools.local_kafka.tool_runs import run_tool
from devtools.locks import file_lock

__all__ = ["install"]

logger = logging.getLogger(__name__)

# Written into the libs folder once every jar is in place, with the pom's digest.
_MARKER_NAME: Final = ".slm-complete"
_MVN_TIMEOUT_S: Final = 900.0


def _pom_digest() -> str:
    """Return a digest of the pom, stored in the marker to detect pom edits."""
    try:
        return hashlib.sha256(POM.read_bytes()).hexdigest()
    except OSError as exc:
        raise BrokerError(f"cannot read {POM}: {exc}") from exc


def install(cfg: BrokerConfig) -> Path:
    """Download the broker jars with Maven once and return the libs directory.

    Idempotent: when ``<libs>/.slm-complete`` exists and matches the current
    pom, nothing is done.  Maven output is captured and only shown (inside the
    raised :class:`BrokerError`) when it fails.  Concurrent callers are
    serialised with a file lock; the jars are copied to a scratch directory
    and renamed into place, so a half-finished download is never used.
    """
    libs = cfg.libs_dir
    marker = libs / _MARKER_NAME
    digest = _pom_digest()
    if marker.is_file() and marker.read_text().strip() == digest:
        return libs
    with file_lock(libs.parent / ".install.lock"):
        if marker.is_file() and marker.read_text().strip() == digest:
            return libs
        mvn = require("mvn", BrokerError, "install Apache Maven to fetch the Kafka jars")
        scratch = libs.with_name(f"libs.tmp-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        cmd = [
            mvn, "-B", "-q", "-f", str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={scratch}",
        ]  # fmt: skip
        logger.info("fetching Kafka %s jars into %s (one-off)", kafka_version(), libs)
        started = time.monotonic()
        try:
            proc = run_tool(cmd, _MVN_TIMEOUT_S, "mvn")
        except BrokerError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        output = proc.stdout.decode(errors="replace")
        jars = sorted(scratch.glob("*.jar")) if scratch.is_dir() else []
        if proc.returncode != 0 or not jars:
            shutil.rmtree(scratch, ignore_errors=True)
            raise BrokerError(
                f"mvn failed (exit {proc.returncode}) fetching the Kafka jars:\n"
                f"$ {' '.join(cmd)}\n{tail(output, 60)}"
            )
        (scratch / _MARKER_NAME).write_text(digest + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        os.replace(scratch, libs)
        logger.info("fetched %d jars in %.1fs", len(jars), time.monotonic() - started)
        return libs
