"""Vault.proxy_request, Vault.list_tools and Vault.execute_tool through the real SDK against the
emulator: results, refusals before anything is sent, and every failure as one of our errors."""

from __future__ import annotations

import json
import time

import pytest

from scalekit_auth import vault as vault_module
from scalekit_auth.config import ScalekitSettings
from scalekit_auth.errors import (
    CredentialsRejectedError,
    ExitCode,
    ProxyDisabledError,
    RateLimitedError,
    ScalekitServiceError,
    ScalekitTimeoutError,
    ScalekitUnavailableError,
    ToolExecutionError,
    UsageError,
)
from scalekit_auth.vault import ProxyResponse, Vault


@pytest.fixture
def vault(emulator):
    v = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=10))
    yield v
    v.close()


# -- the proxy -----------------------------------------------------------------------


def test_a_proxied_call_answers_status_headers_and_body(emulator, vault):
    alice = emulator.seed("gmail_u3134a", "alice", access_token="at-alice-secret")
    resp = vault.proxy_request(
        "gmail_u3134a", "alice", "/gmail/v1/users/me/profile", query={"fields": "emailAddress"}, headers={"X-A": "1"}
    )
    assert isinstance(resp, ProxyResponse)
    status, headers, body = resp
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    echo = json.loads(body)
    assert (echo["identifier"], echo["path"], echo["query"]) == (
        "alice",
        "/gmail/v1/users/me/profile",
        {"fields": ["emailAddress"]},
    )
    assert echo["headers"]["x-a"] == "1"
    assert alice["access_token"].encode() not in body


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"json": {"text": "hi"}}, {"text": "hi"}),
        ({"form": {"a": "1"}}, {"a": ["1"]}),
        ({"body": "<x/>", "headers": {"Content-Type": "application/xml"}}, "<x/>"),
        ({"body": b"raw", "headers": {"Content-Type": "text/plain"}}, "raw"),
    ],
)
def test_bodies(emulator, vault, kwargs, expected):
    emulator.seed("slack_x7y9z", "alice")
    resp = vault.proxy_request("slack_x7y9z", "alice", "/api/chat.postMessage", "POST", **kwargs)
    assert json.loads(resp.body)["body"] == expected


def test_only_one_kind_of_body(emulator, vault):
    with pytest.raises(UsageError):
        vault.proxy_request("slack_x7y9z", "alice", "/x", "POST", json={"a": 1}, form={"b": "2"})
    assert emulator.counters().get("oauth_token", 0) == 0


def test_the_sdks_traversal_path_is_refused_and_never_reaches_the_emulator(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    with pytest.raises(UsageError) as caught:
        vault.proxy_request("gmail_u3134a", "alice", "/../api/v1/connected_accounts/auth")
    assert caught.value.exit_code == ExitCode.USAGE
    assert emulator.http_requests() == [] and emulator.proxy_requests() == []
    assert emulator.counters().get("oauth_token", 0) == 0  # not even a login


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "https://evil.example/x"},
        {"path": "/a/%2e%2e/b"},
        {"path": "/x?token=1"},
        {"headers": {"X-A": "1\r\nX-Injected: 2"}},
        {"headers": {"identifier": "bob"}},
        {"headers": {"Authorization": "Bearer mine"}},
        {"method": "TRACE"},
        {"query": {"q": {"nested": 1}}},
    ],
)
def test_refused_before_anything_is_sent(emulator, vault, kwargs):
    emulator.seed("gmail_u3134a", "alice")
    args = {"path": "/x", **kwargs}
    with pytest.raises(UsageError):
        vault.proxy_request("gmail_u3134a", "alice", **args)
    assert emulator.http_requests() == [] and emulator.counters().get("oauth_token", 0) == 0


def test_a_disabled_proxy_is_its_own_error_with_its_own_exit_code(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    emulator.set_proxy_enabled(False)
    with pytest.raises(ProxyDisabledError) as caught:
        vault.proxy_request("gmail_u3134a", "alice", "/x")
    err = caught.value
    assert isinstance(err, ScalekitServiceError)
    assert err.exit_code == ExitCode.PROXY_DISABLED == 10
    assert err.connection_name == "gmail_u3134a"
    message = str(err)
    assert "\n" not in message
    assert "dashboard" in message and "proxy" in message.lower() and "gmail_u3134a" in message


@pytest.mark.parametrize(
    ("connection", "identifier", "status"),
    [("no_such_connection", "alice", None), ("gmail_u3134a", "nobody", None), ("gmail_u3134a", "carol", "EXPIRED")],
)
def test_no_usable_account_is_none(emulator, vault, connection, identifier, status):
    if status:
        emulator.seed(connection, identifier, status)
    assert vault.proxy_request(connection, identifier, "/x") is None


def test_the_providers_errors_are_answers_not_exceptions(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    resp = vault.proxy_request("gmail_u3134a", "alice", "/status/404")
    assert resp is not None and resp.status == 404
    assert vault.proxy_request("gmail_u3134a", "alice", "/status/503").status == 503


def test_scalekits_rate_limit_is_retried_inside_the_deadline(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(code="RESOURCE_EXHAUSTED", method="proxy")
    assert vault.proxy_request("gmail_u3134a", "alice", "/x").status == 200
    assert [r["outcome"] for r in emulator.proxy_requests()] == ["fault", "forwarded"]
    emulator.fail_next(count=-1, code="RESOURCE_EXHAUSTED", method="proxy")
    quick = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=1.5))
    try:
        with pytest.raises(RateLimitedError):
            quick.proxy_request("gmail_u3134a", "alice", "/x")
    finally:
        quick.close()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("UNAVAILABLE", ScalekitUnavailableError),
        ("DEADLINE_EXCEEDED", ScalekitTimeoutError),
        ("INTERNAL", ScalekitServiceError),
    ],
)
def test_scalekits_other_refusals(emulator, vault, code, error):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(code=code, method="proxy", message="detail from scalekit")
    with pytest.raises(error):
        vault.proxy_request("gmail_u3134a", "alice", "/x")


def test_rejected_client_credentials(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    vault.connect()
    emulator.rotate_client_secret()  # the SDK's re-login after the proxy's 401 fails too
    with pytest.raises(CredentialsRejectedError):
        vault.proxy_request("gmail_u3134a", "alice", "/x")


def test_a_slow_proxy_ends_at_the_deadline(emulator):
    v = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=1.5))
    try:
        v.connect()
        emulator.seed("gmail_u3134a", "alice")
        emulator.set_latency(5)
        started = time.monotonic()
        with pytest.raises(ScalekitTimeoutError):
            v.proxy_request("gmail_u3134a", "alice", "/x")
        assert time.monotonic() - started < 3
    finally:
        emulator.set_latency(0)
        v.close()


def test_an_unreachable_scalekit(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    vault.connect()
    emulator.stop()
    with pytest.raises(ScalekitUnavailableError):
        vault.proxy_request("gmail_u3134a", "alice", "/x")


def test_the_body_is_bounded(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    assert len(vault.proxy_request("gmail_u3134a", "alice", "/bytes/70000").body) == 70000
    with pytest.raises(ScalekitServiceError, match="65536"):
        vault.proxy_request("gmail_u3134a", "alice", "/bytes/70000", max_bytes=65536)


# -- tools ---------------------------------------------------------------------------


def test_list_tools_gives_names_descriptions_and_schemas(emulator, vault):
    tools = vault.list_tools("gmail_u3134a", "alice")
    assert [t["name"] for t in tools] == ["gmail_fetch_mails", "gmail_get_profile", "gmail_send_message"]
    assert all(set(t) == {"name", "description", "input_schema"} for t in tools)
    send = tools[2]
    assert send["input_schema"]["required"] == ["to", "subject", "body"]
    assert [t["name"] for t in vault.list_tools("gmail_u3134a", "alice", query="send message")] == [
        "gmail_send_message"
    ]


def test_list_tools_follows_every_page_within_one_deadline(emulator, monkeypatch):
    monkeypatch.setattr(vault_module, "TOOLS_PAGE_SIZE", 1)
    v = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=1.5))
    try:
        assert len(v.list_tools("gmail_u3134a")) == 3
        assert emulator.counters()["rpc.ListTools"] == 3
        emulator.set_latency(0.6)  # each page alone is within the timeout, all three are not
        with pytest.raises(ScalekitTimeoutError):
            v.list_tools("gmail_u3134a")
    finally:
        emulator.set_latency(0)
        v.close()


@pytest.mark.parametrize("query", ["ab", "x" * 101])
def test_a_query_scalekit_would_refuse_is_refused_here(emulator, vault, query):
    with pytest.raises(UsageError):
        vault.list_tools("gmail_u3134a", query=query)
    assert emulator.counters().get("rpc.ListTools", 0) == 0


def test_list_tools_of_an_unknown_connection_is_none(emulator, vault):
    assert vault.list_tools("no_such_connection", "alice") is None


def test_execute_tool_answers_the_result(emulator, vault):
    emulator.seed("gmail_u3134a", "bob@example.com", access_token="at-bob-secret")
    result = vault.execute_tool("gmail_u3134a", "bob@example.com", "gmail_get_profile", {})
    assert result["emailAddress"] == "bob@example.com"
    assert result["messagesTotal"] == 8 and isinstance(result["messagesTotal"], int)
    assert "at-bob-secret" not in json.dumps(result)
    fetched = vault.execute_tool("gmail_u3134a", "bob@example.com", "gmail_fetch_mails", {"max_results": 1})
    assert len(fetched["messages"]) == 1


@pytest.mark.parametrize("status", [None, "PENDING_AUTH", "EXPIRED"])
def test_execute_tool_for_an_account_that_is_not_connected_is_none(emulator, vault, status):
    if status:
        emulator.seed("gmail_u3134a", "alice", status)
    assert vault.execute_tool("gmail_u3134a", "alice", "gmail_get_profile", {}) is None


@pytest.mark.parametrize(
    ("tool_name", "tool_input"),
    [("gmail_send_message", {"subject": "x", "body": "y"}), ("gmail_nope", {}), ("slack_auth_test", {})],
)
def test_bad_input_or_an_unknown_tool_is_a_usage_error(emulator, vault, tool_name, tool_input):
    emulator.seed("gmail_u3134a", "alice")
    with pytest.raises(UsageError) as caught:
        vault.execute_tool("gmail_u3134a", "alice", tool_name, tool_input)
    assert "Scalekit" in str(caught.value)


@pytest.mark.parametrize(("tool_name", "tool_input"), [("", {}), ("gmail_get_profile", ["x"]), ("a\nb", {})])
def test_malformed_calls_are_refused_before_anything_is_sent(emulator, vault, tool_name, tool_input):
    with pytest.raises(UsageError):
        vault.execute_tool("gmail_u3134a", "alice", tool_name, tool_input)
    assert emulator.counters().get("oauth_token", 0) == 0


def test_a_providers_refusal_is_a_tool_execution_error(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_tool_call(code="UNAUTHENTICATED", tool_error_code="401", message="Invalid Credentials")
    with pytest.raises(ToolExecutionError) as caught:
        vault.execute_tool("gmail_u3134a", "alice", "gmail_get_profile", {})
    err = caught.value
    assert (err.tool_name, err.tool_error_code, err.reauthorize) == ("gmail_get_profile", "401", True)
    assert err.execution_id.startswith("exec_")
    assert "Invalid Credentials" in str(err) and "\n" not in str(err)
    assert not isinstance(err, CredentialsRejectedError)  # the provider refused, not Scalekit
    emulator.fail_tool_call(code="RESOURCE_EXHAUSTED", tool_error_code="429", message="quota")
    with pytest.raises(ToolExecutionError) as caught:
        vault.execute_tool("gmail_u3134a", "alice", "gmail_get_profile", {})
    assert caught.value.reauthorize is False
    assert [c["outcome"] for c in emulator.tool_calls()] == ["tool_error", "tool_error"]  # never resent


def test_execute_tool_is_never_resent_after_unavailable(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    vault.connect()
    emulator.fail_next(code="UNAVAILABLE", method="ExecuteTool")
    with pytest.raises(ScalekitUnavailableError):
        vault.execute_tool("gmail_u3134a", "alice", "gmail_send_message", {"to": "a@b.c", "subject": "s", "body": "b"})
    assert emulator.counters()["rpc.ExecuteTool"] == 1
