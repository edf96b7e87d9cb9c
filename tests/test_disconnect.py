"""Disconnect: `scalekit-auth disconnect SERVICE` revokes the connected account at Scalekit
(delete_connected_account), forgets the cached token, and is not `remove`. Real SDK, emulator."""

from __future__ import annotations

import functools
import json
import os
import sys

import pytest

from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import AuthorizationError

from .helpers import ROOT, run_on_terminal, run_script
from .test_cli import assert_one_clean_line

cli = functools.partial(run_script, "scalekit-auth")


@pytest.fixture
def connected(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token")
    emulator.seed("gmail_u3134a", "bob", access_token="bob-token")
    return skill


def identifiers(emulator) -> list[str]:
    return [a["identifier"] for a in emulator.accounts()]


def test_disconnect_revokes_the_account_and_keeps_the_entry(connected, emulator):
    proc = cli("disconnect", "gmail", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "revoked the gmail account of 'mess' (connection gmail_u3134a) at Scalekit" in proc.stderr
    assert "scalekit-auth remove gmail" in proc.stderr
    assert identifiers(emulator) == ["bob"]  # bob's account is another one
    assert json.loads(connected.connections_file.read_text())["gmail"]["connection_name"] == "gmail_u3134a"
    after = cli("token", "gmail")
    assert after.returncode == 4 and "gmail-token" not in after.stdout  # the user must authorize again


def test_identifier_picks_whose_account(connected, emulator):
    assert cli("disconnect", "gmail", "--identifier", "bob", "-y").returncode == 0
    assert identifiers(emulator) == ["mess"]


def test_a_second_disconnect_finds_nothing_to_revoke(connected):
    assert cli("disconnect", "gmail", "--yes").returncode == 0
    again = cli("disconnect", "gmail", "--yes")
    assert again.returncode == 0
    assert "Scalekit has no gmail account for 'mess' on connection gmail_u3134a: nothing to revoke" in again.stderr


def test_without_a_terminal_it_needs_yes(connected, emulator):
    proc = cli("disconnect", "gmail")
    assert proc.returncode == 2
    assert_one_clean_line(proc.stderr)
    assert "add --yes to confirm" in proc.stderr
    assert identifiers(emulator) == ["bob", "mess"]
    assert emulator.counters().get("rpc.DeleteConnectedAccount", 0) == 0


@pytest.mark.parametrize(("typed", "code", "left"), [("y\n", 0, ["bob"]), ("n\n", 1, ["bob", "mess"])])
def test_on_a_terminal_it_asks_first(connected, emulator, typed, code, left):
    def answer(text: str) -> str | None:
        return typed if text.rstrip().endswith("[y/N]:") else None

    argv = [sys.executable, str(ROOT / "scalekit-auth"), "disconnect", "gmail"]
    got, text = run_on_terminal(argv, dict(os.environ), answer)
    assert got == code, text
    assert "Revoke the gmail account of 'mess' (connection gmail_u3134a) at Scalekit?" in text
    assert identifiers(emulator) == left


def test_remove_only_forgets_the_mapping(connected, emulator):
    proc = cli("remove", "gmail")
    assert proc.returncode == 0
    assert "a connected account stays connected at Scalekit" in proc.stderr
    assert identifiers(emulator) == ["bob", "mess"]


def test_an_unconfigured_service_is_a_configuration_error(connected, emulator):
    proc = cli("disconnect", "slack", "--yes")
    assert proc.returncode == 3 and "'slack' is not configured" in proc.stderr
    assert emulator.counters().get("rpc.DeleteConnectedAccount", 0) == 0


def test_the_broker_forgets_the_cached_token(connected, emulator):
    broker = TokenBroker()
    try:
        assert broker.get_token("gmail") == "gmail-token"
        lookups = emulator.counters()["rpc.GetConnectedAccountAuth"]
        assert broker.get_token("gmail") == "gmail-token"  # cached
        assert emulator.counters()["rpc.GetConnectedAccountAuth"] == lookups
        assert broker.disconnect("gmail") is True
        assert broker.disconnect("gmail") is False  # nothing left to revoke
        with pytest.raises(AuthorizationError):
            broker.get_token("gmail")  # asked Scalekit again, which has no account any more
    finally:
        broker.close()
