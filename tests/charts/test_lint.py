"""The chart sources, before anything is rendered: `helm lint --strict` with each values file, the
offline dependency build, every value documented in the README tables, the values schemas of the
umbrella and task charts, and no machine path in any chart file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.support import CHARTS, MACHINE_PATH, TASKS, run_helm


@pytest.mark.parametrize(
    ("chart", "values_file"),
    [
        ("slm-task", None),
        ("slm-services", None),
        ("slm-services", "values-dev.yaml"),
        ("slm-services", "values-production.yaml"),
        ("slm-services", "values-production-keda.yaml"),
    ],
)
def test_helm_lint_strict(helm_env, charts_dir, chart, values_file):
    # The library chart (charts/common) is linted through the charts that use it.
    args = ["lint", "--strict", charts_dir / chart]
    if values_file:
        args += ["--values", charts_dir / chart / values_file]
    result = run_helm(helm_env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_umbrella_dependencies_build_offline(charts_dir):
    lock = yaml.safe_load((charts_dir / "slm-services" / "Chart.lock").read_text())
    assert all(dep["repository"].startswith("file://") for dep in lock["dependencies"])
    built = sorted(p.name for p in (charts_dir / "slm-services" / "charts").glob("*.tgz"))
    assert built == ["slm-common-0.1.0.tgz", "slm-task-0.1.0.tgz"]
    chart = yaml.safe_load((CHARTS / "slm-services" / "Chart.yaml").read_text())
    aliases = {dep.get("alias"): dep.get("condition") for dep in chart["dependencies"] if dep["name"] == "slm-task"}
    assert aliases == {task: f"{task}.enabled" for task in TASKS}
    common = yaml.safe_load((CHARTS / "common" / "Chart.yaml").read_text())
    assert common["type"] == "library"


def _documented_params(values_file: Path) -> list[str]:
    return [line.split()[2] for line in values_file.read_text().splitlines()
            if line.strip().startswith(("## @param", "## @skip"))]


def _leaf_keys(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [k for key, value in values.items() for k in _leaf_keys(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


@pytest.mark.parametrize("chart", ["slm-task", "slm-services"])
def test_every_value_has_a_param_line_in_the_readme_table(chart):
    values_file = CHARTS / chart / "values.yaml"
    documented = _documented_params(values_file)
    for key in _leaf_keys(yaml.safe_load(values_file.read_text())):
        parts = key.split(".")
        assert any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)), f"{key}: no ## @param"
    import importlib.util

    spec = importlib.util.spec_from_file_location("values_table", CHARTS / "values_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (CHARTS / chart / "README.md").read_text()
    table = readme.split(module.START)[1].split(module.END)[0].strip()
    assert table == module.values_table(values_file), f"{chart}/README.md is stale: run make charts-readme"


def test_umbrella_and_task_schemas_agree_on_global_settings():
    task = json.loads((CHARTS / "slm-task" / "values.schema.json").read_text())
    umbrella = json.loads((CHARTS / "slm-services" / "values.schema.json").read_text())
    assert umbrella["properties"]["global"] == task["properties"]["global"]
    assert set(umbrella["properties"]) == {"global", "slm-common", *TASKS}


def test_charts_name_no_machine_paths():
    for path in CHARTS.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".tpl", ".txt", ".json", ".md", ".mk"}:
            assert MACHINE_PATH not in path.read_text(), path
