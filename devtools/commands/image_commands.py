"""``slm images``: the task images, built by podman without a registry, and loaded into a containerd."""

from __future__ import annotations

from pathlib import Path

import click

from devtools.commands import tasks_option
from shared.console import clean_errors
from shared.errors import ConfigError
from shared.task_kinds import TASKS

__all__ = ["images_group"]


@click.group("images")
def images_group() -> None:
    """Images of the task services, built by podman without a registry; storage under .cache (root)."""


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.0f} MB"


@images_group.command("build")
@tasks_option
@click.option("--rebuild-base", is_flag=True, help="Debootstrap the base image again (e.g. for newer Debian updates).")
@click.option("--no-archive", is_flag=True, help="Skip .cache/images/<image>.tar (the archive for ctr images import).")
@click.option("--tag", default=None, help="Another image name than slm-<task>:<appVersion> (one --task; skaffold's $IMAGE).")
@click.option("--load", is_flag=True, help="Import each image into the local cluster's containerd (slm cluster up).")
@clean_errors
def images_build(tasks: tuple[str, ...], rebuild_base: bool, no_archive: bool, tag: str | None, load: bool) -> None:
    """Build slm-<task>:<chart appVersion> from services/Dockerfile on a debootstrap'ed Debian base.

    One line per image: its tag, size and build time, and the archive written for containerd.
    """
    if tag and len(tasks) != 1:
        raise ConfigError("--tag names one image: give exactly one --task with it")
    if load and no_archive:
        raise ConfigError("--load imports the archive: drop --no-archive")
    from devtools.images import ImageLayout, build_task_image, ensure_base_image, file_lock, prepare_podman
    from devtools.images.build import build_ca_bundle

    layout = ImageLayout()
    with file_lock(layout.lock_file):
        podman = prepare_podman(layout)
        base = ensure_base_image(podman, layout, rebuild=rebuild_base)
        how = "cached (same recipe)" if base.seconds is None else f"built in {base.seconds:.0f}s"
        click.echo(f"{base.tag}  {_megabytes(base.size_bytes)}  {how}")
        ca_bundle = build_ca_bundle()
        for task in tasks or TASKS:
            image = build_task_image(podman, layout, task, base.tag, archive=not no_archive, ca_bundle=ca_bundle,
                                     tag=tag)
            line = f"{image.tag}  {_megabytes(image.size_bytes)}  built in {image.build_seconds:.1f}s"
            if image.archive is not None:
                saved = "unchanged" if image.save_seconds is None else f"saved in {image.save_seconds:.1f}s"
                line += f"  {image.archive} ({saved})"
            if load:
                _load_into_local_cluster(image.archive)
                line += "  loaded into the local cluster"
            click.echo(line)


def _load_into_local_cluster(archive: Path) -> None:
    from devtools.images import load_into_containerd
    from devtools.local_cluster import ClusterConfig, ClusterError

    socket = ClusterConfig().containerd_socket
    if not socket.is_socket():
        raise ClusterError(f"no local cluster to load into ({socket} is missing): `slm cluster up` starts it")
    load_into_containerd(archive, socket)


@images_group.command("list")
@clean_errors
def images_list() -> None:
    """The slm images in .cache/containers: name, size, creation time, archive."""
    from devtools.images import ImageLayout, list_images
    from devtools.images.podman import Podman

    layout = ImageLayout()
    if not (layout.containers_dir / "storage").is_dir():
        click.echo("no images yet (slm images build)")
        return
    for row in list_images(Podman.found(layout), layout):
        click.echo(f"{row.name:<48} {_megabytes(row.size_bytes):>8}  {row.created}  {row.archive or '-'}")


@images_group.command("load")
@tasks_option
@click.option("--address", required=True, help="containerd's socket, e.g. /run/containerd/containerd.sock.")
@click.option("--namespace", default="k8s.io", show_default=True, help="containerd namespace (the kubelet's).")
@clean_errors
def images_load(tasks: tuple[str, ...], address: str, namespace: str) -> None:
    """Import the archives of `slm images build` into a containerd, where the kubelet finds them."""
    from devtools.images import ImageLayout, load_into_containerd, task_image_tag

    layout = ImageLayout()
    for task in tasks or TASKS:
        names = load_into_containerd(layout.archive(task_image_tag(task)), address, namespace=namespace)
        click.echo(f"{task}: {', '.join(names) or 'imported'}")


@images_group.command("sync")
@clean_errors
def images_sync() -> None:
    """Give the local cluster's containerd every name podman has for an slm image.

    skaffold (profile ``local``) deploys what it built under a tag of the image ID that it sets
    through podman's Docker API; its deploy hook runs this so the kubelet finds that tag.
    """
    from devtools.images import ImageLayout, file_lock
    from devtools.images.containerd import sync_names
    from devtools.images.podman import Podman
    from devtools.local_cluster import ClusterConfig, ClusterError

    socket = ClusterConfig().containerd_socket
    if not socket.is_socket():
        raise ClusterError(f"no local cluster to load into ({socket} is missing): `slm cluster up` starts it")
    layout = ImageLayout()
    podman = Podman.found(layout)

    def save(image_id: str, name: str, archive: Path) -> None:
        podman.run("tag", image_id, name, what=f"podman tag of {name}", log=layout.log("sync"))
        podman.run("save", "--format", "docker-archive", "--output", str(archive), name,
                   what=f"podman save of {name}", log=layout.log("sync"), timeout=900)

    with file_lock(layout.lock_file):
        podman.prepare()
        added = sync_names(podman.images(), socket, save=save, work_dir=layout.images_dir)
    click.echo(f"added to the local cluster: {' '.join(added)}" if added else "the local cluster has every slm image name")
