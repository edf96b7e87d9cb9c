"""Every credential shape the SDK knows comes back through get_credentials; get_token returns the
one token where there is one, and says what to use where there is none (exit 8 in the CLI).

Shapes (AuthorizationDetails in the SDK's proto): oauth_token, static_auth, google_dwd and
trusted_idp; and ORG_WIDE connections, whose per-user accounts hold no credential of their own.
"""

from __future__ import annotations

import pytest

from scalekit_auth.emulator import DEFAULT_CONNECTIONS, Emulator
from scalekit_auth.errors import UnsupportedAccountError
from scalekit_helper import get_credentials, get_token


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


def test_trusted_identity_provider_keys_come_back_as_fields_with_their_expiry(shapes, skill):
    shapes.seed("redshift_idp", "mess", ttl=900)
    creds = get_credentials("redshift")
    assert creds.kind == "trusted_idp"
    assert set(creds.fields) == {"access_key_id", "secret_access_key", "session_token", "db_user"}
    assert creds.fields["access_key_id"].startswith("ASIA")
    assert 800 < creds.expires_in() <= 900
    assert creds.fields["secret_access_key"] not in repr(creds)
    with pytest.raises(UnsupportedAccountError, match="federated keys") as caught:
        get_token("redshift")
    assert creds.fields["secret_access_key"] not in str(caught.value)
    proc = skill.run("redshift")
    assert proc.returncode == 8 and "get_credentials('redshift').fields" in proc.stderr


def test_a_per_user_account_of_an_org_wide_connection_says_why_there_is_no_token(shapes):
    shapes.seed("jira_org", "mess")
    creds = get_credentials("jira")
    assert creds.fields == {} and creds.access_token == ""
    with pytest.raises(UnsupportedAccountError, match="ORG_WIDE"):
        get_token("jira")
