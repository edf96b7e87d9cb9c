"""Faults, one explicit test each, through our library, the real SDK and the emulator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from scalekit_auth.broker import TokenBroker
from scalekit_auth.config import DEFAULT_TIMEOUT
from scalekit_auth.errors import (
    CredentialsRejectedError,
    RateLimitedError,
    ScalekitTimeoutError,
    ScalekitUnavailableError,
)

from .helpers import ROOT

LOOKUP = "rpc.GetConnectedAccountAuth"


@pytest.fixture
def warm(skill, emulator):
    """A broker whose Scalekit client is already connected (so faults hit RPCs)."""
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent", access_token="tok-1")
    broker = TokenBroker()
    assert broker.get_token("gmail") == "tok-1"
    yield broker
    broker.close()


def test_unavailable_on_the_next_two_calls_then_success(warm, emulator):
    emulator.fail_next(2, "UNAVAILABLE")
    assert warm.get_token("gmail", force_refresh=True) == "tok-1"
    assert emulator.counters()[LOOKUP] == 4  # warm-up, two failures, the retry that worked


def test_unavailable_on_every_call_gives_our_error_in_bounded_time(warm, emulator):
    emulator.fail_next(-1, "UNAVAILABLE")
    started = time.monotonic()
    with pytest.raises(ScalekitUnavailableError, match="Cannot reach Scalekit"):
        warm.get_token("gmail", force_refresh=True)
    assert time.monotonic() - started < 30  # the SDK's few retries, not a hang
    emulator.clear_faults()
    assert warm.get_token("gmail", force_refresh=True) == "tok-1"


def test_rate_limit_says_to_slow_down(warm, emulator, monkeypatch):
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "2")
    warm.vault(warm.settings()).connect()  # another timeout is another client: logged in before the deadline
    emulator.fail_next(-1, "RESOURCE_EXHAUSTED")
    with pytest.raises(RateLimitedError, match="Slow down"):
        warm.get_token("gmail", force_refresh=True)
    assert emulator.counters()[LOOKUP] >= 3  # retried with backoff until the deadline


def test_the_default_timeout_is_well_under_the_sdks():
    assert DEFAULT_TIMEOUT <= 10 < 20


def test_latency_beyond_our_timeout_on_a_call(warm, emulator, monkeypatch):
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "1")
    warm.get_token("gmail", force_refresh=True)  # a client with the 1 s deadline
    emulator.set_latency(120)
    started = time.monotonic()
    with pytest.raises(ScalekitTimeoutError, match="did not answer within 1 seconds"):
        warm.get_token("gmail", force_refresh=True)
    assert 1 <= time.monotonic() - started < 60  # our deadline, not the 120 s answer


def test_latency_beyond_our_timeout_on_the_login(skill, emulator, monkeypatch):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "1")
    emulator.set_latency(120)
    broker = TokenBroker()
    started = time.monotonic()
    with pytest.raises(ScalekitTimeoutError):
        broker.get_token("gmail")
    assert 1 <= time.monotonic() - started < 60  # our deadline, not the 120 s answer
    broker.close()


def test_rotated_client_secret_is_named_as_the_cause(warm, emulator):
    emulator.rotate_client_secret()
    with pytest.raises(CredentialsRejectedError, match="SCALEKIT_CLIENT_ID / SCALEKIT_CLIENT_SECRET"):
        warm.get_token("gmail", force_refresh=True)


def test_rotated_token_while_cached_then_invalidate(warm, emulator):
    emulator.rotate_token("gmail_u3134a", "agent", "tok-2")
    assert warm.get_token("gmail") == "tok-1"
    warm.invalidate("gmail")
    assert warm.get_token("gmail") == "tok-2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_emulator(port: int, secret: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "scalekit_auth.emulator", "--port", str(port),
            "--client-id", "skc_fixed", "--client-secret", secret,
            "--ca-dir", os.environ["SCALEKIT_EMULATOR_CA_DIR"],
            "--seed", "gmail_u3134a:agent:ACTIVE",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    proc.stdout.readline()  # the first export line: it is serving
    return proc


def test_emulator_killed_mid_run_then_back(skill, monkeypatch):
    port, secret = _free_port(), "fixed-secret-for-restart"
    monkeypatch.setenv("SCALEKIT_ENV_URL", f"https://127.0.0.1:{port}")
    monkeypatch.setenv("SCALEKIT_CLIENT_ID", "skc_fixed")
    monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", secret)
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "120")
    skill.configure("gmail", "gmail_u3134a")
    first = _start_emulator(port, secret)
    broker = TokenBroker()
    try:
        assert broker.get_token("gmail")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        started = time.monotonic()
        with pytest.raises(ScalekitUnavailableError, match="Cannot reach Scalekit"):
            broker.get_token("gmail", force_refresh=True)
        assert time.monotonic() - started < 60  # refused at once, not the 120 s timeout
        second = _start_emulator(port, secret)
        try:
            token = broker.get_token("gmail", force_refresh=True)  # same broker: it reconnects by itself
            assert token.startswith("emu_at_")
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(timeout=60)
    finally:
        broker.close()
        if first.poll() is None:
            first.kill()


@pytest.mark.slow
def test_scalekit_timeout_bounds_the_whole_call_including_the_sdks_retries(skill, emulator, monkeypatch):
    """The SDK retries UNAVAILABLE with backoff, each attempt with the full per-call timeout; SCALEKIT_TIMEOUT
    is still the bound for the whole get_token."""
    import time

    from scalekit_auth.broker import TokenBroker
    from scalekit_auth.errors import ScalekitTimeoutError

    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess")
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "6")
    broker = TokenBroker()
    broker.vault(broker.settings()).connect()  # logged in: only the lookup is left
    emulator.set_latency(5)  # each attempt takes 5 s, then fails UNAVAILABLE; the SDK would try 3 times
    emulator.fail_next(-1, "UNAVAILABLE", method="GetConnectedAccountAuth")
    started = time.monotonic()
    try:
        with pytest.raises(ScalekitTimeoutError, match="within 6 seconds"):
            broker.get_token("gmail")
        took = time.monotonic() - started
    finally:
        emulator.set_latency(0)
        broker.close()
    assert took < 14, took  # unbounded: 3 attempts of 5 s plus the SDK's backoff, 16.5 s or more


def test_one_callers_deadline_does_not_cut_another_callers_call(skill, emulator, monkeypatch):
    """A caller that runs out of its own time must not close the connection other threads are using."""
    import threading

    from scalekit_auth.broker import TokenBroker
    from scalekit_auth.deadlines import deadline
    from scalekit_auth.errors import ScalekitTimeoutError

    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="still-good")
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "120")
    broker = TokenBroker()
    settings = broker.settings()
    broker.vault(settings).connect()
    emulator.set_latency(600)  # every call held until the test lets go
    result: dict = {}
    before = emulator.counters().get("rpc_calls", 0)
    other = threading.Thread(target=lambda: result.update(token=broker.get_token("gmail", force_refresh=True)))
    other.start()
    try:
        limit = time.monotonic() + 60
        while emulator.counters().get("rpc_calls", 0) == before and time.monotonic() < limit:
            time.sleep(0.01)  # until the other caller's lookup is in flight
        with deadline(0.2), pytest.raises(ScalekitTimeoutError):
            broker.vault(settings).account("gmail_u3134a", "mess")  # this caller gives up...
    finally:
        emulator.set_latency(0)
    other.join(60)
    assert result == {"token": "still-good"}  # ...and the other one is unharmed
    broker.close()
