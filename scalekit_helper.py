"""scalekit-auth's public surface: `from scalekit_helper import get_token`.

A thin facade; the implementation lives in the `scalekit_auth` package beside this file.
Its first import checks the Python version (see scalekit_auth/__init__.py), so this file
stays parseable by old interpreters too: no annotations, no f-strings.
"""

from scalekit_auth.api import (
    close,
    configure_connection,
    get_credentials,
    get_token,
    get_token_for_url,
    get_tokens,
    invalidate,
    service_for_url,
    wait_for_authorization,
)
from scalekit_auth.credentials import ServiceCredentials
from scalekit_auth.errors import (
    AuthorizationDeclinedError,
    AuthorizationError,
    AuthorizationTimeoutError,
    BatchError,
    ConfigurationError,
    CredentialsRejectedError,
    MissingCredentialsError,
    RateLimitedError,
    ScalekitAuthError,
    ScalekitServiceError,
    ScalekitTimeoutError,
    ScalekitUnavailableError,
    ServiceNotConfiguredError,
    UnknownConnectionError,
    UnsafeCredentialError,
    UnsupportedAccountError,
)

__all__ = [
    "AuthorizationDeclinedError",
    "AuthorizationError",
    "AuthorizationTimeoutError",
    "BatchError",
    "ConfigurationError",
    "CredentialsRejectedError",
    "MissingCredentialsError",
    "RateLimitedError",
    "ScalekitAuthError",
    "ScalekitServiceError",
    "ScalekitTimeoutError",
    "ScalekitUnavailableError",
    "ServiceCredentials",
    "ServiceNotConfiguredError",
    "UnknownConnectionError",
    "UnsafeCredentialError",
    "UnsupportedAccountError",
    "aget_credentials",
    "aget_token",
    "aget_tokens",
    "close",
    "configure_connection",
    "get_credentials",
    "ScalekitAuth",
    "get_token",
    "get_token_for_url",
    "get_tokens",
    "httpx_auth",
    "invalidate",
    "service_for_url",
    "request",
    "session",
    "wait_for_authorization",
]

_HTTP = ("ScalekitAuth", "session", "httpx_auth")
_ASYNC = ("aget_token", "aget_tokens", "aget_credentials")


def __getattr__(name):  # type: (str) -> object
    """ScalekitAuth, session, httpx_auth and request load `requests`, and the a* functions
    `asyncio`, only when first used."""
    if name in _HTTP:
        from scalekit_auth import http_auth

        return getattr(http_auth, name)
    if name == "request":
        from scalekit_auth.request import api_request

        return api_request
    if name in _ASYNC:
        from scalekit_auth import aio

        return getattr(aio, name)
    raise AttributeError("module 'scalekit_helper' has no attribute " + repr(name))
