"""Authorization links: issuing them, handing a still-fresh one out again, and the verification
states of links issued with a user_verify_url (what the loopback verify page checks).

One LinkIssuer per TokenBroker; thread-safe. It never holds a token, only links and states.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Any

from .config import LOOPBACK, ScalekitSettings
from .configview import Target
from .errors import AuthorizationError, UnknownConnectionError
from .logs import get_logger

log = get_logger("scalekit_auth")

#: States of links issued with a user_verify_url, kept for the loopback page's check (newest kept).
MAX_STATES = 1000
#: A consent given just before its link expired may still be verified this long after.
AUTH_REQUEST_GRACE = 600.0
#: A link is handed out again only this soon after it was issued (and while over half its life is left):
#: enough for an agent retrying in a loop, short enough that a link spent by a Deny is soon replaced.
LINK_REUSE_WINDOW = 15.0
#: SCALEKIT_USER_VERIFY_URL=loopback outside a waiting call: nothing listens here, so the browser
#: shows an unreachable page whose address (with auth_request_id) the user passes to `verify`.
LOOPBACK_UNSERVED = "http://127.0.0.1:9/scalekit-auth/verify"


def verify_url(settings: ScalekitSettings) -> str:
    """The user_verify_url for links issued outside a waiting call."""
    configured = settings.user_verify_url
    return LOOPBACK_UNSERVED if configured == LOOPBACK else configured


class LinkIssuer:
    """Issues links (creating a first account), reuses a fresh one, remembers verification states."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: state -> (identifier, accept until (epoch), user_verify_url) of links issued with a verify URL.
        self._states: dict[str, tuple[str, float, str]] = {}
        #: The last link issued per (environment, connection, identifier, verify URL): (error, lifetime, status).
        self._links: dict[tuple, tuple[AuthorizationError, float, str]] = {}

    def for_inactive(self, vault: Any, target: Target, status: str | None) -> AuthorizationError:
        """The AuthorizationError for an account that is not ACTIVE: the same still-fresh link as
        last time when nothing happened to the account since (kind to Scalekit's rate limit and its
        webhooks), else a new one."""
        settings = vault.settings
        key = (settings.env_url, target.connection_name, target.identifier, verify_url(settings))
        with self._lock:
            issued = self._links.get(key)
        if (
            issued is not None
            and issued[2] == (status or "PENDING_AUTH")  # nothing happened to the account since
            and issued[0].seconds_left > max(issued[1] / 2, issued[1] - LINK_REUSE_WINDOW)
        ):
            log.debug("%s: account for %s is %s; reusing its link", target.service, target.identifier, status)
            return AuthorizationError(**{**issued[0]._link_fields(), "status": status})
        log.debug("%s: account for %s is %s; authorization link issued", target.service, target.identifier, status)
        error = self.issue(vault, target, status)
        with self._lock:
            self._links = {k: v for k, v in self._links.items() if v[0].seconds_left > 0}
            # the status the account has once the link exists (a first link creates it PENDING_AUTH)
            self._links[key] = (error, max(error.seconds_left, 0.0), status or "PENDING_AUTH")
        return error

    def issue(
        self, vault: Any, target: Target, status: str | None, user_verify_url: str | None = None
    ) -> AuthorizationError:
        """A fresh authorization link for the target, as an AuthorizationError (not raised).

        A first connection creates the account first (get_or_create_connected_account), as
        Scalekit's docs do; if Scalekit creates none, the link is asked for anyway (Scalekit also
        creates the account when the user authorizes) and its answer says whether the connection
        exists (UnknownConnectionError). With custom user verification the
        link carries `user_verify_url` (SCALEKIT_USER_VERIFY_URL, or a waiting call's loopback
        page) and a fresh random `state`, remembered for `state_issued`."""
        if status is None and not vault.ensure_account(target.connection_name, target.identifier):
            log.debug("%s: Scalekit created no account for %s; asking for the link", target.service, target.identifier)
        if user_verify_url is None:
            user_verify_url = verify_url(vault.settings)
        state = ""
        if user_verify_url:
            import secrets

            state = secrets.token_urlsafe(24)
        from .vault import ConnectionNameRefused

        try:
            link = vault.authorization_link(target.connection_name, target.identifier, user_verify_url, state)
        except ConnectionNameRefused as refused:
            raise UnknownConnectionError(target.service, target.connection_name, refused.said) from refused
        if link is None:
            raise UnknownConnectionError(target.service, target.connection_name)
        if state:
            expires = link[1].timestamp() if link[1] is not None else _time.time() + 3600
            with self._lock:
                now = _time.time()
                self._states = {k: v for k, v in self._states.items() if v[1] > now}
                self._states[state] = (target.identifier, expires + AUTH_REQUEST_GRACE, user_verify_url)
                while len(self._states) > MAX_STATES:  # a long-lived agent: keep the newest only
                    del self._states[next(iter(self._states))]
        return AuthorizationError(
            target.service,
            link[0],
            link[1],
            identifier=target.identifier,
            connection_name=target.connection_name,
            status=status,
        )

    def forget(self, connection_name: str, identifier: str) -> None:
        """Issue a new link next time (a wait ended without the user connecting: the link may be spent)."""
        with self._lock:
            self._links = {k: v for k, v in self._links.items() if k[1:3] != (connection_name, identifier)}

    def state_issued(self, state: str, user_verify_url: str) -> str | None:
        """The identifier a link with this `state` was issued for, by this process and with this
        `user_verify_url`, while it may still be completed; None otherwise (the loopback page's check)."""
        with self._lock:
            found = self._states.get(state)
        if found is None or found[1] <= _time.time() or found[2] != user_verify_url:
            return None
        return found[0]

    def state_used(self, state: str) -> None:
        """A verification with this `state` succeeded: it is never accepted again."""
        with self._lock:
            self._states.pop(state, None)
