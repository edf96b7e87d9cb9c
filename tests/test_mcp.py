"""`scalekit-auth mcp`, driven by the official MCP client library over stdio, end to end against
the emulator: results come back, tokens never do, errors are tool errors with the CLI's words."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from .helpers import ROOT
from .test_request import TOKEN, EchoApi


@pytest.fixture
def echo(skill, emulator):
    skill.use(emulator)
    emulator.seed("gmail_u3134a", "mess", access_token=TOKEN)
    api = EchoApi()
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


def _server() -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=[str(ROOT / "scalekit-auth"), "mcp"], env=dict(os.environ), cwd=str(ROOT)
    )


def call(*steps: tuple[str, dict]) -> tuple[list[str], list]:
    """Start the server, list its tools, run each (name, arguments); the tool names and results."""

    async def go():
        async with Client(_server(), read_timeout_seconds=120) as client:
            tools = await client.list_tools()
            results = [await client.call_tool(name, arguments) for name, arguments in steps]
            return [t.name for t in tools.tools], results

    return anyio.run(go)


def _text(result) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


def test_the_tools_are_few_and_return_results_never_tokens(echo):
    names, (status, ok, link) = call(
        ("status", {}),
        ("request", {"url": f"{echo.url}/gmail/v1/users/me/profile"}),
        ("authorize", {"service": "slack"}),
    )
    assert sorted(names) == ["authorize", "list_tools", "request", "run_tool", "status"]
    assert not status.is_error and {s["service"]: s["status"] for s in json.loads(_text(status))}["gmail"] == "ACTIVE"
    answer = json.loads(_text(ok))
    assert answer["status"] == 200 and answer["body"]["you_sent"] == "Bearer [REDACTED]"
    assert echo.seen[-1]["auth"] == f"Bearer {TOKEN}"
    assert json.loads(_text(link))["link"].startswith("http")
    for result in (status, ok, link):
        assert TOKEN not in json.dumps(result.model_dump(mode="json"))


def test_errors_are_tool_errors_with_the_clis_words(echo):
    _names, (unknown, elsewhere) = call(
        ("request", {"url": f"{echo.url}/x", "service": "nosuch"}),
        ("request", {"url": "https://api.github.com/user"}),
    )
    assert unknown.is_error and "not a known host of nosuch" in _text(unknown)
    assert elsewhere.is_error and "'github' is not configured" in _text(elsewhere)
    assert "Traceback" not in _text(unknown) + _text(elsewhere)
    assert echo.seen == []


def test_authorize_waits_with_progress_until_the_user_connects(echo, emulator):
    progress: list[float] = []

    async def go():
        async with Client(_server(), read_timeout_seconds=120) as client:
            first = json.loads(_text(await client.call_tool("authorize", {"service": "slack"})))
            emulator.approve(first["link"])

            async def on_progress(done, total, message):
                progress.append(done)

            return await client.call_tool(
                "authorize", {"service": "slack", "wait_seconds": 60}, progress_callback=on_progress
            )

    result = anyio.run(go)
    assert json.loads(_text(result))["status"] == "ACTIVE"


def test_scalekits_tools_through_mcp(echo, emulator):
    _names, (listed, ran) = call(
        ("list_tools", {"service": "gmail"}),
        ("run_tool", {"service": "gmail", "name": "gmail_get_profile", "arguments": {}}),
    )
    assert not listed.is_error and "gmail_get_profile" in {t["name"] for t in json.loads(_text(listed))}
    assert not ran.is_error, _text(ran)
    assert TOKEN not in _text(listed) + _text(ran)
    assert emulator.tool_calls()[-1]["tool_name"] == "gmail_get_profile"


@pytest.mark.openclaw
def test_openclaw_loads_the_server_and_sees_its_tools(echo, tmp_path):
    """The real OpenClaw (`openclaw mcp probe`) starts the server from `mcp.servers` and lists its tools."""
    import subprocess

    cli = subprocess.run([str(ROOT / "scripts" / "openclaw-cli")], capture_output=True, text=True, timeout=1200,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    state = tmp_path / "openclaw-state"
    state.mkdir()
    (state / "openclaw.json").write_text(
        json.dumps(
            {
                "mcp": {
                    "servers": {
                        "scalekit-auth": {"command": sys.executable, "args": [str(ROOT / "scalekit-auth"), "mcp"]}
                    }
                }
            }
        )
    )
    env = {**os.environ, "OPENCLAW_STATE_DIR": str(state), "HOME": str(tmp_path)}
    argv = [*cli.stdout.split(), "mcp", "probe", "scalekit-auth", "--json"]
    probe = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout[probe.stdout.index("{") :])
    assert found["servers"]["scalekit-auth"]["tools"] == 5
    assert {f"scalekit-auth__{t}" for t in ("status", "authorize", "request", "list_tools", "run_tool")} <= set(
        found["tools"]
    )
