"""``slm images build``: image names, the cache layout, the build's command line, archives and listing.

No podman here: it is faked where a test needs it. The real build is measured by hand (docs: deploying, "Images").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from devtools.images import ImageError, ImageLayout, kubelet_name, task_image_tag
from devtools.images.base import (BaseRecipe, DebianMirrors)
from devtools.images.build import build_args, build_ca_bundle, list_images, save_archive
from devtools.images.layout import DOCKERFILE, chart_app_version
from shared.settings import REPO_ROOT
from tests.support.fakes import FakePodman


def _pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(zip(args, args[1:]))


# --- names and places ----------------------------------------------------------------------------

def test_image_tags_are_the_charts_default_image_names():
    app_version = yaml.safe_load((REPO_ROOT / "charts/slm-task/Chart.yaml").read_text())["appVersion"]
    assert task_image_tag("sentiment") == f"slm-sentiment:{app_version}"
    assert task_image_tag("entities", "9.9.9") == "slm-entities:9.9.9"


def test_kubelet_names_qualify_like_docker_references():
    assert kubelet_name("slm-sentiment:0.1.0") == "docker.io/library/slm-sentiment:0.1.0"
    assert kubelet_name("acme/slm-sentiment:0.1.0") == "docker.io/acme/slm-sentiment:0.1.0"
    for qualified in ("ghcr.io/acme/slm-sentiment:0.1.0", "localhost/slm-sentiment:0.1.0",
                      "localhost:5000/slm-sentiment:0.1.0"):
        assert kubelet_name(qualified) == qualified


def test_a_chart_without_app_version_is_one_error(tmp_path):
    chart = tmp_path / "Chart.yaml"
    chart.write_text("apiVersion: v2\nname: x\nversion: 0.1.0\n")
    with pytest.raises(ImageError, match=r"has no appVersion"):
        chart_app_version(chart)


def test_everything_lives_under_the_cache_dir(tmp_path):
    layout = ImageLayout(tmp_path)
    assert layout.archive("slm-sentiment:0.1.0") == tmp_path / "images" / "slm-sentiment-0.1.0.tar"
    assert layout.log("build-slm-sentiment:0.1.0") == tmp_path / "images" / "logs" / "build-slm-sentiment-0.1.0.log"
    assert layout.containers_dir == tmp_path / "containers"


# --- podman --------------------------------------------------------------------------------------


def test_build_args_name_the_base_the_task_the_secret_and_the_charts_tag():
    args = build_args("sentiment", "slm-sentiment:0.1.0", "localhost/slm-python-base:3.11-bookworm-abc",
                      Path("/etc/ssl/certs/ca-certificates.crt"), ulimits=["--ulimit", "nproc=10:10"])
    assert args[0] == "build" and args[-1] == str(REPO_ROOT)
    pairs = _pairs(args)
    for expected in [("--network", "host"), ("--file", str(DOCKERFILE)),
                     ("--build-arg", "PYTHON_IMAGE=localhost/slm-python-base:3.11-bookworm-abc"),
                     ("--build-arg", "TASK=sentiment"),
                     ("--secret", "id=build_ca,src=/etc/ssl/certs/ca-certificates.crt"),
                     ("--tag", "slm-sentiment:0.1.0"), ("--tag", "docker.io/library/slm-sentiment:0.1.0"),
                     ("--ulimit", "nproc=10:10")]:
        assert expected in pairs, expected
    assert "--pull=never" in args
    without_ca = build_args("entities", "slm-entities:0.1.0", "localhost/base:1", None, ulimits=[])
    assert "--secret" not in without_ca and ("--build-arg", "TASK=entities") in _pairs(without_ca)


def test_the_dockerfile_mounts_the_secret_the_build_passes_and_shares_the_venv_layer():
    dockerfile = DOCKERFILE.read_text()
    (secret,) = {value for option, value in _pairs(build_args("x", "slm-x:1", "b", Path("/ca"), ulimits=[]))
                 if option == "--secret"}
    secret_id = secret.split(",")[0].removeprefix("id=")
    assert dockerfile.count(f"--mount=type=secret,id={secret_id}") == 2  # both pip installs
    runtime = dockerfile[dockerfile.index("AS runtime"):]
    # Instructions after `ARG TASK` are keyed on the task: the venv must come before it.
    copy_venv = re.search(r"^COPY --from=build /opt/venv ", runtime, re.M)
    arg_task = re.search(r"^ARG TASK$", runtime, re.M)
    assert copy_venv and arg_task and copy_venv.start() < arg_task.start()
    assert "command -v wget" in runtime


def test_the_build_ca_is_the_one_pip_trusts_on_this_host(tmp_path):
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert build_ca_bundle({"PIP_CERT": str(bundle)}) == bundle
    assert build_ca_bundle({"PIP_CERT": str(tmp_path / "missing"), "REQUESTS_CA_BUNDLE": str(bundle)}) == bundle


def test_the_archive_is_saved_again_only_when_the_image_changed(tmp_path):
    layout, podman = ImageLayout(tmp_path), FakePodman()
    layout.images_dir.mkdir(parents=True)
    archive, seconds = save_archive(podman, layout, "slm-sentiment:0.1.0", "sha256:aaa")
    assert archive == layout.archive("slm-sentiment:0.1.0") and archive.read_bytes() == b"archive"
    assert seconds is not None and len(podman.calls) == 1
    assert ("--format", "docker-archive") in _pairs(list(podman.calls[0]))
    assert podman.calls[0][-1] == "docker.io/library/slm-sentiment:0.1.0"
    assert save_archive(podman, layout, "slm-sentiment:0.1.0", "sha256:aaa") == (archive, None)
    assert len(podman.calls) == 1
    _, seconds = save_archive(podman, layout, "slm-sentiment:0.1.0", "sha256:bbb")
    assert seconds is not None and len(podman.calls) == 2
    assert not list(layout.images_dir.glob("*.partial"))


def test_list_shows_each_slm_image_once_with_its_archive(tmp_path):
    layout = ImageLayout(tmp_path)
    layout.images_dir.mkdir(parents=True)
    layout.archive("slm-sentiment:0.1.0").write_bytes(b"x")
    sentiment = {"Names": ["localhost/slm-sentiment:0.1.0", "docker.io/library/slm-sentiment:0.1.0"], "Size": 7,
                 "CreatedAt": "2026-12-02T01:27:11Z"}
    podman = FakePodman(images=[
        sentiment, sentiment,  # once per name, as podman lists it
        {"Names": ["localhost/slm-python-base:3.11-bookworm-abc"], "Size": 5, "CreatedAt": "t"},
        {"Names": ["docker.io/library/debian:bookworm"], "Size": 1, "CreatedAt": "t"},
        {"Names": None, "Size": 3, "CreatedAt": "t"},
    ])
    rows = list_images(podman, layout)
    assert [(row.name, row.size_bytes) for row in rows] == [("slm-python-base:3.11-bookworm-abc", 5),
                                                            ("slm-sentiment:0.1.0", 7)]
    assert rows[0].archive is None and rows[1].archive == layout.archive("slm-sentiment:0.1.0")


# --- the base image ------------------------------------------------------------------------------

def test_the_base_tag_changes_with_the_recipe_and_only_with_it():
    recipe = BaseRecipe()
    assert re.fullmatch(r"localhost/slm-python-base:3\.11-bookworm-[0-9a-f]{12}", recipe.tag)
    assert BaseRecipe().tag == recipe.tag
    assert BaseRecipe(packages=(*recipe.packages, "curl")).digest != recipe.digest
    assert BaseRecipe(slim_globs=recipe.slim_globs[1:]).digest != recipe.digest
    assert BaseRecipe(chroot_steps=recipe.chroot_steps[:-1]).digest != recipe.digest
    # The mirror is not part of it: another mirror serves the same packages.
    assert "deb.debian.org" not in recipe.description()
    assert "<mirror>" in recipe.description()


def test_the_recipe_names_what_the_venv_package_needs():
    recipe = BaseRecipe()
    cmd = recipe.debootstrap_command(Path("/srv/rootfs"), "http://mirror.example/debian")
    assert cmd[:2] == ["debootstrap", "--variant=minbase"]
    assert cmd[-3:] == ["bookworm", "/srv/rootfs", "http://mirror.example/debian"]
    included = cmd[2].removeprefix("--include=").split(",")
    # python3.11-distutils is virtual in bookworm (python3-distutils provides it); debootstrap
    # resolves no virtual package, so the providing one is named.
    assert {"python3.11", "python3.11-venv", "python3-distutils", "python3-pip-whl", "python3-setuptools-whl",
            "wget", "ca-certificates"} <= set(included)
    sources = recipe.sources(DebianMirrors("http://m.example/debian", "http://s.example/debian-security"))
    assert "URIs: http://m.example/debian\nSuites: bookworm bookworm-updates" in sources
    assert "URIs: http://s.example/debian-security\nSuites: bookworm-security" in sources
