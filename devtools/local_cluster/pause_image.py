"""The pod sandbox image, made without a registry: the static ``pause`` binary in one layer,
written as a ``docker save`` archive for containerd's ``k8s.io`` namespace
(:func:`devtools.images.load_into_containerd` imports it).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

__all__ = ["write_pause_archive"]


def _tar_bytes(members: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_pause_archive(pause_binary: Path, tag: str, archive: Path) -> Path:
    """A one-layer image of ``pause_binary`` as ``/pause``, run as 65535 like the upstream image."""
    layer = _tar_bytes({"pause": (pause_binary.read_bytes(), 0o755)})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "slm cluster: build/pause/linux/pause.c, gcc -static"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]).encode()
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(_tar_bytes({"layer/layer.tar": (layer, 0o644), config_name: (config, 0o644),
                                    "manifest.json": (manifest, 0o644)}))
    return archive
