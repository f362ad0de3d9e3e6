"""The base image: Debian bookworm minbase with Python 3.11, made by debootstrap, imported into podman.

No registry is reachable, so no ``python:3.11-slim``: debootstrap fetches the packages from the
Debian mirror this host's apt uses, the root filesystem is slimmed (no apt lists, docs, man pages
or locales) and ``podman import`` turns it into a one-layer image of about 128 MB.

The recipe (packages, sources, steps, files, the paths removed) is data; its SHA-256 is in the
image tag, so the base is built once and again only when the recipe changes (``--rebuild-base``
forces it, e.g. for newer security updates).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from devtools.errors import ImageError
from devtools.images.layout import ImageLayout
from devtools.images.podman import Podman
from devtools.images.host_programs import require, require_root, run_logged

__all__ = ["BaseImage", "BaseRecipe", "DebianMirrors", "debian_mirrors", "ensure_base_image", "host_debian_mirrors",
           "mounts_below", "parse_sources", "remove_tree", "slim_rootfs"]

logger = logging.getLogger(__name__)

# Bump when a step changes in a way the recipe's data does not show (the code of a step).
RECIPE_VERSION: Final = 1
BASE_REPOSITORY: Final = "localhost/slm-python-base"
DEFAULT_MIRRORS: Final = ("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")

# What the Dockerfile needs from its base. debootstrap resolves no virtual packages: python3.11-venv
# depends on the virtual python3.11-distutils, which python3-distutils provides in bookworm, and on
# the pip and setuptools wheels that `python -m venv` installs; name them all or the venv package
# stays unconfigured. wget: KubeRay's probes of Ray pods run it. ca-certificates: pip and the
# Kafka client's TLS.
PACKAGES: Final = ("python3.11", "python3.11-venv", "python3-distutils", "python3-pip-whl", "python3-setuptools-whl",
                   "wget", "ca-certificates")

# Packages installed later (the Dockerfile, a user's image on top) skip these too.
DPKG_EXCLUDES: Final = """\
# slm base image: no documentation, manuals or translations (the copyright files stay)
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
"""
APT_CONF: Final = 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'

# Removed from the root filesystem before import: the package lists and caches (apt-get update
# fetches them again), what DPKG_EXCLUDES keeps out of later installs, logs, backups.
SLIM_GLOBS: Final = ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                     "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
                     "var/log/*.log", "var/log/apt/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old",
                     "var/cache/ldconfig/aux-cache", "tmp/*", "var/tmp/*")
# The container runtime mounts its own; debootstrap copied the host's.
EMPTIED_FILES: Final = ("etc/resolv.conf", "etc/hostname")

# Inside the chroot: security and point-release updates on top of what debootstrap installed.
CHROOT_ENV: Final = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C", "HOME": "/root",
                     "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
CHROOT_STEPS: Final = (("apt-get", "-q", "update"), ("apt-get", "-q", "-y", "upgrade"), ("apt-get", "clean"))

_DEBOOTSTRAP_TIMEOUT_S: Final = 1800.0
_STEP_TIMEOUT_S: Final = 900.0


# --- the host's Debian mirror ------------------------------------------------------------------

@dataclass(frozen=True)
class DebianMirrors:
    """Where the packages come from: the archive (``bookworm``, ``bookworm-updates``) and the security archive."""

    archive: str = DEFAULT_MIRRORS[0]
    security: str = DEFAULT_MIRRORS[1]


def parse_sources(text: str, *, deb822: bool) -> list[tuple[str, list[str]]]:
    """The enabled binary (``deb``) entries of an apt sources file as (URI, suites)."""
    entries: list[tuple[str, list[str]]] = []
    if not deb822:  # one-line format: deb [options] uri suite component...
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            if words[1].startswith("["):
                closing = next((i for i, w in enumerate(words) if w.endswith("]")), len(words) - 1)
                words = [words[0], *words[closing + 1:]]
            if len(words) >= 3:
                entries.append((words[1], [words[2]]))
        return entries
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append((uri, fields.get("suites", "").split()))
    return entries


def debian_mirrors(entries: Iterable[tuple[str, list[str]]], suite: str) -> DebianMirrors:
    """The first archive that serves *suite* and the first that serves ``<suite>-security``; the defaults otherwise."""
    entries = list(entries)
    archive = next((uri for uri, suites in entries if suite in suites), DEFAULT_MIRRORS[0])
    security = next((uri for uri, suites in entries if f"{suite}-security" in suites), DEFAULT_MIRRORS[1])
    return DebianMirrors(archive.rstrip("/"), security.rstrip("/"))


def host_debian_mirrors(suite: str, apt_dir: Path = Path("/etc/apt")) -> DebianMirrors:
    """The mirrors this host's apt uses for *suite* (``sources.list``, ``sources.list.d/*.list|*.sources``)."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list")),
             *sorted((apt_dir / "sources.list.d").glob("*.sources"))]
    entries: list[tuple[str, list[str]]] = []
    for path in files:
        try:
            entries += parse_sources(path.read_text(), deb822=path.suffix == ".sources")
        except OSError:
            continue
    return debian_mirrors(entries, suite)


# --- the recipe --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BaseRecipe:
    """How the base image is made. Its :attr:`digest` covers every field and step, not the mirror."""

    suite: str = "bookworm"
    packages: tuple[str, ...] = PACKAGES
    python: str = "python3.11"
    files: tuple[tuple[str, str], ...] = (("etc/dpkg/dpkg.cfg.d/slm-slim", DPKG_EXCLUDES),
                                          ("etc/apt/apt.conf.d/90slm-no-recommends", APT_CONF))
    slim_globs: tuple[str, ...] = SLIM_GLOBS
    chroot_steps: tuple[tuple[str, ...], ...] = CHROOT_STEPS
    env: tuple[tuple[str, str], ...] = field(default=(
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ("LANG", "C.UTF-8")))

    def debootstrap_command(self, rootfs: Path | str, mirror: str) -> list[str]:
        return ["debootstrap", "--variant=minbase", f"--include={','.join(self.packages)}", self.suite, str(rootfs),
                mirror]

    def sources(self, mirrors: DebianMirrors) -> str:
        """``/etc/apt/sources.list.d/debian.sources`` of the image, in the official images' form."""
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        return (f"Types: deb\nURIs: {mirrors.archive}\nSuites: {self.suite} {self.suite}-updates\n"
                f"Components: main\nSigned-By: {keyring}\n\n"
                f"Types: deb\nURIs: {mirrors.security}\nSuites: {self.suite}-security\n"
                f"Components: main\nSigned-By: {keyring}\n")

    def links(self) -> dict[str, str]:
        """``python`` on PATH, as in the official images the Dockerfile was written for."""
        return {"usr/local/bin/python": f"/usr/bin/{self.python}"}

    def import_changes(self) -> list[str]:
        """The image configuration ``podman import --change`` sets."""
        return [*(f"ENV={key}={value}" for key, value in self.env), 'CMD=["python3"]']

    def description(self) -> str:
        """Everything that makes the image, as canonical JSON (the mirror and the work folder left out)."""
        placeholder = DebianMirrors("<mirror>", "<security-mirror>")
        return json.dumps({
            "version": RECIPE_VERSION,
            "debootstrap": self.debootstrap_command("<rootfs>", placeholder.archive),
            "sources": self.sources(placeholder),
            "files": dict(self.files),
            "chroot": [list(step) for step in self.chroot_steps],
            "slim": list(self.slim_globs),
            "emptied": list(EMPTIED_FILES),
            "links": self.links(),
            "changes": self.import_changes(),
        }, sort_keys=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.description().encode()).hexdigest()

    @property
    def tag(self) -> str:
        """``localhost/slm-python-base:3.11-bookworm-<12 hex digits of the digest>``."""
        version = self.python.removeprefix("python")
        return f"{BASE_REPOSITORY}:{version}-{self.suite}-{self.digest[:12]}"


# --- the root filesystem ------------------------------------------------------------------------

def mounts_below(path: Path, mounts: Path = Path("/proc/self/mounts")) -> list[str]:
    """Mount points at or under *path* (a failed debootstrap can leave its /proc mounted)."""
    root = str(path.absolute()).rstrip("/")
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return [p for p in points if p == root or p.startswith(root + "/")]


def remove_tree(path: Path, mounts: Path = Path("/proc/self/mounts")) -> None:
    """Remove a work folder; never one with a file system mounted inside (that would be the host's)."""
    mounted = mounts_below(path, mounts)
    if mounted:
        raise ImageError(f"{path} has mounts inside ({', '.join(mounted)}); unmount them (umount -R) and retry")
    shutil.rmtree(path, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def slim_rootfs(rootfs: Path, recipe: BaseRecipe) -> None:
    """Remove what a container never reads; keep each package's copyright file."""
    for pattern in recipe.slim_globs:
        for path in rootfs.glob(pattern):
            _remove(path)
    for package_doc in (rootfs / "usr/share/doc").glob("*"):
        if package_doc.is_dir() and not package_doc.is_symlink():
            for entry in package_doc.iterdir():
                if entry.name != "copyright":
                    _remove(entry)
    for name in EMPTIED_FILES:
        target = rootfs / name
        if target.is_file() and not target.is_symlink():
            target.write_bytes(b"")


# --- building and caching -----------------------------------------------------------------------

@dataclass(frozen=True)
class BaseImage:
    """The base image in podman's storage; ``seconds`` is None when it was already there."""

    tag: str
    size_bytes: int
    seconds: float | None


def build_base_image(podman: Podman, layout: ImageLayout, recipe: BaseRecipe, mirrors: DebianMirrors) -> None:
    """debootstrap, updates, slimming, ``podman import``; the root filesystem is removed afterwards."""
    require_root("building the base image")
    for tool in ("debootstrap", "chroot", "tar"):
        require(tool)
    short = recipe.digest[:12]
    work = layout.work_dir / f"base-{short}"
    rootfs, tarball = work / "rootfs", work / "rootfs.tar"
    log = layout.log(f"base-{short}")
    log.unlink(missing_ok=True)
    remove_tree(work)
    work.mkdir(parents=True)
    logger.info("building %s from %s (log: %s)", recipe.tag, mirrors.archive, log)
    run_logged(recipe.debootstrap_command(rootfs, mirrors.archive), what="debootstrap", log=log,
               timeout=_DEBOOTSTRAP_TIMEOUT_S)
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(recipe.sources(mirrors))
    for name, text in recipe.files:
        (rootfs / name).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / name).write_text(text)
    for step in recipe.chroot_steps:
        run_logged(["chroot", str(rootfs), *step], what=f"{' '.join(step)} in the base image", log=log,
                   timeout=_STEP_TIMEOUT_S, env=CHROOT_ENV)
    slim_rootfs(rootfs, recipe)
    for name, target in recipe.links().items():
        (rootfs / name).unlink(missing_ok=True)
        (rootfs / name).symlink_to(target)
    # /dev, /proc and /sys are the runtime's: their mount points go in, not debootstrap's device nodes.
    run_logged(["tar", "--numeric-owner", "-C", str(rootfs), "--exclude=./dev/*", "--exclude=./proc/*",
                "--exclude=./sys/*", "-cf", str(tarball), "."], what="tar of the base image", log=log,
               timeout=_STEP_TIMEOUT_S)
    changes = [arg for change in recipe.import_changes() for arg in ("--change", change)]
    podman.run("import", *changes, "--change", f"LABEL=org.slm.base-recipe={recipe.digest}",
               "--message", f"debootstrap {recipe.suite} minbase + {recipe.python}", str(tarball), recipe.tag,
               what="podman import of the base image", log=log, timeout=_STEP_TIMEOUT_S)
    remove_tree(work)


def ensure_base_image(podman: Podman, layout: ImageLayout, recipe: BaseRecipe | None = None, *,
                      rebuild: bool = False, mirrors: DebianMirrors | None = None) -> BaseImage:
    """The base image of *recipe*: the one in storage when its tag (the recipe's digest) is there, else built."""
    recipe = recipe or BaseRecipe()
    if rebuild or not podman.image_exists(recipe.tag):
        started = time.monotonic()
        build_base_image(podman, layout, recipe, mirrors or host_debian_mirrors(recipe.suite))
        seconds: float | None = time.monotonic() - started
    else:
        seconds = None
    return BaseImage(recipe.tag, int(podman.inspect(recipe.tag)["Size"]), seconds)
