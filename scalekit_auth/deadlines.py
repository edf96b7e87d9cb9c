"""One deadline per top-level call: SCALEKIT_TIMEOUT bounds a whole get_token (login, RPCs, retries).

Standard library only: the broker imports it on every call.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: The monotonic time by which the current top-level call (a get_token, a status poll) must end.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("scalekit_auth_deadline", default=None)
#: RESOURCE_EXHAUSTED is retried with jittered exponential backoff from this base, inside the deadline.
RATE_LIMIT_BACKOFF = 0.5


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound everything inside by `seconds` in total. Nested uses keep the outer, earlier deadline."""
    outer = _deadline.get()
    mine = time.monotonic() + seconds
    token = _deadline.set(mine if outer is None else min(outer, mine))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining(default: float) -> float:
    """Seconds left before the current deadline (`default` when no deadline is set)."""
    end = _deadline.get()
    return default if end is None else end - time.monotonic()
