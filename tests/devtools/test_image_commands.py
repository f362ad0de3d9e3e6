"""``slm images`` on the command line: one line per image, and every failure as one line that says what to do."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import devtools.images
from devtools.images import ImageError
from devtools.images.base import (BaseImage)
from devtools.images.build import BuiltImage
from devtools.images.host_programs import require, require_root, run_logged
from slm.cli import main


def test_a_missing_tool_or_root_is_one_line_that_says_what_to_do(monkeypatch):
    with pytest.raises(ImageError, match=r"`no-such-tool-slm` not found on PATH; `make images` installs"):
        require("no-such-tool-slm")
    monkeypatch.setattr(devtools.images.host_programs.os, "geteuid", lambda: 1000)
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
