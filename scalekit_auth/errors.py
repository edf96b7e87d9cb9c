"""Every error scalekit-auth raises, each with a message a person can act on and a CLI exit code.

No raw gRPC, requests or SDK exception reaches a caller: the vault translates them into
these, keeping the original as ``__cause__`` for ``--debug``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any

from .display import describe_status, expiry_phrase, printable
from .invocation import command


class ExitCode(IntEnum):
    """Exit codes shared by `get_token.py` and `scalekit-auth`."""

    OK = 0
    ERROR = 1  # anything not covered below
    USAGE = 2  # bad command-line arguments
    CONFIGURATION = 3  # service not configured, credentials missing, bad connections.json
    AUTHORIZATION_REQUIRED = 4  # the user must open the authorization link
    UNAVAILABLE = 5  # Scalekit unreachable or timed out
    CREDENTIALS_REJECTED = 6  # Scalekit refused the client id/secret
    RATE_LIMITED = 7  # Scalekit asked us to slow down
    UNSUPPORTED_ACCOUNT = 8  # the account has no single token to print
    UNSAFE_CREDENTIAL = 9  # Scalekit returned a credential with control characters, or an oversized one
    PROXY_DISABLED = 10  # Scalekit's API proxy is not enabled for the connection
    HTTP_ERROR = 11  # `request`: the API answered, but not with a 2xx status
    CHOICE_NEEDED = 12  # `config SERVICE`: several connections match; the user must choose one
    INTERRUPTED = 130


#: When several things failed, the exit code is the one to act on first: a setup problem must be
#: fixed before anything else can work; an authorization link helps only once the rest is right.
EXIT_PRECEDENCE = (
    ExitCode.USAGE,
    ExitCode.CONFIGURATION,
    ExitCode.CREDENTIALS_REJECTED,
    ExitCode.PROXY_DISABLED,
    ExitCode.UNSAFE_CREDENTIAL,
    ExitCode.UNSUPPORTED_ACCOUNT,
    ExitCode.UNAVAILABLE,
    ExitCode.RATE_LIMITED,
    ExitCode.AUTHORIZATION_REQUIRED,
)


def most_pressing(codes) -> ExitCode:
    """The exit code for several failures (see EXIT_PRECEDENCE); ERROR for anything unlisted."""
    codes = {int(c) for c in codes}
    for code in EXIT_PRECEDENCE:
        if int(code) in codes:
            return code
    return ExitCode.ERROR


class ScalekitAuthError(Exception):
    """Base of every scalekit-auth error."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(ScalekitAuthError):
    """A command-line argument that cannot be used as given (exit code 2, like argparse's)."""

    exit_code = ExitCode.USAGE


# -- configuration ---------------------------------------------------------------


class ConfigurationError(ScalekitAuthError):
    """Local set-up is incomplete or wrong: connections.json, .env, names."""

    exit_code = ExitCode.CONFIGURATION


class URLRefusedError(ConfigurationError):
    """A URL no token may be sent to (services.check_url): the message says what is wrong and what to do."""


class ServiceNotConfiguredError(ConfigurationError):
    """The service has no entry in connections.json."""

    def __init__(self, service: str, configured: Sequence[str], connections_file: str) -> None:
        self.service = service
        self.configured = tuple(configured)
        known = ", ".join(self.configured) if self.configured else "none yet"
        super().__init__(
            f"'{service}' is not configured (configured services: {known}). "
            f"Create a {service} connection in the Scalekit dashboard (AgentKit > Connections), "
            f"then register its name: {command('config', service, '<connection_name>')} "
            f"(this writes {connections_file})."
        )


class MissingCredentialsError(ConfigurationError):
    """One or more of the three Scalekit variables is not set."""

    def __init__(self, missing: Sequence[str], where: str, labels: Sequence[str] | None = None) -> None:
        self.missing = tuple(missing)  # the documented names; `labels` (config.Setting.label) for the message
        super().__init__(
            f"Scalekit is not configured: {', '.join(labels or self.missing)} "
            f"{'is' if len(self.missing) == 1 else 'are'} not set. "
            f"The user adds {'it' if len(self.missing) == 1 else 'them'} to {where} "
            "(values are under Developers > Settings > API credentials in the Scalekit dashboard; "
            "never paste the secret into a chat)."
        )


class MissingDependencyError(ConfigurationError):
    """A required Python package is not installed for this interpreter; `how` says how to install
    it on this set-up (bootstrap.missing_dependency words it)."""

    def __init__(self, package: str, how: str = "") -> None:
        import sys

        self.package = package
        super().__init__(f"The Python package '{package}' is not installed for {sys.executable}. {how}".rstrip())


class UnknownConnectionError(ConfigurationError):
    """Scalekit has no connection with the configured name. `said`: Scalekit's words when it
    refused the name as a bad request rather than saying it has no such connection."""

    def __init__(self, service: str, connection_name: str, said: str = "") -> None:
        self.service = service
        self.connection_name = connection_name
        first = (
            f"Scalekit refused the connection name '{connection_name}' configured for '{service}' ({said}): "
            "the name is probably wrong. "
            if said
            else f"Scalekit has no connection named '{connection_name}' (configured for '{service}'). "
        )
        super().__init__(
            first + "Check the exact name in the Scalekit dashboard (AgentKit > Connections), "
            f"then run: {command('config', service, '<connection_name>')}"
        )


# -- authorization ---------------------------------------------------------------


class AuthorizationError(ScalekitAuthError):
    """The user must authorize the account; `link` is where they do it, valid until `expires_at`."""

    exit_code = ExitCode.AUTHORIZATION_REQUIRED

    def __init__(
        self,
        service: str,
        link: str,
        expires_at: _dt.datetime | None,
        *,
        identifier: str = "",
        connection_name: str = "",
        status: str | None = None,
    ) -> None:
        self.service = service
        self.link = link
        self.expires_at = expires_at
        self.identifier = identifier
        self.connection_name = connection_name
        self.status = status
        who = f" for '{identifier}'" if identifier else ""
        super().__init__(
            f"Authorization needed: the {service} account{who} {describe_status(status)}. "
            f"Open this link to connect it ({expiry_phrase(expires_at)}): {link}"
        )

    def _link_fields(self) -> dict[str, Any]:
        """What a derived error (timeout, declined) keeps from this one."""
        return {
            "service": self.service,
            "link": self.link,
            "expires_at": self.expires_at,
            "identifier": self.identifier,
            "connection_name": self.connection_name,
            "status": self.status,
        }

    @property
    def seconds_left(self) -> float:
        """Seconds until the link expires (negative once it has)."""
        if self.expires_at is None:
            return 0.0
        return (self.expires_at - _dt.datetime.now(_dt.UTC)).total_seconds()


class AuthorizationTimeoutError(AuthorizationError):
    """wait_for_authorization gave up: nobody authorized within the timeout. Carries the latest link."""

    def __init__(self, latest: AuthorizationError, waited: float) -> None:
        super().__init__(**latest._link_fields())
        self.waited = waited
        if latest.status == "PENDING_VERIFICATION":
            self.args = (
                f"{latest.service} was authorized but not verified within {waited:.0f} seconds. With custom user "
                f"verification, pass the address the browser ended on to `{command('verify')}`; with 'Scalekit "
                f"users only', sign in to the Scalekit dashboard and open the link again: {latest.link}",
            )
            return
        self.args = (
            f"Nobody authorized {latest.service} within {waited:.0f} seconds. "
            f"The latest link ({expiry_phrase(latest.expires_at)}): {latest.link}",
        )


class AuthorizationDeclinedError(AuthorizationError):
    """Kept for code that imports it; no longer raised. Scalekit records no decision when a user
    clicks Deny (its own page shows access_denied), so a wait simply runs on to its timeout."""

    def __init__(self, fresh: AuthorizationError) -> None:
        super().__init__(**fresh._link_fields())
        who = f" for '{fresh.identifier}'" if fresh.identifier else ""
        self.args = (
            f"The {fresh.service} authorization{who} was declined (or the sign-in did not complete), so the "
            f"account is still not connected. To try again, open this link ({expiry_phrase(fresh.expires_at)}): "
            f"{fresh.link}",
        )


class VerificationError(ScalekitAuthError):
    """`scalekit-auth verify` could not complete a custom user verification."""

    exit_code = ExitCode.AUTHORIZATION_REQUIRED


# -- the Scalekit service --------------------------------------------------------


class ScalekitServiceError(ScalekitAuthError):
    """Scalekit could not answer as asked."""


class ScalekitUnavailableError(ScalekitServiceError):
    """Scalekit cannot be reached (network, DNS, TLS, server down)."""

    exit_code = ExitCode.UNAVAILABLE


class ScalekitTimeoutError(ScalekitUnavailableError):
    """Scalekit did not answer within the timeout (SCALEKIT_TIMEOUT)."""


class CredentialsRejectedError(ScalekitServiceError):
    """Scalekit refused SCALEKIT_CLIENT_ID / SCALEKIT_CLIENT_SECRET."""

    exit_code = ExitCode.CREDENTIALS_REJECTED


class RateLimitedError(ScalekitServiceError):
    """Scalekit is rate-limiting this client."""

    exit_code = ExitCode.RATE_LIMITED


class UnsupportedAccountError(ScalekitAuthError):
    """The account holds credentials that are not a single token (use get_credentials)."""

    exit_code = ExitCode.UNSUPPORTED_ACCOUNT


class UnsafeCredentialError(ScalekitServiceError):
    """Scalekit handed back a token or credential field that is not safe to print, put in a header
    or pass to a program: control characters (a newline would split output and headers; escape
    sequences reach terminals; NUL breaks environments), or larger than any real token."""

    exit_code = ExitCode.UNSAFE_CREDENTIAL


class ProxyDisabledError(ScalekitServiceError):
    """Scalekit refused a proxied call because its API proxy is not enabled for the connection
    (TOOL_PROXY_DISABLED). Nothing was sent to the provider."""

    exit_code = ExitCode.PROXY_DISABLED

    def __init__(self, connection_name: str, detail: str = "") -> None:
        self.connection_name = connection_name
        self.detail = detail
        said = f" (Scalekit: {printable(detail[:200], False)})" if detail else ""
        super().__init__(
            f"Scalekit's API proxy is not enabled for the connection '{printable(connection_name, False)}'{said}. "
            "Enable the proxy for this connection's provider in the Scalekit dashboard (on new environments it is "
            "off for built-in providers; support@scalekit.com can turn it on), or make the call with local token "
            "injection instead."
        )


class ToolExecutionError(ScalekitServiceError):
    """The provider refused a Scalekit tool call (Scalekit's TOOL_ERROR). `reauthorize` is True when
    the provider rejected the account's token (connect the account again)."""

    _ADVICE = {
        "UNAUTHENTICATED": " The account's access has expired or was revoked: connect it again.",
        "PERMISSION_DENIED": " The account may lack a permission this tool needs: connect it again, granting it.",
        "RESOURCE_EXHAUSTED": " The provider is rate-limiting this account: wait before trying again.",
    }

    def __init__(self, tool_name: str, status: str, tool_error_code: str, message: str, execution_id: str) -> None:
        self.tool_name = tool_name
        self.status = status
        self.tool_error_code = tool_error_code
        self.execution_id = execution_id
        self.reauthorize = status == "UNAUTHENTICATED"
        code = f", code {printable(tool_error_code[:40], False)}" if tool_error_code else ""
        said = f": {printable(message[:300], False)}" if message else ""
        execution = f" (execution {printable(execution_id[:80], False)})" if execution_id else ""
        super().__init__(
            f"The provider refused the tool {printable(tool_name, False)} ({status}{code}){said}."
            f"{self._ADVICE.get(status, '')}{execution}"
        )


class BatchError(ScalekitAuthError):
    """Some services of a batch failed. `.tokens` has the ones that worked, `.errors` the rest."""

    def __init__(self, results: Mapping[str, Any], errors: Mapping[str, BaseException]) -> None:
        self.results = dict(results)
        self.errors = dict(errors)
        self.exit_code = most_pressing(getattr(e, "exit_code", ExitCode.ERROR) for e in self.errors.values())
        total = len(self.results) + len(self.errors)
        lines = [f"{len(self.errors)} of {total} services failed:"]
        for service, err in self.errors.items():
            text = str(err) if isinstance(err, ScalekitAuthError) else f"unexpected error ({err.__class__.__name__})"
            lines.append(f"  {printable(service, False)}: {printable(text, False)}")
        super().__init__("\n".join(lines))

    @property
    def tokens(self) -> dict[str, Any]:
        """What succeeded (tokens from get_tokens, credentials from get_credentials_many)."""
        return self.results
