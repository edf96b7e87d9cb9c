"""Connections found, not typed: `config SERVICE` looks the connection up at Scalekit, `config
SERVICE NAME` checks the name first, `connections` lists them. Real SDK, emulator, subprocesses."""

from __future__ import annotations

import functools
import json
import os
import sys

import pytest

from scalekit_auth.emulator import Emulator

from .helpers import ROOT, run_on_terminal, run_script
from .test_cli import assert_one_clean_line

cli = functools.partial(run_script, "scalekit-auth")


@pytest.fixture
def env(skill, emulator):
    skill.use(emulator)
    return skill


def saved(skill) -> dict:
    return json.loads(skill.connections_file.read_text()) if skill.connections_file.exists() else {}


# -- config SERVICE: the connection is looked up ------------------------------------------------------


def test_one_match_is_saved_and_named(env, emulator):
    proc = cli("config", "gmail")
    assert proc.returncode == 0, proc.stderr
    assert "found one gmail connection at Scalekit: gmail_u3134a (GMAIL, COMPLETED, USER)" in proc.stderr
    assert saved(env) == {"gmail": {"connection_name": "gmail_u3134a"}}
    assert emulator.counters()["rpc.ListAppConnections"] == 1  # the provider filter found it in one call


def test_the_service_name_becomes_the_connectors_key(env):
    proc = cli("config", "google-calendar", "--identifier", "mess")
    assert proc.returncode == 0, proc.stderr
    assert saved(env) == {"google-calendar": {"connection_name": "googlecalendar_demo", "identifier": "mess"}}


def test_several_matches_are_candidates_for_the_agent_with_json(env, emulator):
    emulator.add_connection("gmail_work", kind="org_wide")
    proc = cli("config", "gmail", "--json")
    assert proc.returncode == 12, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["saved"] is False and answer["service"] == "gmail"
    assert [c["name"] for c in answer["candidates"]] == ["gmail_u3134a", "gmail_work"]
    assert answer["candidates"][1] == {
        "name": "gmail_work",
        "provider": "GMAIL",
        "status": "COMPLETED",
        "auth_mode": "ORG_WIDE",
        "type": "OAUTH",
        "enabled": True,
    }
    assert saved(env) == {}


def test_several_matches_without_a_terminal_list_them_and_save_nothing(env, emulator):
    emulator.add_connection("gmail_work")
    proc = cli("config", "gmail")
    assert proc.returncode == 12
    assert "gmail_u3134a" in proc.stderr and "gmail_work" in proc.stderr
    assert "scalekit-auth config gmail <connection_name>" in proc.stderr
    assert proc.stdout == "" and saved(env) == {}


def test_several_matches_on_a_terminal_are_a_numbered_choice(env, emulator):
    emulator.add_connection("gmail_work")

    def answer(text: str) -> str | None:
        return "2\n" if text.rstrip().endswith("cancel]:") and "2." in text else None

    argv = [sys.executable, str(ROOT / "scalekit-auth"), "config", "gmail"]
    code, text = run_on_terminal(argv, dict(os.environ), answer)
    assert code == 0, text
    assert "1. gmail_u3134a" in text and "2. gmail_work" in text
    assert saved(env) == {"gmail": {"connection_name": "gmail_work"}}


def test_no_match_says_what_does_exist(env):
    proc = cli("config", "zoom")
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert "Scalekit has no zoom connection (provider ZOOM)" in proc.stderr
    assert "gmail_u3134a (GMAIL)" in proc.stderr and "slack_x7y9z (SLACK)" in proc.stderr
    assert saved(env) == {}
    as_json = cli("config", "zoom", "--json")
    assert as_json.returncode == 3
    answer = json.loads(as_json.stdout)
    assert answer["candidates"] == [] and "gmail_u3134a" in [c["name"] for c in answer["connections"]]


def test_a_near_match_is_offered_not_saved(env, emulator):
    emulator.add_connection("github_pat_team", provider="githubpat")
    emulator.world.connections.pop("github_demo")
    proc = cli("config", "github", "--json")
    assert proc.returncode == 12
    assert [c["name"] for c in json.loads(proc.stdout)["candidates"]] == ["github_pat_team"]
    assert saved(env) == {}


# -- config SERVICE NAME: the name is checked -----------------------------------------------------------


def test_a_typo_is_refused_with_what_exists(env):
    proc = cli("config", "notion", "notion_typo9")
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert "Scalekit has no connection named 'notion_typo9'" in proc.stderr
    assert "notion_demo (NOTION" in proc.stderr and "--offline" in proc.stderr
    assert saved(env) == {}


def test_an_existing_name_is_saved(env, emulator):
    proc = cli("config", "notion", "notion_demo", "-i", "bob")
    assert proc.returncode == 0, proc.stderr
    assert saved(env) == {"notion": {"connection_name": "notion_demo", "identifier": "bob"}}


def test_a_connection_of_another_provider_is_saved_with_a_note(env):
    proc = cli("config", "gmail", "slack_x7y9z")
    assert proc.returncode == 0
    assert "slack_x7y9z is a SLACK connection" in proc.stderr
    assert saved(env)["gmail"] == {"connection_name": "slack_x7y9z"}


def test_a_connection_not_set_up_is_saved_with_what_to_finish(env, emulator):
    emulator.add_connection("notion_draft", status="DRAFT", enabled=False)
    proc = cli("config", "notion", "notion_draft")
    assert proc.returncode == 0
    assert "note: notion_draft is DRAFT and disabled in the Scalekit dashboard" in proc.stderr


def test_offline_saves_without_asking_scalekit(env, emulator):
    proc = cli("config", "notion", "notion_typo9", "--offline")
    assert proc.returncode == 0, proc.stderr
    assert saved(env) == {"notion": {"connection_name": "notion_typo9"}}
    assert emulator.counters().get("rpc_calls", 0) == 0 and emulator.counters().get("oauth_token", 0) == 0
    needs_a_name = cli("config", "notion", "--offline")
    assert needs_a_name.returncode == 2 and "--offline needs the connection name" in needs_a_name.stderr


def test_a_scalekit_that_cannot_be_reached_refuses_and_suggests_offline(skill):
    with Emulator() as gone:
        skill.use(gone)
    proc = cli("config", "notion", "notion_demo")
    assert proc.returncode == 5
    assert_one_clean_line(proc.stderr)
    assert "Cannot reach Scalekit" in proc.stderr and "connection refused" in proc.stderr
    assert "scalekit-auth config notion notion_demo --offline" in proc.stderr
    assert saved(skill) == {}


def test_without_credentials_the_check_says_so_and_suggests_offline(skill):
    proc = cli("config", "notion", "notion_demo")
    assert proc.returncode == 3
    assert "Scalekit is not configured" in proc.stderr and "--offline" in proc.stderr
    assert saved(skill) == {}


# -- connections ------------------------------------------------------------------------------------


def test_connections_lists_name_provider_status_and_auth_mode(env, emulator):
    emulator.add_connection("hubspot_org", kind="org_wide")
    emulator.add_connection("notion_draft", status="DRAFT", enabled=False)
    env.configure("gmail", "gmail_u3134a")
    proc = cli("connections")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROVIDER", "STATUS", "AUTH", "MODE", "SERVICE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["gmail_u3134a"] == ["gmail_u3134a", "GMAIL", "COMPLETED", "USER", "gmail"]
    assert rows["hubspot_org"][1:4] == ["HUBSPOT", "COMPLETED", "ORG_WIDE"]
    assert rows["notion_draft"][2:4] == ["DRAFT", "(disabled)"]
    listed = json.loads(cli("connections", "--json").stdout)
    gmail = next(c for c in listed if c["name"] == "gmail_u3134a")
    assert gmail == {
        "name": "gmail_u3134a",
        "provider": "GMAIL",
        "status": "COMPLETED",
        "auth_mode": "USER",
        "type": "OAUTH",
        "enabled": True,
        "services": ["gmail"],
    }
    only = json.loads(cli("connections", "--json", "--provider", "slack").stdout)
    assert [c["name"] for c in only] == ["slack_x7y9z"]


def test_connections_follows_every_page(env, emulator):
    for n in range(35):
        emulator.add_connection(f"linear_{n:02d}")
    listed = json.loads(cli("connections", "--json").stdout)
    assert len(listed) == 42


# -- the same through TokenBroker ------------------------------------------------------------------


def test_the_broker_finds_and_checks_connections(env, emulator):
    from scalekit_auth.broker import TokenBroker

    emulator.add_connection("gmail_work")
    broker = TokenBroker()
    try:
        found = broker.find_connections("gmail")
        assert (found.provider, found.near, [c.name for c in found.matches]) == (
            "GMAIL",
            False,
            ["gmail_u3134a", "gmail_work"],
        )
        assert broker.find_connections("zoom").matches == []
        conn, listed = broker.check_connection("notion_demo")
        assert conn is not None and conn.provider == "NOTION" and listed == []
        missing, listed = broker.check_connection("notion_typo9")
        assert missing is None and "notion_demo" in [c.name for c in listed]
        assert [c.name for c in broker.app_connections(provider="SLACK")] == ["slack_x7y9z"]
    finally:
        broker.close()
