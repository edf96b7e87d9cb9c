"""A real browser (headless Chromium) clicks through the consent page while get_token waits.

Chromium comes from Debian's `chromium` package (installed by .ci/run) and is driven with
Playwright. Screenshots of the page are saved under test-artifacts/ when a test fails.
"""

from __future__ import annotations

import queue
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from scalekit_auth.emulator import Emulator
from scalekit_helper import AuthorizationTimeoutError, get_token

from .helpers import ROOT

pytestmark = pytest.mark.browser  # Debian's chromium and Playwright: make check skips these

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context()
    pg = context.new_page()
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


class Waiting:
    """get_token(wait=True) running in a thread; links arrive on a queue."""

    def __init__(self, timeout: float = 120) -> None:
        self.links: queue.Queue = queue.Queue()
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, args=(timeout,), daemon=True)
        self.thread.start()

    def _run(self, timeout: float) -> None:
        try:
            self.result["token"] = get_token("gmail", wait=True, timeout=timeout, on_link=self._on_link)
        except Exception as err:  # noqa: BLE001 - inspected by the test
            self.result["error"] = err

    def _on_link(self, link, expires_at) -> None:
        self.links.put((link, expires_at))

    def next_link(self) -> str:
        return self.next_link_and_expiry()[0]

    def next_link_and_expiry(self):
        return self.links.get(timeout=60)

    def usable_link(self, at_least: float = 3.0) -> str:
        """The newest link shown so far that is valid for `at_least` more seconds (waits for one)."""
        deadline = time.monotonic() + 60
        link, expires_at = self.links.get(timeout=60)
        while time.monotonic() < deadline:
            while not self.links.empty():
                link, expires_at = self.links.get_nowait()
            if expires_at.timestamp() - time.time() >= at_least:
                return link
            link, expires_at = self.links.get(timeout=60)
        raise AssertionError("no usable authorization link within 60 s")

    def finish(self) -> dict:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the waiting call did not return"
        return self.result


def test_user_clicks_allow_and_the_waiting_call_gets_the_token(skill, emulator, page):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    waiting = Waiting()
    page.goto(waiting.next_link())
    assert page.locator("#identifier").inner_text() == "mess"
    assert page.locator("#connection").inner_text() == "gmail_u3134a"
    assert re.search(r"expires in \d+ seconds", page.locator("#expiry").inner_text())
    page.click("#allow")
    assert page.locator("#result").inner_text() == "Connected"
    result = waiting.finish()
    assert result.get("token") == emulator.account("gmail_u3134a", "mess")["access_token"], result


@pytest.mark.slow
def test_link_expired_before_the_click_then_the_new_link_works(skill, page):
    with Emulator(link_ttl=8.0) as emu:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a", "mess")
        waiting = Waiting()
        first, first_expiry = waiting.next_link_and_expiry()
        deadline = time.monotonic() + 60
        while time.time() <= first_expiry.timestamp() + 0.2 and time.monotonic() < deadline:
            time.sleep(0.1)  # until the first link has run out
        page.goto(first)
        assert page.locator("#result").inner_text() == "Link not valid"
        assert "expired" in page.content()
        page.goto(waiting.usable_link())  # a newer one, issued as the first ran out
        page.click("#allow")
        assert page.locator("#result").inner_text() == "Connected"
        result = waiting.finish()
        assert result.get("token") == emu.account("gmail_u3134a", "mess")["access_token"], result


@pytest.mark.slow
def test_user_clicks_deny_and_nothing_changes_on_the_account(skill, emulator, page):
    """Scalekit's page says access denied; its API shows nothing, so the wait runs on to its timeout."""
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    waiting = Waiting(timeout=5)
    link = waiting.next_link()
    before = emulator.account("gmail_u3134a", "mess")
    page.goto(link)
    page.click("#deny")
    assert page.locator("#result").inner_text() == "Access denied"
    result = waiting.finish()
    assert isinstance(result.get("error"), AuthorizationTimeoutError), result
    assert emulator.account("gmail_u3134a", "mess") == before
