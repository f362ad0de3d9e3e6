"""The model folder contract between the pipelines (which write it) and the services (which read it).

A model folder holds ``model.onnx`` (the served graph: int8, or fp32 where int8 would have
degraded the model), the tokenizer files, ``card/`` and ``slm_model.json`` with the task, the
label set, the review threshold, the column mapping, the metrics and the SHA-256 and size of
every other file (:mod:`shared.runtime.manifest`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.errors import ModelError
from shared.runtime.manifest import folder_manifest, verify_folder

__all__ = ["INFO_FILE", "ONNX_FILE", "ModelInfo", "open_model_folder", "read_model_info", "write_model_info"]

INFO_FILE = "slm_model.json"
ONNX_FILE = "model.onnx"


@dataclass
class ModelInfo:
    """Metadata stored with every exported model.

    Args:
        task (`str`): task name, e.g. ``"sentiment"``.
        name (`str`): model name reported in every result.
        version (`str`): version reported in every result (UTC timestamp of training).
        labels (`list[str]`): output labels in logit order.
        review_threshold (`float`): results scoring under it get ``review: true``.
        max_length (`int`): tokens kept per input.
        columns (`dict`): column mapping used for training, reused by evaluate.
        metrics (`dict`, defaults to `{}`): evaluation results (fp32 and int8).
        training (`dict`, defaults to `{}`): hyper-parameters, data hashes, timing.
        kind (`str`, defaults to `"classification"`): ``classification`` (one label per item)
            or ``entities`` (IOB2 tags per token, decoded into spans).
        precision (`str`, defaults to `"int8-dynamic"`): what ``model.onnx`` holds: ``int8-static``,
            ``int8-dynamic`` or ``fp32``.
        files (`dict`, defaults to `{}`): SHA-256 and size of every other file of the folder.
        optional_files (`dict`, defaults to `{}`): the same for files the folder may go without.
    """

    task: str
    name: str
    version: str
    labels: list[str]
    review_threshold: float
    max_length: int
    columns: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    kind: str = "classification"
    precision: str = "int8-dynamic"
    files: dict = field(default_factory=dict)
    optional_files: dict = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.version}"


def write_model_info(model_dir: Path, info: ModelInfo) -> None:
    """Write ``slm_model.json`` with the manifest of the folder's files as they are now.

    Confusion matrices stay in the card (``card/metrics.json``): with 124 labels the four of
    them (dev and test, served and fp32) made this file 1.1 MB. An optional file the manifest
    lists but the folder lacks (the fp32 graph a release folder leaves out) keeps its entry, so
    a copy put back later is still checked.
    """
    info.metrics = _without_confusion_matrices(info.metrics)
    absent = {name: entry for name, entry in (info.optional_files or {}).items()
              if not (Path(model_dir) / name).exists()}
    info.files, present = folder_manifest(Path(model_dir), INFO_FILE)
    info.optional_files = {**absent, **present}
    (model_dir / INFO_FILE).write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _without_confusion_matrices(metrics):
    if isinstance(metrics, dict):
        return {k: _without_confusion_matrices(v) for k, v in metrics.items() if k != "confusion_matrix"}
    return metrics


def read_model_info(model_dir: str | Path, graph: str = ONNX_FILE) -> ModelInfo:
    """Read and check ``slm_model.json``; a clear :class:`ModelError` when it, the tokenizer or
    ``graph`` (the served one unless told otherwise) is missing."""
    model_dir = Path(model_dir)
    info_path = model_dir / INFO_FILE
    if not model_dir.is_dir():
        raise ModelError(f"model folder {model_dir} does not exist; train one with `slm train <task>`")
    if not info_path.is_file():
        raise ModelError(f"{model_dir} is not a model folder: {INFO_FILE} is missing")
    for required in (graph, "tokenizer.json"):
        if not (model_dir / required).is_file():
            raise ModelError(f"model folder {model_dir} is incomplete: {required} is missing")
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
        return ModelInfo(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"{info_path} is not a valid model description: {exc}") from None


def open_model_folder(model_dir: str | Path) -> ModelInfo:
    """:func:`read_model_info`, then every file checked against the manifest: what a service,
    a Ray replica and ``slm evaluate`` call before they load anything."""
    info = read_model_info(model_dir)
    verify_folder(Path(model_dir), INFO_FILE, info.files, info.optional_files)
    return info
