"""scalekit-auth's public surface: `from scalekit_helper import get_token`.

A thin facade; the implementation lives in the `scalekit_auth` package beside this file.
"""

from scalekit_auth.api import (
    close,
    configure_connection,
    get_credentials,
    get_token,
    get_tokens,
    invalidate,
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
    "UnsupportedAccountError",
    "close",
    "configure_connection",
    "get_credentials",
    "get_token",
    "get_tokens",
    "invalidate",
    "wait_for_authorization",
]
