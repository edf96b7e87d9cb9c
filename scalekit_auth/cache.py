"""A memory-only token cache with single-flight lookups. Nothing here touches a file or a log.

An entry is served while its token is more than `margin` seconds from expiry (or, when
Scalekit gives no expiry, for `default_ttl` seconds; see `lifetime` for tokens that arrive
already inside the margin). N threads asking for the same cold
key share one upstream lookup: one leads, the rest wait for its result or its error.
Errors are never stored.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

#: The cache's notion of "now" (monotonic seconds). A module attribute so tests can move time
#: forward instead of sleeping; nothing else changes it.
_clock = time.monotonic

T = TypeVar("T")

DEFAULT_MARGIN = 300.0  # seconds before expiry at which a cached token is no longer served
DEFAULT_TTL = 60.0  # lifetime of an entry whose expiry Scalekit did not give
DEFAULT_MAX_ENTRIES = 10_000  # least recently used entries go first beyond this (SCALEKIT_CACHE_MAX)


class _Flight(Generic[T]):
    """One in-progress lookup that other threads can wait on."""

    __slots__ = ("_done", "error", "value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None

    def finish(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        self._done.set()

    def wait(self) -> T:
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@dataclass
class _Entry(Generic[T]):
    value: T
    fresh_until: float  # _clock() deadline


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int


class TokenCache(Generic[T]):
    """Thread-safe, in-memory, expiry-aware cache of credentials keyed by any hashable key.

    Bounded: at most `max_entries` entries, the least recently used dropped first, so a
    server acting for many users keeps a flat memory footprint."""

    def __init__(
        self, margin: float = DEFAULT_MARGIN, default_ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.margin = margin
        self.default_ttl = default_ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry[T]] = OrderedDict()
        self._flights: dict[Hashable, _Flight[T]] = {}
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._entries)}, margin={self.margin:g}s, default_ttl={self.default_ttl:g}s)"

    def lifetime(self, expires_at: _dt.datetime | None, now: _dt.datetime | None = None) -> float:
        """Seconds an entry may be served.

        Normally until `margin` seconds before expiry (or `default_ttl` when there is no
        expiry). A token Scalekit hands back already inside the margin is the best there is:
        ask again after half its remaining life, or keep it until it expires once under a
        second is left, so lookups are bounded by expiries rather than by requests.
        """
        if expires_at is None:
            return self.default_ttl
        now = now or _dt.datetime.now(_dt.UTC)
        remaining = (expires_at - now).total_seconds()
        if remaining - self.margin > 0:
            return remaining - self.margin
        if remaining <= 0:
            return 0.0
        return remaining / 2 if remaining / 2 >= 1.0 else remaining

    def get(
        self,
        key: Hashable,
        fetch: Callable[[], T],
        expiry_of: Callable[[T], _dt.datetime | None],
        *,
        force: bool = False,
        store: bool = True,
    ) -> T:
        """The cached value for `key`, or the result of `fetch()` shared by every concurrent caller.

        `force` skips the cached value (joining a lookup already in flight); `store=False`
        fetches without remembering the result (the cache switched off).
        """
        if not force:
            entry = self._entries.get(key)  # lock-free fast path: dict reads are atomic
            if entry is not None and entry.fresh_until > _clock():
                self._hits += 1
                try:
                    self._entries.move_to_end(key)  # most recently used (one atomic C call)
                except KeyError:
                    pass  # evicted meanwhile: the value we hold is still good
                return entry.value
        with self._lock:
            if not force:
                entry = self._entries.get(key)
                if entry is not None and entry.fresh_until > _clock():
                    self._hits += 1
                    return entry.value
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            self._misses += 1
        if not leader:
            return flight.wait()
        try:
            value = fetch()
        except BaseException as err:
            with self._lock:
                self._flights.pop(key, None)
            flight.finish(error=err)
            raise
        lifetime = self.lifetime(expiry_of(value)) if store else 0.0
        with self._lock:
            if lifetime > 0:
                self._entries[key] = _Entry(value, _clock() + lifetime)
                self._entries.move_to_end(key)
                while len(self._entries) > max(self.max_entries, 0):
                    self._entries.popitem(last=False)  # the least recently used
            else:
                self._entries.pop(key, None)
            self._flights.pop(key, None)
        flight.finish(value=value)
        return value

    def peek(self, key: Hashable) -> T | None:
        """The cached value if it is still fresh (a hit), else None; never fetches."""
        entry = self._entries.get(key)
        if entry is None or entry.fresh_until <= _clock():
            return None
        self._hits += 1
        try:
            self._entries.move_to_end(key)
        except KeyError:
            pass
        return entry.value

    def invalidate(self, match: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key satisfies `match`; returns how many were dropped."""
        with self._lock:
            keys = list(self._entries)  # one C call: lock-free readers may reorder entries meanwhile
            doomed = [k for k in keys if match(k)]
            for k in doomed:
                self._entries.pop(k, None)
            return len(doomed)

    def trim(self) -> None:
        """Drop the least recently used entries beyond `max_entries` (after the bound was lowered)."""
        with self._lock:
            while len(self._entries) > max(self.max_entries, 0):
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._entries))
