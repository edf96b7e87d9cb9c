"""Wait for a person to authorize an account, re-issuing the one-minute link as it runs out.

Polls the account's status only (never its credentials) with backoff from about 1 s to
5 s. A new link is requested shortly before the current one expires and handed to
`on_link`. A poll that finds the account changed but still not ACTIVE means the user
declined (or the sign-in failed). Ctrl-C stops it at once (KeyboardInterrupt propagates).
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
import time
from collections.abc import Callable

from .broker import TokenBroker
from .credentials import ServiceCredentials
from .errors import (
    AuthorizationDeclinedError,
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

OnLink = Callable[[str, "_dt.datetime | None"], None]
OnTick = Callable[[float, float], None]


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
) -> ServiceCredentials:
    """Credentials once the account is ACTIVE; see `wait_for_authorization`.

    `first` is an AuthorizationError already in hand (its link is shown first); `on_tick`
    is called about four times a second with (seconds left on the link, seconds left in
    total), for a countdown. `force_link` issues a link even if the account is ACTIVE.
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
    # The account as it is before anyone can see the link: a user who acts the moment it is
    # shown must still count as a change.
    baseline = broker.account_status(service, current.identifier or identifier).updated_at
    on_link(current.link, current.expires_at)
    renew_at = min(RENEW_BEFORE, _left(current.expires_at) * RENEW_FRACTION)

    interval = FIRST_POLL
    next_poll = time.monotonic() + interval
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise AuthorizationTimeoutError(current, now - started)
        if on_tick is not None:
            on_tick(_left(current.expires_at), deadline - now)
        if _left(current.expires_at) <= renew_at:
            current = broker.authorization_link(service, current.identifier or identifier)
            renew_at = min(RENEW_BEFORE, _left(current.expires_at) * RENEW_FRACTION)
            log.debug("%s: link renewed", service)
            on_link(current.link, current.expires_at)
        if now >= next_poll:
            try:
                state = broker.account_status(service, current.identifier or identifier)
            except (ScalekitUnavailableError, RateLimitedError) as err:
                log.debug("%s: status poll failed (%s); will retry", service, err.__class__.__name__)
                interval = MAX_POLL
            else:
                if state.status == "ACTIVE":
                    return broker.get_credentials(service, current.identifier or identifier, force_refresh=True)
                if baseline is not None and state.updated_at is not None and state.updated_at > baseline:
                    fresh = broker.authorization_link(service, current.identifier or identifier)
                    raise AuthorizationDeclinedError(fresh)
                baseline = baseline or state.updated_at
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
