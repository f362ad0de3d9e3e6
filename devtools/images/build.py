"""The task images: ``services/Dockerfile`` built by podman on the base image, then saved as an archive.

Each build runs with the host's network (``--network host``: no CNI set-up, the proxy and DNS the
host uses) and never pulls (``--pull=never``: the base is local). The host's CA bundle goes in as
the build secret ``build_ca``: outbound HTTPS may pass an intercepting proxy whose CA only the host
trusts, and pip in the build stage must fetch the serving wheels; the secret is in no layer.

The archive (docker-archive, which ``ctr images import`` of containerd 1.6 reads) is written only
when the image changed since the last one: a warm rebuild with every layer cached costs seconds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.images.layout import DOCKERFILE, IGNOREFILE, ImageLayout, kubelet_name, task_image_tag
from devtools.images.podman import Podman, container_ulimits
from devtools.images.host_programs import require_root
from shared.settings import REPO_ROOT

__all__ = ["BuiltImage", "ImageRow", "build_args", "build_ca_bundle", "build_task_image", "list_images",
           "prepare_podman", "save_archive"]

logger = logging.getLogger(__name__)

HOST_CA_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")
_BUILD_TIMEOUT_S: Final = 3600.0
_SAVE_TIMEOUT_S: Final = 900.0


@dataclass(frozen=True)
class BuiltImage:
    """One task image: its tag, size (bytes, uncompressed), build time, archive and save time (None: unchanged)."""

    task: str
    tag: str
    image_id: str
    size_bytes: int
    build_seconds: float
    archive: Path | None
    save_seconds: float | None


def prepare_podman(layout: ImageLayout) -> Podman:
    """podman on this workspace's storage, its folders made; root is required (rootful storage in .cache)."""
    require_root("`slm images build`")
    podman = Podman.found(layout)
    podman.prepare()
    return podman


def build_ca_bundle(env: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle this host's own pip trusts (PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, Debian's), if any."""
    env = os.environ if env is None else env
    for candidate in (env.get("PIP_CERT"), env.get("REQUESTS_CA_BUNDLE"), env.get("SSL_CERT_FILE"), HOST_CA_BUNDLE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_args(task: str, tag: str, base_tag: str, ca_bundle: Path | None,
               ulimits: list[str] | None = None) -> list[str]:
    """The ``podman build`` arguments of one task image (after podman's global options)."""
    secret = ["--secret", f"id=build_ca,src={ca_bundle}"] if ca_bundle else []
    return ["build", "--network", "host", "--pull=never", "--layers",
            *(container_ulimits() if ulimits is None else ulimits),
            "--file", str(DOCKERFILE), "--ignorefile", str(IGNOREFILE),
            "--build-arg", f"PYTHON_IMAGE={base_tag}", "--build-arg", f"TASK={task}", *secret,
            "--tag", tag, "--tag", kubelet_name(tag), str(REPO_ROOT)]


def save_archive(podman: Podman, layout: ImageLayout, tag: str, image_id: str) -> tuple[Path, float | None]:
    """Write ``images/<tag>.tar`` unless it already holds *image_id*; return it and the seconds spent (None: kept)."""
    archive = layout.archive(tag)
    id_file = archive.with_name(archive.name + ".id")
    if archive.is_file() and id_file.is_file() and id_file.read_text().strip() == image_id:
        return archive, None
    started = time.monotonic()
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    id_file.unlink(missing_ok=True)
    # Named as the kubelet names the chart's image, so `ctr images import` stores it under that name.
    podman.run("save", "--format", "docker-archive", "--output", str(partial), kubelet_name(tag),
               what=f"podman save of {tag}", log=layout.log(f"save-{tag}"), timeout=_SAVE_TIMEOUT_S)
    os.replace(partial, archive)
    id_file.write_text(image_id + "\n")
    return archive, time.monotonic() - started


def build_task_image(podman: Podman, layout: ImageLayout, task: str, base_tag: str, *, archive: bool = True,
                     ca_bundle: Path | None = None, version: str | None = None, tag: str | None = None) -> BuiltImage:
    """Build ``slm-<task>:<version>`` (or *tag*, e.g. skaffold's) from services/Dockerfile on *base_tag*;
    save its archive when asked."""
    tag = tag or task_image_tag(task, version)
    log = layout.log(f"build-{tag}")
    log.unlink(missing_ok=True)
    logger.info("building %s (log: %s)", tag, log)
    started = time.monotonic()
    podman.run(*build_args(task, tag, base_tag, ca_bundle), what=f"podman build of {tag}", log=log,
               timeout=_BUILD_TIMEOUT_S)
    build_seconds = time.monotonic() - started
    info = podman.inspect(tag)
    path, save_seconds = save_archive(podman, layout, tag, info["Id"]) if archive else (None, None)
    return BuiltImage(task, tag, info["Id"], int(info["Size"]), build_seconds, path, save_seconds)


@dataclass(frozen=True)
class ImageRow:
    """An slm image in podman's storage, for ``slm images list``."""

    name: str
    size_bytes: int
    created: str
    archive: Path | None


def list_images(podman: Podman, layout: ImageLayout) -> list[ImageRow]:
    """The task and base images in storage (short names), with their archives where saved."""
    rows: dict[str, ImageRow] = {}
    # podman lists an image once per name it has, each time with all its names: keyed by name.
    for image in podman.images():
        for name in image.get("Names") or []:
            short = name.removeprefix("localhost/")
            if not short.startswith("slm-") or "/" in short:
                continue
            saved = layout.archive(short)
            rows[short] = ImageRow(short, int(image.get("Size", 0)), str(image.get("CreatedAt", "")),
                                   saved if saved.is_file() else None)
    return sorted(rows.values(), key=lambda row: row.name)
