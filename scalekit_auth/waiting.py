"""Wait for a person to authorize an account, re-issuing the one-minute link as it runs out.

Polls the account's status only (never its credentials) with backoff from about 1 s to
5 s. A new link is requested shortly before the current one expires and handed to
`on_link`. The wait ends early only on what Scalekit reports: ACTIVE returns the
credentials; PENDING_VERIFICATION (the user consented, verification is pending) stops the
link renewal and is reported once through `on_status`. A Deny leaves no trace Scalekit's API
shows, so the wait then runs on to its timeout. Rate limiting or an outage slows the polls
down (jittered exponential backoff up to a minute). Ctrl-C stops it at once.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack

from .broker import TokenBroker
from .config import LOOPBACK
from .credentials import ServiceCredentials
from .errors import (
    AuthorizationError,
    AuthorizationTimeoutError,
    RateLimitedError,
    ScalekitUnavailableError,
    expiry_phrase,
)
from .logs import get_logger

log = get_logger("scalekit_auth.waiting")

FIRST_POLL = 1.0
MAX_POLL = 5.0
BACKOFF = 1.5
RENEW_BEFORE = 5.0  # seconds before a link expires at which a new one is requested...
RENEW_FRACTION = 0.2  # ...or this fraction of its lifetime, for short-lived links
TICK = 0.25
MAX_BACKOFF = 60.0  # polls slow down to at most one a minute while Scalekit rate-limits or is down

OnLink = Callable[[str, "_dt.datetime | None"], None]
OnTick = Callable[[float, float], None]
OnStatus = Callable[[str], None]


def backoff(attempt: int, base: float = FIRST_POLL, cap: float = MAX_BACKOFF) -> float:
    """Exponential backoff with full jitter: a random delay up to base * 2**attempt (capped), so many
    waiting clients do not retry in step."""
    return random.uniform(base, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not a secret


def print_link(service: str) -> OnLink:
    """The default `on_link`: one line on stderr per link."""

    def show(link: str, expires_at: _dt.datetime | None) -> None:
        print(f"Open this link to connect {service} ({expiry_phrase(expires_at)}): {link}", file=sys.stderr)

    return show


def _left(moment: _dt.datetime | None) -> float:
    if moment is None:
        return float("inf")
    return (moment - _dt.datetime.now(_dt.UTC)).total_seconds()


def wait_for_credentials(
    broker: TokenBroker,
    service: str,
    identifier: str | None = None,
    timeout: float = 300.0,
    on_link: OnLink | None = None,
    on_tick: OnTick | None = None,
    first: AuthorizationError | None = None,
    force_link: bool = False,
    on_status: OnStatus | None = None,
) -> ServiceCredentials:
    """Credentials once the account is ACTIVE; see `wait_for_authorization`.

    `first` is an AuthorizationError already in hand (its link is shown first); `on_tick`
    is called about four times a second with (seconds left on the link, seconds left in
    total), for a countdown. `force_link` issues a link even if the account is ACTIVE.
    `on_status` hears each new non-ACTIVE status the polls see (e.g. PENDING_VERIFICATION).
    """
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout)) or timeout <= 0:
        raise ValueError("timeout must be a positive number of seconds")
    on_link = on_link or print_link(service)
    started = time.monotonic()
    deadline = started + timeout
    current = first
    if current is None:
        if force_link:
            current = broker.authorization_link(service, identifier)
        else:
            try:
                return broker.get_credentials(service, identifier)
            except AuthorizationError as err:
                current = err
    who = current.identifier or identifier
    with ExitStack() as cleanup:
        verify_url = None
        if broker.settings().user_verify_url == LOOPBACK:  # verify the user here, on 127.0.0.1
            from .verify_server import LoopbackVerifier

            verify_url = cleanup.enter_context(LoopbackVerifier(broker)).url
            current = broker.authorization_link(service, who, verify_url)  # the first link must carry it too
        return _wait(broker, service, who, current, deadline, started, on_link, on_tick, on_status, verify_url)


def _wait(
    broker: TokenBroker,
    service: str,
    who: str | None,
    current: AuthorizationError,
    deadline: float,
    started: float,
    on_link: OnLink,
    on_tick: OnTick | None,
    on_status: OnStatus | None,
    verify_url: str | None,
) -> ServiceCredentials:
    """The polling loop of wait_for_credentials."""
    on_link(current.link, current.expires_at)
    renew_at = min(RENEW_BEFORE, _left(current.expires_at) * RENEW_FRACTION)
    seen_status: str | None = current.status or "PENDING_AUTH"  # no account yet: the link call has just created one
    verifying = False  # consent given: no new links, only verification is left

    interval = FIRST_POLL
    failures = 0
    next_poll = time.monotonic() + interval
    next_renewal = 0.0  # when a failed renewal may be tried again
    while True:
        now = time.monotonic()
        if now >= deadline:
            broker.forget_link(service, who)  # the user may have spent it with a Deny: a new one next time
            raise AuthorizationTimeoutError(current, now - started)
        if on_tick is not None:
            on_tick(_left(current.expires_at), deadline - now)
        if not verifying and now >= next_renewal and _left(current.expires_at) <= renew_at:
            try:
                fresh = broker.authorization_link(service, who, verify_url)
            except (ScalekitUnavailableError, RateLimitedError) as err:
                failures += 1
                next_renewal = now + backoff(failures)
                log.debug("%s: link renewal failed (%s); will retry", service, err.__class__.__name__)
            else:
                current = fresh
                renew_at = min(RENEW_BEFORE, _left(current.expires_at) * RENEW_FRACTION)
                log.debug("%s: link renewed", service)
                on_link(current.link, current.expires_at)
        if now >= next_poll:
            try:
                state = broker.account_status(service, who)
            except (ScalekitUnavailableError, RateLimitedError) as err:
                failures += 1
                interval = backoff(failures)
                log.debug("%s: status poll failed (%s); next in %.1f s", service, err.__class__.__name__, interval)
            else:
                failures = 0
                if state.status == "ACTIVE":
                    return broker.get_credentials(service, who, force_refresh=True)
                if state.status != seen_status:
                    seen_status = state.status
                    current = AuthorizationError(
                        current.service,
                        current.link,
                        current.expires_at,
                        identifier=current.identifier,
                        connection_name=current.connection_name,
                        status=state.status,
                    )
                    verifying = state.status == "PENDING_VERIFICATION"
                    if on_status is not None and state.status:
                        on_status(state.status)
                interval = min(interval * BACKOFF, MAX_POLL)
            next_poll = time.monotonic() + interval
        time.sleep(max(0.0, min(TICK, next_poll - time.monotonic(), deadline - time.monotonic())) or TICK / 10)


def wait_for_authorization(
    broker: TokenBroker,
    service: str,
    identifier: str | None = None,
    timeout: float = 300.0,
    on_link: OnLink | None = None,
    **kwargs,
) -> str:
    """The token, once the user has authorized the account (see wait_for_credentials)."""
    return wait_for_credentials(broker, service, identifier, timeout, on_link, **kwargs).token
