"""Configuration: connections.json, .env credentials, the env URL, and the agent's identity."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalekit_auth import connections
from scalekit_auth.config import ScalekitSettings, load_settings, normalize_env_url, parse_timeout
from scalekit_auth.errors import ConfigurationError, MissingCredentialsError
from scalekit_auth.identity import agent_name, parse_agent_name

# -- identity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("**Name:** Mess", "mess"),
        ("- **Name:** Mess", "mess"),
        ("# Me\n\n* **Name:**   Big Bot  \n", "big bot"),
        ("**Name**: Clawd", "clawd"),
        ("- **Role:** helper\n- **Name:** Second", "second"),
        # as OpenClaw reads it: a plain label counts, the last name wins, placeholders are not names
        ("Name: plain", "plain"),
        ("- name: Lower", "lower"),
        ("- **Name:** First\n- **Name:** Last", "last"),
        ("- **Name:** Kept\n- Name: _(pick something you like)_", "kept"),
        ("- **Name:**\n  _(pick something you like)_\n- **Creature:**", None),  # the template, untouched
        ("- **Name:**\n  Mess", None),  # a value on the next line is not read (nor by OpenClaw)
        ("- **Name:** (Not set yet)", None),
        ("- **Name:** `Codey`", "codey"),
        ("- **Nickname:** Bob", None),
        ("**Name:**", None),
        ("", None),
    ],
)
def test_agent_name_is_read_from_identity_lines(text, name):
    assert parse_agent_name(text) == name


def test_missing_identity_file_falls_back_to_agent(tmp_path):
    ident, source = agent_name({"SCALEKIT_IDENTITY_FILE": str(tmp_path / "nope.md")})
    assert ident == "agent"
    assert "not found" in source


# -- env URL and settings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("https://acme.scalekit.com", "https://acme.scalekit.com"),
        ("https://acme.scalekit.com/", "https://acme.scalekit.com"),
        ("  https://acme.scalekit.dev  ", "https://acme.scalekit.dev"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_good_env_urls(raw, url):
    assert normalize_env_url(raw, "SCALEKIT_ENV_URL") == url


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("acme.scalekit.com", "must be your environment URL, e.g. https://"),
        ("http://acme.scalekit.com", "must use https://"),
        ("https://acme.scalekit.com/api", "no path"),
        ("https://acme.scalekit.com?x=1", "no path, query"),
        ("https://user:pw@acme.scalekit.com", "user name or password"),
        ("https://acme.scalekit.com:99999", "not a valid URL"),
        ("ftp://acme.scalekit.com", "must be your environment URL, e.g. https://"),
    ],
)
def test_bad_env_urls_are_explained(raw, phrase):
    with pytest.raises(ConfigurationError, match=phrase.replace("?", r"\?")):
        normalize_env_url(raw, "SCALEKIT_ENV_URL")


def test_settings_repr_hides_the_secret():
    s = ScalekitSettings("https://a.scalekit.com", "id", "canary-client-secret-42")
    assert "canary-client-secret-42" not in repr(s) + str(s)


def test_env_file_is_read_and_environment_wins(tmp_path):
    (tmp_path / ".env").write_text(
        "SCALEKIT_ENV_URL=https://file.scalekit.com\nSCALEKIT_CLIENT_ID=file-id\nSCALEKIT_CLIENT_SECRET=file-secret\n"
    )
    s = load_settings(tmp_path, {"SCALEKIT_CLIENT_ID": "env-id"})
    assert (s.env_url, s.client_id, s.client_secret) == ("https://file.scalekit.com", "env-id", "file-secret")
    assert "SCALEKIT_CLIENT_SECRET" not in os.environ or os.environ["SCALEKIT_CLIENT_SECRET"] != "file-secret"


def test_missing_variables_are_listed_in_a_stable_order(tmp_path):
    with pytest.raises(MissingCredentialsError) as caught:
        load_settings(tmp_path, {"SCALEKIT_ENV_URL": "https://a.scalekit.com"})
    assert caught.value.missing == ("SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET")
    assert str(tmp_path / ".env") in str(caught.value)


def _doctor(directory, environ):
    """doctor's checks for a state folder and an environment, as {name: (level, detail)} (the last of a name)."""
    from scalekit_auth.broker import TokenBroker
    from scalekit_auth.doctor import run_checks

    return {c.name: (c.level, c.detail) for c in run_checks(TokenBroker(directory, environ))}


def _isolated(tmp_path, **values):
    """An environment naming nothing of the real user's (no ~/.openclaw, no agent), plus `values`."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "SCALEKIT_AUTH_AGENT": "0",
        "SCALEKIT_IDENTITY_FILE": str(tmp_path / "IDENTITY.md"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        **values,
    }


def test_doctor_checks_the_scalekit_get_token_calls(tmp_path):
    """The environment wins over .env whichever of the two URL names each uses, for get_token and doctor alike."""
    (tmp_path / ".env").write_text(
        "SCALEKIT_ENV_URL=https://127.0.0.1:1\nSCALEKIT_CLIENT_ID=file-id\nSCALEKIT_CLIENT_SECRET=file-secret\n"
    )
    env = _isolated(tmp_path, SCALEKIT_ENVIRONMENT_URL="https://127.0.0.2:1")
    assert load_settings(tmp_path, env).env_url == "https://127.0.0.2:1"
    checks = _doctor(tmp_path, env)
    assert checks["environment URL"] == ("ok", "https://127.0.0.2:1")
    assert "SCALEKIT_ENVIRONMENT_URL from the environment" in checks["credentials"][1]
    assert f"SCALEKIT_CLIENT_ID from {tmp_path / '.env'}" in checks["credentials"][1]


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_one_source_naming_the_url_twice_must_agree(tmp_path, where):
    values = {
        "SCALEKIT_ENV_URL": "https://old.scalekit.com",
        "SCALEKIT_ENVIRONMENT_URL": "https://new.scalekit.com",
        "SCALEKIT_CLIENT_ID": "id",
        "SCALEKIT_CLIENT_SECRET": "secret",
    }
    if where == ".env":
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        env = _isolated(tmp_path)
    else:
        env = _isolated(tmp_path, **values)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(tmp_path, env)
    message = str(caught.value)
    assert "SCALEKIT_ENV_URL" in message and "SCALEKIT_ENVIRONMENT_URL" in message and "keep one" in message
    assert "https://old.scalekit.com" in message and "https://new.scalekit.com" in message
    assert (str(tmp_path / ".env") if where == ".env" else "the environment") in message
    level, detail = _doctor(tmp_path, env)["environment URL"]
    assert (level, detail) == ("fail", message)
    # the same value under both names is no conflict
    values["SCALEKIT_ENV_URL"] = "https://new.scalekit.com/"
    if where == ".env":
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    else:
        env.update(values)
    assert load_settings(tmp_path, env).env_url == "https://new.scalekit.com"


def test_a_missing_url_is_named_the_same_everywhere(tmp_path):
    env = _isolated(tmp_path, SCALEKIT_CLIENT_ID="id", SCALEKIT_CLIENT_SECRET="secret")
    with pytest.raises(MissingCredentialsError) as caught:
        load_settings(tmp_path, env)
    assert caught.value.missing == ("SCALEKIT_ENVIRONMENT_URL",)
    assert "SCALEKIT_ENVIRONMENT_URL (or SCALEKIT_ENV_URL) is not set" in str(caught.value)
    assert _doctor(tmp_path, env)["credentials"] == ("fail", "SCALEKIT_ENVIRONMENT_URL (or SCALEKIT_ENV_URL) not set")


def test_the_agent_serves_a_caller_only_with_every_setting_equal():
    """paths.CONTEXT_VARS (the agent client's fast path cannot import config) lists config's settings."""
    from scalekit_auth import config, paths

    assert sorted(paths.SETTINGS_CONTEXT_VARS) == sorted(config.SETTINGS_VARS)
    assert set(paths.CONTEXT_VARS) == {*paths.SETTINGS_CONTEXT_VARS, *paths.TRANSPORT_VARS}


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "nan", "inf", "301"])
def test_bad_timeouts_are_refused(raw):
    with pytest.raises(ConfigurationError, match="SCALEKIT_TIMEOUT"):
        parse_timeout(raw)


def test_timeout_default_and_value():
    assert parse_timeout(None) == 10.0
    assert parse_timeout("2.5") == 2.5


# -- connections.json ----------------------------------------------------------------


def test_missing_or_empty_file_means_no_services(tmp_path):
    path = tmp_path / "connections.json"
    assert connections.load(path) == {}
    path.write_text("  \n")
    assert connections.load(path) == {}


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "connections.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"gmail": {"connection_name": "gmail_u3134a"}}).encode())
    assert connections.load(path)["gmail"].connection_name == "gmail_u3134a"


def test_non_utf8_is_explained(tmp_path):
    path = tmp_path / "connections.json"
    path.write_bytes(b'{"gmail": {"connection_name": "\xff\xfe"}}')
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        connections.load(path)


def test_huge_file_is_refused(tmp_path):
    path = tmp_path / "connections.json"
    path.write_text(" " * (connections.MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigurationError, match="bytes"):
        connections.load(path)


@pytest.mark.parametrize(
    ("service", "ok"),
    [("gmail", True), ("google-calendar", True), ("x.y_z", True), ("", False), ("bad name", False), ("-x", False)],
)
def test_service_names(service, ok):
    if ok:
        assert connections.normalize_service(service) == service
    else:
        with pytest.raises(ConfigurationError):
            connections.normalize_service(service)


@pytest.mark.parametrize("identifier", ["", "   ", "a\nb", "x" * 101])
def test_bad_identifiers(identifier):
    with pytest.raises(ConfigurationError):
        connections.check_identifier(identifier)


def test_save_keeps_the_file_mode_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "connections.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    connections.save(path, "gmail", "gmail_u3134a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["connections.json"]


def test_remove(tmp_path):
    path = tmp_path / "connections.json"
    connections.save(path, "gmail", "gmail_u3134a")
    connections.save(path, "slack", "slack_x7y9z")
    change = connections.remove(path, "GMAIL")
    assert change.describe() == "removed gmail (was gmail_u3134a)"
    assert list(json.loads(path.read_text())) == ["slack"]
    with pytest.raises(ConfigurationError, match="not in"):
        connections.remove(path, "gmail")


def test_change_descriptions(tmp_path):
    path = tmp_path / "connections.json"
    assert connections.save(path, "gmail", "a").describe() == "added gmail -> a"
    assert connections.save(path, "gmail", "a").describe() == "unchanged gmail -> a"
    assert connections.save(path, "gmail", "b", "mess").describe() == "updated gmail: a -> b (identifier mess)"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(value=json_values)
def test_any_json_gives_entries_or_a_configuration_error(tmp_path, value):
    path = tmp_path / "connections.json"
    path.write_text(json.dumps(value))
    try:
        entries = connections.load(path)
    except ConfigurationError as err:
        assert str(path) in str(err)
    else:
        assert all(isinstance(e.connection_name, str) and e.connection_name for e in entries.values())


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_give_entries_or_a_configuration_error(tmp_path, data):
    path = tmp_path / "connections.json"
    path.write_bytes(data)
    try:
        connections.load(path)
    except ConfigurationError:
        pass
