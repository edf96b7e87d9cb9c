"""Claims the skill's texts make about Scalekit have an entry in FIDELITY.md, and the entry's source
says so (the installed SDK, read here)."""

from __future__ import annotations

import inspect
import re

from .helpers import ROOT


def _rows(mentioning: str) -> list[str]:
    return [line for line in (ROOT / "FIDELITY.md").read_text().splitlines() if mentioning in line]


def test_the_link_lifetime_has_its_source():
    from scalekit import mcp
    from scalekit.actions.actions import ActionClient, ActionMcp

    from scalekit_auth.emulator.state import World

    assert "valid for 1 minute only" in inspect.getsource(ActionMcp.list_mcp_connected_accounts)
    assert "valid for 1 minute only" in inspect.getsource(mcp)
    assert "minute" not in (inspect.getdoc(ActionClient.get_authorization_link) or "")
    rows = _rows("authorization link lives about one minute")
    assert len(rows) == 1 and "list_mcp_connected_accounts" in rows[0] and "`expiry`" in rows[0]
    assert inspect.signature(World).parameters["link_ttl"].default == 60.0
    for text in ("SKILL.md", "README.md", "SECURITY.md"):
        assert re.search(r"about (one|a) minute", (ROOT / text).read_text()), text


def test_the_connector_count_has_its_source():
    skill = (ROOT / "SKILL.md").read_text()
    assert "200+" in skill and "50+" not in skill
    assert "50+" not in (ROOT / "README.md").read_text()
    rows = _rows('"200+ connectors"')
    assert len(rows) == 1 and "openclaw.mdx" in rows[0]
