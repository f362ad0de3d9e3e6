"""``slm models``: what model folders are installed, and whether their files are intact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.errors import SlmError
from shared.runtime.manifest import folder_problems
from shared.runtime.model_folder import INFO_FILE, ModelInfo, read_model_info
from shared.settings import WorkspaceSettings, default_model_dir
from shared.task_kinds import TASKS, kind_named

__all__ = ["FolderReport", "check_folder", "headline_metrics", "installed_folders"]

@dataclass(frozen=True)
class FolderReport:
    """One folder checked: its description (when readable) and every problem found."""

    folder: Path
    info: ModelInfo | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def size_bytes(self) -> int:
        """What serving needs: the manifest's required files and slm_model.json (no fp32 graph)."""
        listed = sum(entry["size"] for entry in (self.info.files if self.info else {}).values())
        info_file = self.folder / INFO_FILE
        return listed + (info_file.stat().st_size if info_file.is_file() else 0)


def installed_folders() -> list[Path]:
    """``models/<task>`` of each task that has one (or under ``SLM_MODELS_DIR``)."""
    workspace = WorkspaceSettings()
    return [folder for folder in (default_model_dir(task, workspace) for task in TASKS) if folder.is_dir()]


def check_folder(folder: Path) -> FolderReport:
    """Read ``slm_model.json`` and compare every file with its manifest; load nothing."""
    try:
        info = read_model_info(folder)
    except SlmError as exc:
        return FolderReport(folder, None, [str(exc)])
    return FolderReport(folder, info, [str(p) for p in folder_problems(folder, INFO_FILE, info.files,
                                                                        info.optional_files)])


def headline_metrics(info: ModelInfo) -> str:
    """The served graph's main test metrics (dev when the folder has none on a test set)."""
    from pipelines.kinds import recipe_class

    split = "test" if "test" in info.metrics else "dev"
    served = info.metrics.get(split, {}).get("served") or info.metrics.get(split, {}).get("int8")
    if not served:
        return "no metrics"
    return f"{split} {recipe_class(kind_named(info.kind, info.model_id)).scores.from_dict(served).listing()}"
