"""``slm review up`` runs Label Studio on 127.0.0.1 only, with an admin and a token made without prompts."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import httpx
import psutil
import pytest

from devtools.label_studio.lifecycle import credentials, status
from tests.review.conftest import SLM

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_it_listens_on_loopback_only(label_studio_config):
    server = psutil.Process(status(label_studio_config)["pid"])  # now: the outage test restarts it
    listening = [c.laddr for p in (server, *server.children(recursive=True))
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "Label Studio listens on no socket"
    assert {address.ip for address in listening} == {"127.0.0.1"}
    assert label_studio_config.port in {address.port for address in listening}


def test_its_token_works_and_its_credentials_are_kept_private(label_studio, label_studio_config):
    answer = httpx.get(f"{label_studio['url']}/api/current-user/whoami",
                       headers={"Authorization": f"Token {label_studio['token']}"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["email"] == label_studio["username"]
    assert httpx.get(f"{label_studio['url']}/api/projects", timeout=10).status_code == 401
    mode = stat.S_IMODE(os.stat(label_studio_config.credentials_file).st_mode)
    assert mode == 0o600
    assert credentials(label_studio_config) == {k: label_studio[k] for k in ("username", "password", "token")}


def test_status_prints_what_scripts_need(label_studio, label_studio_config):
    env = {**os.environ, "SLM_LABEL_STUDIO_PORT": str(label_studio_config.port),
           "SLM_LABEL_STUDIO_HOME": str(label_studio_config.home)}
    state = json.loads(subprocess.run([SLM, "review", "status", "--json"], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    assert state["running"] is True and state["url"] == label_studio["url"] and state["token"] == label_studio["token"]
    exports = subprocess.run([SLM, "review", "status", "--env"], env=env, capture_output=True, text=True,
                             check=True).stdout
    assert exports.strip() == (f"export SLM_REVIEW_LABEL_STUDIO_URL={label_studio['url']} "
                               f"SLM_REVIEW_LABEL_STUDIO_TOKEN={label_studio['token']}")
