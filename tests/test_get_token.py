"""get_token / get_credentials / configure_connection, through the real SDK and the emulator."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
import requests

from scalekit_helper import (
    AuthorizationError,
    ConfigurationError,
    CredentialsRejectedError,
    MissingCredentialsError,
    RateLimitedError,
    ScalekitAuthError,
    ScalekitUnavailableError,
    ServiceNotConfiguredError,
    UnknownConnectionError,
    UnsupportedAccountError,
    configure_connection,
    get_credentials,
    get_token,
)

from .helpers import ROOT

# -- the happy path --------------------------------------------------------------


def test_active_account_gives_its_token(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="tok-mess-123")
    assert get_token("gmail") == "tok-mess-123"


def test_service_names_are_not_case_sensitive(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="tok-mess-123")
    assert get_token(" Gmail ") == "tok-mess-123"


def test_credentials_can_come_from_the_env_file(skill, emulator):
    skill.use(emulator, via="file")
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="from-dotenv")
    assert get_token("gmail") == "from-dotenv"


def test_process_environment_wins_over_the_env_file(skill, emulator, monkeypatch):
    skill.use(emulator, via="file")
    monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", "env-wins-and-is-wrong")
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess")
    with pytest.raises(CredentialsRejectedError):
        get_token("gmail")


def test_newer_environment_url_name_is_accepted(skill, emulator, monkeypatch):
    skill.use(emulator)
    monkeypatch.delenv("SCALEKIT_ENV_URL")
    monkeypatch.setenv("SCALEKIT_ENVIRONMENT_URL", emulator.url + "/")
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="via-new-name")
    assert get_token("gmail") == "via-new-name"


# -- identifiers -----------------------------------------------------------------


def test_identifier_defaults_to_the_agent_name_in_identity_md(skill, emulator):
    skill.use(emulator)
    skill.set_agent_name("Mess")
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "mess", access_token="tok-for-mess")
    assert get_token("gmail") == "tok-for-mess"


def test_identifier_falls_back_to_agent_without_identity_md(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent", access_token="tok-for-agent")
    assert get_token("gmail") == "tok-for-agent"


def test_identifier_in_connections_json_beats_identity_md(skill, emulator):
    skill.use(emulator)
    skill.set_agent_name("Mess")
    skill.configure("gmail", "gmail_u3134a", "alice")
    emulator.seed("gmail_u3134a", "alice", access_token="tok-alice")
    emulator.seed("gmail_u3134a", "mess", access_token="tok-mess")
    assert get_token("gmail") == "tok-alice"


def test_explicit_identifier_wins(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "alice")
    emulator.seed("gmail_u3134a", "alice", access_token="tok-alice")
    emulator.seed("gmail_u3134a", "bob", access_token="tok-bob")
    assert get_token("gmail", identifier="bob") == "tok-bob"
    assert get_token("gmail") == "tok-alice"


# -- authorization ---------------------------------------------------------------


def test_no_account_raises_authorization_error_with_a_working_link(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    asked = time.monotonic()
    with pytest.raises(AuthorizationError) as caught:
        get_token("gmail")
    err = caught.value
    assert err.service == "gmail"
    assert err.identifier == "mess"
    assert err.status is None
    assert err.link in str(err)
    assert "expires in about 1 minute" in str(err)
    assert err.expires_at.tzinfo is not None
    assert 60 - (time.monotonic() - asked) - 1 < err.seconds_left <= 60  # issued when we asked, for a minute
    assert requests.get(err.link, timeout=60).status_code == 200
    assert err.exit_code == 4

    emulator.approve(err.link)
    token = get_token("gmail")
    assert token == emulator.account("gmail_u3134a", "mess")["access_token"]


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        ("PENDING_AUTH", "has not been authorized yet"),
        ("EXPIRED", "expired authorization"),
        ("DISCONNECTED", "disconnected"),
        ("PENDING_VERIFICATION", "waiting for user verification"),
    ],
)
def test_non_active_accounts_get_a_link_and_an_accurate_reason(skill, emulator, status, phrase):
    skill.use(emulator)
    skill.configure("slack", "slack_x7y9z", "mess")
    emulator.seed("slack_x7y9z", "mess", status)
    with pytest.raises(AuthorizationError) as caught:
        get_token("slack")
    assert caught.value.status == status
    assert phrase in str(caught.value)
    assert caught.value.link.startswith("http://127.0.0.1:")


def test_stale_token_of_a_non_active_account_is_never_returned(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", "EXPIRED", access_token="stale-token")
    with pytest.raises(AuthorizationError) as caught:
        get_token("gmail")
    assert "stale-token" not in str(caught.value)


# -- configuration problems ------------------------------------------------------


def test_unknown_service_says_what_to_do(skill, emulator):
    skill.use(emulator)
    skill.configure("slack", "slack_x7y9z")
    with pytest.raises(ServiceNotConfiguredError) as caught:
        get_token("gmail")
    message = str(caught.value)
    assert "'gmail' is not configured" in message
    assert "slack" in message
    assert "scalekit-auth config gmail <connection_name>" in message
    assert emulator.counters() == {}


def test_no_connections_file_at_all(skill):
    with pytest.raises(ServiceNotConfiguredError, match="none yet"):
        get_token("gmail")


URL, ID, SECRET = "SCALEKIT_ENVIRONMENT_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET"


@pytest.mark.parametrize(
    ("unset", "missing"),
    [
        ((ID,), (ID,)),
        ((SECRET,), (SECRET,)),
        (("SCALEKIT_ENV_URL",), (URL,)),  # named as documented, in the order of the dashboard and doctor
        ((ID, "SCALEKIT_ENV_URL"), (URL, ID)),
        ((ID, SECRET, "SCALEKIT_ENV_URL"), (URL, ID, SECRET)),
    ],
)
def test_missing_credentials_are_named_exactly(skill, emulator, monkeypatch, unset, missing):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    for name in unset:
        monkeypatch.delenv(name)
    with pytest.raises(MissingCredentialsError) as caught:
        get_token("gmail")
    assert caught.value.missing == missing
    for name in (URL, ID, SECRET):
        assert (name in str(caught.value)) == (name in missing)
    assert ("SCALEKIT_ENV_URL" in str(caught.value)) == (URL in missing)  # "SCALEKIT_ENVIRONMENT_URL (or ...)"


def test_service_check_comes_before_credentials_check(skill):
    with pytest.raises(ServiceNotConfiguredError):
        get_token("gmail")


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ('{"gmail": {"connection_name": "gmail_u3134a",}}', "not valid JSON"),
        ("{", "not valid JSON"),
        ('["gmail"]', "not a list"),
        ('{"gmail": "gmail_u3134a"}', "must be an object"),
        ('{"gmail": {"identifier": "x"}}', 'no "connection_name"'),
        ('{"gmail": {"connection_name": ""}}', "empty"),
        ('{"gmail": {"connection_name": 42}}', "must be a string"),
        ('{"gmail": {"connection_name": "ok_name", "identifier": 7}}', "identifier"),
        ('{"gmail": {"connection_name": "a"}, "gmail": {"connection_name": "b"}}', "twice"),
    ],
)
def test_malformed_connections_json_names_the_file_and_problem(skill, emulator, content, phrase):
    skill.use(emulator)
    skill.connections_file.write_text(content)
    with pytest.raises(ConfigurationError) as caught:
        get_token("gmail")
    assert str(skill.connections_file) in str(caught.value)
    assert phrase in str(caught.value)


def test_unknown_connection_name_is_reported_as_such(skill, emulator):
    """Scalekit answers an unknown name with a bad request when the account is created (no 404 is
    documented there) and NOT_FOUND (RESOURCE_NOT_FOUND) when the link is asked for: the message
    names the connection and how to check it, not an outage."""
    skill.use(emulator)
    skill.configure("gmail", "gmail_typo", "mess")
    with pytest.raises(UnknownConnectionError, match="no connection named 'gmail_typo'") as caught:
        get_token("gmail")
    said = str(caught.value)
    assert "AgentKit > Connections" in said and "config gmail" in said
    assert "INVALID_ARGUMENT" not in said and "status.scalekit.com" not in said
    assert emulator.accounts() == []
    counters = emulator.counters()
    assert counters["rpc.CreateConnectedAccount"] == 1 and counters["rpc.GetMagicLinkForConnectedAccount"] == 1


def test_an_unknown_connection_refused_as_a_bad_request_still_names_the_connection(skill, emulator):
    """Scalekit's docs (before SDK 2.21.0's descriptors) gave the magic link a 400 "missing required
    parameters or invalid connector" for this: the message still says what is probably wrong."""
    skill.use(emulator)
    skill.configure("gmail", "gmail_typo", "mess")
    emulator.fail_next(1, "INVALID_ARGUMENT", method="GetMagicLinkForConnectedAccount", message="invalid connector")
    with pytest.raises(UnknownConnectionError) as caught:
        get_token("gmail")
    said = str(caught.value)
    assert "connection name 'gmail_typo'" in said and "(invalid connector)" in said and "probably wrong" in said
    assert "AgentKit > Connections" in said and "status.scalekit.com" not in said


# -- Scalekit problems -----------------------------------------------------------


def test_wrong_client_secret_names_the_credentials(skill, emulator, monkeypatch):
    skill.use(emulator)
    monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", "canary-secret-value-0451")
    skill.configure("gmail", "gmail_u3134a")
    with pytest.raises(CredentialsRejectedError) as caught:
        get_token("gmail")
    err = caught.value
    assert "SCALEKIT_CLIENT_SECRET" in str(err)
    assert "canary-secret-value-0451" not in str(err) + repr(err)
    assert "=====" not in str(err)
    assert err.__cause__ is not None  # the SDK's exception, kept for --debug
    assert err.exit_code == 6


def test_stopped_scalekit_is_unavailable_quickly(skill, emulator, monkeypatch):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "120")
    emulator.stop()
    started = time.monotonic()
    with pytest.raises(ScalekitUnavailableError, match="connection refused"):
        get_token("gmail")
    assert time.monotonic() - started < 60  # refused at once, not the 120 s timeout


def test_rate_limit_says_slow_down(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent")
    skill.monkeypatch.setenv("SCALEKIT_TIMEOUT", "2")
    from scalekit_auth.api import default_broker

    broker = default_broker()
    broker.vault(broker.settings()).connect()  # SDK loaded, logged in: the 2 s are the lookups' alone
    emulator.fail_next(-1, "RESOURCE_EXHAUSTED")  # longer than the retries inside the 2-second deadline
    with pytest.raises(RateLimitedError, match="Slow down"):
        get_token("gmail")
    emulator.clear_faults()
    assert get_token("gmail")


def test_no_raw_sdk_exception_escapes(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent")
    emulator.fail_next(1, "INTERNAL", message="boom")
    with pytest.raises(ScalekitAuthError) as caught:
        get_token("gmail")
    assert "INTERNAL" in str(caught.value)
    assert "\n" not in str(caught.value)


# -- static (API-key) accounts and get_credentials -------------------------------


def test_static_account_with_one_key(skill, emulator):
    skill.use(emulator)
    skill.configure("openai", "openai_demo")
    emulator.seed("openai_demo", "agent", static={"api_key": "sk-one-key"})
    assert get_token("openai") == "sk-one-key"
    creds = get_credentials("openai")
    assert creds.kind == "static"
    assert creds.fields["api_key"] == "sk-one-key"


def test_static_account_with_a_named_key_among_fields(skill, emulator):
    skill.use(emulator)
    skill.configure("zendesk", "zendesk_demo")
    emulator.seed("zendesk_demo", "agent", static={"api_key": "zd-key", "subdomain": "acme"}, kind="static")
    assert get_token("zendesk") == "zd-key"


def test_static_account_without_a_single_token_points_to_get_credentials(skill, emulator):
    skill.use(emulator)
    skill.configure("db", "db_demo")
    emulator.seed("db_demo", "agent", static={"username": "u", "password": "p"}, kind="static")
    with pytest.raises(UnsupportedAccountError, match=r"get_credentials\('db'\)\.fields"):
        get_token("db")
    assert dict(get_credentials("db").fields) == {"username": "u", "password": "p"}


def test_get_credentials_of_an_oauth_account(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent", access_token="canary-access-token-77", ttl=1800, scopes=["a", "b"])
    creds = get_credentials("gmail")
    assert creds.kind == "oauth"
    assert creds.token == "canary-access-token-77"
    assert creds.scopes == ("a", "b")
    assert creds.identifier == "agent"
    assert creds.connection_name == "gmail_u3134a"
    assert 1790 < creds.expires_in() <= 1800
    assert isinstance(creds.expires_at, dt.datetime)
    assert "canary-access-token-77" not in repr(creds) + str(creds)
    with pytest.raises(AttributeError):
        creds.access_token = "changed"  # immutable


# -- configure_connection --------------------------------------------------------


def test_configure_connection_keeps_other_entries_and_unknown_keys(skill):
    skill.connections_file.write_text(
        json.dumps({"slack": {"connection_name": "slack_x7y9z", "note": "keep me"}, "zz": {"connection_name": "z"}})
    )
    change = configure_connection("gmail", "gmail_u3134a", identifier="mess")
    assert change.before is None
    data = json.loads(skill.connections_file.read_text())
    assert data["gmail"] == {"connection_name": "gmail_u3134a", "identifier": "mess"}
    assert data["slack"] == {"connection_name": "slack_x7y9z", "note": "keep me"}
    assert data["zz"] == {"connection_name": "z"}
    change = configure_connection("slack", "slack_new")
    assert change.before.connection_name == "slack_x7y9z"
    assert json.loads(skill.connections_file.read_text())["slack"] == {
        "connection_name": "slack_new",
        "note": "keep me",
    }


def test_configure_connection_refuses_to_overwrite_a_broken_file(skill):
    skill.connections_file.write_text('{"gmail": ')
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        configure_connection("slack", "slack_x7y9z")
    assert skill.connections_file.read_text() == '{"gmail": '


def test_configured_service_then_works_end_to_end(skill, emulator):
    skill.use(emulator)
    configure_connection("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="after-configure")
    assert get_token("gmail") == "after-configure"


# -- what is imported when -------------------------------------------------------


def test_the_sdk_is_not_imported_until_a_token_is_requested(skill):
    code = (
        "import sys\n"
        "from scalekit_helper import get_token, ConfigurationError\n"
        "assert 'scalekit' not in sys.modules, 'imported at import time'\n"
        "try:\n    get_token('gmail')\nexcept ConfigurationError:\n    pass\n"
        "assert 'scalekit' not in sys.modules, 'imported on a configuration error'\n"
        "assert 'grpc' not in sys.modules\n"
        "assert 'requests' not in sys.modules, 'requests imported without need'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_works_after_sys_path_append_from_another_skill(skill, emulator, tmp_path):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent", access_token="from-another-skill")
    other = tmp_path / "other-skill"
    other.mkdir()
    (other / "run.py").write_text(
        f"import sys\nsys.path.append({str(ROOT)!r})\n"
        "from scalekit_helper import get_token\nprint(get_token('gmail'))\n"
    )
    proc = subprocess.run([sys.executable, "run.py"], cwd=other, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "from-another-skill\n", proc.stderr
