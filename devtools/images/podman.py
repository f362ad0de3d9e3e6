"""podman with its storage, run state and configuration under the workspace cache.

Rootful podman keeps images in ``/var/lib/containers`` and state in ``/run`` unless told
otherwise; every command here names ``--root``, ``--runroot`` and ``--tmpdir`` under
``.cache/containers``, and a registries file of its own with no search registries, so a short
name is never looked up on a registry and ``rm -rf .cache`` leaves the host as it was. The one
thing podman 4.3 writes elsewhere whatever it is told, a blob-info cache in /var/lib/containers,
is removed after each command that wrote it (:func:`removed_if_created`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.errors import ImageError
from devtools.images.layout import ImageLayout
from devtools.images.host_programs import last_line, require, run_logged

__all__ = ["SYSTEM_CACHE", "Podman", "container_ulimits", "removed_if_created", "storage_driver"]

# What podman asks the OCI runtime for when no --ulimit is given: nofile 1048576, and nproc
# 4194304 for `run` (32768 for `build`).
_PODMAN_NOFILE: Final = 1_048_576
_PODMAN_NPROC: Final = 32_768
# podman 4.3's build, save and import (containers/image) keep a blob-info cache here when run as
# root, whatever --root says.
SYSTEM_CACHE: Final = Path("/var/lib/containers")
_REGISTRIES_CONF: Final = "# slm images: local images only, a short name is never looked up on a registry\n" \
                          "unqualified-search-registries = []\n"


def container_ulimits(limits: Callable[[int], tuple[int, int]] = resource.getrlimit) -> list[str]:
    """``--ulimit`` options no higher than this process's own hard limits.

    runc cannot raise a hard limit above its own without CAP_SYS_RESOURCE, which a process in a
    VM or container sandbox may lack: podman's defaults then fail every container with
    "error setting rlimit type 7: operation not permitted". Asking for at most what we have works
    everywhere, and equals podman's defaults where the limits are high.
    """
    def capped(which: int, ceiling: int) -> int:
        hard = limits(which)[1]
        return ceiling if hard == resource.RLIM_INFINITY or hard < 0 else min(hard, ceiling)

    nofile = capped(resource.RLIMIT_NOFILE, _PODMAN_NOFILE)
    nproc = capped(resource.RLIMIT_NPROC, _PODMAN_NPROC)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


@contextlib.contextmanager
def removed_if_created(path: Path) -> Iterator[None]:
    """Remove *path* afterwards when it was not there before: what a command left behind, not the host's own."""
    existed = path.exists() or path.is_symlink()
    try:
        yield
    finally:
        if not existed and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def storage_driver(filesystems: Path = Path("/proc/filesystems")) -> str:
    """overlay where the kernel has it (layers shared, no copies); vfs, a full copy per layer, elsewhere."""
    try:
        names = {line.split()[-1] for line in filesystems.read_text().splitlines() if line.strip()}
    except OSError:
        return "vfs"
    return "overlay" if "overlay" in names else "vfs"


@dataclass(frozen=True)
class Podman:
    """podman commands against the storage of one :class:`ImageLayout`."""

    layout: ImageLayout
    executable: str = "podman"
    driver: str = "overlay"
    runtime: str = "runc"

    @classmethod
    def found(cls, layout: ImageLayout) -> Podman:
        """The podman on PATH, with the storage driver this kernel supports."""
        require("runc")  # the runtime it is told to use, found by podman on PATH
        return cls(layout, require("podman"), storage_driver())

    @property
    def registries_conf(self) -> Path:
        return self.layout.containers_dir / "registries.conf"

    def command(self, *args: str) -> list[str]:
        """``podman <global options> <args>``: storage, run state and events under .cache, no systemd."""
        root = self.layout.containers_dir
        return [self.executable,
                "--root", str(root / "storage"),
                "--runroot", str(root / "run"),
                "--tmpdir", str(root / "libpod"),
                "--storage-driver", self.driver,
                # No systemd here (and none needed): cgroups by path, events to a file in --tmpdir.
                "--cgroup-manager", "cgroupfs",
                "--events-backend", "file",
                # runc, not podman's default crun: crun 1.8 refuses a host with cgroup v1 controllers
                # beside the v2 hierarchy ("cgroups in hybrid mode not supported"), as some VMs here are.
                "--runtime", self.runtime,
                *args]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of every podman command: our registries file, big temporary files in .cache."""
        return {**(os.environ if base is None else base),
                "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
                "TMPDIR": str(self.layout.containers_dir / "tmp")}

    def prepare(self) -> None:
        """Create the folders and the registries file."""
        for sub in ("storage", "run", "libpod", "tmp"):
            (self.layout.containers_dir / sub).mkdir(parents=True, exist_ok=True)
        if not self.registries_conf.is_file() or self.registries_conf.read_text() != _REGISTRIES_CONF:
            self.registries_conf.write_text(_REGISTRIES_CONF)

    def run(self, *args: str, what: str, log: Path, timeout: float = 600) -> str:
        """Run ``podman <args>`` with its output in *log*; an :class:`ImageError` line on failure.

        The blob-info cache podman writes to :data:`SYSTEM_CACHE` goes again when it was not there
        before: nothing of ours stays outside .cache (nothing here pulls from a registry, the one
        thing it speeds up).
        """
        with removed_if_created(SYSTEM_CACHE):
            return run_logged(self.command(*args), what=what, log=log, timeout=timeout, env=self.environment())

    def query(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a short podman query, its output captured."""
        try:
            return subprocess.run(self.command(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=self.environment(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ImageError(f"podman {' '.join(args)} did not answer within {timeout:.0f}s") from None

    def image_exists(self, name: str) -> bool:
        return self.query("image", "exists", name).returncode == 0

    def inspect(self, name: str) -> dict:
        """``podman image inspect`` of *name*: Id, Size (bytes, uncompressed), Created, RepoTags..."""
        proc = self.query("image", "inspect", name)
        if proc.returncode != 0:
            raise ImageError(f"podman image inspect {name} failed: {last_line(proc.stderr or proc.stdout)}")
        (found,) = json.loads(proc.stdout)
        return found

    def images(self) -> list[dict]:
        """Every image in this storage (``podman images --format json``)."""
        proc = self.query("images", "--format", "json")
        if proc.returncode != 0:
            raise ImageError(f"podman images failed: {last_line(proc.stderr or proc.stdout)}")
        return json.loads(proc.stdout or "[]")
