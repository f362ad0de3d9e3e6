"""Writing a model folder safely, and the pieces every task's training shares.

A model is built in a scratch folder beside its destination and swapped in only after
every check passed: a failed or interrupted run never leaves a half-written or degraded
model where a service would load it.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from shared.settings import REPO_ROOT

__all__ = ["REVIEW_TARGET_PRECISION", "REVIEW_THRESHOLD_BOUNDS", "building", "code_provenance", "data_provenance", "evaluation_card_dir",
           "file_sha256", "recorded_path", "resolve_recorded_path", "pick_review_threshold", "subsample"]

# Results scoring under the threshold go to review; it is set so that the items kept
# out of review are right this often on dev, within these bounds.
REVIEW_TARGET_PRECISION = 0.95
REVIEW_THRESHOLD_BOUNDS = (0.5, 0.95)

T = TypeVar("T")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_path(path: Path) -> str:
    """A data file's path as a card records it: relative to the repository for the shipped
    data (a card names no folder of the machine that trained it), as given otherwise."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def resolve_recorded_path(recorded: str) -> Path:
    """The file a card's :func:`recorded_path` names, on this machine."""
    path = Path(recorded)
    return path if path.is_absolute() or path.exists() else REPO_ROOT / path


def evaluation_card_dir(info, data_file: Path) -> Path:
    """Where ``slm evaluate`` writes its card by default: under ``reports/``, never into the model
    folder (whose manifest lists exactly the files it was saved with)."""
    return Path("reports") / f"{info.name}-{info.version}" / f"eval-{Path(data_file).name.split('.')[0]}"


def data_provenance(train_file: Path, train_used: int, dev_file: Path | None, dev_used: int,
                    test_file: Path | None, *, more_train: Sequence[Path] = (), feedback: Sequence[Path] = ()) -> dict:
    """Which files trained and scored a model, with their hashes, for the model card.

    ``train`` names the first training file (``rows_used`` counts every training item); further
    ``--data`` files and ``--feedback`` files are listed under ``more_train`` and ``feedback``.
    """
    listed = {name: [{"file": recorded_path(f), "sha256": file_sha256(f)} for f in files]
              for name, files in (("more_train", more_train), ("feedback", feedback)) if files}
    return {
        "train": {"file": recorded_path(train_file), "sha256": file_sha256(train_file), "rows_used": train_used},
        **listed,
        "dev": {"file": recorded_path(dev_file or train_file), "rows_used": dev_used,
                **({"sha256": file_sha256(dev_file)} if dev_file else {"carved_from": "train"})},
        **({"test": {"file": recorded_path(test_file), "sha256": file_sha256(test_file)}} if test_file else {}),
    }


def code_provenance() -> dict:
    """The commit of the code that trained a model and whether its tree had changes.

    ``unknown`` outside a git checkout (an installed package, an image): a card never
    claims a commit it cannot show.
    """
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    # Untracked scratch (models, caches) is ignored by .gitignore; any other change counts.
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def pick_review_threshold(scores: np.ndarray, correct: np.ndarray) -> float:
    """Smallest score t such that items scoring >= t are right REVIEW_TARGET_PRECISION of the time."""
    low, high = REVIEW_THRESHOLD_BOUNDS
    for hundredths in range(round(low * 100), round(high * 100) + 1):
        threshold = hundredths / 100
        kept = scores >= threshold
        if kept.any() and correct[kept].mean() >= REVIEW_TARGET_PRECISION:
            return threshold
    return high


def subsample(items: list[T], limit: int | None, seed: int) -> list[T]:
    if limit is None or len(items) <= limit:
        return items
    return random.Random(seed).sample(items, limit)


@contextmanager
def building(out_dir: Path) -> Iterator[Path]:
    """A scratch folder beside ``out_dir``, swapped into place when the block succeeds."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    build_dir.chmod(0o755)  # mkdtemp's 0700 would hide the model from a service running as another user
    try:
        yield build_dir
        _swap_into_place(build_dir, out_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise


def _swap_into_place(build_dir: Path, out_dir: Path) -> None:
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{build_dir.name.rsplit('-', 1)[-1]}")
        out_dir.rename(old)
        build_dir.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        build_dir.rename(out_dir)
