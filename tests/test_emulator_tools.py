"""The emulator's ToolService (ListTools, SearchTools, ExecuteTool), driven through the real SDK:
`client.actions.list_tools`, `client.tools.search_tools` and `client.actions.execute_tool`."""

from __future__ import annotations

import json

import pytest
from scalekit.common.exceptions import (
    ScalekitBadRequestException,
    ScalekitNotFoundException,
    ScalekitServiceUnavailableException,
    ScalekitToolException,
    ScalekitToolUnauthorizedException,
)
from scalekit.v1.tools.tools_pb2 import ToolReadinessState


def _names(resp) -> list[str]:
    return [t.definition["name"] for t in resp.tools]


def test_a_connection_lists_its_providers_tools_with_json_schemas(emulator, sdk):
    resp = sdk.actions.list_tools(connection_name="gmail_u3134a", identifier="alice")
    assert _names(resp) == ["gmail_fetch_mails", "gmail_get_profile", "gmail_send_message"]
    assert resp.tool_names == _names(resp)
    assert resp.total_count == 3
    send = next(t for t in resp.tools if t.definition["name"] == "gmail_send_message")
    assert send.provider == "GMAIL"
    assert send.definition["description"]
    schema = send.definition["input_schema"]
    assert schema["type"] == "object"
    assert set(schema["required"]) == {"to", "subject", "body"}
    assert schema["properties"]["to"]["type"] == "string"
    # other providers' tools are not listed
    slack = sdk.actions.list_tools(connection_name="slack_x7y9z")
    assert _names(slack) == ["slack_auth_test", "slack_send_message"]


def test_the_query_narrows_the_list_and_summary_drops_the_schema(emulator, sdk):
    resp = sdk.actions.list_tools(connection_name="gmail_u3134a", query="send message")
    assert _names(resp) == ["gmail_send_message"]
    summary = sdk.actions.list_tools(connection_name="gmail_u3134a", summary=True)
    assert all(set(t.definition) == {"name", "description"} for t in summary.tools)


def test_the_query_needs_three_characters(emulator, sdk):
    with pytest.raises(ScalekitBadRequestException):
        sdk.actions.list_tools(connection_name="gmail_u3134a", query="ab")


def test_listing_pages(emulator, sdk):
    seen, token = [], None
    for _ in range(10):
        page = sdk.actions.list_tools(page_size=2, page_token=token)
        seen += _names(page)
        token = page.next_page_token
        if not token:
            break
    assert seen == _names(sdk.actions.list_tools())
    assert len(seen) == len(set(seen)) >= 6


def test_an_unknown_connection_lists_nothing_but_not_found(emulator, sdk):
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.list_tools(connection_name="no_such_connection", identifier="alice")


def test_search_ranks_tools_and_tells_readiness_per_connection(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.seed("slack_x7y9z", "alice", "EXPIRED")
    resp = sdk.tools.search_tools(query="send a message", identifier="alice", top_k=5)[0]
    names = [t.name for t in resp.tools]
    assert set(names[:2]) == {"gmail_send_message", "slack_send_message"}
    scores = [t.score for t in resp.tools]
    assert scores == sorted(scores, reverse=True)
    by_name = {t.name: t for t in resp.tools}
    [gmail] = by_name["gmail_send_message"].connections
    assert gmail.connection_name == "gmail_u3134a"
    assert gmail.readiness_state == ToolReadinessState.TOOL_READINESS_STATE_READY
    assert gmail.connected_account_id == emulator.account("gmail_u3134a", "alice")["id"]
    [slack] = by_name["slack_send_message"].connections
    assert slack.readiness_state == ToolReadinessState.TOOL_READINESS_STATE_NEEDS_REAUTH
    # no identifier: no readiness at all; top_k bounds the answer
    bare = sdk.tools.search_tools(query="send a message", top_k=1)[0]
    assert len(bare.tools) == 1 and not bare.tools[0].connections


def test_execute_computes_the_result_from_the_account_and_never_returns_a_token(emulator, sdk):
    alice = emulator.seed("gmail_u3134a", "alice@example.com", access_token="at-secret")
    resp = sdk.actions.execute_tool(
        tool_input={}, tool_name="gmail_get_profile", identifier="alice@example.com", connection_name="gmail_u3134a"
    )
    assert resp.data["emailAddress"] == "alice@example.com"
    assert resp.execution_id
    text = json.dumps(resp.data)
    assert alice["access_token"] not in text and alice["refresh_token"] not in text
    [call] = emulator.tool_calls()
    assert (call["tool_name"], call["connection_name"], call["identifier"]) == (
        "gmail_get_profile",
        "gmail_u3134a",
        "alice@example.com",
    )
    assert call["outcome"] == "ok" and call["execution_id"] == resp.execution_id


def test_execute_uses_the_input(emulator, sdk):
    emulator.seed("gmail_u3134a", "bob")
    unread = sdk.actions.execute_tool(
        tool_input={"query": "is:unread", "max_results": 2},
        tool_name="gmail_fetch_mails",
        identifier="bob",
        connection_name="gmail_u3134a",
    ).data
    assert len(unread["messages"]) == 2
    assert all("UNREAD" in m["labelIds"] for m in unread["messages"])
    sent = sdk.actions.execute_tool(
        tool_input={"to": "carol@example.com", "subject": "Hi", "body": "Hello"},
        tool_name="gmail_send_message",
        identifier="bob",
        connection_name="gmail_u3134a",
    ).data
    assert sent["labelIds"] == ["SENT"]
    assert emulator.tool_calls()[-1]["input"] == {"to": "carol@example.com", "subject": "Hi", "body": "Hello"}


@pytest.mark.parametrize(
    ("tool_input", "tool_name"),
    [
        ({"subject": "Hi", "body": "x"}, "gmail_send_message"),  # required "to" missing
        ({"to": 5, "subject": "Hi", "body": "x"}, "gmail_send_message"),  # wrong type
        ({"max_results": "many"}, "gmail_fetch_mails"),
        ({}, "gmail_no_such_tool"),
        ({}, "slack_auth_test"),  # another provider's tool
    ],
)
def test_bad_input_or_an_unknown_tool_is_a_bad_request(emulator, sdk, tool_input, tool_name):
    emulator.seed("gmail_u3134a", "alice")
    with pytest.raises(ScalekitBadRequestException):
        sdk.actions.execute_tool(
            tool_input=tool_input, tool_name=tool_name, identifier="alice", connection_name="gmail_u3134a"
        )
    assert emulator.tool_calls()[-1]["outcome"] == "refused"


@pytest.mark.parametrize("status", [None, "PENDING_AUTH", "EXPIRED", "DISCONNECTED", "PENDING_VERIFICATION"])
def test_an_account_that_is_not_connected_is_not_found(emulator, sdk, status):
    if status:
        emulator.seed("gmail_u3134a", "alice", status)
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.execute_tool(
            tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="gmail_u3134a"
        )
    with pytest.raises(ScalekitNotFoundException):
        sdk.actions.execute_tool(
            tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="no_such_connection"
        )


def test_a_providers_refusal_is_a_tool_error_with_details(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_tool_call(code="UNAUTHENTICATED", tool_error_code="401", message="Invalid Credentials")
    with pytest.raises(ScalekitToolUnauthorizedException) as caught:
        sdk.actions.execute_tool(
            tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="gmail_u3134a"
        )
    assert caught.value.error_code == "TOOL_ERROR"
    assert caught.value.tool_error_code == "401"
    assert caught.value.tool_error_message == "Invalid Credentials"
    assert caught.value.execution_id
    assert emulator.tool_calls()[-1]["outcome"] == "tool_error"
    # armed once: the next call works, and the SDK did not resend the failed one
    sdk.actions.execute_tool(
        tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="gmail_u3134a"
    )
    assert [c["outcome"] for c in emulator.tool_calls()] == ["tool_error", "ok"]
    emulator.fail_tool_call(code="INTERNAL", tool_error_code="500", message="backend error")
    with pytest.raises(ScalekitToolException):
        sdk.actions.execute_tool(
            tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="gmail_u3134a"
        )


def test_execute_is_not_resent_on_unavailable(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.fail_next(code="UNAVAILABLE", method="ExecuteTool")
    with pytest.raises(ScalekitServiceUnavailableException):
        sdk.actions.execute_tool(
            tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="gmail_u3134a"
        )
    assert emulator.counters()["rpc.ExecuteTool"] == 1


def test_tool_rpcs_need_the_environment_bearer(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    emulator.revoke_client_tokens()
    sdk.actions.list_tools(connection_name="gmail_u3134a")  # the SDK logs in again and retries once
    assert emulator.counters()["rpc_unauthenticated"] == 1


def test_reset_clears_tool_calls(emulator, sdk):
    emulator.seed("gmail_u3134a", "alice")
    sdk.actions.execute_tool(
        tool_input={}, tool_name="gmail_get_profile", identifier="alice", connection_name="gmail_u3134a"
    )
    emulator.reset()
    assert emulator.tool_calls() == []
