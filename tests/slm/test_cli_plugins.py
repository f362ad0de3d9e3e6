"""``slm`` assembles its groups and the plug-ins of the ``slm.commands`` entry point group.

A serving image leaves :mod:`devtools` out: there the developer commands must simply be absent,
while any other import error in a plug-in still surfaces.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from click.testing import CliRunner

import slm.cli
import slm.plugins
from slm.cli import COMMANDS_GROUP, SETTINGS_GROUP, main
from slm.commands.review_commands import PLUGIN_GROUP as REVIEW_GROUP


def test_the_developer_commands_plug_in_through_the_entry_point_group():
    names = {entry.name for entry in slm.plugins.entry_points(group=COMMANDS_GROUP)}
    assert names == {"kafka", "cluster", "images", "up", "down", "demo"}
    assert names <= set(main.commands)
    assert {"serve", "train", "evaluate", "models", "drift", "feedback", "compare", "review"} <= set(main.commands)


def test_the_local_label_studio_commands_plug_into_slm_review():
    names = {entry.name for entry in slm.plugins.entry_points(group=REVIEW_GROUP)}
    assert names == {"install", "up", "down", "status"}
    assert set(main.commands["review"].commands) == {"bridge", "install", "up", "down", "status"}


def test_a_plug_in_whose_package_is_not_installed_is_left_out(monkeypatch):
    missing = EntryPoint("ghost", "devtools_not_installed.commands:ghost", COMMANDS_GROUP)
    present = EntryPoint("kafka", "devtools.commands.kafka_commands:kafka", COMMANDS_GROUP)
    monkeypatch.setattr(slm.plugins, "entry_points", lambda group: [missing, present])
    loaded = slm.plugins.plugins(COMMANDS_GROUP)
    assert [command.name for command in loaded] == ["kafka"]


def test_a_plug_in_that_fails_on_another_missing_module_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "broken_plugin.py").write_text("import not_a_real_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = EntryPoint("broken", "broken_plugin:group", COMMANDS_GROUP)
    monkeypatch.setattr(slm.plugins, "entry_points", lambda group: [broken])
    with pytest.raises(ModuleNotFoundError, match="not_a_real_dependency"):
        slm.plugins.plugins(COMMANDS_GROUP)


def test_a_missing_module_that_only_shares_the_plug_ins_name_prefix_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "tooling_plugin.py").write_text("import tooling\n")  # a dependency named like its start
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = EntryPoint("tooling", "tooling_plugin:group", COMMANDS_GROUP)
    monkeypatch.setattr(slm.plugins, "entry_points", lambda group: [broken])
    with pytest.raises(ModuleNotFoundError, match="'tooling'"):
        slm.plugins.plugins(COMMANDS_GROUP)


def test_a_plug_ins_settings_are_known_names(monkeypatch, caplog):
    assert {entry.name for entry in slm.plugins.entry_points(group=SETTINGS_GROUP)} == {"local_broker", "local_label_studio"}
    monkeypatch.setenv("SLM_KAFKA_PORT", "19092")  # read by the local broker (devtools), not the services
    monkeypatch.setenv("SLM_KAFKA_PROT", "1")
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if "unknown setting" in r.getMessage()]
    assert warned == ["unknown setting SLM_KAFKA_PROT is ignored; did you mean SLM_KAFKA_PORT?"]
