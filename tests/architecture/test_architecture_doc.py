"""docs/architecture.md stays true: every path it names exists, and it names every settings class."""

from __future__ import annotations

import re
import tomllib

from devtools.local_kafka.config import LocalBrokerSettings
from shared.settings import SETTINGS_CLASSES
from tests.support.processes import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"


def test_every_path_it_names_exists():
    paths = set(re.findall(r"`((?:shared|services|pipelines|slm|devtools|bench|tests|charts)/[\w/.<>-]*)`", DOC.read_text()))
    assert len(paths) > 30
    missing = sorted(p for p in paths if not (REPO_ROOT / p.replace("<task>", "sentiment")).exists())
    assert not missing, f"docs/architecture.md names paths that are gone: {missing}"


def test_it_names_every_settings_class_and_where_it_lives():
    text = DOC.read_text()
    for cls in (*SETTINGS_CLASSES, LocalBrokerSettings):
        module_path = cls.__module__.replace(".", "/") + ".py"
        assert f"`{cls.__name__}` (`{module_path}`)" in text, f"{cls.__name__} ({module_path}) is not in the table"


def test_the_import_rules_it_states_are_the_contracts():
    """The table's "may import" column is what pyproject.toml's forbidden contracts leave allowed."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    roots = set(config["root_packages"])
    allowed = {contract["source_modules"][0]: roots - {contract["source_modules"][0]} - set(contract["forbidden_modules"])
               for contract in config["contracts"] if contract["type"] == "forbidden"}
    stated = {}
    for row in re.findall(r"^\| `(\w+)/` \|[^|]*\| (.+?) \|$", DOC.read_text(), re.M):
        package, may_import = row
        stated[package] = set() if may_import.startswith("nothing") else set(re.findall(r"`(\w+)`", may_import.split("never")[0]))
    assert stated == allowed
