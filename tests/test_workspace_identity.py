"""The identity follows the workspace OpenClaw is configured with (`agents.defaults.workspace` in
openclaw.json, JSON5), as OpenClaw itself does: exec exports no workspace variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scalekit_auth import paths

from .helpers import ROOT


@pytest.fixture
def configured(skill, emulator, tmp_path, monkeypatch):
    """~/.openclaw/openclaw.json points the workspace outside ~/.openclaw; its IDENTITY.md names the agent."""
    skill.use(emulator)
    monkeypatch.delenv("SCALEKIT_IDENTITY_FILE")
    home = tmp_path / "user-home"
    state = home / ".openclaw"
    state.mkdir(parents=True)
    workspace = tmp_path / "projects" / "assistant"
    workspace.mkdir(parents=True)
    (workspace / "IDENTITY.md").write_text("# Who am I\n\n- **Name:** Wanda\n")
    (state / "workspace").mkdir()
    (state / "workspace" / "IDENTITY.md").write_text("- **Name:** Default\n")
    (state / "openclaw.json").write_text(
        f"{{\n  // OpenClaw's config is JSON5\n  agents: {{ defaults: {{ workspace: '{workspace}', }}, }},\n}}\n"
    )
    (state / "openclaw.json").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    skill.configure("gmail", "gmail_u3134a")  # no identifier of its own: the agent's name decides
    emulator.seed("gmail_u3134a", "wanda", access_token="wanda-token")
    emulator.seed("gmail_u3134a", "default", access_token="default-token")
    return state


def test_the_configured_workspace_names_the_agent(configured):
    path, why = paths.identity_path()
    assert path.endswith("projects/assistant/IDENTITY.md") and "openclaw.json" in why
    from scalekit_auth.broker import TokenBroker

    broker = TokenBroker()
    try:
        assert broker.get_token("gmail") == "wanda-token"
    finally:
        broker.close()


@pytest.mark.parametrize("script", [["get_token.py", "gmail"], ["scalekit-auth", "token", "gmail"]])
def test_the_command_line_and_the_agent_use_it_too(configured, script):
    env = {k: v for k, v in os.environ.items() if k != "SCALEKIT_AUTH_AGENT"}
    try:
        for _ in range(2):  # the first call starts the agent, the second is answered by it
            proc = subprocess.run([sys.executable, *script], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
            assert proc.stdout == "wanda-token\n", proc.stderr
    finally:
        subprocess.run([sys.executable, "scalekit-auth", "agent", "stop"], cwd=ROOT, env=env, capture_output=True,
                       timeout=120)  # fmt: skip


def test_a_config_file_others_can_write_is_not_trusted(configured):
    (configured / "openclaw.json").chmod(0o666)
    path, _why = paths.identity_path()
    assert path == str(configured / "workspace" / "IDENTITY.md")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"agents": {"defaults": {"workspace": "/w"}}}', "/w"),
        ("{agents: {defaults: {workspace: '/w',},},}", "/w"),
        ("/* c */ {agents: // x\n {defaults: {model: 'a//b', workspace: \"/w\"}}}", "/w"),
        ("{agents: {list: [{workspace: '/other'}]}}", None),
        ("{agents: {defaults: {workspace: ''}}}", None),
        ("not json at all", None),
        ('{"agents": "x"}', None),
    ],
)
def test_openclaw_json_is_read_as_json5(tmp_path, text, expected):
    state = tmp_path / "state"
    state.mkdir()
    (state / "openclaw.json").write_text(text)
    (state / "openclaw.json").chmod(0o600)
    assert paths.configured_workspace({"OPENCLAW_STATE_DIR": str(state), "HOME": str(tmp_path)}) == expected


def test_json5_strings_keep_their_contents():
    assert paths.json5_loads("{a: 'it\\'s', b: \"q\\\"uote\", c: [1, 2,], d: true}") == {
        "a": "it's",
        "b": 'q"uote',
        "c": [1, 2],
        "d": True,
    }
    assert json.loads('{"a": 1}') == paths.json5_loads('{"a": 1}')
