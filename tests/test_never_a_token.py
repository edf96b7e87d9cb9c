"""No command but those whose job is to hand a program a token (`token`, `header`, and
`get_token.py`) ever prints one: every command of the CLI's table runs against the emulator
with a canary token, and its output is searched for it. A new command must be added here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scalekit_auth.cli import COMMANDS

from .helpers import ROOT
from .test_request import EchoApi

TOKEN = "ya29.never-printed-canary-token-0123456789"
#: Commands that print a token by design (for a program's stdin or a shell variable, never a model).
PRINTS_TOKENS = {"token", "header"}
ARGV = {
    "request": ["{api}/gmail/v1/users/me/profile"],
    "tools": ["gmail"],
    "tool": ["run", "gmail_get_profile", "--input", "{{}}"],
    "auth": ["gmail", "--json"],
    "exec": ["gmail", "--", "env"],
    "curl": ["{api}/gmail/v1/users/me/profile", "-s"],
    "mcp": [],
    "which": ["{api}/gmail/v1/users/me/profile"],
    "config": ["notion", "notion_x", "--offline"],
    "connections": [],
    "disconnect": ["slack", "--yes"],
    "remove": ["slack"],
    "list": ["--status"],
    "status": [],
    "doctor": [],
    "verify": ["abc", "--service", "gmail"],
    "migrate": [],
    "agent": ["status"],
    "demo": [],
}


def test_every_command_is_covered():
    assert {c.name for c in COMMANDS} - PRINTS_TOKENS <= set(ARGV), "add the new command to ARGV"


@pytest.fixture
def world(skill, emulator):
    skill.use(emulator)
    emulator.seed("gmail_u3134a", "mess", access_token=TOKEN)
    emulator.set_proxy_enabled(True)
    api = EchoApi(echo_auth=False)
    host = api.url.removeprefix("http://")
    skill.connections_file.write_text(
        json.dumps(
            {
                "gmail": {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": [host]},
                "slack": {"connection_name": "slack_x7y9z", "identifier": "mess"},
            }
        )
    )
    yield api
    api.stop()


@pytest.mark.parametrize("name", sorted(ARGV))
def test_no_token_in_the_output(world, name):
    argv = [a.format(api=world.url) for a in ARGV[name]]
    if name == "config" and "--offline" not in {a for c in COMMANDS if c.name == "config" for a in _flags(c)}:
        argv.remove("--offline")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scalekit-auth"), name, *argv], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    if name == "exec":  # the child asked for it and got it; scalekit-auth itself printed nothing
        assert f"GMAIL_TOKEN={TOKEN}" in proc.stdout
        output = output.replace(f"GMAIL_TOKEN={TOKEN}", "")
    assert TOKEN not in output, f"`scalekit-auth {name}` printed the token"
    assert "Traceback" not in output and "unexpected error" not in output, output


def _flags(command) -> list[str]:
    return [flag for argument in command.args for flag in argument.flags]
