"""The debootstrap'ed base image: its recipe's cache key, the host's Debian mirror, slimming, safe removal."""

from __future__ import annotations

from pathlib import Path

import pytest

import devtools.images
from devtools.images import ImageError, ImageLayout
from devtools.images.base import (BaseImage, BaseRecipe, DebianMirrors, ensure_base_image, host_debian_mirrors,
                                  mounts_below, remove_tree, slim_rootfs)
from tests.support.fakes import FakePodman


def _apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_mirror_is_the_one_this_hosts_apt_uses(tmp_path):
    apt = _apt_dir(tmp_path / "deb822", {
        "sources.list.d/nodesource.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n"
                                             "Suites: nodistro\nComponents: main\n",
        "sources.list.d/debian.sources": (
            "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
            "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
            "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
            "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
            "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"),
        "sources.list.d/other.sources.disabled": "Types: deb\nURIs: http://wrong.example/debian\nSuites: bookworm\n",
    })
    assert host_debian_mirrors("bookworm", apt) == DebianMirrors("http://mirror.example/debian",
                                                                 "http://security.example/debian-security")
    one_line = _apt_dir(tmp_path / "list", {"sources.list": (
        "deb [arch=amd64 signed-by=/k.gpg] https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://m2.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://s2.example/debian-security bookworm-security main\n")})
    assert host_debian_mirrors("bookworm", one_line) == DebianMirrors("http://m2.example/debian",
                                                                      "http://s2.example/debian-security")
    assert host_debian_mirrors("bookworm", tmp_path / "none") == DebianMirrors()


def test_the_base_is_built_only_when_its_tag_is_missing_or_a_rebuild_is_asked(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(devtools.images.base, "build_base_image",
                        lambda podman, layout, recipe, mirrors: built.append(recipe))
    layout, recipe, mirrors = ImageLayout(tmp_path), BaseRecipe(), DebianMirrors()

    cached = ensure_base_image(FakePodman(existing={recipe.tag}), layout, recipe, mirrors=mirrors)
    assert cached == BaseImage(recipe.tag, 128_000_000, None) and built == []
    fresh = ensure_base_image(FakePodman(), layout, recipe, mirrors=mirrors)
    assert fresh.seconds is not None and built == [recipe]
    other = BaseRecipe(packages=(*recipe.packages, "curl"))
    ensure_base_image(FakePodman(existing={recipe.tag}), layout, other, mirrors=mirrors)
    assert built == [recipe, other]
    ensure_base_image(FakePodman(existing={recipe.tag}), layout, recipe, rebuild=True, mirrors=mirrors)
    assert built == [recipe, other, recipe]


def test_slimming_removes_caches_docs_and_logs_and_keeps_copyrights(tmp_path):
    kept = ["usr/bin/python3.11", "var/lib/dpkg/status", "usr/share/doc/wget/copyright", "etc/passwd",
            "usr/share/zoneinfo/UTC"]
    removed = ["var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "usr/share/doc/wget/changelog.gz",
               "usr/share/man/man1/wget.1.gz", "usr/share/locale/de/LC_MESSAGES/wget.mo", "var/log/dpkg.log",
               "var/lib/dpkg/status-old", "var/cache/apt/pkgcache.bin", "tmp/leftover"]
    for name in [*kept, *removed, "etc/resolv.conf"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    slim_rootfs(tmp_path, BaseRecipe())
    assert [name for name in kept if not (tmp_path / name).exists()] == []
    assert [name for name in removed if (tmp_path / name).exists()] == []
    assert (tmp_path / "etc/resolv.conf").read_text() == ""
    assert (tmp_path / "usr/share/locale").is_dir() and (tmp_path / "var/lib/apt/lists").is_dir()


def test_a_work_folder_with_mounts_inside_is_never_removed(tmp_path):
    work = tmp_path / "work"
    (work / "rootfs" / "proc").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"proc {work}/rootfs/proc proc rw 0 0\nproc {tmp_path}/work2/proc proc rw 0 0\n")
    assert mounts_below(work, mounts) == [f"{work}/rootfs/proc"]
    with pytest.raises(ImageError, match="has mounts inside"):
        remove_tree(work, mounts)
    assert (work / "rootfs" / "proc").is_dir()
    mounts.write_text(f"proc {tmp_path}/work2/proc proc rw 0 0\n")
    remove_tree(work, mounts)
    assert not work.exists()


# --- containerd ----------------------------------------------------------------------------------
