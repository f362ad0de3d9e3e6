"""Container images of the four task services, built without a registry or a Docker engine.

- :mod:`~slm.images.layout`: where everything lives (``.cache/containers``, ``.cache/images``), the
  image names the chart uses (``slm-<task>:<appVersion>``);
- :mod:`~slm.images.podman`: podman with its storage and configuration under ``.cache``;
- :mod:`~slm.images.base`: the Debian bookworm + Python 3.11 base image, debootstrap'ed once per recipe;
- :mod:`~slm.images.build`: ``services/Dockerfile`` per task, and the archives for containerd;
- :mod:`~slm.images.containerd`: :func:`load_into_containerd`, ``ctr images import`` into ``k8s.io``;
- :mod:`~slm.images.tools`: finding and running the tools, logs, the build lock.

Typical use (as root; ``make images`` installs podman, debootstrap and containerd)::

    layout = ImageLayout()
    podman = prepare_podman(layout)
    base = ensure_base_image(podman, layout)                 # cached by the recipe's digest
    image = build_task_image(podman, layout, "sentiment", base.tag)
    load_into_containerd(image.archive, "/run/containerd/containerd.sock")
"""

from slm.images.base import BaseImage, BaseRecipe, ensure_base_image, host_debian_mirrors
from slm.images.build import BuiltImage, build_task_image, list_images, prepare_podman
from slm.images.containerd import load_into_containerd
from slm.images.errors import ImageError
from slm.images.layout import ImageLayout, chart_app_version, kubelet_name, task_image_tag
from slm.images.tools import file_lock

__all__ = ["BaseImage", "BaseRecipe", "BuiltImage", "ImageError", "ImageLayout", "build_task_image",
           "chart_app_version", "ensure_base_image", "file_lock", "host_debian_mirrors", "kubelet_name",
           "list_images", "load_into_containerd", "prepare_podman", "task_image_tag"]
