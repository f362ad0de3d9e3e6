"""A flame graph SVG from collapsed stacks, so that one py-spy recording gives both the SVG and the table.

py-spy writes its own SVG with ``--format flamegraph``, but a second recording of the same load
(or two samplers on one process) would cost the service more CPU; this draws the same picture
from the collapsed stacks of one ``--format raw`` recording: the outermost frame at the bottom,
each frame as wide as its share of the samples, a tooltip with the count, colours by category
(:mod:`bench.profile_stacks`). Thread-id frames are left out, so that threads running the same
code merge, and native addresses (``0x7f.. (libc.so.6)``) are drawn as their library.
"""

from __future__ import annotations

import html
import re

from bench.profile_stacks import CATEGORIES, category_of_frame

__all__ = ["flamegraph_svg"]

WIDTH, ROW, MIN_FRACTION = 1200, 16, 0.001
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+ \((?P<lib>[^()]*)\)$")
# A folder path in a frame (the process's command line): the graph names the program, not where it was installed.
_FOLDERS = re.compile(r"(?<![\w.:/])/(?:[\w.+-]+/)+(?=[\w.+-])")
_PALETTE = ["#e8a33d", "#7fb3d5", "#c39bd3", "#82c785", "#f1948a", "#f7dc6f", "#85c1e9"]
_COLOURS = {category: _PALETTE[k % len(_PALETTE)] for k, category in enumerate(CATEGORIES)}


def _tidy(frames: list[str]) -> list[str]:
    out = []
    for frame in frames:
        if frame.startswith("thread ("):
            continue
        match = _ADDRESS.match(frame)
        out.append(f"[{match['lib']}]" if match else _FOLDERS.sub("", frame))
    return out


def _tree(stacks: list[tuple[list[str], int]]) -> dict:
    root: dict = {"n": 0, "children": {}}
    for frames, count in stacks:
        node = root
        node["n"] += count
        for frame in _tidy(frames):
            node = node["children"].setdefault(frame, {"n": 0, "children": {}})
            node["n"] += count
    return root


def flamegraph_svg(stacks: list[tuple[list[str], int]], title: str) -> str:
    """The SVG text of a flame graph of ``stacks`` (``(frames, count)``, outermost frame first)."""
    root = _tree(stacks)
    total = max(root["n"], 1)
    rects: list[tuple[int, float, float, str, int]] = []  # depth, x, width, frame, samples

    def walk(node: dict, depth: int, x: float) -> int:
        deepest = depth
        for frame, child in sorted(node["children"].items()):
            width = child["n"] / total * WIDTH
            if child["n"] / total >= MIN_FRACTION:
                rects.append((depth, x, width, frame, child["n"]))
                deepest = max(deepest, walk(child, depth + 1, x))
            x += width
        return deepest

    depth = walk(root, 0, 0.0) + 1
    height = (depth + 2) * ROW
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" '
             f'font-size="11">', f'<rect width="100%" height="100%" fill="#ffffff"/>',
             f'<text x="4" y="{ROW - 4}">{html.escape(title)} ({total} samples)</text>']
    for level, x, width, frame, samples in rects:
        y = height - (level + 1) * ROW
        category = category_of_frame(frame)
        colour = _COLOURS.get(category, "#d5d8dc")
        label = html.escape(frame)
        chars = int(width / 7)
        text = html.escape(frame[:chars - 2] + "..") if len(frame) > chars else label
        parts.append(f'<g><title>{label}: {samples} samples ({100 * samples / total:.1f}%)</title>'
                     f'<rect x="{x:.1f}" y="{y}" width="{max(width - 0.5, 0.1):.1f}" height="{ROW - 1}" '
                     f'fill="{colour}"/>' + (f'<text x="{x + 2:.1f}" y="{y + ROW - 4}">{text}</text>' if chars > 3 else "")
                     + "</g>")
    parts.append("</svg>")
    return "\n".join(parts)
