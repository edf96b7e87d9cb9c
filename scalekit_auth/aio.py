"""Awaitable counterparts of get_token, get_tokens and get_credentials that never block the event loop.

A cached token is returned at once, on the loop (the check only reads memory and stats two
files). A cold one is fetched in a worker thread (the SDK is synchronous), and concurrent
tasks asking for the same cold token share that one fetch: 100 tasks cost one Scalekit
lookup and one thread, not 100 threads waiting on each other. Errors are the same classes
the synchronous API raises.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .credentials import ServiceCredentials

if TYPE_CHECKING:
    from .broker import TokenBroker
    from .sources import Road

# In-flight fetches, keyed by (event loop, broker, request): a future belongs to the loop that made it.
_flights: dict[tuple, asyncio.Future] = {}
_flights_lock = threading.Lock()


async def aget_credentials(
    service: str,
    identifier: str | None = None,
    *,
    force_refresh: bool = False,
    broker: TokenBroker | None = None,
) -> ServiceCredentials:
    """Like get_credentials, awaitable: the memory cache on the loop, a cold fetch in a thread."""
    from .sources import road_for

    road = road_for(broker)
    if not force_refresh:
        cached = road.broker.cached_credentials(service, identifier)
        if cached is not None:
            return cached
    loop = asyncio.get_running_loop()
    key = (id(loop), id(road.broker), service, identifier, force_refresh)
    with _flights_lock:
        flight = _flights.get(key)
        if flight is None:
            # The fetch belongs to no caller: cancelling one waiting task never cancels the others.
            fetch = functools.partial(_fetch, road, service, identifier, force_refresh, key)
            flight = loop.run_in_executor(None, contextvars.copy_context().run, fetch)
            _flights[key] = flight
            flight.add_done_callback(_retrieved)
    return await asyncio.shield(flight)


def _fetch(road: Road, service: str, identifier: str | None, force_refresh: bool, key: tuple) -> ServiceCredentials:
    """The shared fetch, in a worker thread. Its entry goes when the fetch ends, here in the thread,
    not in a callback on the loop: a loop closed mid-fetch runs no callbacks, and must leave nothing."""
    try:
        return road.credentials([service], identifier, force_refresh=force_refresh)[0]
    finally:
        with _flights_lock:
            _flights.pop(key, None)


def _retrieved(flight: asyncio.Future) -> None:
    if not flight.cancelled():
        flight.exception()  # retrieved: no "never retrieved" warning when every waiter was cancelled


async def aget_token(
    service: str,
    identifier: str | None = None,
    *,
    force_refresh: bool = False,
    broker: TokenBroker | None = None,
) -> str:
    """Like get_token, awaitable: the access token (or single API key) for `service`."""
    creds = await aget_credentials(service, identifier, force_refresh=force_refresh, broker=broker)
    return creds.token


async def aget_tokens(
    services: Iterable[str],
    identifier: str | None = None,
    *,
    force_refresh: bool = False,
    broker: TokenBroker | None = None,
) -> dict[str, str]:
    """Like get_tokens, awaitable: {service: token}, fetched concurrently; BatchError if any fails."""
    from .errors import BatchError

    if isinstance(services, (str, bytes)):
        raise TypeError(
            f"expected a list of services, e.g. [{services!r}], not a single string (for one service use aget_token)"
        )
    names = list(dict.fromkeys(services))
    results = await asyncio.gather(
        *(aget_token(n, identifier, force_refresh=force_refresh, broker=broker) for n in names),
        return_exceptions=True,
    )
    errors = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
    for err in errors.values():
        if not isinstance(err, Exception):
            raise err  # CancelledError, KeyboardInterrupt: not a per-service failure
    tokens = {n: r for n, r in zip(names, results, strict=True) if not isinstance(r, BaseException)}
    if errors:
        raise BatchError(tokens, errors)
    return tokens
