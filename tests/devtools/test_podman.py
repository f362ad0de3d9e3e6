"""podman as the image tools run it: storage and registries under the cache, ulimits, what it leaves behind."""

from __future__ import annotations

import resource

import pytest

from devtools.images import ImageError, ImageLayout
from devtools.images.podman import Podman, container_ulimits, removed_if_created, storage_driver


def _pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(zip(args, args[1:]))


def test_podman_keeps_storage_state_and_registries_under_the_cache(tmp_path):
    podman = Podman(ImageLayout(tmp_path), "/usr/bin/podman", "overlay")
    cmd = podman.command("images")
    assert cmd[0] == "/usr/bin/podman" and cmd[-1] == "images"
    options = dict(_pairs(cmd[1:-1]))
    assert options["--root"] == str(tmp_path / "containers" / "storage")
    assert options["--runroot"] == str(tmp_path / "containers" / "run")
    assert options["--tmpdir"] == str(tmp_path / "containers" / "libpod")
    assert options["--storage-driver"] == "overlay"
    assert options["--cgroup-manager"] == "cgroupfs"
    assert options["--runtime"] == "runc"  # crun refuses hosts with cgroup v1 controllers beside v2
    # No path of the host's own: every folder podman is given is in the cache.
    assert all(arg.startswith(str(tmp_path)) for arg in cmd[1:] if arg.startswith("/"))
    env = podman.environment({"PATH": "/usr/bin"})
    assert env["CONTAINERS_REGISTRIES_CONF"] == str(tmp_path / "containers" / "registries.conf")
    assert env["TMPDIR"] == str(tmp_path / "containers" / "tmp") and env["PATH"] == "/usr/bin"
    podman.prepare()
    assert "unqualified-search-registries = []" in podman.registries_conf.read_text()
    assert (tmp_path / "containers" / "tmp").is_dir()


def test_ulimits_never_ask_above_this_processes_hard_limits():
    def limits(hard_nofile, hard_nproc):
        hard = {resource.RLIMIT_NOFILE: hard_nofile, resource.RLIMIT_NPROC: hard_nproc}
        return lambda which: (64, hard[which])

    assert container_ulimits(limits(20000, 96363)) == ["--ulimit", "nofile=20000:20000",
                                                       "--ulimit", "nproc=32768:32768"]
    assert container_ulimits(limits(resource.RLIM_INFINITY, 1000)) == ["--ulimit", "nofile=1048576:1048576",
                                                                       "--ulimit", "nproc=1000:1000"]


def test_what_podman_leaves_outside_the_cache_goes_unless_it_was_there_before(tmp_path):
    created = tmp_path / "var-lib-containers"
    with removed_if_created(created):
        (created / "cache").mkdir(parents=True)
        (created / "cache" / "blob-info-cache-v1.boltdb").write_bytes(b"db")
    assert not created.exists()
    existing = tmp_path / "existing"
    (existing / "cache").mkdir(parents=True)
    with removed_if_created(existing):
        (existing / "cache" / "blob-info-cache-v1.boltdb").write_bytes(b"db")
    assert (existing / "cache" / "blob-info-cache-v1.boltdb").is_file()
    with pytest.raises(ImageError), removed_if_created(created):
        created.mkdir()
        raise ImageError("podman build failed")
    assert not created.exists()


def test_storage_driver_follows_the_kernel(tmp_path):
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tsysfs\n\text4\nnodev\toverlay\n")
    assert storage_driver(filesystems) == "overlay"
    filesystems.write_text("nodev\tsysfs\n\text4\n")
    assert storage_driver(filesystems) == "vfs"
    assert storage_driver(tmp_path / "missing") == "vfs"


# --- the task images -----------------------------------------------------------------------------
