"""Loading an image archive into a containerd, where the kubelet finds it (namespace ``k8s.io``).

``ctr images import`` unpacks the archive for the snapshotter (overlayfs unless told otherwise),
so a pod whose image is ``slm-<task>:<tag>`` starts without any registry.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Final

from devtools.errors import ImageError
from devtools.images.layout import kubelet_name
from devtools.images.host_programs import last_line, require

__all__ = ["containerd_names", "import_command", "load_into_containerd", "missing_names", "sync_names"]

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
    stdout = _run_ctr(cmd, f"ctr images import {archive.name} into {address}", timeout)
    return _UNPACKED.findall(stdout)


def _run_ctr(cmd: list[str], what: str, timeout: float) -> str:
    """Run a ctr command; its output, or an :class:`ImageError` line naming *what* failed."""
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what} took over {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise ImageError(f"{what} failed (exit {proc.returncode}): {last_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def _ctr(address: str, namespace: str, *args: str, timeout: float = 60.0) -> str:
    return _run_ctr([require("ctr"), "--address", address, "-n", namespace, *args], f"ctr {' '.join(args)}", timeout)


def containerd_names(address: Path | str, namespace: str = "k8s.io") -> set[str]:
    """Every image name the containerd at *address* holds in *namespace*."""
    return {line.strip() for line in _ctr(str(address), namespace, "images", "ls", "-q").splitlines() if line.strip()}


def _slm_kubelet_names(podman_names: list[str]) -> set[str]:
    """The kubelet's names for the task images among podman's names of one image.

    podman stores a short name as ``localhost/<name>``; the kubelet reads the same short name in a
    pod spec as ``docker.io/library/<name>``.
    """
    from shared.task_kinds import TASKS

    repositories = {f"slm-{task}" for task in TASKS}  # the task images; the base is never deployed
    found = set()
    for name in podman_names:
        short = name.removeprefix("localhost/").removeprefix("docker.io/library/")
        if short.partition(":")[0] in repositories:
            found.add(kubelet_name(short))
    return found


def missing_names(podman_images: list[dict], present: set[str]) -> tuple[list[tuple[str, str]],
                                                                       list[tuple[str, list[str]]]]:
    """What containerd lacks of podman's slm images (``podman images --format json`` rows).

    Returns ``(tags, imports)``: ``tags`` are ``(held, wanted)`` pairs, a name containerd holds and
    another name of the same podman image that it lacks (``ctr images tag`` is enough); ``imports``
    are ``(image ID, names)`` of the images containerd holds under no name at all (these need
    their layers).
    """
    tags: list[tuple[str, str]] = []
    imports: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for image in podman_images:
        names = _slm_kubelet_names(image.get("Names") or [])
        if not names or image.get("Id") in seen:
            continue  # podman lists an image once per name
        seen.add(image.get("Id"))
        held = sorted(names & present)
        wanted = sorted(names - present)
        if not wanted:
            continue
        if held:
            tags.extend((held[0], name) for name in wanted)
        else:
            imports.append((image["Id"], wanted))
    return tags, imports


def sync_names(podman_images: list[dict], address: Path | str, *, namespace: str = "k8s.io",
               save: Callable[[str, str, Path], None], work_dir: Path) -> list[str]:
    """Give containerd every name podman has for an slm image; return the names added.

    skaffold tags what it builds by image ID through podman's Docker API and deploys that tag,
    which the kubelet then looks up in containerd. A name of an image containerd already holds
    costs a ``ctr images tag``; an image it lacks is written by *save(image_id, name, archive)*
    (a docker archive that names it *name*) and imported.
    """
    address = str(address)
    tags, imports = missing_names(podman_images, containerd_names(address, namespace))
    for held, wanted in tags:
        _ctr(address, namespace, "images", "tag", held, wanted)
    added = [wanted for _, wanted in tags]
    for image_id, names in imports:
        work_dir.mkdir(parents=True, exist_ok=True)
        archive = work_dir / "sync.tar"
        try:
            save(image_id, names[0], archive)
            load_into_containerd(archive, address, namespace=namespace)
        finally:
            archive.unlink(missing_ok=True)
        for other in names[1:]:
            _ctr(address, namespace, "images", "tag", names[0], other)
        added.extend(names)
    return added
