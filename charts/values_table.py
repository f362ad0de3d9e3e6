"""Rewrite the values table of a chart README from the `## @section` / `## @param` comments of its
values.yaml (the comment format of bitnami's readme-generator-for-helm).

    .venv/bin/python charts/values_table.py charts/slm-task charts/slm-services

The table goes between the `<!-- values-table:start -->` and `<!-- values-table:end -->` lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"


def _default(values: dict, key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"@param {key} names no key of values.yaml")
        node = node[part]
    return node


def _cell(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, str):
        return '`""`' if value == "" else f"`{value}`"
    return "`" + json.dumps(value, separators=(", ", ": ")).replace("|", "\\|") + "`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def values_table(values_file: Path) -> str:
    values = yaml.safe_load(values_file.read_text())
    lines: list[str] = []
    for raw in values_file.read_text().splitlines():
        line = raw.strip()
        if line.startswith("## @section"):
            title = line.removeprefix("## @section").strip()
            lines += ["", f"### {title}", "", "| Name | Description | Default |", "| --- | --- | --- |"]
        elif line.startswith("## @param"):
            key, _, description = line.removeprefix("## @param").strip().partition(" ")
            lines.append(f"| `{key}` | {_escape(description.strip())} | {_cell(_default(values, key))} |")
    return "\n".join(lines).strip()


def update_readme(chart: Path) -> None:
    readme = chart / "README.md"
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{readme}: no {START} line")
    readme.write_text(f"{head}{START}\n{values_table(chart / 'values.yaml')}\n{END}{tail}")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        update_readme(Path(argument))
