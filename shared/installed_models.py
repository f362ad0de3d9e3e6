"""Which release model folders are installed: ``models/<task>`` of each task (or under ``SLM_MODELS_DIR``)."""

from __future__ import annotations

from pathlib import Path

from shared.settings import WorkspaceSettings, default_model_dir
from shared.task_kinds import TASKS

__all__ = ["installed_folders"]


def installed_folders() -> list[Path]:
    """``models/<task>`` of each task that has one, in task order."""
    workspace = WorkspaceSettings()
    return [folder for folder in (default_model_dir(task, workspace) for task in TASKS) if folder.is_dir()]
