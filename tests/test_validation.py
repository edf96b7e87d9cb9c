"""Names and identifiers are checked by Scalekit's own rules, read from the SDK's descriptors.

The server validates connected-account requests with buf.validate rules that ship in the
SDK's protobuf descriptors. We check the same rules before any call (so a bad name gets a
clear message instead of INVALID_ARGUMENT), and these tests fail if a new SDK changes them.
"""

from __future__ import annotations

import re

import pytest

from scalekit_auth import connections
from scalekit_auth.errors import ConfigurationError

REQUESTS = (
    "GetMagicLinkForConnectedAccountRequest",
    "GetConnectedAccountByIdentifierRequest",
    "CreateConnectedAccountRequest",
    "UpdateConnectedAccountRequest",
    "DeleteConnectedAccountRequest",
)


def _rules(message: str, field: str) -> str:
    from scalekit.v1.connected_accounts import connected_accounts_pb2 as pb

    options = pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].GetOptions()
    return " ".join(str(options).split())


@pytest.mark.parametrize("message", REQUESTS)
def test_our_limits_are_the_sdks(message):
    connector = _rules(message, "connector")
    assert f"max_len: {connections.CONNECTION_NAME_MAX}" in connector
    assert f'pattern: "{connections.CONNECTION_NAME_PATTERN}"' in connector
    assert f"max_len: {connections.IDENTIFIER_MAX}" in _rules(message, "identifier")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("gmail_u3134a", True),
        ("Slack Prod", True),  # spaces are allowed
        ("google:calendar-2", True),  # and colons
        ("x" * 400, True),
        ("x" * 401, False),
        ("gmail.u3134a", False),  # a dot is not
        ("gmail/x", False),
        ("gmail\u00e9", False),
        ("", False),
    ],
)
def test_connection_names_at_the_boundaries(name, ok):
    if ok:
        assert connections.check_connection_name(name) == name
    else:
        with pytest.raises(ConfigurationError):
            connections.check_connection_name(name)
    assert bool(re.fullmatch(connections.CONNECTION_NAME_PATTERN, name)) and 0 < len(name) <= 400 or not ok


@pytest.mark.parametrize(("length", "ok"), [(1, True), (100, True), (101, False)])
def test_identifiers_at_the_boundary(length, ok):
    ident = "\u00e9" * length  # characters, not bytes: 100 two-byte characters are fine
    if ok:
        assert connections.check_identifier(ident) == ident
    else:
        with pytest.raises(ConfigurationError, match="at most 100"):
            connections.check_identifier(ident)


def test_the_server_refuses_what_we_refuse(emulator, sdk):
    """The emulator enforces the descriptors' rules too, so a name we would pass is not refused there."""
    from scalekit.common.exceptions import ScalekitBadRequestException

    with pytest.raises(ScalekitBadRequestException):
        sdk.actions.get_authorization_link(connection_name="gmail.u3134a", identifier="mess")
    with pytest.raises(ScalekitBadRequestException):
        sdk.actions.get_authorization_link(connection_name="gmail_u3134a", identifier="x" * 101)
