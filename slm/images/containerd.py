"""Loading an image archive into a containerd, where the kubelet finds it (namespace ``k8s.io``).

``ctr images import`` unpacks the archive for the snapshotter (overlayfs unless told otherwise),
so a pod whose image is ``slm-<task>:<tag>`` starts without any registry.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Final

from slm.images.errors import ImageError
from slm.images.tools import last_line, require

__all__ = ["import_command", "load_into_containerd"]

# ctr prints "unpacking docker.io/library/slm-sentiment:0.1.0 (sha256:...)...done" per image.
_UNPACKED: Final = re.compile(r"^unpacking (\S+) \(", re.M)


def import_command(ctr: str, archive: Path, address: str, namespace: str = "k8s.io",
                   snapshotter: str | None = None) -> list[str]:
    """``ctr --address <socket> -n <namespace> images import [--snapshotter S] <archive>``."""
    options = ["--snapshotter", snapshotter] if snapshotter else []
    return [ctr, "--address", address, "-n", namespace, "images", "import", *options, str(archive)]


def load_into_containerd(archive: Path | str, address: Path | str, *, namespace: str = "k8s.io",
                         snapshotter: str | None = None, timeout: float = 600.0) -> list[str]:
    """Import the image *archive* (``.cache/images/<image>.tar``) into the containerd at socket *address*.

    Returns the image names ctr unpacked, e.g. ``["docker.io/library/slm-sentiment:0.1.0"]``.

    Raises:
        ImageError: no such archive or socket, no ``ctr``, or the import failed or timed out (one line).
    """
    archive, address = Path(archive), str(address)
    if not archive.is_file():
        raise ImageError(f"no image archive at {archive}; `slm images build` writes them")
    if "://" not in address and not Path(address).is_socket():
        raise ImageError(f"no containerd socket at {address}")
    cmd = import_command(require("ctr"), archive, address, namespace, snapshotter)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ImageError(f"ctr images import {archive.name} into {address} took over {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise ImageError(f"ctr images import {archive.name} into {address} failed (exit {proc.returncode}): "
                         f"{last_line(proc.stderr or proc.stdout)}")
    return _UNPACKED.findall(proc.stdout)
