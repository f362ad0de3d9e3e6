"""The serving image's description: services/Dockerfile (non-root, serving pins only, every copied
file let through by its dockerignore), the sentiment bentofile, and requirements-serve.txt as the
requirements.lock pins of exactly what serving imports.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.settings import REPO_ROOT


def test_dockerfile_is_non_root_and_installs_only_serving_pins():
    dockerfile = (REPO_ROOT / "services" / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert "pip install --no-deps -r requirements-serve.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert re.search(r"^USER 10001:10001$", stages[-1], re.M), "the runtime stage must run as uid 10001"
    for var in ("HOME=/tmp", "TMPDIR=/tmp", "BENTOML_HOME=/tmp/bentoml"):
        assert var in stages[-1]
    # Every file the build copies from the context is let through by the dockerignore file.
    ignore = (REPO_ROOT / "services" / "Dockerfile.dockerignore").read_text().split()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            top = source.rstrip("*/").split("/")[0]
            assert f"!{top}" in ignore, f"COPY {source} is excluded by Dockerfile.dockerignore"


def test_sentiment_bentofile():
    bentofile = yaml.safe_load((REPO_ROOT / "services" / "sentiment" / "bentofile.yaml").read_text())
    assert bentofile["service"] == "services.sentiment.service:Sentiment"
    assert bentofile["python"]["requirements_txt"] == "requirements-serve.txt"
    assert (REPO_ROOT / "services" / "sentiment" / "service.py").is_file()
    assert "services/sentiment/*.py" in bentofile["include"]


def _pins(path: Path) -> dict[str, tuple[str, str]]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = (name, version)
    return pins


def test_serve_requirements_are_the_lock_pins_of_what_serving_imports():
    import importlib.metadata

    from packaging.requirements import Requirement

    serve = _pins(REPO_ROOT / "requirements-serve.txt")
    lock = _pins(REPO_ROOT / "requirements.lock")
    for key, (name, version) in serve.items():
        assert key in lock and lock[key][1] == version, f"{name}=={version} differs from requirements.lock"
    assert not {"torch", "transformers", "optimum", "optimum-onnx", "scikit-learn"} & set(serve)
    # The closure of the serving roots over the installed packages' metadata, with the extras
    # asked for (ray[serve] for mode: ray) and no others.
    # kafka-python's codec extras: a compressed batch it cannot decompress is undecodable.
    roots = ["bentoml", "onnxruntime", "tokenizers", "kafka-python[crc32c,lz4,snappy,zstd]", "pydantic", "pydantic-settings",
             "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
             "opentelemetry-instrumentation-asgi", "numpy", "httpx", "click", "ray[serve]", "orjson", "onnx"]
    closure, seen, todo = set(), set(), [Requirement(r) for r in roots]
    while todo:
        wanted = todo.pop()
        key = re.sub(r"[-_.]+", "-", wanted.name).lower()
        if (key, frozenset(wanted.extras)) in seen:
            continue
        seen.add((key, frozenset(wanted.extras)))
        closure.add(key)
        for spec in importlib.metadata.distribution(key).requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                                 for extra in {"", *wanted.extras}):
                todo.append(requirement)
    assert set(serve) == closure, {"missing": sorted(closure - set(serve)), "extra": sorted(set(serve) - closure)}


def test_the_serving_image_carries_no_developer_tooling():
    """devtools/ (broker, cluster, image builder, stack, demo) stays out of the build context and the image;
    what the image copies imports none of it (import-linter holds that too, this names the image's side)."""
    dockerfile = (REPO_ROOT / "services" / "Dockerfile").read_text()
    copied = {source.rstrip("/").split("/")[0] for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M)
              for source in line.split()[:-1]}
    assert copied >= {"shared", "services", "slm"} and "devtools" not in copied and "bench" not in copied
    ignore = [line.strip() for line in (REPO_ROOT / "services" / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*" and not any(line.lstrip("!").startswith(("devtools", "bench", "pipelines", "tests"))
                                        for line in ignore)
    # what used to live in slm/ and so shipped in every image
    assert not [name for name in ("local_kafka", "local_cluster", "images", "stack.py", "demo.py", "service_process.py",
                                  "locks.py") if (REPO_ROOT / "slm" / name).exists()]
    for package in ("shared", "services", "slm"):
        for module in (REPO_ROOT / package).rglob("*.py"):
            text = module.read_text()
            assert not re.search(r"^\s*(from|import) devtools\b", text, re.M), f"{module} imports devtools"
