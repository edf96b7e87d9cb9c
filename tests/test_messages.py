"""What a person reads: exit codes that mean something, nothing dropped, nothing secret, nothing raw."""

from __future__ import annotations

import functools
import json
import math

import pytest

from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import ConfigurationError, ExitCode

from .helpers import run_script

cli = functools.partial(run_script, "scalekit-auth")


@pytest.fixture
def ready(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    skill.configure("slack", "slack_x7y9z", "mess")  # no account: needs authorization
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token")
    return skill


@pytest.mark.parametrize("command", [["status"], ["token"], ["token", "--json"]])
def test_mixed_failures_exit_with_the_most_pressing_code(ready, command):
    """Not configured (3) must be fixed before authorization (4) can help: 3, not a vague 1."""
    proc = cli(*command, "slack", "nope")
    assert proc.returncode == int(ExitCode.CONFIGURATION), proc.stdout + proc.stderr
    assert "nope" in proc.stdout + proc.stderr and "slack" in proc.stdout + proc.stderr


def test_token_wait_reports_every_failure_before_waiting(ready):
    proc = cli("token", "slack", "nope", "--wait", "60")
    assert proc.returncode == int(ExitCode.CONFIGURATION), proc.stderr
    assert "nope" in proc.stderr  # not dropped while waiting for slack


def test_upstream_error_text_is_redacted(ready, emulator):
    secret = "at_live_0123456789abcdefghijklmnopqrstuv"
    emulator.fail_next(1, "INTERNAL", message=f"backend said access_token={secret} is bad")
    proc = cli("token", "gmail")
    assert proc.returncode != 0
    assert secret not in proc.stderr and "[REDACTED]" in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", [123, True, ["gmail_x"], {"a": 1}, None])
def test_non_string_connection_names_are_called_what_they_are(skill, value):
    skill.connections_file.write_text(json.dumps({"gmail": {"connection_name": value}}))
    proc = run_script("get_token.py", "gmail")
    assert proc.returncode == 3
    if value is not None:
        assert "empty" not in proc.stderr, proc.stderr
        assert "must be a string" in proc.stderr or "text" in proc.stderr, proc.stderr


def test_get_tokens_with_a_single_string_is_explained(ready):
    broker = TokenBroker()
    try:
        with pytest.raises(TypeError, match=r"list of services"):
            broker.get_tokens("gmail")
    finally:
        broker.close()


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1, 0])
def test_a_wait_timeout_must_be_a_real_positive_number(ready, timeout):
    from scalekit_auth.api import wait_for_authorization

    with pytest.raises(ValueError, match="timeout"):
        wait_for_authorization("slack", timeout=timeout, on_link=lambda *_: None)


@pytest.mark.parametrize("url", ["ftp://gmail.googleapis.com/x", "file:///etc/passwd", "ws://gmail.googleapis.com/"])
def test_urls_that_are_not_http_are_explained_as_such(ready, url):
    proc = cli("which", url)
    assert proc.returncode == 3
    assert "http" in proc.stderr and "No service is known" not in proc.stderr, proc.stderr


def test_control_characters_from_files_never_reach_the_terminal(skill):
    skill.connections_file.write_text(json.dumps({"gm\u001b[31mail": {"connection_name": "x\u001b]0;pwned\u0007"}}))
    for proc in (cli("list"), run_script("get_token.py", "gmail"), cli("status")):
        assert "\u001b" not in proc.stdout + proc.stderr and "\u0007" not in proc.stdout + proc.stderr, proc


def test_a_configuration_error_message_is_one_line(skill):
    skill.connections_file.write_text('{"gmail": {"connection_name": "line1\\nline2"}}')
    proc = run_script("get_token.py", "gmail")
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_library_errors_stay_configuration_errors(skill):
    with pytest.raises(ConfigurationError):
        TokenBroker().get_token("nope")
