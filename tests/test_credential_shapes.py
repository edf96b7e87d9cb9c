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
    shapes.seed("jira_org", "mess")
    creds = get_credentials("jira")
    assert creds.fields == {} and creds.access_token == ""
    with pytest.raises(UnsupportedAccountError, match="ORG_WIDE"):
        get_token("jira")
