"""`status` (and `list --status`, the MCP server's status) ask Scalekit for the accounts of up to 20
connections at once (ListConnectedAccounts with connection_names and identifier), not one lookup per
service: N services of one identifier cost ceil(N/20) calls against the environment's rate limit.
Through the real SDK and the emulator, whose RPC counters count the calls."""

from __future__ import annotations

import json

import pytest

from scalekit_auth.broker import TokenBroker
from scalekit_auth.config import ScalekitSettings
from scalekit_auth.errors import BatchError
from scalekit_auth.vault import LIST_PAGE_SIZE, Vault

from .helpers import run_script

STATUSES = ("ACTIVE", "EXPIRED", "PENDING_AUTH", "DISCONNECTED", "PENDING_VERIFICATION", None)


def _many(skill, emulator, count: int, identifier: str, first: int = 0) -> list[str]:
    """`count` services svcNN on connections connNN for `identifier`, in every status (None: no account)."""
    services = []
    for i in range(first, first + count):
        service, connection = f"svc{i:02d}", f"conn{i - first:02d}"
        if connection not in emulator.world.connections:
            emulator.add_connection(connection)
        skill.configure(service, connection, identifier)
        status = STATUSES[i % len(STATUSES)]
        if status is not None:
            emulator.seed(connection, identifier, status, ttl=3615)  # "60 min" for 45 s either way
        services.append(service)
    return services


def _calls(emulator) -> tuple[int, int]:
    counters = emulator.counters()
    return counters.get("rpc.ListConnectedAccounts", 0), counters.get("rpc.GetConnectedAccountDetails", 0)


def test_status_of_45_services_of_two_identifiers_costs_three_calls_and_reads_as_before(skill, emulator):
    skill.use(emulator)
    services = _many(skill, emulator, 25, "mess") + _many(skill, emulator, 20, "bob", first=25)
    before = _calls(emulator)
    listed = run_script("scalekit-auth", "status")
    after = _calls(emulator)
    assert (after[0] - before[0], after[1] - before[1]) == (2 + 1, 0)  # ceil(25/20) + ceil(20/20), no lookups

    # the same command, the listing refused: one lookup per service, and the very same output
    emulator.fail_next(-1, "INVALID_ARGUMENT", method="ListConnectedAccounts")
    one_by_one = run_script("scalekit-auth", "status")
    assert _calls(emulator)[1] - after[1] == 45
    assert listed.stdout == one_by_one.stdout and listed.returncode == one_by_one.returncode == 4
    lines = listed.stdout.splitlines()
    assert len(lines) == 45 and [line.split()[0] for line in lines] == services
    assert lines[0].split()[1] == "ACTIVE" and "token expires in 60 min" in lines[0]
    assert lines[5].split()[1] == "NOT_CONNECTED" and lines[25].split()[1] == "EXPIRED"
    assert "conn00 / bob" in lines[25]


def test_list_status_reads_as_before(skill, emulator):
    skill.use(emulator)
    _many(skill, emulator, 7, "mess")
    before = _calls(emulator)
    listed = run_script("scalekit-auth", "list", "--status", "--json")
    assert _calls(emulator)[0] - before[0] == 1
    emulator.fail_next(-1, "INVALID_ARGUMENT", method="ListConnectedAccounts")
    one_by_one = run_script("scalekit-auth", "list", "--status", "--json")
    assert listed.stdout == one_by_one.stdout
    rows = json.loads(listed.stdout)
    assert [r["status"] for r in rows] == [s or "NOT_CONNECTED" for s in STATUSES] + ["ACTIVE"]
    assert rows[0]["token_expires_at"] and rows[5]["token_expires_at"] is None


def test_account_statuses_groups_by_identifier_and_asks_for_20_connections_at_a_time(skill, emulator):
    skill.use(emulator)
    services = _many(skill, emulator, 41, "mess")
    skill.configure("twin", "conn00", "mess")  # a second service on the same connection costs nothing
    broker = TokenBroker()
    try:
        found = broker.account_statuses([*services, "twin"])
    finally:
        broker.close()
    assert _calls(emulator) == (3, 0)  # ceil(41/20)
    assert list(found) == [*services, "twin"]
    assert [found[s].status for s in services] == [STATUSES[i % len(STATUSES)] for i in range(41)]
    assert found["twin"].status == found["svc00"].status == "ACTIVE" and found["twin"].target.service == "twin"
    assert 3500 < (found["svc00"].expires_at.timestamp() - emulator.world.now()) <= 3615
    assert found["svc00"].updated_at is not None


def test_account_statuses_reports_each_failure_per_service(skill, emulator):
    skill.use(emulator)
    services = _many(skill, emulator, 3, "mess")
    emulator.fail_next(-1, "UNAUTHENTICATED", method="ListConnectedAccounts")
    broker = TokenBroker()
    try:
        with pytest.raises(BatchError) as caught:
            broker.account_statuses([*services, "unknown"])
    finally:
        broker.close()
    assert set(caught.value.errors) == {*services, "unknown"} and caught.value.results == {}
    assert "not configured" in str(caught.value.errors["unknown"])
    assert "rejected the client credentials" in str(caught.value.errors["svc00"])


@pytest.fixture
def vault(emulator):
    v = Vault(ScalekitSettings(emulator.url, emulator.client_id, emulator.client_secret, timeout=10))
    yield v
    v.close()


def test_more_than_a_page_of_accounts_is_followed_to_the_end(emulator, vault):
    names = ["gmail_u3134a", "slack_x7y9z", "notion_demo"]
    for n in range(50):
        for name in names:
            emulator.seed(name, f"user{n:02d}", ttl=600)
    found = vault.list_accounts(names)
    assert found is not None and len(found) == 150 > LIST_PAGE_SIZE
    assert emulator.counters()["rpc.ListConnectedAccounts"] == 2  # 99 + 51
    assert {found[(name, "user07")].status for name in names} == {"ACTIVE"}
    mine = vault.list_accounts(names, "user07")
    assert set(mine or {}) == {(name, "user07") for name in names}
    assert emulator.counters()["rpc.ListConnectedAccounts"] == 3


def test_a_listing_that_cannot_answer_says_so(emulator, vault):
    emulator.seed("gmail_u3134a", "alice")
    assert vault.list_accounts(["gmail_u3134a", "no_such_connection"], "alice") == {
        ("gmail_u3134a", "alice"): vault.list_accounts(["gmail_u3134a"], "alice")[("gmail_u3134a", "alice")]
    }
    emulator.fail_next(1, "INVALID_ARGUMENT", method="ListConnectedAccounts")
    assert vault.list_accounts(["gmail_u3134a"], "alice") is None  # the caller looks them up one by one
    with pytest.raises(Exception, match="at most 20"):  # noqa: PT011 - UsageError, checked by its words
        vault.list_accounts([f"c{i}" for i in range(21)])


def test_the_mcp_servers_status_uses_the_listing(skill, emulator):
    pytest.importorskip("mcp")
    from scalekit_auth import mcp_server

    skill.use(emulator)
    _many(skill, emulator, 3, "mess")
    answer = mcp_server.status()
    assert [a["status"] for a in answer] == ["ACTIVE", "EXPIRED", "PENDING_AUTH"]
    assert _calls(emulator) == (1, 0)


def test_a_listing_that_names_accounts_by_something_else_falls_back_to_lookups(skill, emulator, monkeypatch):
    """Should Scalekit's list item carry the provider (not the connection name) in `connector`,
    status still reads right: the broker looks the accounts up one by one."""
    from scalekit_auth.emulator import servicer

    real = servicer._list_item

    def by_provider(acc):
        item = real(acc)
        item.connector = acc.connection.provider.upper()
        return item

    monkeypatch.setattr(servicer, "_list_item", by_provider)
    skill.use(emulator)
    services = _many(skill, emulator, 3, "mess")
    broker = TokenBroker()
    try:
        found = broker.account_statuses(services)
    finally:
        broker.close()
    assert [found[s].status for s in services] == ["ACTIVE", "EXPIRED", "PENDING_AUTH"]
    assert _calls(emulator) == (1, 3)
