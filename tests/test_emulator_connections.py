"""The emulator's connection listing (ConnectionService.ListAppConnections), as the real SDK's
`client.connection.list_app_connections(page_size, page_token, provider, query)` sees it."""

from __future__ import annotations

import pytest
from scalekit.common.exceptions import ScalekitBadRequestException, ScalekitNotFoundException
from scalekit.v1.connections import connections_pb2 as pb


def names(response) -> list[str]:
    return [c.key_id for c in response[0].connections]


def test_every_connection_is_listed_with_its_name_provider_status_and_auth_mode(emulator, sdk):
    emulator.add_connection("hubspot_org", kind="org_wide")
    emulator.add_connection("notion_draft", status="DRAFT", enabled=False)
    response, _call = sdk.connection.list_app_connections(page_size=30)
    found = {c.key_id: c for c in response.connections}
    assert set(found) >= {"gmail_u3134a", "slack_x7y9z", "openai_demo", "hubspot_org", "notion_draft"}
    gmail = found["gmail_u3134a"]
    assert gmail.provider_key == "GMAIL"  # the connector's key, upper case
    assert gmail.id.startswith("conn_")
    assert gmail.status == pb.COMPLETED and gmail.enabled
    assert gmail.auth_mode == pb.USER
    assert gmail.type == pb.OAUTH
    assert found["openai_demo"].type == pb.API_KEY
    assert found["hubspot_org"].auth_mode == pb.ORG_WIDE
    assert found["notion_draft"].status == pb.DRAFT and not found["notion_draft"].enabled
    assert response.total_size == len(found)


def test_the_provider_filter_is_exact_and_case_sensitive(emulator, sdk):
    emulator.add_connection("gmail_work")
    assert names(sdk.connection.list_app_connections(provider="GMAIL")) == ["gmail_u3134a", "gmail_work"]
    assert names(sdk.connection.list_app_connections(provider="gmail")) == []
    assert names(sdk.connection.list_app_connections(provider="GOOGLECALENDAR")) == ["googlecalendar_demo"]


def test_the_query_matches_the_name_or_the_provider(emulator, sdk):
    emulator.add_connection("team-mail", provider="gmail")
    assert names(sdk.connection.list_app_connections(query="gmail")) == ["gmail_u3134a", "team-mail"]
    assert names(sdk.connection.list_app_connections(query="x7y9")) == ["slack_x7y9z"]
    with pytest.raises(ScalekitBadRequestException):
        sdk.connection.list_app_connections(query="ab")  # 3 to 100 characters


def test_pages_of_at_most_thirty(emulator, sdk):
    for n in range(40):
        emulator.add_connection(f"slack_{n:02d}")
    seen, token = [], None
    while True:
        response, _call = sdk.connection.list_app_connections(page_size=7, page_token=token, provider="SLACK")
        assert len(response.connections) <= 7
        assert response.total_size == 41
        seen += [c.key_id for c in response.connections]
        token = response.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 41
    with pytest.raises(ScalekitBadRequestException):
        sdk.connection.list_app_connections(page_size=31)
    # Without a page size the emulator answers a short page: a client that does not follow
    # next_page_token misses connections.
    response, _call = sdk.connection.list_app_connections()
    assert response.next_page_token and len(response.connections) < response.total_size


def test_a_second_delete_of_an_account_is_not_found(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    sdk.actions.delete_connected_account(connection_name="gmail_u3134a", identifier="alice")
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.delete_connected_account(connection_name="gmail_u3134a", identifier="alice")
