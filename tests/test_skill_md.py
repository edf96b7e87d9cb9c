"""SKILL.md, read as a model reads it: every command it tells the model to run is run against
the emulator, and none of them puts a token in its output; every message it quotes is one the
code prints; it stays short."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .helpers import ROOT
from .test_request import EchoApi

TOKEN = "ya29.skill-md-canary-token-0123456789"
BODY = (ROOT / "SKILL.md").read_text(encoding="utf-8").split("\n---\n", 1)[1]
#: Real API hosts in SKILL.md's examples, answered here by a stand-in (path prefixes keep services apart).
HOSTS = {"https://gmail.googleapis.com": "gmail", "https://slack.com": "slack", "https://api.github.com": "github"}
PLACEHOLDERS = {"<the address>": "https://example.com/verify?auth_request_id=abc", "<sender id>": "alice"}


def skill_md_commands() -> list[str]:
    """Every shell command SKILL.md gives: bash blocks line by line, and inline code running the skill."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", BODY, flags=re.S):
        commands += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
    prose = re.sub(r"```.*?```", "", BODY, flags=re.S)
    commands += [span for span in re.findall(r"`([^`\n]+)`", prose) if "python3 {baseDir}/" in span]
    return list(dict.fromkeys(commands))


def test_skill_md_is_short():
    assert len(BODY.split()) < 900


def test_skill_md_tells_the_model_never_to_print_a_token():
    assert "Never run a command whose output is a token" in BODY
    for command in skill_md_commands():
        printing = re.search(r"(get_token\.py|scalekit-auth (token|header))\b", command)
        assert not printing or "=$(" in command, f"SKILL.md tells the model to print a token: {command}"


@pytest.fixture
def world(skill, emulator, tmp_path):
    skill.use(emulator)
    for connection in ("gmail_u3134a", "slack_x7y9z", "github_c1"):
        emulator.seed(connection, "mess", access_token=TOKEN)
    api = EchoApi(echo_auth=False)
    host = api.url.removeprefix("http://")
    skill.connections_file.write_text(
        json.dumps(
            {
                "gmail": {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": [f"{host}/gmail"]},
                "slack": {"connection_name": "slack_x7y9z", "identifier": "mess", "hosts": [f"{host}/api"]},
                "github": {"connection_name": "github_c1", "identifier": "mess", "hosts": [f"{host}/user"]},
            }
        )
    )
    (tmp_path / "sync.sh").write_text('#!/bin/sh\n[ -n "$GMAIL_TOKEN" ] && echo synced\n')
    (tmp_path / "sync.sh").chmod(0o755)
    yield api
    api.stop()


@pytest.mark.parametrize("command", skill_md_commands())
def test_no_command_skill_md_gives_prints_a_token(world, command, tmp_path):
    line = command.replace("{baseDir}", str(ROOT))
    for real in HOSTS:
        line = line.replace(real, world.url)
    for placeholder, value in PLACEHOLDERS.items():
        line = line.replace(placeholder, value)
    proc = subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert TOKEN not in output, f"{command!r} printed the token"
    assert "Traceback" not in output and "unexpected error" not in output, output


#: Code spans that are OpenClaw's words (exec parameters), not messages of ours.
NOT_MESSAGES = ("python3", "--", "GMAIL_TOKEN", "from ", "sys.path", "request(", "exec ")
OPENCLAW_WORDS = {"background: true", "openclaw agent --local"}


def _code_text() -> str:
    """The package's source, plus its messages with their placeholders filled (as they print)."""
    from scalekit_auth import MIN_PYTHON

    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "scalekit_auth").rglob("*.py"))
    version = ".".join(str(n) for n in MIN_PYTHON)
    return source.replace("needs Python %d.%d or newer", f"needs Python {version} or newer")


def test_every_message_skill_md_quotes_is_one_the_code_prints():
    code = _code_text()
    quoted = [
        span for span in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", BODY, flags=re.S))
        if " " in span and not span.startswith(NOT_MESSAGES) and span not in OPENCLAW_WORDS
        and not span.startswith("{")  # the shape of a JSON line, checked below
    ]  # fmt: skip
    assert quoted, "SKILL.md quotes no message at all?"
    for span in quoted:
        text = span.replace("...", "").replace("…", "").strip()
        assert text in code, f"SKILL.md quotes {span!r}, which the code never prints"
    for status in re.findall(r'`\{"status": "([A-Z_]+)"', BODY):
        assert f'"{status}"' in code, f"SKILL.md shows a {status} line the code never writes"
