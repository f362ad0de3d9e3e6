"""Where the images live and what they are called.

Everything is under the workspace cache (``SLM_CACHE_DIR``, default ``<repo>/.cache``), so
``rm -rf .cache`` removes it all: podman's storage and run state in ``containers/``, the image
archives and build logs in ``images/``.

The names are the chart's: ``charts/slm-task`` renders ``slm-<task>:<appVersion>`` when
``image.repository``, ``image.tag`` and the registry are left empty, which the kubelet looks up
as ``docker.io/library/slm-<task>:<appVersion>``; the archives carry that name, so an image
imported into containerd is the one the chart's pods ask for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

import yaml

from devtools.errors import ImageError
from shared.settings import REPO_ROOT, WorkspaceSettings

__all__ = ["CHART", "DOCKERFILE", "IGNOREFILE", "ImageLayout", "chart_app_version", "kubelet_name", "task_image_tag"]

DOCKERFILE: Final = REPO_ROOT / "services" / "Dockerfile"
IGNOREFILE: Final = REPO_ROOT / "services" / "Dockerfile.dockerignore"
CHART: Final = REPO_ROOT / "charts" / "slm-task" / "Chart.yaml"
# A reference without a registry means Docker Hub's library to the kubelet and to containerd.
_UNQUALIFIED_PREFIX: Final = "docker.io/library/"


@lru_cache(maxsize=None)
def chart_app_version(chart: Path = CHART) -> str:
    """The chart's ``appVersion``: the tag its pods pull when ``image.tag`` is empty."""
    try:
        version = yaml.safe_load(chart.read_text()).get("appVersion")
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ImageError(f"cannot read appVersion from {chart}: {exc}") from None
    if not version:
        raise ImageError(f"{chart} has no appVersion")
    return str(version)


def task_image_tag(task: str, version: str | None = None) -> str:
    """``slm-<task>:<version>``, the chart's default image name (version: the chart's appVersion)."""
    return f"slm-{task}:{version or chart_app_version()}"


def kubelet_name(tag: str) -> str:
    """The name the kubelet looks up for *tag*: ``slm-x:1`` -> ``docker.io/library/slm-x:1``."""
    first, _, rest = tag.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return tag  # already names a registry
    return f"docker.io/{tag}" if rest else _UNQUALIFIED_PREFIX + tag


@dataclass(frozen=True)
class ImageLayout:
    """The folders of image building, all under *cache_dir*."""

    cache_dir: Path = field(default_factory=lambda: WorkspaceSettings().cache_dir)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().absolute())

    @property
    def containers_dir(self) -> Path:
        """podman's storage (``storage/``), run state (``run/``, ``libpod/``) and temporary files (``tmp/``)."""
        return self.cache_dir / "containers"

    @property
    def images_dir(self) -> Path:
        """The image archives, for ``ctr images import``."""
        return self.cache_dir / "images"

    @property
    def logs_dir(self) -> Path:
        """One log per build step: debootstrap, podman build, podman save."""
        return self.images_dir / "logs"

    @property
    def work_dir(self) -> Path:
        """The base image's root filesystem while it is assembled (removed once imported)."""
        return self.images_dir / "work"

    @property
    def lock_file(self) -> Path:
        """Serialises builds of this workspace."""
        return self.images_dir / ".build.lock"

    def archive(self, tag: str) -> Path:
        """``images/slm-sentiment-0.1.0.tar`` for ``slm-sentiment:0.1.0``."""
        return self.images_dir / (tag.replace("/", "_").replace(":", "-") + ".tar")

    def log(self, name: str) -> Path:
        """The log of one build step."""
        return self.logs_dir / f"{name.replace('/', '_').replace(':', '-')}.log"
