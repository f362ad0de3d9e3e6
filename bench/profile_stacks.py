"""Where the CPU goes, from py-spy's collapsed stacks: the classifier and the table of :mod:`bench.profile`.

A collapsed stack is one line, ``frame;frame;...;frame count``, outermost frame first, as py-spy's
``--format raw`` writes it. A frame reads ``function (file:line)`` for Python code,
``symbol (library.so)`` or ``0xADDRESS (library.so)`` for native code (``--native``); with
``--subprocesses`` the first frame is ``process PID:"command line"`` and with ``--threads`` the
next one is ``thread (TID)``.

**The rule.** Each sample is classified by its *innermost frame that belongs to a category*:
frames are read from the innermost (the leaf) outwards, and the first one that matches a
category decides; a sample where none matches is *other*. So a ``logging`` call made by BentoML's
access-log middleware counts as BentoML, numpy called from our runtime counts as our own code,
and the Rust tokenizer called from our runtime counts as tokenization. A frame matches:

- *waiting* (not CPU: a thread parked in a wait that py-spy still reported as active): a wait
  primitive, ``epoll_wait``, ``pthread_cond_*wait``, ``futex``, ``sem_*wait``, ``nanosleep``,
  ``take_gil``, or the Python-level ``Condition.wait``, ``Event.wait``, ``selectors``' ``select``,
  ``time.sleep``;
- *HTTP server*: ``uvicorn``, ``httptools``, ``h11``, ``starlette``, ``anyio``, ``asyncio``, ``uvloop``
  (and libuv's and uvloop's C sources, ``loop.c``, ``core.c``, ``_asynciomodule.c``);
- *BentoML*: ``bentoml``, ``_bentoml_impl``, ``_bentoml_sdk``, ``circus`` (its process manager);
- *JSON and pydantic*: ``json``, ``orjson``, ``pydantic``, ``pydantic_core``;
- *tokenization*: ``tokenizers``;
- *ONNX Runtime*: ``onnxruntime``;
- *Kafka client*: ``kafka`` (kafka-python) and ``crc32c``;
- *our own code*: ``shared``, ``services``.

The file part of a frame is matched by its first path component (py-spy writes site-packages
paths from the package down, and ours from the repository root), or by the shared library's
file name for native frames.

**CPU-ms per item.** py-spy samples only the threads that run Python. ONNX Runtime's intra-op
pool and the tokenizer's Rust pool are native threads it never sees. So the totals come from the
OS (per thread, every thread of the service's process tree, over the load's window): each
sampled thread's CPU is split between the categories in proportion to that thread's samples
(waiting samples left out), and the CPU of the threads py-spy did not sample is a row of its
own. Without thread ids in the stacks (no ``--threads``) or without the OS's count, each busy
sample counts as 1 / rate seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CATEGORIES", "CpuWindow", "Profile", "category_of_frame", "classify", "parse_collapsed",
           "profile_table", "sampled_threads"]

WAITING = "waiting (not CPU)"
OTHER = "other"
UNSEEN = "native threads py-spy does not sample (ONNX Runtime's intra-op pool, the tokenizer's pool)"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "HTTP server (uvicorn, httptools, h11, starlette, asyncio)": (
        "uvicorn", "httptools", "h11", "starlette", "anyio", "asyncio", "uvloop", "loop.c", "core.c",
        "_asynciomodule.c"),
    "BentoML": ("bentoml", "_bentoml_impl", "_bentoml_sdk", "bentoml_cli", "circus"),
    "JSON and pydantic": ("json", "orjson", "pydantic", "pydantic_core", "_json.c"),
    "tokenization (tokenizers)": ("tokenizers",),
    "ONNX Runtime": ("onnxruntime",),
    "Kafka client (kafka-python)": ("kafka", "crc32c"),
    "our own code (shared, services)": ("shared", "services"),
}

_WAIT_SYMBOLS = re.compile(r"^(__)?(epoll_p?wait|poll|ppoll|select|pselect6?|pthread_cond_(timed|clock)?wait|"
                           r"futex\w*|__futex_abstimed_wait\w*|sem_(timed|clock)?wait|(clock_)?nanosleep|take_gil|"
                           r"PyThread_acquire_lock_timed|do_futex_wait\w*|uv__io_poll)$")
_WAIT_PYTHON = {("threading.py", "Condition.wait"), ("threading.py", "Event.wait"), ("selectors.py", "EpollSelector.select"),
                ("selectors.py", "PollSelector.select"), ("selectors.py", "SelectSelector.select"),
                ("queue.py", "Queue.get")}
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _file_key(file: str) -> str:
    """The package (first path component), a single module's or library's name (``lib`` and every
    extension dropped: ``selectors``, ``onnxruntime`` for ``libonnxruntime.so.1``), or a C source's."""
    if file.endswith((".c", ".h")):
        return file.rsplit("/", 1)[-1]
    if "/" in file:
        return file.split("/", 1)[0]
    name = file.split(".", 1)[0]
    return name.removeprefix("lib") if ".so" in file else name


def category_of_frame(frame: str) -> str | None:
    """The category one frame belongs to (``waiting (not CPU)`` included), or None."""
    if frame.startswith("process ") or frame.startswith("thread ("):
        return None
    match = _FRAME.match(frame)
    if not match:
        return None
    function, file = match["function"], match["file"]
    if _WAIT_SYMBOLS.match(function) or (file.rsplit("/", 1)[-1], function) in _WAIT_PYTHON:
        return WAITING
    if function in ("time.sleep", "sleep") and file in ("", "time"):
        return WAITING
    if file.startswith("<"):  # <frozen runpy> and the like
        return None
    key = _file_key(file)
    return next((category for category, packages in CATEGORIES.items() if key in packages), None)


def classify(frames: list[str]) -> str:
    """The category of one sample: its innermost frame that belongs to one (``other`` when none does)."""
    for frame in reversed(frames):
        category = category_of_frame(frame)
        if category is not None:
            return category
    return OTHER


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """``(frames, count)`` per line of py-spy's raw (collapsed) output; blank lines skipped."""
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    return stacks


def sampled_threads(stacks: list[tuple[list[str], int]]) -> set[int]:
    """The OS thread ids in the stacks' ``thread (TID)`` frames (py-spy ``--threads``)."""
    tids = set()
    for frames, _ in stacks:
        for frame in frames[:3]:
            match = re.match(r"thread \((0x[0-9A-Fa-f]+|\d+)\)", frame)
            if match:
                tids.add(int(match[1], 0))
    return tids


@dataclass(frozen=True)
class CpuWindow:
    """CPU seconds the OS counted over the load's window: every thread of the process tree, by thread id."""

    by_thread: dict[int, float]

    def total(self) -> float:
        return sum(self.by_thread.values())

    def of(self, tids: set[int]) -> float:
        return sum(seconds for tid, seconds in self.by_thread.items() if tid in tids)


@dataclass
class Profile:
    """One scenario's samples, the OS's CPU count over the same window, and the items served in it.

    Args:
        stacks (`list[tuple[list[str], int]]`): py-spy's collapsed stacks.
        rate (`int`): samples per second per thread.
        items (`int`): items answered while it recorded.
        cpu (`CpuWindow | None`): the OS's count; None leaves the table to the samples alone.
    """

    stacks: list[tuple[list[str], int]]
    rate: int
    items: int
    cpu: CpuWindow | None = None

    def counts(self) -> Counter:
        counts: Counter = Counter()
        for frames, count in self.stacks:
            counts[classify(frames)] += count
        return counts

    def _counts_by_thread(self) -> dict[int | None, Counter]:
        by_thread: dict[int | None, Counter] = {}
        for frames, count in self.stacks:
            tid = next(iter(sampled_threads([(frames, count)])), None)
            by_thread.setdefault(tid, Counter())[classify(frames)] += count
        return by_thread

    def _cpu_ms(self) -> tuple[Counter, float]:
        """CPU-ms by category in the sampled threads, and the CPU-ms of the threads py-spy did not sample.

        Each sampled thread's CPU (from the OS) is split by its own samples: a thread that waited
        most of the window adds little, however many of its samples sat in a category's frames.
        """
        ms: Counter = Counter()
        by_thread = self._counts_by_thread()
        if self.cpu is None or None in by_thread:  # no OS count or no thread ids: the samples alone
            for counts in by_thread.values():
                for category, n in counts.items():
                    if category != WAITING:
                        ms[category] += n * 1000 / self.rate
            return ms, 0.0
        for tid, counts in by_thread.items():
            busy = sum(n for category, n in counts.items() if category != WAITING)
            thread_ms = self.cpu.by_thread.get(tid, 0.0) * 1000
            for category, n in counts.items():
                if category != WAITING:
                    ms[category] += thread_ms * n / busy
            if not busy:  # CPU between samples that all sat in waits
                ms[OTHER] += thread_ms
        return ms, max(self.cpu.total() * 1000 - self.cpu.of(set(by_thread)) * 1000, 0.0)

    def rows(self) -> list[tuple[str, int | None, float, float]]:
        """``(where, samples, % of the CPU, CPU-ms per item)``, the categories in a fixed order."""
        counts = self.counts()
        ms, unseen_ms = self._cpu_ms()
        total_ms = sum(ms.values()) + unseen_ms
        items = max(self.items, 1)
        rows = [(category, counts.get(category, 0), 100 * ms[category] / total_ms if total_ms else 0.0,
                 ms[category] / items) for category in [*CATEGORIES, OTHER]]
        if self.cpu is not None:
            rows.append((UNSEEN, None, 100 * unseen_ms / total_ms if total_ms else 0.0, unseen_ms / items))
        return rows


def profile_table(profile: Profile) -> list[str]:
    """The Markdown table of one scenario, with its totals underneath."""
    lines = ["| where | samples | % of CPU | CPU-ms per item |", "|---|---|---|---|"]
    rows = profile.rows()
    for where, samples, share, ms in rows:
        lines.append(f"| {where} | {'' if samples is None else samples} | {share:.1f} | {ms:.2f} |")
    total = sum(ms for *_, ms in rows)
    waiting = profile.counts().get(WAITING, 0)
    lines.append(f"| **total** | | 100.0 | {total:.2f} |")
    lines += ["", f"{profile.items} items; {sum(n for _, n in profile.stacks)} samples at {profile.rate}/s, "
              f"of which {waiting} in waits (left out)."]
    return lines
