"""The memory-only token cache: hits, expiry margin, refresh, invalidation, single-flight, batch.

Every upstream call is counted by the emulator, so "no RPC" means no RPC reached Scalekit.
"""

from __future__ import annotations

import threading
import time

import pytest

from scalekit_auth import cache as cache_module
from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import (
    AuthorizationError,
    BatchError,
    ConfigurationError,
    CredentialsRejectedError,
    RateLimitedError,
    ServiceNotConfiguredError,
)

LOOKUP = "rpc.GetConnectedAccountAuth"


@pytest.fixture
def broker(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    b = TokenBroker()
    yield b
    b.close()


def lookups(emulator) -> int:
    return emulator.counters().get(LOOKUP, 0)


def test_a_cache_hit_makes_no_call(broker, emulator):
    emulator.seed("gmail_u3134a", "agent", access_token="cached-token")
    assert broker.get_token("gmail") == "cached-token"
    for _ in range(50):
        assert broker.get_token("gmail") == "cached-token"
    counters = emulator.counters()
    assert counters[LOOKUP] == 1
    assert counters["oauth_token"] == 1
    assert counters["tls_connections.h2"] == 1


def test_one_client_per_process_serves_every_lookup(broker, emulator):
    emulator.seed("gmail_u3134a", "agent")
    for _ in range(5):
        broker.get_token("gmail", force_refresh=True)
    counters = emulator.counters()
    assert counters[LOOKUP] == 5
    assert counters["oauth_token"] == 1


@pytest.fixture
def later(monkeypatch):
    """later(seconds): move the cache's clock forward instead of sleeping."""
    offset = [0.0]
    real = cache_module._clock
    monkeypatch.setattr(cache_module, "_clock", lambda: real() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def test_a_token_inside_the_refresh_margin_is_looked_up_again(broker, emulator, monkeypatch, later):
    monkeypatch.setenv("SCALEKIT_CACHE_MARGIN", "240")
    emulator.seed("gmail_u3134a", "agent", access_token="short-lived", ttl=300)
    broker.get_token("gmail")
    broker.get_token("gmail")
    assert lookups(emulator) == 1  # up to 60 s of freshness left: still served
    later(61)
    broker.get_token("gmail")
    assert lookups(emulator) == 2


def test_a_token_arriving_inside_the_margin_is_rechecked_at_half_its_life(broker, emulator):
    seeded = time.monotonic()
    emulator.seed("gmail_u3134a", "agent", ttl=120)  # default margin is 300 s
    broker.get_token("gmail")
    broker.get_token("gmail")
    assert lookups(emulator) == 1
    (key,) = broker.cache._entries
    left = broker.cache._entries[key].fresh_until - time.monotonic()
    since_seed = time.monotonic() - seeded  # however long the lookup took on this machine
    assert 60 - since_seed - 1 < left <= 60


def test_lifetime_rules():
    import datetime as dt

    from scalekit_auth.cache import TokenCache

    cache = TokenCache(margin=300)
    now = dt.datetime.now(dt.UTC)
    assert cache.lifetime(now - dt.timedelta(seconds=1), now) == 0  # expired: never cached
    assert cache.lifetime(now + dt.timedelta(seconds=0.6), now) == pytest.approx(0.6)  # last second: kept
    assert cache.lifetime(now + dt.timedelta(seconds=120), now) == pytest.approx(60)  # inside margin: half
    assert cache.lifetime(now + dt.timedelta(seconds=400), now) == pytest.approx(100)  # until the margin
    assert cache.lifetime(None, now) == cache.default_ttl


def test_force_refresh_and_invalidate(broker, emulator):
    emulator.seed("gmail_u3134a", "agent", access_token="first")
    assert broker.get_token("gmail") == "first"
    emulator.rotate_token("gmail_u3134a", "agent", "second")
    assert broker.get_token("gmail") == "first"  # cached
    assert broker.get_token("gmail", force_refresh=True) == "second"
    emulator.rotate_token("gmail_u3134a", "agent", "third")
    assert broker.get_token("gmail") == "second"
    assert broker.invalidate("gmail") == 1
    assert broker.get_token("gmail") == "third"
    assert broker.invalidate("not-configured") == 0


def test_invalidate_one_identifier_keeps_the_others(broker, emulator):
    emulator.seed("gmail_u3134a", "alice", access_token="alice-1")
    emulator.seed("gmail_u3134a", "bob", access_token="bob-1")
    broker.get_token("gmail", identifier="alice")
    broker.get_token("gmail", identifier="bob")
    emulator.rotate_token("gmail_u3134a", "alice", "alice-2")
    emulator.rotate_token("gmail_u3134a", "bob", "bob-2")
    assert broker.invalidate("gmail", identifier="alice") == 1
    assert broker.get_token("gmail", identifier="alice") == "alice-2"
    assert broker.get_token("gmail", identifier="bob") == "bob-1"


def test_users_of_one_service_never_get_each_others_tokens(broker, emulator):
    emulator.seed("gmail_u3134a", "alice", access_token="alice-token")
    emulator.seed("gmail_u3134a", "bob", access_token="bob-token")
    emulator.seed("gmail_u3134a", "agent", access_token="agent-token")
    for _ in range(3):
        assert broker.get_token("gmail", identifier="alice") == "alice-token"
        assert broker.get_token("gmail", identifier="bob") == "bob-token"
        assert broker.get_token("gmail") == "agent-token"
    assert lookups(emulator) == 3


def _in_threads(n: int, func):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = func()
        except Exception as err:  # noqa: BLE001 - collected for the assertions
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _in_one_flight(n: int, broker, emulator, func):
    """Run func in n threads while the lookup is held at Scalekit until every thread has asked."""
    emulator.set_latency(600)
    release = threading.Thread(target=_release_when_all_asked, args=(n, broker, emulator), daemon=True)
    release.start()
    results = _in_threads(n, func)
    release.join(timeout=120)
    return results


def _release_when_all_asked(n: int, broker, emulator) -> None:
    deadline = time.monotonic() + 60
    while broker.cache.stats().misses < n and time.monotonic() < deadline:
        time.sleep(0.02)
    emulator.set_latency(0)  # the held lookup answers now


def test_single_flight_32_threads_one_lookup(broker, emulator):
    emulator.seed("gmail_u3134a", "agent", access_token="shared-token")
    results = _in_one_flight(32, broker, emulator, lambda: broker.get_token("gmail"))
    assert results == ["shared-token"] * 32
    assert lookups(emulator) == 1
    assert emulator.counters()["oauth_token"] == 1


def test_an_error_in_flight_reaches_every_waiter(broker, emulator):
    emulator.seed("gmail_u3134a", "agent")
    emulator.fail_next(1, "PERMISSION_DENIED")  # not retried: every waiter gets the one answer
    results = _in_one_flight(16, broker, emulator, lambda: broker.get_token("gmail"))
    assert all(isinstance(r, CredentialsRejectedError) for r in results), results
    assert lookups(emulator) == 1
    emulator.clear_faults()
    assert broker.get_token("gmail")  # the error was not cached


def test_a_rate_limit_is_retried_with_backoff_inside_the_deadline(broker, emulator):
    emulator.seed("gmail_u3134a", "agent", access_token="after-the-limit")
    emulator.fail_next(2, "RESOURCE_EXHAUSTED")
    assert broker.get_token("gmail") == "after-the-limit"
    assert lookups(emulator) == 3


def test_a_lasting_rate_limit_ends_in_rate_limited_error_at_the_deadline(broker, emulator, monkeypatch):
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "2")
    emulator.seed("gmail_u3134a", "agent")
    broker.vault(broker.settings()).connect()  # SDK loaded, logged in: the 2 s are the lookups' alone
    emulator.fail_next(-1, "RESOURCE_EXHAUSTED")
    with pytest.raises(RateLimitedError):
        broker.get_token("gmail")
    assert lookups(emulator) >= 2  # it did retry


def test_non_active_results_are_not_cached(broker, emulator):
    with pytest.raises(AuthorizationError) as first:
        broker.get_token("gmail")
    before = lookups(emulator)  # the first call looked, then created the account (get_or_create looks too)
    emulator.approve(first.value.link)
    assert broker.get_token("gmail") == emulator.account("gmail_u3134a", "agent")["access_token"]
    assert lookups(emulator) == before + 1  # the non-ACTIVE answer was not cached: asked again


def test_the_cache_can_be_switched_off(broker, emulator, monkeypatch):
    monkeypatch.setenv("SCALEKIT_CACHE", "0")
    emulator.seed("gmail_u3134a", "agent")
    for _ in range(3):
        broker.get_token("gmail")
    assert lookups(emulator) == 3
    assert broker.cache.stats().entries == 0


def test_without_an_expiry_the_default_lifetime_applies(broker, emulator, skill, monkeypatch, later):
    skill.configure("openai", "openai_demo")
    emulator.seed("openai_demo", "agent", static={"api_key": "sk-1"})
    monkeypatch.setenv("SCALEKIT_CACHE_TTL", "30")
    broker.get_token("openai")
    later(29)
    broker.get_token("openai")
    assert lookups(emulator) == 1
    later(2)
    broker.get_token("openai")
    assert lookups(emulator) == 2


def test_new_credentials_make_a_new_client(broker, emulator, monkeypatch):
    emulator.seed("gmail_u3134a", "agent")
    broker.get_token("gmail")
    new_secret = emulator.rotate_client_secret()
    monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", new_secret)
    broker.get_token("gmail", force_refresh=True)
    assert emulator.counters()["oauth_token"] == 2


def test_config_edits_take_effect_at_once(broker, emulator, skill):
    emulator.seed("gmail_u3134a", "agent", access_token="one")
    emulator.seed("slack_x7y9z", "agent", access_token="two")
    assert broker.get_token("gmail") == "one"
    skill.configure("gmail", "slack_x7y9z")
    assert broker.get_token("gmail") == "two"


def test_nothing_secret_in_reprs(broker, emulator):
    emulator.seed("gmail_u3134a", "agent", access_token="canary-cache-token-9911")
    broker.get_token("gmail")
    for obj in (broker, broker.cache, broker.cache.stats(), broker.settings(), broker.vault(broker.settings())):
        assert "canary-cache-token-9911" not in repr(obj)
        assert broker.settings().client_secret not in repr(obj)


# -- batch --------------------------------------------------------------------------


def test_batch_returns_tokens_in_order(broker, emulator, skill):
    skill.configure("slack", "slack_x7y9z")
    skill.configure("github", "github_demo")
    emulator.seed("gmail_u3134a", "agent", access_token="g")
    emulator.seed("slack_x7y9z", "agent", access_token="s")
    emulator.seed("github_demo", "agent", access_token="h")
    tokens = broker.get_tokens(["slack", "gmail", "github", "slack"])
    assert list(tokens.items()) == [("slack", "s"), ("gmail", "g"), ("github", "h")]
    assert emulator.counters()["oauth_token"] == 1


def test_batch_with_broken_services_keeps_the_others(broker, emulator, skill):
    skill.configure("slack", "slack_x7y9z")
    emulator.seed("gmail_u3134a", "agent", access_token="g")
    with pytest.raises(BatchError) as caught:
        broker.get_tokens(["gmail", "slack", "nope"])
    err = caught.value
    assert err.tokens == {"gmail": "g"}
    assert isinstance(err.errors["slack"], AuthorizationError)
    assert isinstance(err.errors["nope"], ServiceNotConfiguredError)
    assert err.exit_code == 3  # not configured comes before needs authorization
    assert str(err).splitlines()[0] == "2 of 3 services failed:"


def test_batch_failure_of_one_kind_keeps_its_exit_code(broker, emulator):
    with pytest.raises(BatchError) as caught:
        broker.get_tokens(["x1", "x2"])
    assert caught.value.exit_code == 3


def test_public_api_exposes_batch_and_invalidate(skill, emulator):
    from scalekit_helper import get_token, get_tokens, invalidate

    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent", access_token="a1")
    assert get_tokens(["gmail"]) == {"gmail": "a1"}
    emulator.rotate_token("gmail_u3134a", "agent", "a2")
    assert get_token("gmail") == "a1"
    invalidate("gmail")
    assert get_token("gmail") == "a2"
    assert get_token("gmail", force_refresh=True) == "a2"


def test_a_still_fresh_link_is_handed_out_again_instead_of_a_new_one(broker, emulator):
    """Each link costs a Scalekit call (and fires a webhook): an agent retrying get_token gets the same one."""
    with pytest.raises(AuthorizationError) as first:
        broker.get_token("gmail")
    with pytest.raises(AuthorizationError) as second:
        broker.get_token("gmail")
    assert second.value.link == first.value.link
    assert emulator.counters()["links_issued"] == 1
    assert click_allow(second.value.link) == 200  # the reused link works
    assert broker.get_token("gmail") == emulator.account("gmail_u3134a", "agent")["access_token"]


def test_a_link_past_half_its_life_is_replaced(skill):
    from scalekit_auth.emulator import Emulator

    with Emulator(link_ttl=2.0) as emu:
        skill.use(emu)
        skill.configure("gmail", "gmail_u3134a")
        fresh = TokenBroker()
        with pytest.raises(AuthorizationError) as first:
            fresh.get_token("gmail")
        deadline = time.monotonic() + 60
        while first.value.seconds_left > 0.9 and time.monotonic() < deadline:
            time.sleep(0.05)  # until less than half of its two seconds is left
        with pytest.raises(AuthorizationError) as second:
            fresh.get_token("gmail")
        assert second.value.link != first.value.link
        assert emu.counters()["links_issued"] == 2
        fresh.close()


def click_allow(link: str) -> int:
    import requests

    return requests.post(link, data={"decision": "allow"}, timeout=60).status_code


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    cache: cache_module.TokenCache[str] = cache_module.TokenCache(max_entries=3)
    for key in "abc":
        cache.get(key, lambda k=key: f"token-{k}", lambda _: None)
    assert cache.get("a", lambda: "refetched", lambda _: None) == "token-a"  # a hit: "a" is now the newest
    cache.get("d", lambda: "token-d", lambda _: None)  # one too many: "b" (least recently used) goes
    assert cache.stats().entries == 3
    assert cache.get("b", lambda: "refetched-b", lambda _: None) == "refetched-b"
    assert cache.get("a", lambda: "refetched", lambda _: None) == "token-a"


def test_the_bound_comes_from_scalekit_cache_max(broker, emulator, monkeypatch):
    monkeypatch.setenv("SCALEKIT_CACHE_MAX", "2")
    for ident in ("u1", "u2", "u3"):
        emulator.seed("gmail_u3134a", ident)
        broker.get_token("gmail", ident)
    assert broker.cache.stats().entries == 2
    monkeypatch.setenv("SCALEKIT_CACHE_MAX", "lots")
    with pytest.raises(ConfigurationError, match="SCALEKIT_CACHE_MAX must be a whole number"):
        broker.get_token("gmail", "u1")


def test_invalidating_while_other_threads_read_is_safe():
    cache: cache_module.TokenCache[str] = cache_module.TokenCache(max_entries=1000)
    for i in range(500):
        cache.get(i, lambda i=i: f"t{i}", lambda _: None)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        i = 0
        while not stop.is_set():
            try:
                cache.get(i % 500, lambda: "refetched", lambda _: None)  # a hit reorders the entries
            except BaseException as err:  # noqa: BLE001 - collected for the assertion
                errors.append(err)
            i += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(300):
            cache.invalidate(lambda key: key == -1)  # walks every key while the readers reorder them
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors


def test_lowering_the_bound_trims_at_once():
    cache: cache_module.TokenCache[str] = cache_module.TokenCache(max_entries=100)
    for i in range(50):
        cache.get(i, lambda i=i: f"t{i}", lambda _: None)
    cache.max_entries = 10
    cache.trim()
    assert cache.stats().entries == 10
    assert cache.peek(49) == "t49" and cache.peek(0) is None  # the newest kept
