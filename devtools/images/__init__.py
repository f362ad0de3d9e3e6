"""Container images of the four task services, built without a registry or a Docker engine.

- :mod:`~devtools.images.layout`: where everything lives (``.cache/containers``, ``.cache/images``), the
  image names the chart uses (``slm-<task>:<appVersion>``);
- :mod:`~devtools.images.podman`: podman with its storage and configuration under ``.cache``;
- :mod:`~devtools.images.base`: the Debian bookworm + Python 3.11 base image, debootstrap'ed once per recipe;
- :mod:`~devtools.images.build`: ``services/Dockerfile`` per task, and the archives for containerd;
- :mod:`~devtools.images.containerd`: :func:`load_into_containerd`, ``ctr images import`` into ``k8s.io``;
- :mod:`~devtools.images.host_programs`: finding and running the tools, logs, the build lock.

Typical use (as root; ``make images`` installs podman, debootstrap and containerd)::

    layout = ImageLayout()
    podman = prepare_podman(layout)
    base = ensure_base_image(podman, layout)                 # cached by the recipe's digest
    image = build_task_image(podman, layout, "sentiment", base.tag)
    load_into_containerd(image.archive, "/run/containerd/containerd.sock")
"""

from devtools.errors import ImageError
from devtools.images.base import BaseImage, BaseRecipe, ensure_base_image, host_debian_mirrors
from devtools.images.build import BuiltImage, build_task_image, list_images, prepare_podman
from devtools.images.containerd import load_into_containerd
from devtools.images.layout import ImageLayout, chart_app_version, kubelet_name, task_image_tag
from devtools.images.host_programs import file_lock

__all__ = ["BaseImage", "BaseRecipe", "BuiltImage", "ImageError", "ImageLayout", "build_task_image",
           "chart_app_version", "ensure_base_image", "file_lock", "host_debian_mirrors", "kubelet_name",
           "list_images", "load_into_containerd", "prepare_podman", "task_image_tag"]
