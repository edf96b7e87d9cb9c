"""Secrets stay secret: canary tokens and a canary client secret must never show up in logs,
exception texts, reprs, files, child argv or --debug output."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scalekit_auth.broker import TokenBroker
from scalekit_auth.emulator import Emulator
from scalekit_auth.errors import ScalekitAuthError
from scalekit_auth.logs import RedactingFilter, get_logger, redact_text

from .helpers import run_script

CANARY_AT = "cnryAT4f7a1c9e3b5d2f8a6c0e4b7d1f3a9c5"
CANARY_RT = "cnryRT8b2d6f0a4c7e1b9d3f5a8c2e6b0d4f7"
CANARY_CS = "cnryCS3e7b1d5f9a2c6e0b4d8f1a5c9e3b7d2"
CANARY_KEY = "cnryKY6c0e4a8d2f5b9c3e7a1d5f8b2c6e0a4"
CANARIES = (CANARY_AT, CANARY_RT, CANARY_CS, CANARY_KEY)


def assert_clean(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"a secret leaked into {where}"


@pytest.fixture
def canary(skill, tmp_path, monkeypatch):
    """An emulator whose client secret and tokens are canaries; HOME and TMPDIR are private."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with Emulator(client_secret=CANARY_CS) as emu:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        skill.configure("openai", "openai_demo", "mess")
        skill.configure("slack", "slack_x7y9z", "mess")
        emu.seed("gmail_u3134a", "mess", access_token=CANARY_AT, refresh_token=CANARY_RT)
        emu.seed("openai_demo", "mess", static={"api_key": CANARY_KEY})
        skill.home, skill.tmp, skill.emu = home, tmp, emu
        yield skill


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_secret_in_logs_errors_or_reprs(canary, monkeypatch):
    capture = Capture()
    names = ["", "scalekit", "grpc", "scalekit_auth", "urllib3", "requests"]
    loggers = [logging.getLogger(n) for n in names]
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(capture)
    texts: list[str] = []
    try:
        broker = TokenBroker()
        creds = broker.get_credentials("gmail")
        assert creds.token == CANARY_AT
        key = broker.get_credentials("openai")
        broker.get_tokens(["gmail", "openai"])
        broker.account_status("gmail")
        broker.invalidate("gmail")
        broker.get_token("gmail", force_refresh=True)
        vault = broker.vault(broker.settings())
        snapshot = vault.account("gmail_u3134a", "mess")
        from scalekit_auth.http_auth import ScalekitAuth, httpx_auth

        objects = [
            broker, broker.cache, broker.cache.stats(), broker.settings(), vault, vault._client,
            vault._client.core_client, creds, key, snapshot, ScalekitAuth("gmail"), httpx_auth("gmail"),
        ]  # fmt: skip
        texts += [repr(o) for o in objects] + [str(o) for o in objects]
        errors: list[BaseException] = []
        for action in (
            lambda: broker.get_token("slack"),  # authorization needed
            lambda: broker.get_tokens(["gmail", "slack", "nope"]),  # batch error
        ):
            try:
                action()
            except ScalekitAuthError as err:
                errors.append(err)
        monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", CANARY_CS + "-wrong")
        try:
            TokenBroker().get_token("gmail")
        except ScalekitAuthError as err:
            errors.append(err)
        assert len(errors) == 3
        for err in errors:
            chain = err
            while chain is not None:  # our error and the SDK exception kept as its cause
                texts += [str(chain), repr(chain)]
                chain = chain.__cause__
        broker.close()
    finally:
        logging.getLogger().removeHandler(capture)
        for lg, level in zip(loggers, old_levels, strict=True):
            lg.setLevel(level)
    assert capture.lines, "nothing was logged at DEBUG: the check would prove nothing"
    assert_clean("\n".join(capture.lines), "a log record")
    for text in texts:
        assert_clean(text, "an exception message or a repr")


def test_objects_holding_a_token_show_at_most_a_short_prefix(canary):
    broker = TokenBroker()
    creds = broker.get_credentials("gmail")
    assert CANARY_AT[:4] + "…[REDACTED]" in repr(creds)
    assert CANARY_AT[:5] not in repr(creds)
    broker.close()


def run(args: list[str], env: dict | None = None, script: str = "scalekit-auth") -> subprocess.CompletedProcess:
    return run_script(script, *args, env=env)


def test_no_secret_in_files_argv_or_debug_output(canary, tmp_path):
    started = time.time()
    fake_curl = tmp_path / "bin" / "curl"
    fake_curl.parent.mkdir()
    fake_curl.write_text(
        '#!/bin/sh\nprintf "ARGV %s\\n" "$@"\nfor a in "$@"; do case "$a" in @*) cat "${a#@}";; esac; done\n'
    )
    fake_curl.chmod(fake_curl.stat().st_mode | stat.S_IEXEC)
    path_env = {"PATH": f"{fake_curl.parent}:{os.environ['PATH']}"}
    show_argv = "import pathlib; print(pathlib.Path('/proc/self/cmdline').read_bytes().decode())"

    outputs: list[tuple[str, str]] = []
    token = run(["gmail", "--debug"], script="get_token.py")
    assert token.returncode == 0 and token.stdout == CANARY_AT + "\n"  # stdout is the one place it belongs
    outputs.append(("get_token.py --debug stderr", token.stderr))
    for args in (
        ["status", "--debug"],
        ["list", "--status", "--debug"],
        ["doctor", "--debug"],
        ["token", "slack", "--debug"],
        ["token", "gmail", "openai", "--json", "--debug"],
    ):
        proc = run(args)
        outputs.append((" ".join(args) + " stderr", proc.stderr))
    wrong = run(["token", "gmail", "--debug"], env={"SCALEKIT_CLIENT_SECRET": "not-it"})
    assert wrong.returncode == 6 and "Traceback" in wrong.stderr
    outputs.append(("--debug traceback", wrong.stderr))

    child = run(["exec", "gmail", "openai", "--debug", "--", sys.executable, "-c", show_argv])
    assert child.returncode == 0, child.stderr
    outputs.append(("exec child argv", child.stdout))
    curl = run(["--debug", "curl", "--service", "gmail", "https://gmail.googleapis.com/x"], env=path_env)
    argv_lines = [line for line in curl.stdout.splitlines() if line.startswith("ARGV ")]
    assert argv_lines and "Authorization: Bearer " + CANARY_AT in curl.stdout  # curl did get the header
    outputs.append(("curl argv", "\n".join(argv_lines)))
    for where, text in outputs:
        assert_clean(text, where)

    scanned = 0
    roots = [canary.path, canary.home, canary.tmp, Path(tempfile.gettempdir())]
    for root in roots:
        for path in Path(root).rglob("*"):
            try:
                if not path.is_file() or path.stat().st_mtime < started - 1 or path.stat().st_size > 5_000_000:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            scanned += 1
            for canary_value in CANARIES:
                assert canary_value.encode() not in data, f"a secret was written to {path}"
    assert scanned > 0  # connections.json at least


# -- the redacting log filter -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("sending Authorization: Bearer abc.def-123", "abc.def-123"),
        ("token ya29.a0AfH6SMBx0123456789abcdef", "ya29.a0AfH6SMBx0123456789abcdef"),
        ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig-part", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0"),
        ("form client_secret=s3cr3t-value&grant_type=x", "s3cr3t-value"),
        ('json {"access_token": "tok-abc"}', "tok-abc"),
        (f"a value {CANARY_AT} in passing", CANARY_AT),
    ],
)
def test_token_shaped_values_are_redacted(message, secret):
    out = redact_text(message)
    assert secret not in out and "[REDACTED]" in out


@pytest.mark.parametrize(
    "message",
    [
        "gmail: account for mess is ACTIVE",
        "Scalekit client ready for https://acme.scalekit.com",
        "gmail: account for mess is PENDING_AUTH; authorization link issued",
    ],
)
def test_ordinary_messages_are_left_alone(message):
    assert redact_text(message) == message


def test_our_loggers_carry_the_filter(caplog):
    logger = get_logger("scalekit_auth.test")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    with caplog.at_level(logging.DEBUG, logger="scalekit_auth"):
        logger.debug("header was %s", "Bearer " + CANARY_AT)
    assert caplog.records and CANARY_AT not in caplog.text and "[REDACTED]" in caplog.text
