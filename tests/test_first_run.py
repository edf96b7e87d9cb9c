"""The first run: installing (or importing) the Scalekit SDK never eats the call's deadline."""

from __future__ import annotations

import time
import types

from scalekit_auth import deadlines, vault
from scalekit_auth.broker import TokenBroker


def test_a_slow_first_install_does_not_count_against_scalekit_timeout(skill, emulator, monkeypatch):
    """The SDK import stands in for a first-run private install that takes longer than SCALEKIT_TIMEOUT:
    the clock it advances is the one deadlines read, so nothing here depends on real speed."""
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="first-run-token")
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "30")
    skew: dict[str, float] = {"seconds": 0.0}
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + skew["seconds"])
    monkeypatch.setattr(deadlines, "time", clock)
    real_import = vault.import_or_explain

    def slow_first_install(module: str, package: str):
        found = real_import(module, package)
        if "done" not in skew:  # the first import installs; later ones find the packages at once
            skew["seconds"] += 120.0  # "two minutes of pip", as far as any deadline can tell
            skew["done"] = True
        return found

    monkeypatch.setattr(vault, "import_or_explain", slow_first_install)
    broker = TokenBroker()
    try:
        assert broker.get_token("gmail") == "first-run-token"
        assert broker.account_status("gmail").status == "ACTIVE"
    finally:
        broker.close()
