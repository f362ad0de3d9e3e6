"""shared/compat.py holds every use of a private BentoML, Ray or uvicorn API: it must be re-checked
whenever requirements.lock pins another release of them, and what it patches must still exist."""

from __future__ import annotations

import importlib.util
import re

from shared.compat import BENTOML_REQUEST_ERROR_LOGGER, WRITTEN_FOR
from shared.settings import REPO_ROOT


def _locked() -> dict[str, str]:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO_ROOT / "requirements.lock").read_text(), re.M))
    return {name.lower(): version for name, version in pins.items()}


def test_compat_was_written_for_the_locked_releases():
    locked = _locked()
    changed = {name: (written, locked.get(name)) for name, written in WRITTEN_FOR.items() if locked.get(name) != written}
    assert not changed, (
        "requirements.lock changed a release that shared/compat.py patches: "
        + "; ".join(f"{name} {written} -> {now}" for name, (written, now) in changed.items())
        + ". Re-check every function of shared/compat.py against the new release, then update WRITTEN_FOR.")


def test_the_patched_internals_are_still_there():
    from bentoml._internal.configuration.containers import BentoMLContainer
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert hasattr(BentoMLContainer.tracer_provider, "set")
    assert importlib.util.find_spec(BENTOML_REQUEST_ERROR_LOGGER) is not None
    assert {"auto", "httptools"} <= set(HTTP_PROTOCOLS)
    for name in ("connection_made", "on_headers_complete", "on_response_complete", "connection_lost"):
        assert callable(getattr(HttpToolsProtocol, name))
    replica = importlib.util.find_spec("ray.serve._private.replica")
    assert replica is not None and "add_port_to_grpc_server" in replica.loader.get_source(replica.name)
