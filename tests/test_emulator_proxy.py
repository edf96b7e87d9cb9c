"""The emulator's Scalekit proxy (`{env}/proxy{path}`) and the provider API behind it, driven
through the real SDK's `actions.request` over real TLS."""

from __future__ import annotations

import json

import pytest
import requests

from scalekit_auth.emulator import ADMIN_HEADER


def _scalekit_error(resp: requests.Response) -> dict:
    """Scalekit's own refusal: a JSON object with exactly `detail` and `code`."""
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail", "code"}, body
    return body


def _no_secret_in(resp: requests.Response, *secrets: str) -> None:
    text = resp.text + json.dumps(dict(resp.headers))
    for secret in secrets:
        assert secret not in text


def test_a_proxied_get_reaches_the_provider_as_the_account_and_never_shows_the_token(emulator, sdk):
    alice = emulator.seed("gmail_u3134a", "alice", access_token="at-alice-secret")
    resp = sdk.actions.request(
        connection_name="gmail_u3134a",
        identifier="alice",
        path="/gmail/v1/users/me/profile",
        query_params={"fields": "emailAddress", "n": 3},
        headers={"X-Trace": "t1"},
    )
    assert resp.status_code == 200
    echo = resp.json()
    assert echo["identifier"] == "alice"
    assert echo["connection_name"] == "gmail_u3134a"
    assert echo["provider"] == "gmail"
    assert echo["method"] == "GET"
    assert echo["path"] == "/gmail/v1/users/me/profile"
    assert echo["query"] == {"fields": ["emailAddress"], "n": ["3"]}
    assert echo["headers"]["x-trace"] == "t1"
    _no_secret_in(resp, alice["access_token"], alice["refresh_token"], sdk.core_client.access_token)

    [seen] = emulator.proxy_requests()
    assert seen["method"] == "GET"
    assert seen["path"] == "/gmail/v1/users/me/profile"
    assert seen["query"] == "fields=emailAddress&n=3"
    assert seen["headers"]["authorization"] == f"Bearer {sdk.core_client.access_token}"
    assert seen["headers"]["connection_name"] == "gmail_u3134a"
    assert seen["headers"]["identifier"] == "alice"
    assert seen["status"] == 200
    assert seen["outcome"] == "forwarded"


def test_each_identifier_gets_its_own_accounts_token(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.seed("gmail_u3134a", "bob")
    emulator.seed("slack_x7y9z", "alice")
    for connection, who in (("gmail_u3134a", "alice"), ("gmail_u3134a", "bob"), ("slack_x7y9z", "alice")):
        echo = sdk.actions.request(connection_name=connection, identifier=who, path="/whoami").json()
        assert (echo["connection_name"], echo["identifier"]) == (connection, who)
    # the provider identified each account by the token the proxy attached, and each was current
    assert [r["upstream_account"] for r in emulator.proxy_requests()] == [
        ["gmail_u3134a", "alice"],
        ["gmail_u3134a", "bob"],
        ["slack_x7y9z", "alice"],
    ]


def test_an_expired_account_token_is_refreshed_before_forwarding(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice", access_token="old", ttl=-5)
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x")
    assert resp.status_code == 200
    assert emulator.account("gmail_u3134a", "alice")["access_token"] != "old"
    assert emulator.counters()["token_refreshes"] == 1


@pytest.mark.parametrize(
    ("kwargs", "body", "content_type"),
    [
        ({"body": {"to": "x@example.com", "n": 1}}, {"to": "x@example.com", "n": 1}, "application/json"),
        (
            {"form_data": {"a": "1", "b": "two words"}},
            {"a": ["1"], "b": ["two words"]},
            "application/x-www-form-urlencoded",
        ),
        ({"raw_body": b"<x>1</x>", "headers": {"Content-Type": "application/xml"}}, "<x>1</x>", "application/xml"),
    ],
)
def test_bodies_reach_the_provider_as_sent(emulator, sdk, kwargs, body, content_type):
    emulator.seed("slack_x7y9z", "alice")
    resp = sdk.actions.request(
        connection_name="slack_x7y9z", identifier="alice", path="/api/chat.postMessage", method="post", **kwargs
    )
    echo = resp.json()
    assert echo["method"] == "POST"
    assert echo["headers"]["content-type"].startswith(content_type)
    assert echo["body"] == body


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_is_proxied(emulator, sdk, method):
    emulator.seed("github_demo", "alice")
    resp = sdk.actions.request(connection_name="github_demo", identifier="alice", path="/user", method=method)
    assert resp.status_code == 200
    assert resp.json()["method"] == method


def test_head_is_proxied_without_a_body(emulator, sdk):
    emulator.seed("github_demo", "alice")
    resp = sdk.actions.request(connection_name="github_demo", identifier="alice", path="/user", method="HEAD")
    assert resp.status_code == 200
    assert resp.content == b""


def test_the_providers_own_errors_pass_through_unchanged(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/status/404")
    assert resp.status_code == 404
    body = resp.json()
    assert set(body) != {"detail", "code"}  # not Scalekit's shape
    assert body["error"]["code"] == 404
    assert emulator.proxy_requests()[-1]["outcome"] == "forwarded"


def test_the_provider_can_answer_binary_bodies_of_a_given_size(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/bytes/70000")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert len(resp.content) == 70000


def test_a_disabled_proxy_answers_tool_proxy_disabled(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.seed("slack_x7y9z", "alice")
    emulator.set_proxy_enabled(False)
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x")
    assert resp.status_code == 403
    assert _scalekit_error(resp)["code"] == "TOOL_PROXY_DISABLED"
    assert emulator.proxy_requests()[-1]["outcome"] == "disabled"

    emulator.set_proxy_enabled(True)
    emulator.set_proxy_enabled(False, connection="slack_x7y9z")  # one connection's provider only
    assert sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x").status_code == 200
    assert sdk.actions.request(connection_name="slack_x7y9z", identifier="alice", path="/x").status_code == 403
    emulator.set_proxy_enabled(True, connection="slack_x7y9z")
    assert sdk.actions.request(connection_name="slack_x7y9z", identifier="alice", path="/x").status_code == 200


@pytest.mark.parametrize(
    ("connection", "identifier", "status"),
    [
        ("no_such_connection", "alice", None),
        ("gmail_u3134a", "nobody", None),
        ("gmail_u3134a", "carol", "EXPIRED"),
        ("gmail_u3134a", "dave", "PENDING_AUTH"),
        ("gmail_u3134a", "erin", "DISCONNECTED"),
        ("gmail_u3134a", "fred", "PENDING_VERIFICATION"),
    ],
)
def test_no_usable_account_is_not_found_and_nothing_is_forwarded(emulator, sdk, connection, identifier, status):
    if status:
        emulator.seed(connection, identifier, status)
    resp = sdk.actions.request(connection_name=connection, identifier=identifier, path="/x")
    assert resp.status_code == 404
    assert _scalekit_error(resp)["code"] == "NOT_FOUND"
    assert emulator.proxy_requests()[-1]["outcome"] == "not_found"
    assert emulator.proxy_requests()[-1]["upstream_account"] is None


def test_missing_proxy_headers_are_a_bad_request(emulator, sdk):
    resp = requests.get(
        emulator.url + "/proxy/x", headers={"Authorization": f"Bearer {sdk.core_client.access_token}"}, timeout=30
    )
    assert resp.status_code == 400
    assert _scalekit_error(resp)["code"] == "INVALID_ARGUMENT"


def test_a_bad_bearer_is_refused_before_anything_else(emulator):
    emulator.seed("gmail_u3134a", "alice")
    resp = requests.get(
        emulator.url + "/proxy/x",
        headers={"Authorization": "Bearer nope", "connection_name": "gmail_u3134a", "identifier": "alice"},
        timeout=30,
    )
    assert resp.status_code == 401
    assert _scalekit_error(resp)["code"] == "UNAUTHORIZED"
    assert emulator.proxy_requests()[-1]["outcome"] == "unauthenticated"


def test_the_sdk_logs_in_again_after_a_401_and_resends_once(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.revoke_client_tokens()
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x", method="POST", body={})
    assert resp.status_code == 200
    assert [r["outcome"] for r in emulator.proxy_requests()] == ["unauthenticated", "forwarded"]
    assert emulator.counters()["oauth_token"] == 2


def test_the_sdk_also_resends_after_a_providers_401_so_a_post_can_reach_it_twice(emulator, sdk):
    """SDK 2.21 resends on any 401, including one the provider gave: a POST is then sent twice."""
    emulator.seed("gmail_u3134a", "alice")
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/status/401", method="POST")
    assert resp.status_code == 401
    assert [r["outcome"] for r in emulator.proxy_requests()] == ["forwarded", "forwarded"]


def test_injected_faults_answer_in_scalekits_shape(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(code="RESOURCE_EXHAUSTED", method="proxy", message="slow down")
    resp = sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x")
    assert resp.status_code == 429
    assert _scalekit_error(resp) == {"detail": "slow down", "code": "RESOURCE_EXHAUSTED"}
    # a fault for every RPC (no method) does not touch the proxy
    emulator.fail_next(code="UNAVAILABLE")
    assert sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x").status_code == 200


def test_sdk_2_21_turns_a_dot_dot_path_into_a_call_to_scalekits_own_api(emulator, sdk):
    """Why the vault checks paths: the SDK removes dot segments, so this leaves /proxy with the
    environment's bearer token (recorded by the emulator, which serves no such route)."""
    resp = sdk.actions.request(
        connection_name="gmail_u3134a", identifier="alice", path="/../api/v1/connected_accounts/auth"
    )
    assert resp.status_code == 404
    assert emulator.proxy_requests() == []
    [seen] = [r for r in emulator.http_requests() if r["path"].startswith("/api/")]
    assert (seen["method"], seen["path"]) == ("GET", "/api/v1/connected_accounts/auth")
    assert seen["authorization"] == f"Bearer {sdk.core_client.access_token}"


def test_sdk_2_21_lets_a_callers_headers_replace_its_own(emulator, sdk):
    """Why the vault refuses these headers: the SDK merges the caller's headers over its own, so
    `identifier: bob` acts as bob, and a caller's Authorization replaces the environment bearer."""
    emulator.seed("gmail_u3134a", "alice")
    emulator.seed("gmail_u3134a", "bob")
    resp = sdk.actions.request(
        connection_name="gmail_u3134a", identifier="alice", path="/x", headers={"identifier": "bob"}
    )
    assert resp.json()["identifier"] == "bob"
    resp = sdk.actions.request(
        connection_name="gmail_u3134a", identifier="alice", path="/x", headers={"Authorization": "Bearer mine"}
    )
    assert resp.status_code == 401  # twice: the SDK logged in again and resent with the same header
    assert [r["headers"]["authorization"] for r in emulator.proxy_requests()[-2:]] == ["Bearer mine"] * 2


def test_the_proxy_is_only_on_the_tls_port(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    resp = requests.get(
        emulator.pages_url + "/proxy/x",
        headers={
            "Authorization": f"Bearer {sdk.core_client.access_token}",
            "connection_name": "gmail_u3134a",
            "identifier": "alice",
        },
        timeout=30,
    )
    assert resp.status_code == 404
    assert emulator.proxy_requests() == []


def test_reset_clears_the_logs_and_enables_the_proxy_again(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.set_proxy_enabled(False)
    sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x")
    emulator.reset()
    assert emulator.proxy_requests() == [] and emulator.http_requests() == []
    emulator.seed("gmail_u3134a", "alice")
    assert sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x").status_code == 200


def test_the_admin_api_switches_the_proxy_and_reads_its_log(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    headers = {ADMIN_HEADER: emulator.admin_key}
    admin = emulator.pages_url + "/_emulator/"
    assert requests.post(admin + "set_proxy_enabled", json={"enabled": False}, headers=headers, timeout=30).ok
    assert sdk.actions.request(connection_name="gmail_u3134a", identifier="alice", path="/x").status_code == 403
    log = requests.post(admin + "proxy_requests", json={}, headers=headers, timeout=30).json()["result"]
    assert [r["outcome"] for r in log] == ["disabled"]
    assert requests.post(admin + "tool_calls", json={}, headers=headers, timeout=30).json()["result"] == []
