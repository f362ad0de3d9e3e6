"""The model card: metrics JSON, a Markdown summary and (classification) a confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_confusion_matrix", "write_card"]

MAX_FIGURE_INCHES = 14.0


def plot_confusion_matrix(metrics: dict, path: Path, title: str) -> None:
    """Draw the row-normalised confusion matrix with counts in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = metrics["confusion_matrix"]["labels"]
    counts = np.array(metrics["confusion_matrix"]["matrix"], dtype=float)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # At most 14 inches: 124 transaction categories at half an inch each made a 1 MB picture
    # in a model folder that must stay under 25 MB.
    size = min(MAX_FIGURE_INCHES, max(4.0, 0.5 * len(labels) + 2))
    ticks = 8 if len(labels) <= 40 else 4
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=ticks)
    ax.set_yticks(range(len(labels)), labels, fontsize=ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, int(counts[i, j]), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _metrics_table(per_label: dict) -> list[str]:
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in per_label.items():
        lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return lines


def _headline(metrics: dict) -> list[str]:
    """Bullet lines of the headline numbers: classification or entity metrics."""
    if "per_type" in metrics:  # entities
        return [f"- entity-level micro F1: **{metrics['f1']:.4f}** (precision {metrics['precision']:.4f}, "
                f"recall {metrics['recall']:.4f})", f"- sentences: {metrics['n']}"]
    lines = [f"- accuracy: **{metrics['accuracy']:.4f}**", f"- macro-F1: **{metrics['macro_f1']:.4f}**"]
    if "top3_accuracy" in metrics:
        lines.append(f"- top-3 accuracy: {metrics['top3_accuracy']:.4f}")
    if "baseline" in metrics:
        lines.append(f"- baseline TF-IDF + SVM: accuracy {metrics['baseline']['accuracy']:.4f}, "
                     f"macro-F1 {metrics['baseline']['macro_f1']:.4f}")
    return [*lines, f"- items: {metrics['n']}"]


def write_card(out_dir: Path, *, title: str, metrics: dict, details: dict) -> Path:
    """Write ``metrics.json``, ``card.md`` and, for classification, ``confusion_matrix.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # One line: an indented 124 x 124 confusion matrix is 186 KB of line breaks.
    (out_dir / "metrics.json").write_text(json.dumps(metrics, separators=(",", ":")) + "\n", encoding="utf-8")
    figure = []
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(metrics, out_dir / "confusion_matrix.png", title)
        figure = ["![confusion matrix](confusion_matrix.png)", ""]
    lines = [
        f"# {title}",
        "",
        *_headline(metrics),
        "",
        *_metrics_table(metrics.get("per_type") or metrics["per_label"]),
        "",
        *figure,
        "## Details",
        "",
        "```json",
        json.dumps(details, indent=2, sort_keys=True),
        "```",
        "",
    ]
    card = out_dir / "card.md"
    card.write_text("\n".join(lines), encoding="utf-8")
    return card
