"""The file manifest of a model folder: the SHA-256 and size of every file, checked before loading.

``slm_model.json`` lists every other file of its folder under ``files``. Files a folder may
go without (the fp32 graph, which the release models in the repository leave out) are listed
under ``optional_files``: absent is fine, present must match. A folder whose files differ,
are truncated, missing or not listed is refused as a whole, with one line naming the file
and the problem, before anything is loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ModelError

__all__ = ["FileProblem", "ModelIntegrityError", "OPTIONAL_FILES", "file_entry", "folder_manifest", "folder_problems",
           "verify_folder"]

# Written by training, not needed to serve: the benchmark's torch peers and re-quantization use it.
OPTIONAL_FILES = ("model.fp32.onnx",)


class ModelIntegrityError(ModelError):
    """A model folder's files do not match its manifest."""


@dataclass(frozen=True)
class FileProblem:
    """One file of a model folder that does not match the manifest."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def file_entry(path: Path) -> dict:
    """``{"sha256": ..., "size": ...}`` of one file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "size": size}


def _folder_files(model_dir: Path, info_file: str) -> list[str]:
    return sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")
                  if p.is_file() and p.relative_to(model_dir).as_posix() != info_file)


def folder_manifest(model_dir: Path, info_file: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """(required files, optional files) of ``model_dir`` as it is now, ``info_file`` left out."""
    required, optional = {}, {}
    for name in _folder_files(model_dir, info_file):
        (optional if name in OPTIONAL_FILES else required)[name] = file_entry(model_dir / name)
    return required, optional


def folder_problems(model_dir: Path, info_file: str, files: dict[str, dict] | None,
                    optional_files: dict[str, dict] | None = None) -> list[FileProblem]:
    """Every way ``model_dir`` differs from its manifest (empty when it matches)."""
    model_dir = Path(model_dir)
    if not files:
        return [FileProblem(model_dir / info_file, "has no file manifest ('files'); a folder written before "
                                                   "manifests existed: retrain it, or run `slm models manifest` "
                                                   "on it if you trust its files")]
    optional_files = optional_files or {}
    problems = []
    for name, expected in sorted(files.items()):
        problem = _file_problem(model_dir / name, expected, required=True)
        if problem:
            problems.append(FileProblem(model_dir / name, problem))
    for name, expected in sorted(optional_files.items()):
        problem = _file_problem(model_dir / name, expected, required=False)
        if problem:
            problems.append(FileProblem(model_dir / name, problem))
    for name in _folder_files(model_dir, info_file):
        if name not in files and name not in optional_files:
            problems.append(FileProblem(model_dir / name, f"is not listed in {info_file} (an extra file)"))
    return problems


def _file_problem(path: Path, expected: dict, *, required: bool) -> str | None:
    if not path.is_file():
        return f"is missing (listed in the manifest, {expected['size']} bytes)" if required else None
    size = path.stat().st_size
    if size < expected["size"]:
        return f"is truncated: {size} bytes, the manifest says {expected['size']}"
    if size > expected["size"]:
        return f"has {size} bytes, the manifest says {expected['size']}"
    if file_entry(path)["sha256"] != expected["sha256"]:
        return "content differs from the manifest (SHA-256 mismatch)"
    return None


def verify_folder(model_dir: Path, info_file: str, files: dict[str, dict] | None,
                  optional_files: dict[str, dict] | None = None) -> None:
    """Raise :class:`ModelIntegrityError` naming the first file that does not match, if any."""
    problems = folder_problems(model_dir, info_file, files, optional_files)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); `slm models verify` lists them)" if len(problems) > 1 else ""
        raise ModelIntegrityError(f"model folder refused: {problems[0]}{more}")
