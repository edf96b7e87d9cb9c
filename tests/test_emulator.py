"""The emulator, as the real Scalekit SDK sees it: real TLS, real gRPC, real HTTPS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import requests
from scalekit.client import ScalekitClient
from scalekit.common.exceptions import (
    ScalekitBadRequestException,
    ScalekitGatewayTimeoutException,
    ScalekitNotFoundException,
    ScalekitServiceUnavailableException,
    ScalekitTooManyRequestsException,
    ScalekitUnauthorizedException,
)

from scalekit_auth.emulator import ADMIN_HEADER, Emulator, EmulatorError

from .helpers import ROOT


def utc(naive: datetime) -> float:
    """The SDK hands back naive UTC datetimes."""
    return naive.replace(tzinfo=UTC).timestamp()


# -- client credentials ---------------------------------------------------------


def test_client_credentials_are_checked(emulator):
    ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)
    with pytest.raises(ScalekitUnauthorizedException):
        ScalekitClient(emulator.url, emulator.client_id, "wrong-secret")
    with pytest.raises(ScalekitUnauthorizedException):
        ScalekitClient(emulator.url, "wrong-id", emulator.client_secret)
    counters = emulator.counters()
    assert counters["oauth_token"] == 3
    assert counters["oauth_token_rejected"] == 2


def test_token_endpoint_answers_401_json(emulator):
    resp = requests.post(
        emulator.url + "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        timeout=60,
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


def test_every_rpc_needs_a_valid_bearer_token(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.revoke_client_tokens()
    # The SDK answers UNAUTHENTICATED by fetching a new client token and retrying once.
    sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
    counters = emulator.counters()
    assert counters["rpc_unauthenticated"] == 1
    assert counters["oauth_token"] == 2


def test_rotated_client_secret_is_refused(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.rotate_client_secret()
    with pytest.raises(ScalekitUnauthorizedException):
        sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")


# -- connected accounts ---------------------------------------------------------


def test_active_oauth_account_carries_its_token(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice", access_token="at-alice", refresh_token="rt-alice", ttl=600)
    acc = sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice").connected_account
    assert acc.status == "ACTIVE"
    assert acc.identifier == "alice"
    assert acc.connector == "gmail_u3134a"
    assert acc.authorization_type == "OAUTH"
    assert acc.authorization_details["oauth_token"]["access_token"] == "at-alice"
    assert acc.authorization_details["oauth_token"]["refresh_token"] == "rt-alice"
    assert acc.authorization_details["oauth_token"]["scopes"]
    assert 590 < utc(acc.token_expires_at) - time.time() <= 600


def test_details_never_carry_credentials(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice", access_token="at-alice")
    acc = sdk.actions.get_connected_account_details(
        connection_name="gmail_u3134a", identifier="alice"
    ).connected_account
    assert acc.status == "ACTIVE"
    assert acc.authorization_details is None


def test_static_account_carries_its_fields(emulator, sdk):
    emulator.seed("openai_demo", "alice", static={"api_key": "sk-static-1"})
    acc = sdk.actions.get_connected_account(connection_name="openai_demo", identifier="alice").connected_account
    assert acc.authorization_type == "API_KEY"
    assert acc.authorization_details == {"static_auth": {"api_key": "sk-static-1"}}


@pytest.mark.parametrize("status", ["ACTIVE", "EXPIRED", "PENDING_AUTH", "PENDING_VERIFICATION", "DISCONNECTED"])
def test_every_status_is_reported(emulator, sdk, status):
    emulator.seed("slack_x7y9z", "bob", status)
    acc = sdk.actions.get_connected_account(connection_name="slack_x7y9z", identifier="bob").connected_account
    assert acc.status == status


def test_not_found_for_unknown_account_and_unknown_connection(emulator, sdk):
    """GetConnectedAccountAuth/Details: 404 "no account matches the specified criteria".
    GetMagicLinkForConnectedAccount: 404 "the connector names no connection in this environment",
    with error code RESOURCE_NOT_FOUND (the SDK 2.21.0 descriptors)."""
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="nobody")
    emulator.seed("gmail_u3134a", "alice")
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.get_connected_account(connection_name="no_such_connection", identifier="alice")
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.get_connected_account_details(connection_name="no_such_connection", identifier="alice")
    with pytest.raises(ScalekitNotFoundException) as caught:
        sdk.actions.get_authorization_link(connection_name="no_such_connection", identifier="alice")
    assert caught.value.error_code == "RESOURCE_NOT_FOUND"


def test_creating_an_account_on_an_unknown_connection_is_a_bad_request(emulator, sdk):
    """CreateConnectedAccount documents 400, 401 and 409 only: no 404. So get_or_create of an
    unknown connection ends in a bad request (its get answers 404 first)."""
    with pytest.raises(ScalekitBadRequestException):
        sdk.actions.create_connected_account(connection_name="no_such_connection", identifier="alice")
    with pytest.raises(ScalekitBadRequestException):
        sdk.actions.get_or_create_connected_account(connection_name="no_such_connection", identifier="alice")
    assert emulator.accounts() == []


def test_get_or_create_then_update_then_delete(emulator, sdk):
    created = sdk.actions.get_or_create_connected_account(connection_name="notion_demo", identifier="carol")
    assert created.connected_account.status == "PENDING_AUTH"
    again = sdk.actions.get_or_create_connected_account(connection_name="notion_demo", identifier="carol")
    assert again.connected_account.id == created.connected_account.id
    updated = sdk.actions.update_connected_account(
        connection_name="notion_demo",
        identifier="carol",
        authorization_details={"oauth_token": {"access_token": "at-carol", "refresh_token": "rt", "scopes": ["x"]}},
    )
    assert updated.connected_account.status == "ACTIVE"
    assert emulator.account("notion_demo", "carol")["access_token"] == "at-carol"
    sdk.actions.delete_connected_account(connection_name="notion_demo", identifier="carol")
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.get_connected_account(connection_name="notion_demo", identifier="carol")
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.delete_connected_account(connection_name="notion_demo", identifier="carol")


def test_list_filters_and_pages(emulator, sdk):
    for i in range(7):
        emulator.seed("gmail_u3134a", f"user{i}")
    emulator.seed("slack_x7y9z", "user0")
    emulator.seed("github_demo", "user0")

    seen, token, pages = [], None, 0
    while True:
        page = sdk.actions.list_connected_accounts(connection_name="gmail_u3134a", page_size=3, page_token=token)
        pages += 1
        assert page.total_count == 7
        seen += [a.identifier for a in page.connected_accounts]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"user{i}" for i in range(7)]

    by_user = sdk.actions.list_connected_accounts(identifier="user0")
    assert sorted(a.connector for a in by_user.connected_accounts) == ["github_demo", "gmail_u3134a", "slack_x7y9z"]
    by_names = sdk.actions.list_connected_accounts(connection_names=["slack_x7y9z", "github_demo"])
    assert by_names.total_count == 2


def test_the_list_refuses_what_its_rules_refuse(emulator, sdk):
    """ListConnectedAccountsRequest (SDK 2.21.0 descriptors): page_size `lt: 100`, connection_names
    at most 20 names matching the connection-name pattern, and not combined with connector."""
    ask = sdk.actions.list_connected_accounts
    assert ask(page_size=99).connected_accounts == []
    with pytest.raises(ScalekitBadRequestException, match="page_size: value must be less than 100"):
        ask(page_size=100)
    names = [f"conn_{i}" for i in range(20)]
    assert ask(connection_names=names).connected_accounts == []
    with pytest.raises(ScalekitBadRequestException, match="no more than 20"):
        ask(connection_names=[*names, "conn_20"])
    with pytest.raises(ScalekitBadRequestException, match=r"connection_names\[1\]"):
        ask(connection_names=["gmail_u3134a", "gmail.u3134a"])
    with pytest.raises(ScalekitBadRequestException, match="cannot be combined"):
        ask(connection_name="gmail_u3134a", connection_names=["slack_x7y9z"])


def test_the_list_pages_by_ten_unless_asked_and_its_tokens_fit_their_rule(emulator, sdk):
    for i in range(23):
        emulator.seed("gmail_u3134a", f"user{i:02d}")
    seen, token, sizes = [], None, []
    while True:
        page = sdk.actions.list_connected_accounts(identifier=None, connection_names=["gmail_u3134a"], page_token=token)
        sizes.append(len(page.connected_accounts))
        seen += [a.identifier for a in page.connected_accounts]
        token = page.next_page_token
        assert token is None or len(token) <= 32  # ListConnectedAccountsResponse.next_page_token max_len
        if not token:
            break
    assert sizes == [10, 10, 3] and seen == [f"user{i:02d}" for i in range(23)]


# -- expiry, refresh, rotation --------------------------------------------------


def test_expired_access_token_is_refreshed_on_lookup(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice", access_token="old-token", ttl=-5)
    acc = sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice").connected_account
    new = acc.authorization_details["oauth_token"]["access_token"]
    assert new != "old-token"
    assert utc(acc.token_expires_at) > time.time() + 3000
    assert emulator.counters()["token_refreshes"] == 1


def test_rotation_changes_the_token(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice", access_token="first")
    emulator.rotate_token("gmail_u3134a", "alice", "second")
    acc = sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice").connected_account
    assert acc.authorization_details["oauth_token"]["access_token"] == "second"


# -- authorization links --------------------------------------------------------


def test_scalekit_creates_the_account_when_the_user_authorizes(emulator, sdk):
    """Scalekit creates the account when the user authorizes (docs, AgentKit overview); the
    magic link documents a 404 only for an unknown connection, and the SDK's MCP docstring sends
    callers without an account to get_authorization_link."""
    link = sdk.actions.get_authorization_link(connection_name="gmail_u3134a", identifier="erin")
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.get_connected_account_details(connection_name="gmail_u3134a", identifier="erin")
    emulator.approve(link.link)
    acc = sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="erin").connected_account
    assert acc.status == "ACTIVE" and acc.authorization_details["oauth_token"]["access_token"].startswith("emu_at_")

    denied = sdk.actions.get_authorization_link(connection_name="gmail_u3134a", identifier="frank")
    assert emulator.deny(denied.link) is None
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.get_connected_account_details(connection_name="gmail_u3134a", identifier="frank")


def test_the_documented_flow_creates_the_account_first_and_approval_activates_it(emulator, sdk):
    created = sdk.actions.get_or_create_connected_account(connection_name="gmail_u3134a", identifier="dave")
    assert created.connected_account.status == "PENDING_AUTH"
    link = sdk.actions.get_authorization_link(connection_name="gmail_u3134a", identifier="dave")
    assert link.link.startswith("http://127.0.0.1:")
    assert 55 < utc(link.expiry) - time.time() <= 60
    assert emulator.account("gmail_u3134a", "dave")["status"] == "PENDING_AUTH"

    emulator.approve(link.link)
    acc = sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="dave").connected_account
    assert acc.status == "ACTIVE"
    assert acc.authorization_details["oauth_token"]["access_token"].startswith("emu_at_")

    with pytest.raises(EmulatorError, match="already been used"):
        emulator.approve(link.link)
    assert emulator.counters()["links_issued"] == 1


def test_expired_link_is_refused_and_changes_nothing():
    with Emulator(link_ttl=60) as emu:
        link = emu.issue_link("gmail_u3134a", "erin")["link"]
        emu.advance_clock(61)
        with pytest.raises(EmulatorError, match="expired"):
            emu.approve(link)
        assert emu.account("gmail_u3134a", "erin")["status"] == "PENDING_AUTH"
        page = requests.get(link, timeout=60)
        assert page.status_code == 410


def test_consent_page_allow_and_deny(emulator):
    link = emulator.issue_link("slack_x7y9z", "frank")["link"]
    page = requests.get(link, timeout=60)
    assert page.status_code == 200
    assert "frank" in page.text and 'id="allow"' in page.text and 'id="deny"' in page.text
    done = requests.post(link, data={"decision": "allow"}, timeout=60)
    assert "Connected" in done.text
    assert emulator.account("slack_x7y9z", "frank")["status"] == "ACTIVE"
    assert requests.get(link, timeout=60).status_code == 410

    link2 = emulator.issue_link("slack_x7y9z", "gina")["link"]
    denied = requests.post(link2, data={"decision": "deny"}, timeout=60)
    assert "denied" in denied.text
    assert emulator.account("slack_x7y9z", "gina")["status"] == "PENDING_AUTH"
    assert emulator.counters()["links_denied"] == 1


# -- faults ---------------------------------------------------------------------


def test_unavailable_twice_then_success_through_sdk_retries(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(2, "UNAVAILABLE")
    acc = sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice").connected_account
    assert acc.status == "ACTIVE"
    assert emulator.counters()["rpc.GetConnectedAccountAuth"] == 3


def test_unavailable_forever_surfaces(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(-1, "UNAVAILABLE")
    with pytest.raises(ScalekitServiceUnavailableException):
        sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")


def test_rate_limit_is_not_retried(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(1, "RESOURCE_EXHAUSTED")
    with pytest.raises(ScalekitTooManyRequestsException):
        sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
    assert emulator.counters()["rpc.GetConnectedAccountAuth"] == 1


def test_fault_can_target_one_method(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(1, "RESOURCE_EXHAUSTED", method="GetMagicLinkForConnectedAccount")
    sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
    with pytest.raises(ScalekitTooManyRequestsException):
        sdk.actions.get_authorization_link(connection_name="gmail_u3134a", identifier="alice")


def test_token_endpoint_fault(emulator):
    emulator.fail_next(1, "UNAVAILABLE", method="/oauth/token")
    with pytest.raises(ScalekitServiceUnavailableException):
        ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)
    ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)


def test_latency_beyond_the_deadline_times_out(emulator):
    emulator.seed("gmail_u3134a", "alice")
    client = ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret, call_timeout_s=0.2)
    emulator.set_latency(120)
    started = time.monotonic()
    with pytest.raises(ScalekitGatewayTimeoutException):
        client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
    assert time.monotonic() - started < 60  # the 0.2 s deadline, not the 120 s answer
    emulator.clear_faults()
    client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")


def test_bad_fault_code_is_rejected(emulator):
    with pytest.raises(ValueError, match="gRPC status name"):
        emulator.fail_next(1, "NOT_A_CODE")


# -- plumbing -------------------------------------------------------------------


def test_one_loopback_port_speaks_both_protocols(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    sdk.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
    counters = emulator.counters()
    assert counters["tls_connections.http/1.1"] >= 1
    assert counters["tls_connections.h2"] == 1
    assert emulator._router._server.sockets[0].getsockname()[0] == "127.0.0.1"
    assert emulator._consent.server_address[0] == "127.0.0.1"


def test_two_emulators_in_one_process_share_the_ca(emulator):
    with Emulator() as second:
        second.seed("gmail_u3134a", "alice", access_token="from-second")
        client = ScalekitClient(second.url, second.client_id, second.client_secret)
        acc = client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
        assert acc.connected_account.authorization_details["oauth_token"]["access_token"] == "from-second"
    assert second.ca.cert_path == emulator.ca.cert_path


def test_stop_cuts_connections_and_refuses_new_ones():
    emu = Emulator().start()
    emu.seed("gmail_u3134a", "alice")
    client = ScalekitClient(emu.url, emu.client_id, emu.client_secret, call_timeout_s=2)
    client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
    emu.stop()
    with pytest.raises(ScalekitServiceUnavailableException):
        client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")


def test_reset_forgets_accounts_and_counters(emulator):
    emulator.seed("gmail_u3134a", "alice")
    emulator.reset()
    assert emulator.accounts() == []
    assert emulator.counters() == {}


# -- admin API ------------------------------------------------------------------


def test_admin_api_needs_the_key(emulator):
    url = emulator.env["SCALEKIT_EMULATOR_ADMIN_URL"]
    assert requests.post(f"{url}/counters", json={}, timeout=60).status_code == 403
    headers = {ADMIN_HEADER: emulator.admin_key}
    seeded = requests.post(
        f"{url}/seed", json={"connection": "gmail_u3134a", "identifier": "hank"}, headers=headers, timeout=60
    )
    assert seeded.status_code == 200
    assert seeded.json()["result"]["status"] == "ACTIVE"
    link = requests.post(
        f"{url}/issue_link", json={"connection": "gmail_u3134a", "identifier": "ivy"}, headers=headers, timeout=60
    ).json()["result"]["link"]
    ok = requests.post(f"{url}/approve", json={"link": link}, headers=headers, timeout=60)
    assert ok.json()["result"]["status"] == "ACTIVE"
    bad = requests.post(f"{url}/seed", json={"nope": 1}, headers=headers, timeout=60)
    assert bad.status_code == 400
    unknown = requests.post(f"{url}/explode", json={}, headers=headers, timeout=60)
    assert unknown.status_code == 404 and "seed" in unknown.json()["actions"]
    counters = requests.get(f"{url}/counters", headers=headers, timeout=60).json()["result"]
    assert counters["links_approved"] == 1


# -- command line ---------------------------------------------------------------


def test_command_line_prints_exports_serves_and_stops(tmp_path):
    env_file = tmp_path / "emu.env"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalekit_auth.emulator",
            "--seed",
            "gmail_u3134a:alice:ACTIVE",
            "--env-file",
            str(env_file),
            "--ca-dir",
            os.environ["SCALEKIT_EMULATOR_CA_DIR"],
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(8)]
        exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in lines)
        assert set(exports) >= {
            "SCALEKIT_ENV_URL",
            "SCALEKIT_CLIENT_ID",
            "SCALEKIT_CLIENT_SECRET",
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
            "REQUESTS_CA_BUNDLE",
        }
        assert env_file.read_text().splitlines() == [line.rstrip("\n") for line in lines]
        assert env_file.stat().st_mode & 0o077 == 0
        client = ScalekitClient(
            exports["SCALEKIT_ENV_URL"], exports["SCALEKIT_CLIENT_ID"], exports["SCALEKIT_CLIENT_SECRET"]
        )
        acc = client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
        assert acc.connected_account.status == "ACTIVE"
        client.core_client.grpc_secure_channel.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # not left running after the test
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"the emulator did not stop within 60 s of Ctrl-C:\n{err}")
    assert proc.returncode == 0
    assert "Ctrl-C" in err


def test_command_line_rejects_a_bad_seed():
    proc = subprocess.run(
        [sys.executable, "-m", "scalekit_auth.emulator", "--seed", "gmail_u3134a:alice:HAPPY"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "status must be one of" in proc.stderr


def test_client_tokens_expire_and_the_sdk_logs_in_again():
    with Emulator(client_token_ttl=600) as emu:
        emu.seed("gmail_u3134a", "alice")
        client = ScalekitClient(emu.url, emu.client_id, emu.client_secret)
        client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
        emu.advance_clock(601)
        client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="alice")
        counters = emu.counters()
        assert counters["rpc_unauthenticated"] == 1
        assert counters["oauth_token"] == 2
        client.core_client.grpc_secure_channel.close()
