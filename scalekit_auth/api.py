"""The public functions, backed by one lazily created, process-wide Road (sources.py): a
TokenBroker for the in-process work, and a running agent when one may answer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .broker import TokenBroker
from .connections import Change
from .credentials import ServiceCredentials
from .errors import AuthorizationError
from .sources import LocalSource, Road

if TYPE_CHECKING:
    from .waiting import OnLink

_lock = threading.Lock()
_road: Road | None = None


def default_road() -> Road:
    """The process-wide road (created on first use; thread-safe). A long-lived process uses a
    running agent when one serves its settings, and never starts one."""
    global _road
    road = _road
    if road is not None:
        return road
    with _lock:
        if _road is None:
            _road = Road(LocalSource(TokenBroker()), may_start=False, remember=True)
        return _road


def default_broker() -> TokenBroker:
    """The process-wide broker (configuration, memory cache, Scalekit client)."""
    return default_road().broker


def get_token(
    service: str,
    identifier: str | None = None,
    *,
    force_refresh: bool = False,
    wait: bool = False,
    timeout: float = 300.0,
    on_link: OnLink | None = None,
) -> str:
    """A valid access token for `service` (e.g. "gmail") from Scalekit's vault.

    Served from memory while it is more than SCALEKIT_CACHE_MARGIN seconds from expiry;
    `force_refresh=True` asks Scalekit again. Raises ConfigurationError when the service or
    Scalekit credentials are not set up, and AuthorizationError (with `.link` and
    `.expires_at`) when the user must connect the account first -- unless `wait=True`:
    then the link goes to `on_link(link, expires_at)` (default: printed on stderr), new
    links follow as old ones expire, and the token is returned once the user has
    authorized (AuthorizationTimeoutError after `timeout` seconds).
    """
    road = default_road()
    try:
        return road.credentials([service], identifier, force_refresh=force_refresh)[0].token
    except AuthorizationError as err:
        if not wait:
            raise
        from .waiting import wait_for_credentials

        return wait_for_credentials(road.broker, service, identifier, timeout, on_link, first=err).token


def wait_for_authorization(
    service: str,
    identifier: str | None = None,
    timeout: float = 300.0,
    on_link: OnLink | None = None,
    on_status: Callable[[str], None] | None = None,
) -> str:
    """Block until the user has authorized `service`, handing each new link to `on_link`; return the token.

    Returns at once when the account is already ACTIVE. `on_status` hears each new status
    Scalekit reports meanwhile (PENDING_VERIFICATION: the user consented and verification is
    pending). Raises AuthorizationTimeoutError (carrying the latest link) after `timeout`
    seconds; a Deny leaves no trace in Scalekit's API, so it too ends in the timeout. Ctrl-C
    stops it.
    """
    from .waiting import wait_for_authorization as wait

    return wait(default_broker(), service, identifier, timeout, on_link, on_status=on_status)


def get_tokens(
    services: Iterable[str], identifier: str | None = None, *, force_refresh: bool = False
) -> dict[str, str]:
    """Tokens for several services, fetched concurrently: {service: token} in the order given.

    If any service fails, raises BatchError; its `.tokens` holds the ones that worked and
    `.errors` maps each failed service to its exception.
    """
    return default_road().tokens(services, identifier, force_refresh=force_refresh)


def get_credentials(service: str, identifier: str | None = None, *, force_refresh: bool = False) -> ServiceCredentials:
    """Everything Scalekit holds for the account: kind, token or API-key fields, scopes, expiry."""
    return default_road().credentials([service], identifier, force_refresh=force_refresh)[0]


def service_for_url(url: str) -> str | None:
    """The service an API URL belongs to (connections.json "hosts" first, then the built-in table), or None:
    also for a URL no token may go to (see services.check_url)."""
    return default_broker().service_for_url(url)


def get_token_for_url(url: str, identifier: str | None = None, *, force_refresh: bool = False) -> str:
    """The token for whichever service `url` belongs to; ConfigurationError when none is known, and
    URLRefusedError (a ConfigurationError) for a URL no token may go to (services.check_url). The caller's
    client sends `url` as given, so it must be absolute: `https://...`."""
    road = default_road()
    service = road.broker.service_for_url_or_explain(url, as_given=True)
    return road.credentials([service], identifier, force_refresh=force_refresh)[0].token


def invalidate(service: str, identifier: str | None = None) -> int:
    """Forget the cached token of `service` (for one identifier, or all); e.g. after an API says 401.

    A running agent forgets it too.
    """
    return default_road().invalidate(service, identifier)


def configure_connection(service: str, connection_name: str, identifier: str | None = None) -> Change:
    """Record in connections.json that `service` uses the Scalekit connection `connection_name`."""
    return default_broker().configure_connection(service, connection_name, identifier)


def close() -> None:
    """Close the process-wide Scalekit client (optional; done for you at exit by the CLI)."""
    with _lock:
        road = _road
    if road is not None:
        road.close()
