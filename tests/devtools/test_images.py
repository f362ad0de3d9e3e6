"""``slm images``: the command lines it builds, the base recipe's cache key, its error lines.

No podman, debootstrap or containerd here: the tools are faked where a test needs them. The real
build is measured by hand (README "Images").
"""

from __future__ import annotations

import re
import resource
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import devtools.images
from devtools.images import ImageError, ImageLayout, kubelet_name, task_image_tag
from devtools.images.base import (
    BaseImage,
    BaseRecipe,
    DebianMirrors,
    ensure_base_image,
    host_debian_mirrors,
    mounts_below,
    remove_tree,
    slim_rootfs,
)
from devtools.images.build import BuiltImage, build_args, build_ca_bundle, list_images, save_archive
from devtools.images.containerd import load_into_containerd, sync_names
from devtools.images.layout import DOCKERFILE, chart_app_version
from devtools.images.podman import Podman, container_ulimits, removed_if_created, storage_driver
from devtools.images.tools import require, require_root, run_logged
from shared.settings import REPO_ROOT
from slm.cli import main


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


class _FakePodman:
    """Records podman commands; `save` writes the archive it is asked for."""

    def __init__(self, existing=(), images=()):
        self.existing = set(existing)
        self.listed = list(images)
        self.calls: list[tuple[str, ...]] = []

    def run(self, *args, what, log, timeout=600):
        self.calls.append(args)
        if args[0] == "save":
            Path(args[args.index("--output") + 1]).write_bytes(b"archive")
        return ""

    def image_exists(self, name):
        return name in self.existing

    def inspect(self, name):
        return {"Id": "sha256:1", "Size": 128_000_000}

    def images(self):
        return self.listed


def test_the_archive_is_saved_again_only_when_the_image_changed(tmp_path):
    layout, podman = ImageLayout(tmp_path), _FakePodman()
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
    podman = _FakePodman(images=[
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

    cached = ensure_base_image(_FakePodman(existing={recipe.tag}), layout, recipe, mirrors=mirrors)
    assert cached == BaseImage(recipe.tag, 128_000_000, None) and built == []
    fresh = ensure_base_image(_FakePodman(), layout, recipe, mirrors=mirrors)
    assert fresh.seconds is not None and built == [recipe]
    other = BaseRecipe(packages=(*recipe.packages, "curl"))
    ensure_base_image(_FakePodman(existing={recipe.tag}), layout, other, mirrors=mirrors)
    assert built == [recipe, other]
    ensure_base_image(_FakePodman(existing={recipe.tag}), layout, recipe, rebuild=True, mirrors=mirrors)
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

@pytest.fixture
def containerd_socket(tmp_path):
    path = tmp_path / "containerd.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        yield path


def _fake_ctr(monkeypatch, returncode=0, stdout="", stderr=""):
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)

    monkeypatch.setattr(devtools.images.containerd, "require", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(devtools.images.containerd.subprocess, "run", run)
    return calls


def test_load_into_containerd_imports_into_the_kubelets_namespace(tmp_path, containerd_socket, monkeypatch):
    archive = tmp_path / "slm-sentiment-0.1.0.tar"
    archive.write_bytes(b"tar")
    calls = _fake_ctr(monkeypatch, stdout="unpacking docker.io/library/slm-sentiment:0.1.0 (sha256:ab12)...done\n")
    assert load_into_containerd(archive, containerd_socket) == ["docker.io/library/slm-sentiment:0.1.0"]
    assert calls == [["/usr/bin/ctr", "--address", str(containerd_socket), "-n", "k8s.io", "images", "import",
                      str(archive)]]
    load_into_containerd(str(archive), str(containerd_socket), namespace="other", snapshotter="native")
    assert calls[-1][3:] == ["-n", "other", "images", "import", "--snapshotter", "native", str(archive)]


def test_loading_errors_are_one_line(tmp_path, containerd_socket, monkeypatch):
    archive = tmp_path / "slm-sentiment-0.1.0.tar"
    with pytest.raises(ImageError, match="no image archive at .*slm-sentiment-0.1.0.tar; `slm images build`"):
        load_into_containerd(archive, containerd_socket)
    archive.write_bytes(b"tar")
    with pytest.raises(ImageError, match="no containerd socket at .*missing.sock"):
        load_into_containerd(archive, tmp_path / "missing.sock")
    _fake_ctr(monkeypatch, returncode=1, stderr="time=x level=info msg=start\nctr: unexpected EOF\n")
    with pytest.raises(ImageError) as failed:
        load_into_containerd(archive, containerd_socket)
    assert str(failed.value).endswith("failed (exit 1): ctr: unexpected EOF") and "\n" not in str(failed.value)


def test_sync_tags_names_of_held_images_and_imports_the_rest(tmp_path, containerd_socket, monkeypatch):
    skaffold_tag = "slm-sentiment:" + "ab" * 32
    podman_images = [
        # Built by `slm images build --tag slm-sentiment:t1 --load`, then tagged by ID through the Docker API.
        {"Id": "ab" * 32, "Names": ["localhost/slm-sentiment:t1", "docker.io/library/slm-sentiment:t1",
                                    "localhost/" + skaffold_tag]},
        {"Id": "ab" * 32, "Names": ["localhost/slm-sentiment:t1", "docker.io/library/slm-sentiment:t1",
                                    "localhost/" + skaffold_tag]},
        # Never loaded; and an image that is not ours.
        {"Id": "cd" * 32, "Names": ["localhost/slm-helpdesk:t2"]},
        {"Id": "ef" * 32, "Names": ["localhost/slm-python-base:3.11", "localhost/other/slm-x:1", "busybox:1"]},
        {"Id": "01" * 32, "Names": ["localhost/slm-python-base:3.11-new"]},  # the base is never deployed
    ]
    held = {"docker.io/library/slm-sentiment:t1", "docker.io/library/slm-python-base:3.11"}
    saved = []
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd[5:])
        if cmd[5:] == ["images", "ls", "-q"]:
            return subprocess.CompletedProcess(cmd, 0, "\n".join(held) + "\n", "")
        if cmd[5:7] == ["images", "import"]:
            assert saved and Path(cmd[-1]).is_file()
            return subprocess.CompletedProcess(cmd, 0, "unpacking docker.io/library/slm-helpdesk:t2 (sha256:x)\n", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(devtools.images.containerd, "require", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(devtools.images.containerd.subprocess, "run", run)

    def save(image_id, name, archive):
        saved.append((image_id, name))
        archive.write_bytes(b"tar")

    added = sync_names(podman_images, containerd_socket, save=save, work_dir=tmp_path / "work")
    assert added == ["docker.io/library/" + skaffold_tag, "docker.io/library/slm-helpdesk:t2"]
    assert ["images", "tag", "docker.io/library/slm-sentiment:t1", "docker.io/library/" + skaffold_tag] in calls
    assert saved == [("cd" * 32, "docker.io/library/slm-helpdesk:t2")]
    assert not (tmp_path / "work" / "sync.tar").exists()
    # Everything held: nothing to do.
    held.update(added)
    calls.clear()
    assert sync_names(podman_images, containerd_socket, save=save, work_dir=tmp_path / "work") == []
    assert calls == [["images", "ls", "-q"]]


def test_the_local_skaffold_profile_syncs_names_before_it_deploys():
    profile = next(p for p in yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())["profiles"]
                   if p["name"] == "local")
    hooks = [patch["value"] for patch in profile["patches"] if patch["path"] == "/deploy/helm/hooks"]
    assert hooks == [{"before": [{"host": {"command": [".venv/bin/slm", "images", "sync"]}}]}]


# --- tools and the command line -----------------------------------------------------------------

def test_a_missing_tool_or_root_is_one_line_that_says_what_to_do(monkeypatch):
    with pytest.raises(ImageError, match=r"`no-such-tool-slm` not found on PATH; `make images` installs"):
        require("no-such-tool-slm")
    monkeypatch.setattr(devtools.images.tools.os, "geteuid", lambda: 1000)
    with pytest.raises(ImageError, match=r"`slm images build` needs root"):
        require_root("`slm images build`")


def test_a_failed_step_is_one_line_naming_its_log(tmp_path):
    log = tmp_path / "logs" / "step.log"
    assert run_logged(["sh", "-c", "echo fine"], what="a step", log=log, timeout=30).strip() == "fine"
    with pytest.raises(ImageError) as failed:
        run_logged(["sh", "-c", "echo working; echo 'E: Unable to locate package nope' >&2; exit 100"],
                   what="debootstrap", log=log, timeout=30)
    assert str(failed.value) == f"debootstrap failed (exit 100): E: Unable to locate package nope (log: {log})"
    assert "working" in log.read_text() and "$ sh -c echo fine" in log.read_text()


def test_images_build_reports_one_line_per_image(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path))
    archive = tmp_path / "images" / "slm-sentiment-0.1.0.tar"
    monkeypatch.setattr(devtools.images, "prepare_podman", lambda layout: "podman")
    monkeypatch.setattr(devtools.images, "ensure_base_image",
                        lambda podman, layout, rebuild: BaseImage("localhost/slm-python-base:3.11-bookworm-abc",
                                                                  128_600_000, None))
    built = []

    def build(podman, layout, task, base_tag, archive, ca_bundle, tag=None):
        built.append((task, base_tag, archive))
        return BuiltImage(task, f"slm-{task}:0.1.0", "sha256:1", 713_400_000, 18.44,
                          tmp_path / "images" / f"slm-{task}-0.1.0.tar", 8.84)

    monkeypatch.setattr(devtools.images, "build_task_image", build)
    result = CliRunner().invoke(main, ["images", "build", "--task", "sentiment"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "localhost/slm-python-base:3.11-bookworm-abc  129 MB  cached (same recipe)",
        f"slm-sentiment:0.1.0  713 MB  built in 18.4s  {archive} (saved in 8.8s)"]
    assert built == [("sentiment", "localhost/slm-python-base:3.11-bookworm-abc", True)]


def test_images_build_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path))

    def refuse(layout):
        raise ImageError("`slm images build` needs root (debootstrap, and podman with its storage under .cache)")

    monkeypatch.setattr(devtools.images, "prepare_podman", refuse)
    result = CliRunner().invoke(main, ["images", "build"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: `slm images build` needs root (debootstrap, and podman with its storage under .cache)"]
    unknown = CliRunner().invoke(main, ["images", "build", "--task", "nope"])
    assert unknown.exit_code == 2 and "Invalid value for '--task'" in unknown.stderr
