"""slm serve --shadow refuses, in one line and before starting anything, what a shadow cannot do."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from slm.cli import main

CLEAN = {"SLM_KAFKA_BOOTSTRAP": None, "SLM_KAFKA_GROUP_ID": None, "SLM_KAFKA_SHADOW": None,
         "SLM_KAFKA_TRANSACTIONAL_ID": None, "SLM_KAFKA_DELIVERY": None}


@pytest.mark.parametrize(("args", "env", "message"), [
    ([], {}, "shadow=true needs bootstrap (SLM_KAFKA_BOOTSTRAP)"),
    (["--kafka", "127.0.0.1:1", "--replicas", "2"], {}, "--shadow with Ray Serve replicas is not supported yet"),
    (["--kafka", "127.0.0.1:1"], {"SLM_KAFKA_GROUP_ID": "slm-sentiment"},
     "SLM_KAFKA_GROUP_ID='slm-sentiment' does not end in '-shadow'"),
    # The primary's group on a prefix or the chart's kafka.groupId, inherited: refused just the same.
    (["--kafka", "127.0.0.1:1"], {"SLM_KAFKA_GROUP_ID": "team-a.slm-sentiment"},
     "SLM_KAFKA_GROUP_ID='team-a.slm-sentiment' does not end in '-shadow'"),
    (["--kafka", "127.0.0.1:1", "--delivery", "exactly_once"], {"SLM_KAFKA_TRANSACTIONAL_ID": "slm-sentiment-0"},
     "transactional_id='slm-sentiment-0' (SLM_KAFKA_TRANSACTIONAL_ID) does not end in '-shadow'"),
])
def test_a_shadow_that_cannot_work_is_refused_in_one_line(args, env, message):
    # A missing model folder: were a check to let the shadow through, the command stops there (another
    # message) rather than start a server inside the test.
    result = CliRunner().invoke(main, ["serve", "sentiment", "--shadow", "--model", "/nonexistent/model", *args],
                                env={**CLEAN, **env})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
