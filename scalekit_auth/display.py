"""Text for people: terminal-safe strings and the phrases messages are made of.

No imports beyond the standard library, so every module (errors included) may use it.
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["describe_status", "expiry_phrase", "printable"]

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127) if c != 10}


def printable(text: str, keep_newlines: bool = True) -> str:
    """Text safe to show on a terminal: control characters (escape sequences, bells) made visible."""
    table = _CONTROL if keep_newlines else {**_CONTROL, 10: "\\n"}
    return text.translate(table)


_STATUS_EXPLAINED = {
    None: "has no connected account yet",
    "PENDING_AUTH": "has not been authorized yet",
    "EXPIRED": "has an expired authorization; the user must sign in again",
    "DISCONNECTED": "was disconnected (access revoked at the provider or in Scalekit); the user must reconnect",
    "PENDING_VERIFICATION": (
        "was authorized but is waiting for user verification. With custom user verification, the browser "
        "ended on a page whose address holds an auth_request_id: pass that address to `scalekit-auth verify`. "
        "With 'Scalekit users only', the person who authorizes must be signed in to the Scalekit dashboard: "
        "open the new link while signed in"
    ),
}


def describe_status(status: str | None) -> str:
    """A short phrase for an account status, e.g. 'has not been authorized yet'."""
    return _STATUS_EXPLAINED.get(status, f"is in status {status}, not ACTIVE")


def expiry_phrase(expires_at: _dt.datetime | None, now: _dt.datetime | None = None) -> str:
    """'expires in about 1 minute, at 10:45:03 UTC' (or 'expired at ...')."""
    if expires_at is None:
        return "expires soon"
    now = now or _dt.datetime.now(_dt.UTC)
    left = int((expires_at - now).total_seconds())
    clock = expires_at.strftime("%H:%M:%S UTC")
    if left >= 45:
        minutes = max(1, round(left / 60))
        return f"expires in {'about 1 minute' if minutes == 1 else f'{minutes} minutes'}, at {clock}"
    if left > 0:
        return f"expires in {left} seconds, at {clock}"
    return f"expired at {clock}"
