"""API keys: the digests file, its reloading, and what a request presents (unit level; the HTTP
behaviour is tested through real servers in tests/services/test_api_keys_http.py)."""

from __future__ import annotations

import hashlib
import os

import pytest

from shared.api_keys import ApiKeys, parse_digests, presented_key
from shared.errors import ConfigError


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_the_file_holds_digests_comments_and_blank_lines():
    text = f"# team a\n{digest('alpha')}\n\n  {digest('beta')}  # rotated 2026-12\n"
    assert parse_digests(text) == {digest("alpha"), digest("beta")}


@pytest.mark.parametrize("line", ["s3cret-key", digest("x").upper(), digest("x")[:-1], digest("x") + "0"])
def test_a_line_that_is_not_a_digest_is_refused_without_quoting_it(line):
    with pytest.raises(ConfigError) as refused:
        parse_digests(f"{digest('ok')}\n{line}\n")
    assert "line 2" in str(refused.value) and line not in str(refused.value)


def test_keys_are_checked_against_the_digests(tmp_path):
    path = tmp_path / "keys"
    path.write_text(digest("alpha") + "\n")
    keys = ApiKeys(path)
    assert keys.accepts("alpha")
    assert not keys.accepts("alpha ") and not keys.accepts("beta") and not keys.accepts(None) and not keys.accepts("")


def test_a_changed_file_rotates_the_keys_and_an_invalid_one_keeps_them(tmp_path):
    path = tmp_path / "keys"
    path.write_text(digest("alpha") + "\n")
    keys = ApiKeys(path)
    # A Secret volume's update: a new file moved into place.
    replacement = tmp_path / "keys.new"
    replacement.write_text(digest("beta") + "\n")
    os.replace(replacement, path)
    assert keys.accepts("beta") and not keys.accepts("alpha")
    path.write_text("not a digest\n")
    assert keys.accepts("beta"), "an invalid file must keep the keys in force"
    path.write_text(digest("gamma") + "\n" + digest("beta") + "\n")
    assert keys.accepts("gamma") and keys.accepts("beta")


def test_a_missing_or_invalid_file_at_start_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        ApiKeys(tmp_path / "absent")
    (tmp_path / "keys").write_text("plain-key\n")
    with pytest.raises(ConfigError, match="line 1: not a lowercase SHA-256"):
        ApiKeys(tmp_path / "keys")


@pytest.mark.parametrize(("headers", "key"), [
    ([(b"authorization", b"Bearer abc")], "abc"),
    ([(b"authorization", b"bearer  abc ")], "abc"),
    ([(b"x-api-key", b"abc")], "abc"),
    ([(b"authorization", b"Basic YWJjOmRlZg==")], None),
    ([(b"authorization", b"Bearer ")], None),
    ([], None),
])
def test_the_key_comes_from_a_bearer_token_or_x_api_key(headers, key):
    assert presented_key(headers) == key
