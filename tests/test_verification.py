"""User verification, both of Scalekit's modes, end to end through the real SDK.

Custom user verification: links carry `user_verify_url` and `state`; after consent Scalekit
sends the browser there with `auth_request_id` and the account is PENDING_VERIFICATION until
the application calls verify_connected_account_user. Done by a waiting call's own loopback page
(SCALEKIT_USER_VERIFY_URL=loopback) or by `scalekit-auth verify ADDRESS` (paste-back).
"Scalekit users only": only someone signed in to Scalekit can consent; nothing to verify after.
"""

from __future__ import annotations

import json
import subprocess
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scalekit_auth.emulator import Emulator
from scalekit_helper import AuthorizationError, get_token

from .helpers import run_script


def confirm(address: str, origin: str | None = None) -> requests.Response:
    """What the Confirm button on the loopback page sends (a same-origin form POST)."""
    parts = urlsplit(address)
    own = f"{parts.scheme}://{parts.netloc}"
    form = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return requests.post(f"{own}{parts.path}", data=form, headers={"Origin": origin or own}, timeout=60)


def allow(link: str, **form: str) -> requests.Response:
    """The user clicks Allow; the browser is not sent on (the test looks where it would go)."""
    return requests.post(link, data={"decision": "allow", **form}, timeout=60, allow_redirects=False)


@pytest.fixture
def custom(skill):
    with Emulator(verification="custom") as emu:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        yield emu


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_script("scalekit-auth", *args, env=env, timeout=120)


def test_paste_back_the_user_verify_url_completes_the_connection(custom, skill):
    skill.monkeypatch.setenv("SCALEKIT_USER_VERIFY_URL", "https://app.example.com/scalekit/verify")
    with pytest.raises(AuthorizationError) as first:
        get_token("gmail")
    consent = allow(first.value.link)
    assert consent.status_code == 303
    landed = consent.headers["Location"]
    assert landed.startswith("https://app.example.com/scalekit/verify?auth_request_id=")
    assert parse_qs(urlsplit(landed).query)["state"][0]  # a state for the application's CSRF check
    assert custom.account("gmail_u3134a", "mess")["status"] == "PENDING_VERIFICATION"

    with pytest.raises(AuthorizationError) as pending:
        get_token("gmail")
    assert pending.value.status == "PENDING_VERIFICATION"
    assert pending.value.link != first.value.link  # the spent link is not handed out again
    assert "scalekit-auth verify" in str(pending.value) and "declined" not in str(pending.value)

    done = _cli("verify", landed, "--service", "gmail", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"identifier": "mess", "status": "VERIFIED"}
    assert get_token("gmail") == custom.account("gmail_u3134a", "mess")["access_token"]
    assert custom.counters()["verifications"] == 1

    again = _cli("verify", landed, "--service", "gmail")  # an auth_request_id is single-use
    assert again.returncode == 4 and "no pending verification" in again.stderr


def test_verify_refuses_the_wrong_identifier_and_a_bad_address(custom, skill):
    skill.monkeypatch.setenv("SCALEKIT_USER_VERIFY_URL", "https://app.example.com/verify")
    with pytest.raises(AuthorizationError) as first:
        get_token("gmail")
    landed = allow(first.value.link).headers["Location"]
    wrong = _cli("verify", landed, "--identifier", "mallory")
    assert wrong.returncode == 4 and "refused the verification for 'mallory'" in wrong.stderr
    assert custom.account("gmail_u3134a", "mess")["status"] == "PENDING_VERIFICATION"
    bad = _cli("verify", "https://app.example.com/verify?state=x")
    assert bad.returncode == 2 and "No auth_request_id" in bad.stderr
    assert "Traceback" not in wrong.stderr + bad.stderr


def test_a_waiting_call_verifies_the_user_itself_on_loopback(custom, skill):
    skill.monkeypatch.setenv("SCALEKIT_USER_VERIFY_URL", "loopback")
    links: list[str] = []
    arrived = threading.Event()

    def on_link(link, expires_at) -> None:
        links.append(link)
        arrived.set()

    def the_user() -> None:
        if arrived.wait(60):
            # a browser on this machine: Allow, follow Scalekit to the waiting call's page, Confirm there
            page = requests.post(links[-1], data={"decision": "allow"}, timeout=60)
            assert 'id="confirm"' in page.text
            the_user.page = confirm(page.url)

    clicker = threading.Thread(target=the_user, daemon=True)
    clicker.start()
    token = get_token("gmail", wait=True, timeout=120, on_link=on_link)
    clicker.join(60)
    assert token == custom.account("gmail_u3134a", "mess")["access_token"]
    assert the_user.page.url.endswith("/verified")  # sent on to Scalekit's done page
    assert custom.counters()["verifications"] == 1


@pytest.mark.slow
def test_the_loopback_page_verifies_only_links_it_issued(custom, skill):
    skill.monkeypatch.setenv("SCALEKIT_USER_VERIFY_URL", "loopback")
    seen: list[str] = []
    arrived = threading.Event()
    result: dict = {}

    def wait() -> None:
        try:
            # the loopback page lives as long as this wait, which also counts the first lookup (SDK import,
            # login): 15 s leave the checks below room on a busy machine
            get_token("gmail", wait=True, timeout=15, on_link=lambda link, _: (seen.append(link), arrived.set()))
        except AuthorizationError as err:
            result["error"] = err

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert arrived.wait(60)
    landed = allow(seen[-1]).headers["Location"]
    forged = landed.replace("state=", "state=forged")
    assert requests.get(forged, timeout=60).status_code == 400  # not a link of this waiting call
    assert confirm(forged).status_code == 400
    assert confirm(landed, origin="https://evil.example").status_code == 403  # another site's form post
    waiter.join(120)
    assert custom.account("gmail_u3134a", "mess")["status"] == "PENDING_VERIFICATION"
    assert "not verified within" in str(result["error"])


def test_custom_verification_without_a_verify_url_fails_at_consent_and_changes_nothing(custom):
    with pytest.raises(AuthorizationError) as first:
        get_token("gmail")
    refused = allow(first.value.link)
    assert refused.status_code == 410 and "user_verify_url not configured" in refused.text
    assert custom.account("gmail_u3134a", "mess")["status"] == "PENDING_AUTH"


def test_scalekit_users_only_needs_a_signed_in_scalekit_user(skill):
    with Emulator(verification="scalekit_users") as emu:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        with pytest.raises(AuthorizationError) as first:
            get_token("gmail")
        assert allow(first.value.link).status_code == 403  # not signed in to Scalekit
        assert emu.account("gmail_u3134a", "mess")["status"] == "PENDING_AUTH"
        assert allow(first.value.link, signed_in_as="owner@example.com").status_code == 200
        assert get_token("gmail") == emu.account("gmail_u3134a", "mess")["access_token"]
