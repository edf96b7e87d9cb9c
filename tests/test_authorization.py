"""Waiting for a person to authorize: links handed out, renewed, approved, denied, timed out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from scalekit_auth.emulator import Emulator
from scalekit_helper import (
    AuthorizationError,
    AuthorizationTimeoutError,
    get_token,
    wait_for_authorization,
)

from .helpers import ROOT, popen_as_in_a_terminal, run_on_terminal


class Links:
    """Collects links handed to on_link; can click Allow on each as it arrives."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.arrived = threading.Event()

    def __call__(self, link: str, expires_at) -> None:
        self.seen.append((link, expires_at))
        self.arrived.set()


def click(link: str, decision: str = "allow") -> requests.Response:
    return requests.post(link, data={"decision": decision}, timeout=60)


def on_first_link(links: Links, decision: str = "allow") -> threading.Thread:
    """Click the first link the waiting call shows, as soon as it shows one (however slow the machine)."""

    def run() -> None:
        if links.arrived.wait(60):
            click(links.seen[-1][0], decision)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.fixture
def gmail(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    return skill


def test_wait_returns_the_token_once_the_user_allows(gmail, emulator):
    links = Links()
    clicker = on_first_link(links)
    token = get_token("gmail", wait=True, timeout=60, on_link=links)
    clicker.join()
    assert token == emulator.account("gmail_u3134a", "mess")["access_token"]
    assert len(links.seen) == 1
    assert emulator.counters().get("rpc.GetConnectedAccountDetails", 0) >= 1  # polled status, not credentials


def test_an_active_account_needs_no_waiting(gmail, emulator):
    emulator.seed("gmail_u3134a", "mess", access_token="ready-token")
    links = Links()
    assert wait_for_authorization("gmail", timeout=60, on_link=links) == "ready-token"
    assert links.seen == []


@pytest.mark.slow
def test_an_expiring_link_is_replaced_and_the_new_one_works(skill):
    with Emulator(link_ttl=8.0) as emu:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        links = Links()

        clicks: dict[str, int] = {}

        def approve_a_newer_one() -> None:
            deadline = time.monotonic() + 60
            links.arrived.wait(60)
            first, first_expiry = links.seen[0]
            while time.time() <= first_expiry.timestamp() + 0.2 and time.monotonic() < deadline:
                time.sleep(0.05)  # until the first link has run out
            clicks["first"] = click(first).status_code
            while time.monotonic() < deadline:  # the newest link with time left (renewed as the first ran out)
                newest, expiry = links.seen[-1]
                if newest != first and expiry.timestamp() - time.time() > 3:
                    clicks["newer"] = click(newest).status_code
                    return
                time.sleep(0.05)

        t = threading.Thread(target=approve_a_newer_one, daemon=True)
        t.start()
        token = wait_for_authorization("gmail", timeout=60, on_link=links)
        t.join()
        assert clicks == {"first": 410, "newer": 200}
        assert token == emu.account("gmail_u3134a", "mess")["access_token"]
        assert len({link for link, _ in links.seen}) == len(links.seen) >= 2


def test_giving_up_carries_the_latest_link(gmail, emulator):
    links = Links()
    started = time.monotonic()
    with pytest.raises(AuthorizationTimeoutError) as caught:
        get_token("gmail", wait=True, timeout=1.5, on_link=links)
    assert 1.5 <= time.monotonic() - started < 60  # gave up when told: not before, and not never
    err = caught.value
    assert isinstance(err, AuthorizationError)
    assert err.link == links.seen[-1][0]
    assert 1.5 <= err.waited < 60  # the first lookup (SDK import, login) counts: seconds on a busy machine
    assert f"Nobody authorized gmail within {err.waited:.0f} seconds" in str(err)
    assert err.exit_code == 4


def test_a_deny_changes_nothing_so_the_wait_runs_to_its_timeout(gmail, emulator):
    """Scalekit records no decision on a Deny (its own page shows access_denied): nothing to report early."""
    links = Links()
    clicker = on_first_link(links, "deny")
    with pytest.raises(AuthorizationTimeoutError) as caught:
        get_token("gmail", wait=True, timeout=3, on_link=links)
    clicker.join(60)  # a busy machine may click after the 3 s are over: the outcome is the same
    assert 3 <= caught.value.waited < 60
    assert f"Nobody authorized gmail within {caught.value.waited:.0f} seconds" in str(caught.value)
    assert "declined" not in str(caught.value)
    assert emulator.counters()["links_denied"] == 1
    assert emulator.account("gmail_u3134a", "mess")["status"] == "PENDING_AUTH"
    with pytest.raises(AuthorizationError) as again:
        get_token("gmail")
    assert click(again.value.link).status_code == 200  # a new attempt works
    assert get_token("gmail") == emulator.account("gmail_u3134a", "mess")["access_token"]


@pytest.mark.slow
def test_consent_awaiting_verification_is_reported_once_and_ends_the_link_renewal(skill):
    """PENDING_VERIFICATION: the user consented; the wait goes on for verification, not for a new link."""
    from concurrent.futures import ThreadPoolExecutor

    with Emulator(link_ttl=4.0) as emu, ThreadPoolExecutor(1) as pool:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        links, statuses = Links(), []

        def on_link(link, expires_at) -> None:
            links(link, expires_at)
            if len(links.seen) == 1:  # the user consents; Scalekit now waits for verification
                emu.set_status("gmail_u3134a", "mess", "PENDING_VERIFICATION")

        def on_status(status: str) -> None:
            statuses.append(status)
            # verified (elsewhere) well after the 4-second link would have been renewed
            threading.Timer(8.0, emu.seed, ("gmail_u3134a", "mess", "ACTIVE")).start()

        waiting = pool.submit(wait_for_authorization, "gmail", None, 120, on_link, on_status)
        token = waiting.result(timeout=120)
        assert token == emu.account("gmail_u3134a", "mess")["access_token"]
        assert statuses == ["PENDING_VERIFICATION"]
        assert len(links.seen) == 1
        assert emu.counters()["links_issued"] == 1


def test_without_wait_the_error_is_raised_at_once(gmail):
    with pytest.raises(AuthorizationError):
        get_token("gmail")


# -- command line ----------------------------------------------------------------------


def test_token_wait_json_emits_a_line_per_link_then_the_token(gmail, emulator):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scalekit-auth"), "token", "gmail", "--wait", "60", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    first = json.loads(proc.stdout.readline())
    assert first["status"] == "WAITING" and first["service"] == "gmail" and first["identifier"] == "mess"
    assert first["expires_at"].endswith("Z")
    click(first["link"])
    out, err = proc.communicate(timeout=60)
    last = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0, err
    assert last["status"] == "ACTIVE"
    assert last["token"] == emulator.account("gmail_u3134a", "mess")["access_token"]


def test_token_wait_plain_prints_the_link_on_stderr_and_the_token_on_stdout(gmail, emulator):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "get_token.py"), "gmail", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stderr.readline().startswith("Open this link to connect gmail (expires in about 1 minute")
    link = proc.stderr.readline().strip()
    click(link)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out == emulator.account("gmail_u3134a", "mess")["access_token"] + "\n"


def test_ctrl_c_stops_waiting_at_once(gmail):
    proc = popen_as_in_a_terminal(
        [sys.executable, str(ROOT / "scalekit-auth"), "auth", "gmail"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT below shows where it hangs, if it does
    )
    proc.stderr.readline()  # the link is out: we are waiting
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)  # the wait itself would last 5 minutes
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=60)
        pytest.fail(f"still running 60 s after Ctrl-C:\n{err}")
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert time.monotonic() - sent < 60


def test_auth_command(gmail, emulator):
    emulator.seed("gmail_u3134a", "mess")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scalekit-auth"), "auth", "gmail", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["status"] == "ACTIVE"
    assert "already connected" in done.stderr
    assert emulator.account("gmail_u3134a", "mess")["access_token"] not in done.stdout + done.stderr


def test_auth_timeout_exits_4_with_the_latest_link(gmail):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scalekit-auth"), "auth", "gmail", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4
    assert "Nobody authorized gmail" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_on_a_terminal_auth_shows_a_live_countdown(gmail, emulator):
    import re

    clicked = []

    def click_when_waiting(text: str) -> None:
        if not clicked and "giving up in" in text:
            clicked.append(click(re.search(r"(http://127\.0\.0\.1:\d+/connect/[\w-]+)", text).group(1)))

    code, text = run_on_terminal(
        [sys.executable, str(ROOT / "scalekit-auth"), "auth", "gmail"], dict(os.environ), on_output=click_when_waiting
    )
    assert code == 0, text
    assert clicked and clicked[0].status_code == 200
    assert re.search(r"link valid \d+ s more, giving up in 4:\d\d \(Ctrl-C to stop\)", text)
    assert "gmail is connected for 'mess'" in text


@pytest.mark.slow
def test_auth_json_hands_each_new_link_through_a_pipe_the_moment_it_is_issued(skill):
    """OpenClaw's exec tool reads a background command's output as it comes: every link must reach it unbuffered."""
    import queue

    with Emulator(link_ttl=8.0) as emu:  # a new link every ~6 s: far apart, even on a busy machine
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scalekit-auth"), "auth", "gmail", "--json", "--timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ),
        )
        lines: queue.Queue = queue.Queue()

        def read() -> None:
            for line in proc.stdout:
                # how many links Scalekit had issued when this line arrived, and was the command still running
                lines.put((json.loads(line), emu.counters().get("links_issued", 0), proc.poll() is None))

        threading.Thread(target=read, daemon=True).start()
        try:
            first, issued, running = lines.get(timeout=60)
            assert (first["status"], issued, running) == ("WAITING", 1, True)
            second, issued, running = lines.get(timeout=60)  # the first link runs out after 8 s: a new one
            assert (second["status"], issued, running) == ("WAITING", 2, True)
            assert second["link"] != first["link"]
            assert click(second["link"]).status_code == 200
            while True:
                last, _, _ = lines.get(timeout=60)
                if last["status"] != "WAITING":
                    break
            assert last["status"] == "ACTIVE" and "token" not in last
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_auth_json_waits_for_a_new_account_while_a_warm_agent_runs(gmail, emulator, monkeypatch):
    """Issue 22 item 5: with a token agent running and no account yet, `auth --json` (which SKILL.md runs
    with exec `background: true`) printed its WAITING line, then died with "unexpected error
    (AttributeError)". It keeps waiting, ends with the ACTIVE line and exits 0.
    tests/test_openclaw_turns.py runs the same through a real OpenClaw Gateway."""
    monkeypatch.delenv("SCALEKIT_AUTH_AGENT")  # agents on, as users have them
    script = [sys.executable, str(ROOT / "scalekit-auth")]
    started = subprocess.run([*script, "agent", "start"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        proc = subprocess.Popen(
            [*script, "auth", "gmail", "--json", "--timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        try:
            first = json.loads(proc.stdout.readline())
            assert first["status"] == "WAITING"
            emulator.approve(first["link"])
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert [json.loads(line)["status"] for line in out.splitlines()] == ["ACTIVE"]
        assert "unexpected error" not in err and "Traceback" not in err
        warm = subprocess.run([*script, "agent", "status", "--json"], capture_output=True, text=True, timeout=60)
    finally:
        stopped = subprocess.run([*script, "agent", "stop"], capture_output=True, text=True, timeout=120)
    status = json.loads(warm.stdout)
    assert status["running"] and status["context_matches"]  # an agent for these settings ran all along
    assert stopped.returncode == 0 and "agent stopped" in stopped.stderr, stopped.stderr


def test_backoff_is_jittered_exponential_and_capped():
    from scalekit_auth.waiting import MAX_BACKOFF, backoff

    for attempt in range(12):
        delays = {backoff(attempt) for _ in range(50)}
        assert all(1.0 <= d <= min(MAX_BACKOFF, 2**attempt) for d in delays)
        if attempt >= 2:
            assert len(delays) > 1  # jittered: clients do not retry in step
    assert max(backoff(20) for _ in range(50)) <= MAX_BACKOFF


def test_a_wait_rides_out_rate_limiting_and_still_ends_with_the_token(gmail, emulator):
    emulator.fail_next(3, "RESOURCE_EXHAUSTED", method="GetConnectedAccountDetails")  # the status polls
    links = Links()
    clicker = on_first_link(links)
    token = get_token("gmail", wait=True, timeout=120, on_link=links)
    clicker.join()
    assert token == emulator.account("gmail_u3134a", "mess")["access_token"]
