"""A hostile upstream and what children inherit: unsafe tokens are refused on every path, every
printed string is safe for a terminal, and no child process gets a SCALEKIT_* variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalekit_auth import agent
from scalekit_auth.display import printable, raw_controls
from scalekit_auth.errors import ExitCode, UnsafeCredentialError

from .helpers import ROOT

CANARY_ADMIN = "canary-emulator-admin-key"


def run(*argv: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def assert_terminal_safe(text: str) -> None:
    """No raw control character a terminal would act on (newlines are lines, not controls)."""
    assert raw_controls(text) == [], repr(text)


@pytest.fixture
def hostile(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    return skill


UNSAFE = {
    "newline": "AAAA\nBBBB",
    "carriage return": "AAAA\rBBBB",
    "escape sequence": "AAAA\x1b]0;pwned\x07",
    "nul": "AAAA\x00BBBB",
    "del": "AAAA\x7fBBBB",
    "C1 CSI": "AAAA\u009b2J",
    "bidi override": "AAAA\u202eBBBB",
    "oversized": "A" * (64 * 1024 + 1),
}


@pytest.mark.parametrize("token", list(UNSAFE.values()), ids=list(UNSAFE))
def test_an_unsafe_token_is_refused_by_the_library(hostile, emulator, token):
    emulator.seed("gmail_u3134a", "mess", access_token=token)
    from scalekit_auth.broker import TokenBroker

    broker = TokenBroker()
    try:
        with pytest.raises(UnsafeCredentialError) as caught:
            broker.get_token("gmail")
    finally:
        broker.close()
    assert caught.value.exit_code == ExitCode.UNSAFE_CREDENTIAL == 9
    message = str(caught.value)
    assert token not in message and "BBBB" not in message and "pwned" not in message
    assert (
        len(broker.cache.stats().__dict__)
        and broker.cache.peek((os.environ["SCALEKIT_ENV_URL"], "gmail_u3134a", "mess")) is None
    )  # never cached


@pytest.mark.parametrize("command", [["get_token.py", "gmail"], ["scalekit-auth", "header", "gmail"],
                                     ["scalekit-auth", "exec", "gmail", "--", "true"],
                                     ["scalekit-auth", "token", "gmail", "--json"]])  # fmt: skip
@pytest.mark.parametrize("via_agent", [False, True], ids=["in-process", "agent"])
def test_an_unsafe_token_is_refused_by_every_command(hostile, emulator, command, via_agent):
    emulator.seed("gmail_u3134a", "mess", access_token="AAAA\nBBBB\x1b[2J")
    env = {}
    if via_agent:
        hostile.monkeypatch.delenv("SCALEKIT_AUTH_AGENT")
        assert run("scalekit-auth", "agent", "start").returncode == 0
    try:
        proc = run(*command, env=env)
    finally:
        agent.stop()
    assert "BBBB" not in proc.stdout and "BBBB" not in proc.stderr
    assert_terminal_safe(proc.stdout + proc.stderr)
    if command[-1] == "--json":
        [line] = proc.stdout.splitlines()
        assert json.loads(line)["error"]["exit_code"] == 9
    else:
        assert proc.returncode == ExitCode.UNSAFE_CREDENTIAL, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_unsafe_credential_field_is_refused(hostile, emulator):
    hostile.configure("db", "db_demo", "mess")
    emulator.seed("db_demo", "mess", static={"api_key": "k\nX-Injected: yes"}, kind="static")
    proc = run("get_token.py", "db")
    assert proc.returncode == ExitCode.UNSAFE_CREDENTIAL and "X-Injected" not in proc.stdout + proc.stderr


def test_a_large_token_does_not_block_curl(hostile, emulator, tmp_path):
    """A 64 KiB token (the largest allowed) makes a header longer than a default pipe holds."""
    token = "T" * (64 * 1024)
    hostile.configure("github", "github_c1", "mess")
    emulator.seed("github_c1", "mess", access_token=token)
    fake = _fake_curl(tmp_path)
    proc = run("scalekit-auth", "curl", "https://api.github.com/user", env={"PATH": f"{fake}:{os.environ['PATH']}"},
               timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["header_length"] == len("Authorization: Bearer ") + len(token) + 1
    assert token not in proc.stdout


def _fake_curl(folder: Path) -> Path:
    """A `curl` first on PATH that reports the header it was handed and its environment."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    script = bin_dir / "curl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "path = sys.argv[sys.argv.index('-H') + 1][1:]\n"
        "header = open(path, 'rb').read()\n"
        "print(json.dumps({'header_length': len(header), 'header_lines': header.count(b'\\n'),\n"
        "                  'scalekit': sorted(k for k in os.environ if k.upper().startswith('SCALEKIT_')),\n"
        "                  'env': '\\n'.join(f'{k}={v}' for k, v in os.environ.items())}))\n"
    )
    script.chmod(0o755)
    return bin_dir


# -- what children inherit ------------------------------------------------------------------


def test_exec_children_get_their_tokens_and_no_scalekit_variable(hostile, emulator):
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token")
    proc = run("scalekit-auth", "exec", "gmail", "--", "env", env={"SCALEKIT_EMULATOR_ADMIN_KEY": CANARY_ADMIN})
    assert proc.returncode == 0, proc.stderr
    names = [line.split("=", 1)[0] for line in proc.stdout.splitlines()]
    assert "GMAIL_TOKEN" in names
    assert not [n for n in names if n.upper().startswith("SCALEKIT_")]
    assert os.environ["SCALEKIT_CLIENT_SECRET"] not in proc.stdout and CANARY_ADMIN not in proc.stdout


def test_curl_gets_no_scalekit_variable(hostile, emulator, tmp_path):
    hostile.configure("github", "github_c1", "mess")
    emulator.seed("github_c1", "mess", access_token="gh-token")
    fake = _fake_curl(tmp_path)
    proc = run("scalekit-auth", "curl", "https://api.github.com/user",
               env={"PATH": f"{fake}:{os.environ['PATH']}", "SCALEKIT_EMULATOR_ADMIN_KEY": CANARY_ADMIN})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["scalekit"] == [] and os.environ["SCALEKIT_CLIENT_SECRET"] not in report["env"]
    assert report["header_lines"] == 1


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    extra=st.dictionaries(
        st.from_regex(r"(SCALEKIT|scalekit|Scalekit)_[A-Z_]{1,12}", fullmatch=True),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20),
        max_size=4,
    )
)
def test_no_child_environment_carries_a_scalekit_variable(extra):
    from scalekit_auth.execenv import child_environment

    base = {"PATH": "/usr/bin", "SCALEKIT_CLIENT_SECRET": "canary-secret", **extra}
    env = child_environment({"GMAIL_TOKEN": "t"}, base)
    assert env["GMAIL_TOKEN"] == "t" and env["PATH"] == "/usr/bin"
    assert not [k for k in env if k.upper().startswith("SCALEKIT_")]


def test_exec_refuses_two_tokens_for_one_variable(hostile):
    hostile.configure("my.crm", "gmail_u3134a", "mess")
    hostile.configure("my-crm", "gmail_u3134a", "mess")
    same = run("scalekit-auth", "exec", "my.crm", "my-crm", "--", "true")
    assert same.returncode == ExitCode.USAGE and "MY_CRM_TOKEN" in same.stderr, same.stderr
    hostile.configure("slack", "gmail_u3134a", "mess")
    env = run(
        "scalekit-auth", "exec", "gmail", "slack", "--env", "gmail=X_TOKEN", "--env", "slack=X_TOKEN", "--", "true"
    )
    assert env.returncode == ExitCode.USAGE and "X_TOKEN" in env.stderr, env.stderr


# -- everything printed is terminal-safe -----------------------------------------------------------


def test_c1_and_bidi_controls_never_reach_the_terminal(hostile):
    evil = "x\u009b2J\u009d0;pwned\u009c\u202eabc"
    configured = run("scalekit-auth", "config", "evil", "gmail_u3134a", "-i", evil)
    listed = run("scalekit-auth", "list")
    status = run("scalekit-auth", "status", "evil")
    for proc in (configured, listed, status):
        assert_terminal_safe(proc.stdout + proc.stderr)
    assert "\\x9b" in configured.stderr and "\\u202e" in listed.stdout


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=40))
def test_printable_leaves_no_raw_control_character(text):
    assert_terminal_safe(printable(text))
    assert raw_controls(printable(text, keep_newlines=False), keep_newlines=False) == []


def test_debug_tracebacks_are_redacted_like_messages(hostile, emulator):
    secret = "ya29.a0AfH6SMBcanaryTOKENvalue1234567890"
    emulator.fail_next(-1, "INTERNAL", message=f"upstream said access_token={secret} \x1b[31m")
    try:
        proc = run("scalekit-auth", "--debug", "token", "gmail", env={"SCALEKIT_TIMEOUT": "60"})
    finally:
        emulator.clear_faults()
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert secret not in proc.stderr
    assert_terminal_safe(proc.stderr)


def test_a_browser_started_from_os_environ_sees_no_scalekit_variable(monkeypatch):
    """The demo's webbrowser.open starts a child from os.environ: the variables are out meanwhile."""
    from scalekit_auth.execenv import scalekit_variables_hidden

    monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", "canary-secret")
    with scalekit_variables_hidden():
        assert not [k for k in os.environ if k.upper().startswith("SCALEKIT_")]
    assert os.environ["SCALEKIT_CLIENT_SECRET"] == "canary-secret"


@settings(max_examples=200, deadline=None)
@given(token=st.text(min_size=1, max_size=80))
def test_any_token_text_is_either_refused_or_safe_everywhere(token):
    """Generated token contents: a token is accepted only when it is safe on a terminal, in a header
    line and in an environment variable; otherwise ServiceCredentials refuses it (exit code 9)."""
    from scalekit_auth.credentials import ServiceCredentials

    try:
        creds = ServiceCredentials("gmail", "mess", "gmail_c", "oauth", access_token=token)
    except UnsafeCredentialError as err:
        assert err.exit_code == ExitCode.UNSAFE_CREDENTIAL and token not in str(err)
        return
    assert raw_controls(creds.token, keep_newlines=False) == []
    assert "\x00" not in creds.token and "\n" not in creds.token and "\r" not in creds.token
