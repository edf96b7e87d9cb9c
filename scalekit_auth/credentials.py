"""Immutable holders for what Scalekit hands back. Their repr never shows a secret."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import UnsafeCredentialError, UnsupportedAccountError
from .invocation import command

OAUTH = "oauth"
STATIC = "static"
#: A trusted identity provider's federated session (e.g. AWS Redshift). Scalekit returns only the
#: access key id, the db user and the expiry; the secret key and session token stay with Scalekit.
TRUSTED_IDP = "trusted_idp"

# For API-key style accounts with several fields, the one that is "the token".
TOKEN_FIELD_NAMES = ("access_token", "api_key", "apikey", "apiKey", "token", "key", "api_token", "bearer_token")


#: No real token or key comes close (Google's are ~2 KB, JWTs a few KB); past this it is refused.
MAX_SECRET = 64 * 1024


def unsafe_reason(value: str) -> str | None:
    """Why `value` may not be handed out as a credential, or None: control characters (C0, DEL, C1,
    NUL, newlines; bidirectional controls) or more than MAX_SECRET characters."""
    if len(value) > MAX_SECRET:
        return f"{len(value)} characters, over the {MAX_SECRET // 1024} KiB limit"
    from .display import raw_controls

    found = raw_controls(value, keep_newlines=False)
    if found:
        return "control characters (" + ", ".join(sorted({f"U+{ord(c):04X}" for c in found})[:5]) + ")"
    return None


def check_credential(service: str, identifier: str, what: str, value: str) -> None:
    """Refuse an unsafe credential before it is cached, printed, sent or put in an environment."""
    why = unsafe_reason(value)
    if why is not None:
        raise UnsafeCredentialError(
            f"Scalekit returned a {service} {what} for '{identifier}' that is not safe to use: {why}. It was not "
            f"printed, sent or cached. Authorize the account again ({command('auth', service, '--force')}), or check "
            "the connection in the Scalekit dashboard."
        )


def redact(value: str | None, keep: int = 4) -> str:
    """`ya29.a0Af...` -> `ya29…[REDACTED]`: at most a short prefix of a secret, for display."""
    if not value:
        return "''"
    if len(value) <= keep * 3:
        return "[REDACTED]"
    return f"{value[:keep]}…[REDACTED]"


@dataclass(frozen=True)
class AccountSnapshot:
    """One connected account as the vault saw it: status plus credentials when ACTIVE."""

    status: str | None
    kind: str = OAUTH
    access_token: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    expires_at: _dt.datetime | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    updated_at: _dt.datetime | None = None

    def __repr__(self) -> str:
        return (
            f"AccountSnapshot(status={self.status!r}, kind={self.kind!r}, access_token={redact(self.access_token)}, "
            f"scopes={self.scopes!r}, expires_at={self.expires_at!r}, fields={sorted(self.fields)!r})"
        )


@dataclass(frozen=True)
class ServiceCredentials:
    """What `get_credentials(service)` returns.

    `kind` is "oauth" (an access token, scopes, expiry) or "static" (API-key style
    `fields`). `token` is the single bearer value either way, when there is one.
    """

    service: str
    identifier: str
    connection_name: str
    kind: str
    access_token: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    expires_at: _dt.datetime | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def __post_init__(self) -> None:
        """Every string Scalekit handed back is checked once, here, whichever path made it."""
        if self.access_token:
            check_credential(self.service, self.identifier, "access token", self.access_token)
        for name, value in self.fields.items():
            if isinstance(value, str):
                check_credential(self.service, self.identifier, f"credential field '{name}'", value)

    @classmethod
    def from_snapshot(cls, service: str, identifier: str, connection_name: str, snap: AccountSnapshot):
        return cls(
            service=service,
            identifier=identifier,
            connection_name=connection_name,
            kind=snap.kind,
            access_token=snap.access_token,
            scopes=snap.scopes,
            expires_at=snap.expires_at,
            fields=MappingProxyType(dict(snap.fields)),
        )

    @property
    def token(self) -> str:
        """The OAuth access token, or the API key of a static account with one obvious key."""
        if self.kind == OAUTH:
            if not self.access_token:
                raise UnsupportedAccountError(
                    f"The {self.service} account for '{self.identifier}' is ACTIVE but Scalekit returned no "
                    "access token. Re-authorize it, or check the connection in the Scalekit dashboard."
                )
            return self.access_token
        if self.kind == TRUSTED_IDP:
            raise UnsupportedAccountError(
                f"The {self.service} account for '{self.identifier}' holds federated keys from a trusted identity "
                f"provider, and Scalekit returns only {', '.join(sorted(self.fields)) or 'none of them'}: the secret "
                "key and session token stay with Scalekit, so there is no token to hand out. Use Scalekit's tools, "
                f"which run with those keys ({command('tools', self.service)}); get_credentials('{self.service}')"
                ".fields has what Scalekit returns."
            )
        if not self.fields:
            raise UnsupportedAccountError(
                f"The {self.service} account for '{self.identifier}' is ACTIVE but holds no credential of its own, "
                "as a user's account on an ORG_WIDE connection does: it records the user's consent, and the "
                "organization's one shared credential is on the connection's org-wide account. This skill hands "
                "out only a user's own credential: let Scalekit act for the user with the shared one "
                f"({command('request --via scalekit URL')}, or {command('tools', self.service)}), or switch the "
                "connection to per-user (USER) authorization in the Scalekit dashboard (AgentKit > Connections)."
            )
        values = {k: v for k, v in self.fields.items() if isinstance(v, str) and v}
        if len(values) == 1:
            return next(iter(values.values()))
        named = [k for k in TOKEN_FIELD_NAMES if k in values]
        if len(named) == 1:
            return values[named[0]]
        names = ", ".join(sorted(self.fields)) or "none"
        raise UnsupportedAccountError(
            f"The {self.service} account for '{self.identifier}' is an API-key style account with fields "
            f"({names}) and no single token. Use get_credentials('{self.service}').fields to read them."
        )

    def expires_in(self, now: _dt.datetime | None = None) -> float | None:
        """Seconds until the access token expires; None when Scalekit gave no expiry."""
        if self.expires_at is None:
            return None
        now = now or _dt.datetime.now(_dt.UTC)
        return (self.expires_at - now).total_seconds()

    def __repr__(self) -> str:
        secret = redact(self.access_token) if self.kind == OAUTH else f"fields={sorted(self.fields)!r}"
        return (
            f"ServiceCredentials(service={self.service!r}, identifier={self.identifier!r}, "
            f"connection_name={self.connection_name!r}, kind={self.kind!r}, "
            f"{'access_token=' + secret if self.kind == OAUTH else secret}, "
            f"scopes={self.scopes!r}, expires_at={self.expires_at!r})"
        )

    __str__ = __repr__
