"""``slm models``: what model folders are installed, and whether their files are intact."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from shared.console import clean_errors
from shared.errors import ConfigError, SlmError
from shared.installed_models import installed_folders
from shared.runtime.manifest import folder_problems
from shared.runtime.model_folder import INFO_FILE, ModelInfo, read_model_info
from shared.task_kinds import kind_named

__all__ = ["FolderReport", "check_folder", "headline_metrics", "models"]


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


@click.group()
def models() -> None:
    """Installed model folders: list them, verify their files against their manifests."""


@models.command("verify")
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@click.option("--scores", is_flag=True,
              help="Also load each model and answer its reference requests: the same answers as stored?")
@clean_errors
def models_verify(folders: tuple[Path, ...], scores: bool) -> None:
    """Check FOLDERS (default: models/<task> of each task) against their manifests, loading nothing.

    With --scores, each intact folder's model also answers the requests stored in its
    reference_answers.json, and the answers are compared with the stored ones: a machine whose
    CPU or ONNX Runtime gives other answers than the card's fails here. One line per folder, one
    per problem; exit 1 when any folder fails.
    """
    folders = folders or tuple(installed_folders())
    if not folders:
        raise ConfigError("no model folders given and none installed under models/")
    failed = 0
    for folder in folders:
        report = check_folder(folder)
        if not report.ok:
            failed += 1
            for problem in report.problems:
                click.echo(f"FAIL  {problem}")
            continue
        click.echo(f"ok    {folder} ({report.info.model_id}, {len(report.info.files)} files)")
        if scores:
            line, ok = _check_scores(folder, report.info)
            click.echo(f"{'ok' if ok else 'FAIL':<6}{folder}: {line}")
            failed += not ok
    if failed:
        sys.exit(1)


def _check_scores(folder: Path, info: ModelInfo) -> tuple[str, bool]:
    from shared.reference_check import check_reference_answers
    from shared.runtime.reference_answers import REFERENCE_ANSWERS_FILE, read_reference_answers
    from shared.task_kinds import load_processor

    reference = read_reference_answers(folder)
    if reference is None:
        return f"no {REFERENCE_ANSWERS_FILE} (`slm models reference {folder}` writes one)", False
    check = check_reference_answers(load_processor(info.task, folder, cache_size=0), reference)
    return check.summary(), check.ok


@models.command("reference")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--data", "data_file", type=click.Path(path_type=Path, exists=True), default=None,
              help="Labelled held-out file (default: the folder's task's test split).")
@clean_errors
def models_reference(folder: Path, data_file: Path | None) -> None:
    """Write FOLDER's reference answers on this machine, and rewrite its manifest.

    For a folder trained before training wrote them (training does, from its test file): run it
    where the card's figures were measured, since every other node is compared with this one.
    """
    from pipelines.reference_refresh import refresh_reference_answers
    from pipelines.tasks import dataset_for
    from shared.runtime.reference_answers import REFERENCE_ANSWERS_FILE

    data_file = data_file or dataset_for(read_model_info(folder).task).test_file
    reference = refresh_reference_answers(folder, data_file)
    facts = reference["measured_with"]
    click.echo(f"{folder / REFERENCE_ANSWERS_FILE}: {len(reference['items'])} answers of {reference['model']} on "
               f"{data_file}, ONNX Runtime {facts['onnxruntime']} on {facts['cpu']}; manifest rewritten")


@models.command("list")
@clean_errors
def models_list() -> None:
    """Task, model id, served precision, headline metrics, size and integrity of each installed folder."""
    rows = [("task", "model", "served", "metrics", "size", "files")]
    for folder in installed_folders():
        report = check_folder(folder)
        info = report.info
        rows.append((folder.name, info.model_id if info else "?", info.precision if info else "?",
                     headline_metrics(info) if info else "?", f"{report.size_bytes / 1e6:.1f} MB",
                     "ok" if report.ok else f"{len(report.problems)} problem(s)"))
    if len(rows) == 1:
        click.echo("no model folders under models/")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@models.command("manifest")
@click.argument("folder", type=click.Path(path_type=Path))
@clean_errors
def models_manifest(folder: Path) -> None:
    """Rewrite FOLDER's manifest from its files as they are now (after a change you made on purpose)."""
    from shared.runtime import read_model_info, write_model_info

    info = read_model_info(folder)
    write_model_info(folder, info)
    click.echo(f"{folder}: manifest of {len(info.files)} files (+{len(info.optional_files)} optional) written")
