"""Vault.list_connections and Vault.delete_account through the real SDK against the emulator:
every page under one deadline, the fields the skill shows, and every failure as one of our errors."""

from __future__ import annotations

import time

import pytest

from scalekit_auth.config import ScalekitSettings
from scalekit_auth.errors import (
    CredentialsRejectedError,
    RateLimitedError,
    ScalekitTimeoutError,
    ScalekitUnavailableError,
    UsageError,
)
from scalekit_auth.vault import AppConnection, Vault


@pytest.fixture
def vault(emulator):
    v = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=10))
    yield v
    v.close()


def test_connections_come_with_provider_status_and_auth_mode(emulator, vault):
    emulator.add_connection("hubspot_org", kind="org_wide")
    emulator.add_connection("notion_draft", status="DRAFT", enabled=False)
    found = {c.name: c for c in vault.list_connections()}
    assert found["gmail_u3134a"] == AppConnection(
        name="gmail_u3134a",
        provider="GMAIL",
        status="COMPLETED",
        auth_mode="USER",
        type="OAUTH",
        enabled=True,
        id="conn_gmail_u3134a",
    )
    assert found["hubspot_org"].auth_mode == "ORG_WIDE"
    assert (found["notion_draft"].status, found["notion_draft"].enabled) == ("DRAFT", False)
    assert found["openai_demo"].type == "API_KEY"
    assert found["gmail_u3134a"].as_dict() == {
        "name": "gmail_u3134a",
        "provider": "GMAIL",
        "status": "COMPLETED",
        "auth_mode": "USER",
        "type": "OAUTH",
        "enabled": True,
    }


def test_every_page_is_followed_and_filters_are_passed_on(emulator, vault):
    for n in range(40):
        emulator.add_connection(f"slack_{n:02d}")
    before = emulator.counters().get("rpc.ListAppConnections", 0)
    everything = vault.list_connections()
    assert len(everything) == 47 and len({c.name for c in everything}) == 47
    assert emulator.counters()["rpc.ListAppConnections"] - before == 2  # 30 per page
    assert [c.name for c in vault.list_connections(provider="GMAIL")] == ["gmail_u3134a"]
    assert [c.name for c in vault.list_connections(query="x7y9")] == ["slack_x7y9z"]


def test_a_query_scalekit_would_refuse_is_refused_before_anything_is_sent(emulator, vault):
    before = emulator.counters().get("rpc_calls", 0)
    with pytest.raises(UsageError, match="3 to 100"):
        vault.list_connections(query="ab")
    with pytest.raises(UsageError):
        vault.list_connections(provider="")
    assert emulator.counters().get("rpc_calls", 0) == before


def test_one_deadline_covers_every_page(emulator):
    for n in range(130):
        emulator.add_connection(f"slack_{n:03d}")
    v = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=1.5))
    try:
        v.connect()
        emulator.set_latency(0.4)  # each page alone is well within the timeout; five are not
        started = time.monotonic()
        with pytest.raises(ScalekitTimeoutError):
            v.list_connections()
        assert time.monotonic() - started < 3
    finally:
        emulator.set_latency(0)
        v.close()


@pytest.mark.parametrize(
    ("code", "error", "phrase"),
    [
        ("UNAVAILABLE", ScalekitUnavailableError, "Cannot reach Scalekit"),
        ("PERMISSION_DENIED", CredentialsRejectedError, "list connections"),
        ("INVALID_ARGUMENT", UsageError, "refused the connection listing"),
    ],
)
def test_failures_of_the_listing_are_our_errors(emulator, vault, code, error, phrase):
    vault.connect()
    emulator.fail_next(count=-1, code=code, method="ListAppConnections")
    with pytest.raises(error, match=phrase):
        vault.list_connections()


def test_a_rate_limit_is_retried_inside_the_deadline(emulator, vault):
    vault.connect()
    emulator.fail_next(count=1, code="RESOURCE_EXHAUSTED", method="ListAppConnections")
    assert vault.list_connections(provider="GMAIL")
    emulator.fail_next(count=-1, code="RESOURCE_EXHAUSTED", method="ListAppConnections")
    short = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=1))
    try:
        with pytest.raises(RateLimitedError):
            short.list_connections()
    finally:
        short.close()


# -- deleting an account ---------------------------------------------------------------------


def test_delete_account_revokes_it_and_a_second_delete_finds_nothing(emulator, vault):
    emulator.seed("gmail_u3134a", "alice", access_token="at-alice")
    emulator.seed("gmail_u3134a", "bob", access_token="at-bob")
    assert vault.delete_account("gmail_u3134a", "alice") is True
    assert [a["identifier"] for a in emulator.accounts()] == ["bob"]
    assert vault.delete_account("gmail_u3134a", "alice") is False
    assert vault.account("gmail_u3134a", "alice") is None


@pytest.mark.parametrize(
    ("code", "error", "phrase"),
    [
        ("UNAVAILABLE", ScalekitUnavailableError, "Cannot reach Scalekit"),
        ("PERMISSION_DENIED", CredentialsRejectedError, "revoke connected accounts"),
    ],
)
def test_failures_of_a_delete_are_our_errors(emulator, vault, code, error, phrase):
    emulator.seed("gmail_u3134a", "alice")
    vault.connect()
    emulator.fail_next(count=-1, code=code, method="DeleteConnectedAccount")
    with pytest.raises(error, match=phrase):
        vault.delete_account("gmail_u3134a", "alice")
    emulator.clear_faults()
    assert [a["identifier"] for a in emulator.accounts()] == ["alice"]


def test_delete_refuses_names_scalekit_would_refuse_before_sending(emulator, vault):
    with pytest.raises(UsageError):
        vault.delete_account("gmail_u3134a", "")
    with pytest.raises(UsageError):
        vault.delete_account("gmail\nu3134a", "alice")
