"""Images into the local cluster's containerd: import, name sync for skaffold (ctr faked)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import yaml

import devtools.images
from devtools.images import ImageError
from devtools.images.containerd import load_into_containerd, sync_names
from shared.settings import REPO_ROOT


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
