"""The public functions, backed by one lazily created, process-wide TokenBroker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .broker import TokenBroker
from .connections import Change
from .credentials import ServiceCredentials
from .errors import AuthorizationError

if TYPE_CHECKING:
    from .waiting import OnLink

_lock = threading.Lock()
_broker: TokenBroker | None = None


def default_broker() -> TokenBroker:
    """The process-wide broker (created on first use; thread-safe)."""
    global _broker
    broker = _broker
    if broker is not None:
        return broker
    with _lock:
        if _broker is None:
            _broker = TokenBroker()
        return _broker


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
    broker = default_broker()
    try:
        return broker.get_token(service, identifier, force_refresh=force_refresh)
    except AuthorizationError as err:
        if not wait:
            raise
        from .waiting import wait_for_credentials

        return wait_for_credentials(broker, service, identifier, timeout, on_link, first=err).token


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
    return default_broker().get_tokens(services, identifier, force_refresh=force_refresh)


def get_credentials(service: str, identifier: str | None = None, *, force_refresh: bool = False) -> ServiceCredentials:
    """Everything Scalekit holds for the account: kind, token or API-key fields, scopes, expiry."""
    return default_broker().get_credentials(service, identifier, force_refresh=force_refresh)


def service_for_url(url: str) -> str | None:
    """The service an API URL belongs to (connections.json "hosts" first, then the built-in table), or None."""
    return default_broker().service_for_url(url)


def get_token_for_url(url: str, identifier: str | None = None, *, force_refresh: bool = False) -> str:
    """The token for whichever service `url` belongs to; ConfigurationError when none is known."""
    broker = default_broker()
    return broker.get_token(broker.service_for_url_or_explain(url), identifier, force_refresh=force_refresh)


def invalidate(service: str, identifier: str | None = None) -> int:
    """Forget the cached token of `service` (for one identifier, or all); e.g. after an API says 401.

    A running agent forgets it too.
    """
    broker = default_broker()
    dropped = broker.invalidate(service, identifier)
    if broker.use_agent:
        from . import agent_client

        agent_client.invalidate(service, identifier)
    return dropped


def configure_connection(service: str, connection_name: str, identifier: str | None = None) -> Change:
    """Record in connections.json that `service` uses the Scalekit connection `connection_name`."""
    return default_broker().configure_connection(service, connection_name, identifier)


def close() -> None:
    """Close the process-wide Scalekit client (optional; done for you at exit by the CLI)."""
    with _lock:
        broker = _broker
    if broker is not None:
        broker.close()
