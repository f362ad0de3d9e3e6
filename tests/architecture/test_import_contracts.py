"""The import direction of pyproject.toml's ``[tool.importlinter]`` holds, and a wrong-way import breaks it.

``.ci/run`` runs ``lint-imports`` on the repository; these tests run it on a copy of the packages, so
that the contracts are shown to fail when they should, function-level imports included.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

PACKAGES = ("shared", "pipelines", "services", "slm", "devtools", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The packages' Python files and pyproject.toml, copied."""
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package,
                        ignore=lambda folder, names: [n for n in names if not (n.endswith(".py") or
                                                                               (Path(folder) / n).is_dir())])
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_repository_keeps_every_contract(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


@pytest.mark.parametrize(("module", "statement", "contract"), [
    # a function-level import counts as much as one at the top
    ("shared/serving.py", "def _wrong_way():\n    import slm.cli  # noqa\n",
     "shared imports nothing else of the repository"),
    ("slm/cli.py", "import devtools.stack  # noqa\n", "slm -> shared, pipelines"),
    ("bench/harness.py", "from slm.commands import serve_command  # noqa\n", "never slm"),
    ("services/sentiment/service.py", "import pipelines.recipe  # noqa\n", "services -> shared"),
])
def test_a_wrong_way_import_breaks_its_contract(tree: Path, module: str, statement: str, contract: str) -> None:
    with open(tree / module, "a") as fh:
        fh.write("\n\n" + statement)
    result = lint(tree)
    assert result.returncode == 1
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout


def test_an_import_cycle_breaks_the_acyclic_contract(tree: Path) -> None:
    # shared.errors is imported by shared.console; importing back closes a cycle
    with open(tree / "shared" / "errors.py", "a") as fh:
        fh.write("\n\ndef _cycle():\n    from shared.console import clean_errors  # noqa\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "no import cycles, at any depth BROKEN" in result.stdout.replace("\n", " ")
