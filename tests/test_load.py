"""Load: 16 threads x 500 get_token over 4 services x 2 identifiers, tokens expiring every 2 s.

Every token handed out must be one the emulator had current for that key at some moment
during the call; no unexpected error; upstream lookups bounded by expiries, not requests.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from scalekit_auth.broker import TokenBroker
from scalekit_auth.emulator import Emulator

THREADS, CALLS = 16, 500
SERVICES = {"gmail": "gmail_u3134a", "slack": "slack_x7y9z", "github": "github_demo", "notion": "notion_demo"}
IDENTIFIERS = ("alice", "bob")
TOKEN_TTL, MARGIN = 2.0, 0.5


@pytest.mark.load
def test_many_threads_never_get_a_wrong_token(skill, monkeypatch):
    monkeypatch.setenv("SCALEKIT_CACHE_MARGIN", str(MARGIN))
    with Emulator(token_ttl=TOKEN_TTL) as emu:
        skill.use(emu)
        for service, connection in SERVICES.items():
            skill.configure(service, connection)
            for ident in IDENTIFIERS:
                emu.seed(connection, ident, ttl=TOKEN_TTL)
        broker = TokenBroker()
        records: list[tuple[str, str, str, float, float]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(THREADS)

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            mine = []
            barrier.wait()
            for _ in range(CALLS):
                service, ident = rng.choice(list(SERVICES)), rng.choice(IDENTIFIERS)
                start = time.time()
                try:
                    token = broker.get_token(service, ident)
                except Exception as err:  # noqa: BLE001 - counted below
                    with lock:
                        errors.append(err)
                    continue
                mine.append((SERVICES[service], ident, token, start, time.time()))
                time.sleep(rng.uniform(0, 0.012))
            with lock:
                records.extend(mine)

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        duration = time.monotonic() - started
        counters = emu.counters()
        histories = {
            (connection, ident): emu.token_history(connection, ident)
            for connection in SERVICES.values()
            for ident in IDENTIFIERS
        }
        broker.close()

    wrong = 0
    for connection, ident, token, start, end in records:
        entries = [h for h in histories[(connection, ident)] if h["token"] == token]
        ok = any(h["issued_at"] <= end and (h["replaced_at"] is None or h["replaced_at"] >= start) for h in entries)
        wrong += not ok
    lookups = counters.get("rpc.GetConnectedAccountAuth", 0)
    refreshes = counters.get("token_refreshes", 0)
    keys = len(SERVICES) * len(IDENTIFIERS)
    # per key and token lifetime: one lookup at the margin, one at expiry (plus a little slack)
    bound = keys * (duration / TOKEN_TTL + 1) * 3
    per_key = Counter((c, i) for c, i, *_ in records)
    print(
        f"\nload: {len(records)} tokens in {duration:.1f} s by {THREADS} threads over {keys} keys "
        f"({min(per_key.values())}-{max(per_key.values())} per key); wrong tokens: {wrong}; errors: {len(errors)}; "
        f"upstream lookups: {lookups} (bound {bound:.0f}); logins: {counters.get('oauth_token', 0)}; "
        f"server-side refreshes: {refreshes}"
    )
    assert not errors, errors[:3]
    assert len(records) == THREADS * CALLS
    assert wrong == 0
    assert refreshes >= keys  # tokens really did expire during the run
    assert lookups <= bound
    assert counters.get("oauth_token", 0) == 1
