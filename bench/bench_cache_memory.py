"""Memory of the token cache for a server acting for many users: bounded (LRU) vs unbounded.

Asks the cache for 50,000 different identifiers (each a realistic ServiceCredentials with a
~40-character token and scopes) and reports the memory the cache holds (tracemalloc) after
every 10,000, with the default bound (SCALEKIT_CACHE_MAX=10000) and without one, side by
side in one run. No Scalekit calls: this measures the cache itself.

    .venv/bin/python bench/bench_cache_memory.py
"""

from __future__ import annotations

import datetime as _dt
import gc
import secrets
import sys
import tracemalloc
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scalekit_auth.cache import DEFAULT_MAX_ENTRIES, TokenCache  # noqa: E402
from scalekit_auth.credentials import ServiceCredentials  # noqa: E402

USERS = 50_000
STEP = 10_000


def credentials(identifier: str) -> ServiceCredentials:
    return ServiceCredentials(
        service="gmail",
        identifier=identifier,
        connection_name="gmail_u3134a",
        kind="oauth",
        access_token="ya29." + secrets.token_urlsafe(30),
        scopes=("https://www.googleapis.com/auth/gmail.readonly",),
        expires_at=_dt.datetime.now(_dt.UTC) + _dt.timedelta(hours=1),
        fields=MappingProxyType({}),
    )


def run(max_entries: int) -> list[tuple[int, int, int]]:
    """[(users asked so far, entries held, bytes held)] every STEP users."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    cache: TokenCache[ServiceCredentials] = TokenCache(max_entries=max_entries)
    rows = []
    for n in range(1, USERS + 1):
        ident = f"user-{n}@example.com"
        cache.get(("https://acme.scalekit.com", "gmail_u3134a", ident), lambda i=ident: credentials(i), _expiry)
        if n % STEP == 0:
            gc.collect()
            rows.append((n, cache.stats().entries, tracemalloc.get_traced_memory()[0] - base))
    tracemalloc.stop()
    return rows


def _expiry(creds: ServiceCredentials) -> _dt.datetime | None:
    return creds.expires_at


def main() -> int:
    bounded = run(DEFAULT_MAX_ENTRIES)
    unbounded = run(10**9)
    print(f"Token cache memory, {USERS:,} different identifiers (tracemalloc, bytes held by the cache)")
    print(f"{'users asked':>12} | {'bounded entries':>15} {'bounded MB':>10} | {'unbounded entries':>17} {'MB':>7}")
    for (n, be, bb), (_, ue, ub) in zip(bounded, unbounded, strict=True):
        print(f"{n:>12,} | {be:>15,} {bb / 1e6:>10.1f} | {ue:>17,} {ub / 1e6:>7.1f}")
    growth = bounded[-1][2] / bounded[0][2]
    ratio = unbounded[-1][2] / bounded[-1][2]
    print(f"bounded: memory after {USERS:,} users is {growth:.2f}x that after {STEP:,} (flat = 1.0)")
    print(f"unbounded holds {ratio:.1f}x the memory of the bounded cache at {USERS:,} users")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
