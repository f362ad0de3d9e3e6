"""Session fixtures: one real Kafka broker and one quickly trained model per task per run."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shared.compat import use_local_ray_env
from tests.support.processes import REPO_ROOT

# Test modules import Ray at collection; Ray reads these then, so a test's cluster stays on 127.0.0.1.
use_local_ray_env()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    """A real Apache Kafka broker on 127.0.0.1.

    Uses the broker named by ``SLM_TEST_KAFKA_BOOTSTRAP`` when set (``.ci/run`` starts one
    with ``slm kafka up``); otherwise starts a private one for this session and stops it after.
    """
    given = os.environ.get("SLM_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from devtools import local_kafka

    cfg = local_kafka.BrokerConfig.from_env()
    cfg = local_kafka.BrokerConfig(port=39092, controller_port=39093, cache_dir=cfg.cache_dir,
                                   data_dir=tmp_path_factory.mktemp("kafka"))
    local_kafka.up(cfg)
    try:
        yield local_kafka.bootstrap(cfg)
    finally:
        local_kafka.down(cfg)


@pytest.fixture
def topic_prefix() -> str:
    """A prefix that gives each test its own topics and consumer group."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session")
def quick_trainings(tmp_path_factory):
    """``slm train <task> --quick``, run at most once per task per session, on first use.

    Returns a function ``task -> (completed process, model folder)``.
    """
    runs: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}
    root = tmp_path_factory.mktemp("models")
    slm = Path(sys.executable).with_name("slm")

    def train(task: str) -> tuple[subprocess.CompletedProcess, Path]:
        if task not in runs:
            out = root / task
            # The baseline only where there is one (classification), so the tests can compare with it.
            baseline = [] if task == "entities" else ["--baseline"]
            command = [str(slm), "train", task, "--quick", "--out", str(out), *baseline]
            # A training that timed out or was interrupted (the test's own timeout) is kept as a
            # failure: the later tests that need the model fail at once instead of training again.
            # Below pytest-timeout's 600 s, so the subprocess's own timeout is the one that fires.
            try:
                runs[task] = (subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=540), out)
            except subprocess.TimeoutExpired as exc:
                stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
                runs[task] = (subprocess.CompletedProcess(command, -1, "", f"{exc}\n{stderr}"), out)
            except BaseException as exc:
                runs[task] = (subprocess.CompletedProcess(command, -1, "", f"training interrupted: {exc!r}"), out)
                raise
        return runs[task]

    return train


@pytest.fixture(scope="session")
def quick_models(quick_trainings):
    """A function ``task -> model folder`` of a quick model; fails the test if training failed.

    ``SLM_TEST_MODELS_DIR`` names a folder of quick models trained before (``<dir>/<task>``),
    used instead of training again (the pipeline tests, which check the training, still train).
    """

    def model(task: str) -> Path:
        given = os.environ.get("SLM_TEST_MODELS_DIR")
        if given and (Path(given) / task / "slm_model.json").exists():
            return Path(given) / task  # quick models trained before (slm train <task> --quick --out DIR/<task>)
        result, out = quick_trainings(task)
        if result.returncode != 0:
            pytest.fail(f"quick training of {task} failed:\n{result.stderr[-3000:]}")
        return out

    return model


@pytest.fixture(scope="session")
def quick_training(quick_trainings) -> tuple[subprocess.CompletedProcess, Path]:
    """``slm train sentiment --quick``; the sentiment pipeline tests assert on its output."""
    return quick_trainings("sentiment")


@pytest.fixture(scope="session")
def quick_model_dir(quick_models) -> Path:
    return quick_models("sentiment")
