"""Every credential shape the SDK knows comes back through get_credentials; get_token returns the
one token where there is one, and says what to use where there is none (exit 8 in the CLI).

Shapes (AuthorizationDetails in the SDK's proto): oauth_token, static_auth, google_dwd and
trusted_idp (of which Scalekit returns only the key id, db user and expiry); and ORG_WIDE
connections, whose per-user accounts hold no credential of their own.
"""

from __future__ import annotations

import pytest

from scalekit_auth.emulator import DEFAULT_CONNECTIONS, Emulator
from scalekit_auth.errors import UnsupportedAccountError
from scalekit_helper import get_credentials, get_token


@pytest.fixture
def sdk_for():
    """A real ScalekitClient for an emulator (closed after the test)."""
    from scalekit.client import ScalekitClient

    made = []

    def make(emu):
        made.append(ScalekitClient(emu.url, emu.client_id, emu.client_secret))
        return made[-1]

    yield make
    for client in made:
        client.core_client.grpc_secure_channel.close()


@pytest.fixture
def shapes(skill):
    connections = (*DEFAULT_CONNECTIONS, "gworkspace_dwd:google_dwd", "redshift_idp:trusted_idp", "jira_org:org_wide")
    with Emulator(connections=connections) as emu:
        skill.use(emu)
        skill.configure("gdrive", "gworkspace_dwd", "mess")
        skill.configure("redshift", "redshift_idp", "mess")
        skill.configure("jira", "jira_org", "mess")
        yield emu


def test_google_domain_wide_delegation_gives_a_token_with_its_expiry(shapes):
    shapes.seed("gworkspace_dwd", "mess", access_token="dwd-token", ttl=1800)
    assert get_token("gdrive") == "dwd-token"
    creds = get_credentials("gdrive")
    assert creds.kind == "oauth" and creds.scopes and 1700 < creds.expires_in() <= 1800


def test_a_trusted_identity_provider_account_gives_only_what_scalekit_returns(shapes, skill, sdk_for):
    """Scalekit's API reference: TrustedIDPAuth's secret_access_key and session_token are "never
    returned in public API responses"; access_key_id, db_user and expiry are."""
    shapes.seed("redshift_idp", "mess", ttl=900)
    held = shapes.account("redshift_idp", "mess")["static_details"]  # what Scalekit keeps to itself
    idp = sdk_for(shapes).actions.get_connected_account(connection_name="redshift_idp", identifier="mess")
    returned = idp.connected_account.authorization_details["trusted_idp"]
    assert returned["secret_access_key"] == "" and returned["session_token"] == ""
    assert returned["access_key_id"] == held["access_key_id"] and returned["expiry"] is not None

    creds = get_credentials("redshift")
    assert creds.kind == "trusted_idp"
    assert dict(creds.fields) == {"access_key_id": held["access_key_id"], "db_user": "analytics_reader"}
    assert creds.fields["access_key_id"].startswith("ASIA")
    assert 800 < creds.expires_in() <= 900
    with pytest.raises(UnsupportedAccountError, match="secret key and session token stay with Scalekit") as caught:
        get_token("redshift")
    assert held["secret_access_key"] not in str(caught.value)
    proc = skill.run("redshift")
    assert proc.returncode == 8 and "get_credentials('redshift').fields" in proc.stderr
    assert "scalekit-auth tools redshift" in proc.stderr


def test_a_per_user_account_of_an_org_wide_connection_says_why_there_is_no_token(shapes):
    shapes.seed("jira_org", "org-admin", org_wide_credential=True, access_token="shared-jira-token")
    shapes.seed("jira_org", "mess")
    creds = get_credentials("jira")
    assert creds.fields == {} and creds.access_token == ""
    with pytest.raises(UnsupportedAccountError, match="ORG_WIDE") as caught:
        get_token("jira")
    said = str(caught.value)
    assert "org-wide account" in said and "request --via scalekit" in said and "tools jira" in said
    assert "not readable" not in said and "shared-jira-token" not in said


def test_the_org_wide_credential_is_readable_through_the_sdks_low_level_client(shapes, sdk_for):
    """SDK 2.21.0: the actions layer's models drop is_org_wide_credential, but the low-level
    client.connected_accounts returns the proto with it, and ListConnectedAccountsRequest filters
    on it ("consent-only records" for the per-user accounts, the descriptors say)."""
    from scalekit.v1.connected_accounts.connected_accounts_pb2 import ListConnectedAccountsRequest

    shapes.seed("jira_org", "org-admin", org_wide_credential=True, access_token="shared-jira-token")
    shapes.seed("jira_org", "mess")
    client = sdk_for(shapes)
    model = client.actions.get_connected_account(connection_name="jira_org", identifier="org-admin")
    assert "is_org_wide_credential" not in model.connected_account.model_dump()

    low = client.connected_accounts
    shared = low.get_connected_account_by_identifier(connector="jira_org", identifier="org-admin")[0].connected_account
    assert shared.is_org_wide_credential
    assert shared.authorization_details.oauth_token.access_token == "shared-jira-token"
    consent = low.get_connected_account_by_identifier(connector="jira_org", identifier="mess")[0].connected_account
    assert not consent.is_org_wide_credential and not consent.HasField("authorization_details")

    def listed(**flag):
        request = ListConnectedAccountsRequest(connector="jira_org", **flag)
        answer = low.core_client.grpc_exec(low.connected_accounts_service.ListConnectedAccounts.with_call, request)
        return [(a.identifier, a.is_org_wide_credential) for a in answer[0].connected_accounts]

    assert listed(is_org_wide_credential=True) == [("org-admin", True)]
    assert listed(is_org_wide_credential=False) == [("mess", False)]
    assert sorted(listed()) == [("mess", False), ("org-admin", True)]


def test_scalekit_acts_for_a_consenting_user_with_the_shared_credential(shapes):
    from scalekit_auth.config import ScalekitSettings
    from scalekit_auth.vault import Vault

    shapes.seed("jira_org", "org-admin", org_wide_credential=True, access_token="shared-jira-token")
    shapes.seed("jira_org", "mess")
    vault = Vault(ScalekitSettings(shapes.url, shapes.client_id, shapes.client_secret, timeout=10))
    try:
        answer = vault.proxy_request("jira_org", "mess", "/rest/api/3/myself")
        assert answer is not None and answer.status == 200
        assert b"shared-jira-token" not in answer.body
        seen = shapes.proxy_requests()[-1]
        assert seen["identifier"] == "mess" and seen["upstream_account"] == ["jira_org", "org-admin"]
        assert vault.proxy_request("jira_org", "nobody", "/rest/api/3/myself") is None  # no consent, no call
    finally:
        vault.close()
