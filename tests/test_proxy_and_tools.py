"""`request --via scalekit`, `tools` and `tool run`: calls made by Scalekit as the account, through
the real SDK against the emulator; the token never comes here, and a model gets only results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scalekit_auth.errors import ExitCode

from .helpers import ROOT

TOKEN = "ya29.proxy-canary-token-0123456789"


@pytest.fixture
def proxied(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    skill.configure("slack", "slack_x7y9z", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token=TOKEN)
    emulator.set_proxy_enabled(True)
    return skill


def cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scalekit-auth", *argv], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_request_through_scalekits_proxy_by_path(proxied, emulator):
    proc = cli("request", "GET", "/gmail/v1/users/me/profile", "--service", "gmail", "--via", "scalekit",
               "--query", "fields=emailAddress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["path"] == "/gmail/v1/users/me/profile" and answer["identifier"] == "mess"
    assert TOKEN not in proc.stdout + proc.stderr
    [sent] = emulator.proxy_requests()
    assert sent["outcome"] == "forwarded" and sent["connection_name"] == "gmail_u3134a"


def test_the_setting_makes_scalekit_the_default_and_a_full_url_works(proxied, emulator):
    proc = cli(
        "request", "https://gmail.googleapis.com/gmail/v1/users/me/labels?x=1", env={"SCALEKIT_REQUEST_VIA": "scalekit"}
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert (
        answer["path"] == "/gmail/v1/users/me/labels" and answer["query"] == {"x": "1"} or "x" in str(answer["query"])
    )


@pytest.mark.parametrize(
    "path", ["/../api/v1/connected_accounts/auth", "/gmail/%2e%2e/x", "/gmail/..%2fx", "//evil.example/x", "/a\\\\b"]
)
def test_a_path_that_could_leave_the_proxy_is_refused_before_anything_is_sent(proxied, emulator, path):
    proc = cli("request", path, "--service", "gmail", "--via", "scalekit")
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert emulator.proxy_requests() == []


def test_another_host_is_refused_through_the_proxy_too(proxied, emulator):
    proc = cli("request", "https://api.github.com/user", "--service", "gmail", "--via", "scalekit")
    assert proc.returncode in (ExitCode.USAGE, ExitCode.CONFIGURATION) and emulator.proxy_requests() == []


def test_header_injection_is_refused(proxied, emulator):
    proc = cli("request", "/gmail/x", "--service", "gmail", "--via", "scalekit", "-H", "X-A: 1\r\nIdentifier: boss")
    assert proc.returncode == ExitCode.USAGE and emulator.proxy_requests() == []


def test_a_disabled_proxy_says_what_to_enable(proxied, emulator):
    emulator.set_proxy_enabled(False)
    proc = cli("request", "/gmail/v1/users/me/profile", "--service", "gmail", "--via", "scalekit")
    assert proc.returncode == ExitCode.PROXY_DISABLED == 10, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "proxy" in proc.stderr.lower()


def test_an_account_not_connected_gives_its_link(proxied, emulator):
    proc = cli("request", "/api/auth.test", "--service", "slack", "--via", "scalekit")
    assert proc.returncode == ExitCode.AUTHORIZATION_REQUIRED and "http" in proc.stderr, proc.stderr
    run = cli("tool", "run", "slack_auth_test", "--service", "slack")
    assert run.returncode == ExitCode.AUTHORIZATION_REQUIRED and "http" in run.stderr, run.stderr


def test_tools_are_listed_with_their_schemas(proxied):
    table = cli("tools", "gmail")
    assert table.returncode == 0 and "gmail_get_profile" in table.stdout, table.stderr
    listed = json.loads(cli("tools", "gmail", "--json").stdout)
    profile = next(t for t in listed if t["name"] == "gmail_get_profile")
    assert profile["service"] == "gmail" and isinstance(profile["input_schema"], dict)


def test_a_tool_runs_as_the_account_and_returns_its_result(proxied, emulator):
    proc = cli("tool", "run", "gmail_get_profile", "--input", "{}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert TOKEN not in proc.stdout + proc.stderr and result
    assert emulator.tool_calls()[-1]["tool_name"] == "gmail_get_profile"


@pytest.mark.parametrize("given", ["[1]", "{not json", "@/nonexistent/file"])
def test_bad_tool_input_is_a_usage_error(proxied, given):
    proc = cli("tool", "run", "gmail_get_profile", "--input", given)
    assert proc.returncode == ExitCode.USAGE, proc.stderr


def test_the_python_form_through_the_proxy(proxied):
    import scalekit_helper

    response = scalekit_helper.request("gmail", "/gmail/v1/users/me/profile", via="scalekit")
    assert response.ok and response.json()["identifier"] == "mess"
    scalekit_helper.close()


def test_repeated_query_keys_all_reach_the_api_through_the_proxy(proxied, emulator):
    proc = cli("request", "/gmail/v1/users/me/messages", "--service", "gmail", "--via", "scalekit",
               "--query", "labelIds=A", "--query", "labelIds=B")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["query"] == {"labelIds": ["A", "B"]}, proc.stdout
