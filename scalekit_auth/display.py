"""Text for people: terminal-safe strings and the phrases messages are made of.

No imports beyond the standard library, so every module (errors included) may use it.
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["describe_status", "expiry_phrase", "printable"]

#: C0 (but newline), DEL and C1 controls: escape sequences, bells, CSI/OSC introducers (U+009B, U+009D).
_CONTROL: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(32), 127, *range(0x80, 0xA0)) if c != 10}
#: Bidirectional controls (they reorder what a terminal shows: "Trojan Source"), and the Unicode
#: line and paragraph separators.
BIDI_CONTROLS = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)
_CONTROL.update({c: f"\\u{c:04x}" for c in BIDI_CONTROLS})
_ONE_LINE = {**_CONTROL, 10: "\\n"}


def printable(text: str, keep_newlines: bool = True) -> str:
    """Text safe to show on a terminal: C0, DEL, C1 and bidirectional controls made visible
    (escape sequences, bells, reordering); newlines kept unless `keep_newlines` is False."""
    return text.translate(_CONTROL if keep_newlines else _ONE_LINE)


def raw_controls(text: str, keep_newlines: bool = True) -> list[str]:
    """The characters in `text` that `printable` would escape (for tests and checks)."""
    table = _CONTROL if keep_newlines else _ONE_LINE
    return [ch for ch in text if ord(ch) in table]


_STATUS_EXPLAINED = {
    None: "has no connected account yet",
    "PENDING_AUTH": "has not been authorized yet",
    "EXPIRED": "has an expired authorization; the user must sign in again",
    "DISCONNECTED": "was disconnected (access revoked at the provider or in Scalekit); the user must reconnect",
    "PENDING_VERIFICATION": (
        "was authorized but is waiting for user verification. With custom user verification, the browser "
        "ended on a page whose address holds an auth_request_id: pass that address to `{verify}`. "
        "With 'Scalekit users only', the person who authorizes must be signed in to the Scalekit dashboard: "
        "open the new link while signed in"
    ),
}


def describe_status(status: str | None) -> str:
    """A short phrase for an account status, e.g. 'has not been authorized yet'."""
    if status == "PENDING_VERIFICATION":
        from .invocation import command

        return _STATUS_EXPLAINED[status].format(verify=command("verify"))
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
