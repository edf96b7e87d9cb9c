"""Our loggers, each with a filter that replaces token-shaped values with [REDACTED].

We never log a token on purpose; this is the second line of defence if a message or an
argument ever carries one (a header, a URL with a token in it, an upstream error text).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[^\s'\",]+"),  # Authorization: Bearer <token>
    re.compile(
        r"(?i)((?:access|refresh|id)_?token|client_?secret|api_?key|password)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",&]+"
    ),
    re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*"),  # JWT
    re.compile(r"\bya29\.[\w.-]{10,}"),  # Google
    re.compile(r"\bxox[abprs]-[\w-]{10,}"),  # Slack
    re.compile(r"\bgh[pousr]_\w{20,}"),  # GitHub
    re.compile(r"\bsk-[\w-]{16,}"),  # API keys in the sk- style
    re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{32,}\b"),  # long high-entropy strings
]


def redact_text(text: str) -> str:
    """Every token-shaped value in `text` replaced by [REDACTED] (keys and 'Bearer' kept)."""
    for pattern in _PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message so no token-shaped value reaches any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = ()
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger under `scalekit_auth` with the redacting filter attached."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


get_logger("scalekit_auth").addHandler(logging.NullHandler())
