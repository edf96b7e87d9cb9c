"""The public functions, backed by one lazily created, process-wide TokenBroker."""

from __future__ import annotations

import threading

from .broker import TokenBroker
from .connections import Change
from .credentials import ServiceCredentials

_lock = threading.Lock()
_broker: TokenBroker | None = None


def default_broker() -> TokenBroker:
    """The process-wide broker (created on first use; thread-safe)."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = TokenBroker()
        return _broker


def get_token(service: str, identifier: str | None = None) -> str:
    """A fresh access token for `service` (e.g. "gmail"), straight from Scalekit's vault.

    Raises ConfigurationError when the service or Scalekit credentials are not set up,
    and AuthorizationError (with `.link` and `.expires_at`) when the user must connect
    the account first.
    """
    return default_broker().get_token(service, identifier)


def get_credentials(service: str, identifier: str | None = None) -> ServiceCredentials:
    """Everything Scalekit holds for the account: kind, token or API-key fields, scopes, expiry."""
    return default_broker().get_credentials(service, identifier)


def configure_connection(service: str, connection_name: str, identifier: str | None = None) -> Change:
    """Record in connections.json that `service` uses the Scalekit connection `connection_name`."""
    return default_broker().configure_connection(service, connection_name, identifier)


def close() -> None:
    """Close the process-wide Scalekit client (optional; done for you at exit by the CLI)."""
    with _lock:
        broker = _broker
    if broker is not None:
        broker.close()
