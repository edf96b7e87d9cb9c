"""The Scalekit token vault, reached through the official SDK. The only module that imports it.

The SDK (grpc, pydantic, jwt, ...) costs about a second to import, so it is imported
on first use, never at module import. Every SDK or transport exception is translated
here into a scalekit-auth error; the original stays chained as `__cause__`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json as _json
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, NamedTuple

from .bootstrap import import_or_explain
from .config import ENV_URL, ScalekitSettings
from .credentials import OAUTH, STATIC, TRUSTED_IDP, AccountSnapshot
from .deadlines import RATE_LIMIT_BACKOFF, deadline
from .deadlines import remaining as _remaining
from .display import printable
from .errors import (
    ConfigurationError,
    CredentialsRejectedError,
    ProxyDisabledError,
    RateLimitedError,
    ScalekitAuthError,
    ScalekitServiceError,
    ScalekitTimeoutError,
    ScalekitUnavailableError,
    ToolExecutionError,
    UsageError,
    VerificationError,
)
from .invocation import command
from .logs import get_logger, redact_text
from .proxy_guard import check_headers, check_method, check_path, check_query

log = get_logger("scalekit_auth.vault")

_EPOCH_FLOOR = _dt.datetime(1971, 1, 1, tzinfo=_dt.UTC)
#: list_tools asks for this many tools per page, and follows at most TOOLS_MAX_PAGES pages.
TOOLS_PAGE_SIZE = 100
TOOLS_MAX_PAGES = 50
#: A proxied response body larger than this is refused (proxy_request's max_bytes default).
PROXY_MAX_BYTES = 16 * 1024 * 1024
#: ListConnectedAccountsRequest's rules: at most 20 connection_names, page_size below 100.
LIST_NAMES_MAX = 20
LIST_PAGE_SIZE = 99
#: list_accounts follows at most this many pages.
LIST_MAX_PAGES = 100
#: What a listing call answers when Scalekit refused it as a bad request.
_REFUSED = object()


#: list_connections asks for this many connections per page (the most Scalekit allows), and
#: follows at most CONNECTIONS_MAX_PAGES pages.
CONNECTIONS_PAGE_SIZE = 30
CONNECTIONS_MAX_PAGES = 100


@dataclasses.dataclass(frozen=True)
class AppConnection:
    """One connection of the environment, as Scalekit lists it (never a credential)."""

    name: str  # the connection name every other call takes (the listing's key_id)
    provider: str  # the connector's key, upper case: GMAIL, GOOGLECALENDAR, ...
    status: str  # how far its set-up has come: DRAFT, IN_PROGRESS, COMPLETED ("" when not said)
    auth_mode: str  # USER (each user connects their own account) or ORG_WIDE ("" when not said)
    type: str  # OAUTH, API_KEY, ...
    enabled: bool
    id: str = ""

    def as_dict(self) -> dict[str, Any]:
        """What `connections --json` and `config --json` print for it."""
        return {
            "name": self.name,
            "provider": self.provider,
            "status": self.status,
            "auth_mode": self.auth_mode,
            "type": self.type,
            "enabled": self.enabled,
        }


def _enum_name(message: Any, field: str) -> str:
    """The name of an enum field's value (`COMPLETED`); "" for unset/unspecified, the number for one
    this SDK does not know."""
    number = getattr(message, field)
    value = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(number)
    if value is None:
        return str(number)
    return "" if number == 0 else value.name


def _app_connection(conn: Any) -> AppConnection:
    return AppConnection(
        name=conn.key_id,
        provider=conn.provider_key,
        status=_enum_name(conn, "status"),
        auth_mode=_enum_name(conn, "auth_mode"),
        type=_enum_name(conn, "type"),
        enabled=bool(conn.enabled),
        id=conn.id,
    )


class ProxyResponse(NamedTuple):
    """What the provider answered through Scalekit's proxy (also unpacks as a tuple)."""

    status: int
    headers: dict[str, str]
    body: bytes


def _scalekit_refusal(status: int, headers: Mapping[str, str], body: bytes) -> tuple[str, str] | None:
    """(code, detail) when Scalekit's proxy itself refused: a JSON object of exactly `detail` and
    `code` (the shape Scalekit's Java SDK parses); None for anything else, i.e. the provider's answer."""
    if status < 400 or "json" not in (headers.get("Content-Type") or "").lower() or len(body) > 65536:
        return None
    try:
        parsed = _json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or set(parsed) != {"detail", "code"}:
        return None
    code, detail = parsed["code"], parsed["detail"]
    if not isinstance(code, str) or not code.replace("_", "").isalnum() or not code.isupper():
        return None
    return code, detail if isinstance(detail, str) else ""


def _plain_numbers(value: Any) -> Any:
    """protobuf's Struct holds every number as a double: whole ones become ints again."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value


def _name(value: Any, what: str) -> str:
    """A connection name, identifier or tool name: non-empty text without control characters."""
    if not isinstance(value, str) or not value or len(value) > 400 or printable(value, False) != value:
        raise UsageError(f"The {what} must be non-empty text without control characters (at most 400 characters).")
    return value


def _detail(exc: BaseException) -> str:
    """The first line of what Scalekit said, short, printable and without token-shaped values."""
    lines = (getattr(exc, "message", "") or "").strip().splitlines()
    return redact_text(printable(lines[0][:200], False)) if lines else ""


class _NotFoundError(Exception):
    """Scalekit answered NOT_FOUND (unknown account, or unknown connection)."""


class ConnectionNameRefused(Exception):  # noqa: N818 - an answer of Scalekit, not a failure here
    """Scalekit refused the connection name when asked for a link: NOT_FOUND (its documented answer
    for a name that is no connection; `said` is then "") or a bad request (`said`: its words; older
    docs gave this answer for an "invalid connector"). Names and identifiers are checked before they
    are sent, so a bad request here is about the connection."""

    def __init__(self, said: str = "") -> None:
        super().__init__(said)
        self.said = said


def _aware(value: _dt.datetime | None) -> _dt.datetime | None:
    """The SDK gives naive UTC datetimes, and the epoch for 'unset'."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value if value > _EPOCH_FLOOR else None


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None and exc.args and isinstance(exc.args[0], BaseException):
            nxt = exc.args[0]
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _network_reason(exc: BaseException, text: str = "") -> str:
    """A short, human reason for a transport failure, without raw library text."""
    root = _root_cause(exc)
    lowered = (text or str(root)).lower()
    if isinstance(root, ConnectionRefusedError) or "connection refused" in lowered:
        return "connection refused"
    if isinstance(root, socket.gaierror) or "name or service not known" in lowered or "dns" in lowered:
        return "the host name could not be resolved"
    if isinstance(root, ssl.SSLError) or "certificate" in lowered or "ssl" in lowered or "handshake" in lowered:
        return "the TLS certificate could not be verified"
    if isinstance(root, (TimeoutError, socket.timeout)) or "timed out" in lowered:
        return "the connection timed out"
    if "reset" in lowered or "broken pipe" in lowered or "socket closed" in lowered:
        return "the connection was cut"
    return "network error"


def load_sdk() -> None:
    """Import the Scalekit SDK (on a bare Python, installing it privately first). Callers do this
    before a call's deadline starts: neither the install nor the import is Scalekit's time."""
    import_or_explain("scalekit.core", "scalekit-sdk-python")
    import_or_explain("scalekit.client", "scalekit-sdk-python")


class Vault:
    """A lazily created, reused Scalekit client for one set of credentials. Thread-safe."""

    def __init__(self, settings: ScalekitSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"Vault(env_url={self.settings.env_url!r}, connected={self._client is not None})"

    # -- errors ----------------------------------------------------------------
    def _timed_out(self) -> ScalekitTimeoutError:
        return ScalekitTimeoutError(
            f"Scalekit at {self.settings.env_url} did not answer within {self.settings.timeout:g} seconds. "
            "Check the network, or raise SCALEKIT_TIMEOUT if the link is slow."
        )

    def _unreachable(self, reason: str) -> ScalekitUnavailableError:
        return ScalekitUnavailableError(
            f"Cannot reach Scalekit at {self.settings.env_url} ({reason}). "
            f"Check the network and {ENV_URL.label}, then try again."
        )

    def _credentials_rejected(self) -> CredentialsRejectedError:
        return CredentialsRejectedError(
            f"Scalekit at {self.settings.env_url} rejected the client credentials (SCALEKIT_CLIENT_ID / "
            "SCALEKIT_CLIENT_SECRET). Check both values under Developers > Settings > API credentials in the "
            "Scalekit dashboard; the secret may have been rotated, or the credentials belong to another environment."
        )

    def _rate_limited(self) -> RateLimitedError:
        return RateLimitedError(
            f"Scalekit at {self.settings.env_url} is rate-limiting this client. Slow down: wait a few seconds before "
            "retrying, and reuse a token while it is valid instead of asking for one per request."
        )

    def _translate(self, exc: BaseException) -> BaseException:
        from requests import exceptions as rex
        from scalekit.common import exceptions as sk

        url = self.settings.env_url
        if isinstance(exc, sk.ScalekitNotFoundException):
            return _NotFoundError()
        if isinstance(exc, (sk.ScalekitUnauthorizedException, sk.ScalekitForbiddenException)):
            return self._credentials_rejected()
        if isinstance(exc, sk.ScalekitTooManyRequestsException):
            return self._rate_limited()
        if isinstance(exc, sk.ScalekitGatewayTimeoutException):
            return self._timed_out()
        if isinstance(exc, sk.ScalekitServiceUnavailableException):
            return self._unreachable(_network_reason(exc, getattr(exc, "message", "") or ""))
        if isinstance(exc, sk.ScalekitServerException):
            status = getattr(getattr(exc, "grpc_status", None), "name", "an error")
            detail = (getattr(exc, "message", "") or "").strip().splitlines()
            return ScalekitServiceError(
                f"Scalekit at {url} answered {status}"
                + (f": {redact_text(printable(detail[0][:200], False))}" if detail else "")
                + ". Try again; if it persists, check status.scalekit.com."
            )
        inner = exc.args[0] if isinstance(exc, sk.ScalekitException) and exc.args else exc
        if isinstance(inner, rex.SSLError):
            return ScalekitUnavailableError(
                f"Cannot reach Scalekit at {url}: its TLS certificate could not be verified. "
                f"Check {ENV_URL.label}, and REQUESTS_CA_BUNDLE if you use a private CA."
            )
        if isinstance(inner, rex.Timeout):
            return self._timed_out()
        if isinstance(inner, (rex.ConnectionError, OSError)):
            return self._unreachable(_network_reason(inner))
        if isinstance(inner, (ValueError, TypeError, KeyError)):
            return ScalekitServiceError(
                f"Scalekit at {url} returned an answer this client could not read ({inner.__class__.__name__}). "
                f"Check that {ENV_URL.label} is your Scalekit environment URL."
            )
        return ScalekitServiceError(
            f"Talking to Scalekit at {url} failed ({inner.__class__.__name__}). Run with --debug for details."
        )

    def _login_failed(self, exc: BaseException) -> BaseException:
        """What the client-credentials login (POST /oauth/token) answered, as one of our errors whose
        message tells a wrong URL from wrong credentials from an outage."""
        from scalekit.common import exceptions as sk

        url = self.settings.env_url
        wrong_url = (
            "Copy the environment URL from Developers > Settings > API credentials in the Scalekit dashboard "
            "(https://<env>.scalekit.com, .dev or your custom domain), not the dashboard's own address."
        )
        if isinstance(exc, sk.ScalekitNotFoundException):
            return ConfigurationError(f"{url} has no Scalekit token endpoint (/oauth/token answered 404). {wrong_url}")
        if isinstance(exc, (ValueError, KeyError)) and not isinstance(exc, sk.ScalekitException):
            # a 2xx page that is not Scalekit's JSON (or JSON without a token): not a Scalekit environment
            return ConfigurationError(f"{url} answered the login, but not as a Scalekit environment does. {wrong_url}")
        if isinstance(exc, sk.ScalekitBadRequestException):
            return CredentialsRejectedError(
                f"Scalekit at {url} refused the login as malformed (400). Check SCALEKIT_CLIENT_ID (skc_...) and "
                "SCALEKIT_CLIENT_SECRET under Developers > Settings > API credentials, and that the URL is that "
                "environment's."
            )
        # The SDK raises, by HTTP status: 429 TooManyRequests, 500 InternalServer, 502 Unknown (no gRPC
        # equivalent in its table), 503 ServiceUnavailable, 504 GatewayTimeout. 500, 502 and 503 are an
        # outage at the login; 401/403, 429 and 504 read as they do for any call (_translate).
        if isinstance(exc, sk.ScalekitServerException) and not isinstance(
            exc,
            (
                sk.ScalekitUnauthorizedException,
                sk.ScalekitForbiddenException,
                sk.ScalekitTooManyRequestsException,
                sk.ScalekitGatewayTimeoutException,
            ),
        ):
            status = getattr(getattr(exc, "grpc_status", None), "name", "") or "a server error"
            return ScalekitUnavailableError(
                f"Scalekit at {url} could not log in right now ({status}). This is on Scalekit's side or the "
                "network's: try again in a minute; if it persists, check status.scalekit.com."
            )
        return self._translate(exc)

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ScalekitAuthError, _NotFoundError, ConnectionNameRefused):
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is translated
            translated = self._translate(exc)
            log.debug("%s failed: %s", what, translated.__class__.__name__)
            raise translated from exc

    # -- the SDK client --------------------------------------------------------
    def _sdk(self) -> Any:
        with self._lock:
            if self._client is None:
                sk_core = import_or_explain("scalekit.core", "scalekit-sdk-python")
                ScalekitClient = import_or_explain("scalekit.client", "scalekit-sdk-python").ScalekitClient  # noqa: N806
                # The client-credentials POST has no timeout parameter; bound it like the RPCs.
                timeout = self.settings.timeout
                sk_core.DEFAULT_HTTP_TIMEOUT = (min(timeout, sk_core.DEFAULT_HTTP_CONNECT_TIMEOUT_S), timeout)
                try:
                    self._client = self._within(
                        "login",
                        lambda: ScalekitClient(
                            self.settings.env_url,
                            self.settings.client_id,
                            self.settings.client_secret,
                            call_timeout_s=timeout,
                        ),
                    )
                except ScalekitTimeoutError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every login failure is translated
                    translated = self._login_failed(exc)
                    log.debug("login failed: %s", translated.__class__.__name__)
                    raise translated from exc
                log.debug("Scalekit client ready for %s", self.settings.env_url)
            return self._client

    def connect(self) -> None:
        """Log in to Scalekit now (the client-credentials POST), raising our errors if it fails."""
        self._sdk()

    def close(self) -> None:
        """Close the gRPC channel so no background thread outlives its use."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            channel = getattr(getattr(client, "core_client", None), "grpc_secure_channel", None)
            if channel is not None:
                channel.close()

    # -- calls -----------------------------------------------------------------
    @classmethod
    def _snapshot(cls, acc: Any) -> AccountSnapshot:
        snap = cls._credentials_of(acc)
        return dataclasses.replace(snap, updated_at=_aware(getattr(acc, "updated_at", None)))

    @staticmethod
    def _credentials_of(acc: Any) -> AccountSnapshot:
        details = acc.authorization_details or {}
        expires_at = _aware(acc.token_expires_at)
        if "oauth_token" in details:
            tok = details["oauth_token"] or {}
            return AccountSnapshot(
                status=acc.status,
                kind=OAUTH,
                access_token=tok.get("access_token") or "",
                scopes=tuple(tok.get("scopes") or ()),
                expires_at=expires_at,
            )
        if "google_dwd" in details:
            dwd = details["google_dwd"] or {}
            return AccountSnapshot(
                status=acc.status,
                kind=OAUTH,
                access_token=dwd.get("access_token") or "",
                scopes=tuple(dwd.get("scopes") or ()),
                expires_at=_aware(dwd.get("token_expires_at")) or expires_at,
            )
        if "trusted_idp" in details:
            idp = details["trusted_idp"] or {}
            fields = {k: v for k, v in idp.items() if k != "expiry" and isinstance(v, str) and v}
            return AccountSnapshot(
                status=acc.status,
                kind=TRUSTED_IDP,
                fields=MappingProxyType(fields),
                expires_at=_aware(idp.get("expiry")) or expires_at,
            )
        if "static_auth" in details:
            return AccountSnapshot(
                status=acc.status,
                kind=STATIC,
                fields=MappingProxyType(dict(details["static_auth"] or {})),
                expires_at=expires_at,
            )
        # No credential at all (e.g. a per-user account of an ORG_WIDE connection): no fields, no token.
        return AccountSnapshot(status=acc.status, kind=STATIC, expires_at=expires_at)

    def _within(self, what: str, call: Any) -> Any:
        """Run one blocking SDK step, giving up when the deadline passes (the SDK retries UNAVAILABLE
        with backoff, each attempt with the full per-call timeout: only this bounds the total)."""
        remaining = _remaining(self.settings.timeout)
        if remaining <= 0:
            raise self._timed_out()
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name=f"scalekit-{what}", daemon=True).start()
        if not done.wait(remaining):
            log.debug("%s: deadline passed", what)
            raise self._timed_out()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _rpc(self, what: str, call: Any, on: str = "actions") -> Any:
        """One SDK call, `call(client.<on>)`; None for NOT_FOUND. RESOURCE_EXHAUSTED is retried with
        jittered exponential backoff while the deadline allows. After an outage the client is dropped,
        so the next call starts a fresh connection instead of waiting out gRPC's reconnect backoff."""
        import random
        import time

        attempt = 0
        while True:
            client = None
            try:
                client = self._sdk()  # a login answered 429 is retried like any call
                with self._calling(what):
                    return self._within(what, lambda c=client: call(getattr(c, on)))
            except _NotFoundError:
                return None
            except ScalekitTimeoutError as exc:
                if attempt:  # the deadline ran out while retrying after a rate limit: that is the cause
                    raise self._rate_limited() from exc
                raise  # this caller's deadline: the connection is fine for everyone else
            except ScalekitUnavailableError:
                if client is not None:
                    self._reset(client)
                raise
            except RateLimitedError:
                pause = random.uniform(0, RATE_LIMIT_BACKOFF * 2**attempt)  # noqa: S311 - jitter, not a secret
                if pause >= _remaining(self.settings.timeout):
                    raise
                log.debug("%s: rate-limited; retrying in %.2f s", what, pause)
                time.sleep(pause)
                attempt += 1

    def _reset(self, client: Any) -> None:
        with self._lock:
            if self._client is not client:
                return
            self._client = None
        channel = getattr(getattr(client, "core_client", None), "grpc_secure_channel", None)
        if channel is not None:
            channel.close()

    def account(self, connection_name: str, identifier: str) -> AccountSnapshot | None:
        """The account with its credentials; None when Scalekit has no such account (or connection)."""
        resp = self._rpc(
            "get_connected_account",
            lambda a: a.get_connected_account(connection_name=connection_name, identifier=identifier),
        )
        return None if resp is None else self._snapshot(resp.connected_account)

    def account_status(self, connection_name: str, identifier: str) -> AccountSnapshot | None:
        """The account without credentials (status, expiry); None when there is none."""
        resp = self._rpc(
            "get_connected_account_details",
            lambda a: a.get_connected_account_details(connection_name=connection_name, identifier=identifier),
        )
        return None if resp is None else self._snapshot(resp.connected_account)

    def list_accounts(
        self, connection_names: Sequence[str], identifier: str | None = None
    ) -> dict[tuple[str, str], AccountSnapshot] | None:
        """The accounts of up to 20 connections, of one identifier (or of every one), without
        credentials: {(connection name, identifier): status, expiry, last change}. One
        ListConnectedAccounts call per page of 99 (one deadline for all); an account Scalekit does
        not have is absent, as is a connection it does not know.

        None when the listing cannot answer for these names: Scalekit refused it as a bad request,
        or answered accounts of other connections (its `connector` is not the connection name):
        the caller then looks the accounts up one by one."""
        from scalekit.common import exceptions as sk

        names = list(dict.fromkeys(_name(n, "connection name") for n in connection_names))
        if len(names) > LIST_NAMES_MAX:
            raise UsageError(f"Scalekit lists the accounts of at most {LIST_NAMES_MAX} connections at a time.")
        if identifier is not None:
            _name(identifier, "identifier")
        found: dict[tuple[str, str], AccountSnapshot] = {}
        if not names:
            return found
        token: str | None = None
        for _ in range(LIST_MAX_PAGES):

            def page(actions: Any, t: str | None = token) -> Any:
                try:
                    return actions.list_connected_accounts(
                        connection_names=names, identifier=identifier, page_size=LIST_PAGE_SIZE, page_token=t
                    )
                except sk.ScalekitBadRequestException as exc:
                    log.debug("list_connected_accounts refused: %s", _detail(exc))
                    return _REFUSED

            resp = self._rpc("list_connected_accounts", page)
            if resp is None or resp is _REFUSED:
                return None
            for item in resp.connected_accounts:
                if item.connector not in names:
                    log.debug("list_connected_accounts answered an account of another connection")
                    return None
                if identifier is not None and item.identifier != identifier:
                    continue
                found[(item.connector, item.identifier)] = AccountSnapshot(
                    status=item.status, expires_at=_aware(item.token_expires_at), updated_at=_aware(item.updated_at)
                )
            token = resp.next_page_token
            if not token:
                return found
        raise ScalekitServiceError(
            f"Scalekit's list of connected accounts did not end after {LIST_MAX_PAGES} pages. Try again; if it "
            "persists, check status.scalekit.com."
        )

    def verify_user(self, auth_request_id: str, identifier: str) -> str:
        """Complete a custom user verification; the page Scalekit wants the browser to end on ("" if none)."""
        from scalekit.common import exceptions as sk

        client = self._sdk()
        with self._calling("verify_connected_account_user"):
            try:
                resp = self._within(
                    "verify",
                    lambda: client.actions.verify_connected_account_user(
                        auth_request_id=auth_request_id, identifier=identifier
                    ),
                )
            except sk.ScalekitForbiddenException:
                raise VerificationError(
                    f"Scalekit refused the verification for '{identifier}': the authorization was for another "
                    f"identifier (pass the one the link was issued for: {command('verify', 'ADDRESS', '--identifier')} "
                    "NAME, or --service SERVICE), or these client credentials may not verify users."
                ) from None
            except sk.ScalekitNotFoundException:
                raise VerificationError(
                    "Scalekit has no pending verification for that auth_request_id: it was already used, it "
                    f"expired, or the address was cut. Start again with a new link ({command('auth', 'SERVICE')})."
                ) from None
        return getattr(resp, "post_user_verify_redirect_url", None) or ""

    def ensure_account(self, connection_name: str, identifier: str) -> bool:
        """Create the account if Scalekit has none yet (the docs' first step; Scalekit also creates it
        when the user authorizes). False when Scalekit refused: NOT_FOUND, or the bad request that
        CreateConnectedAccount answers for a connection it does not know (its documented answers are
        400, 401 and 409); the link call then says whether the connection exists."""
        from scalekit.common import exceptions as sk

        def create(actions: Any) -> Any:
            try:
                return actions.get_or_create_connected_account(connection_name=connection_name, identifier=identifier)
            except sk.ScalekitBadRequestException:
                log.debug("get_or_create_connected_account: bad request; the link call will say why")
                return None

        return self._rpc("get_or_create_connected_account", create) is not None

    def authorization_link(
        self, connection_name: str, identifier: str, user_verify_url: str = "", state: str = ""
    ) -> tuple[str, _dt.datetime | None] | None:
        """(link, expiry) for the user to authorize. Raises ConnectionNameRefused when Scalekit has no
        such connection (NOT_FOUND, error code RESOURCE_NOT_FOUND) or refuses it as a bad request.

        With custom user verification, Scalekit sends the browser to `user_verify_url` after
        consent, with `auth_request_id` and `state` in the query."""
        from scalekit.common import exceptions as sk

        def link(actions: Any) -> Any:
            try:
                return actions.get_authorization_link(
                    connection_name=connection_name,
                    identifier=identifier,
                    user_verify_url=user_verify_url or None,
                    state=state or None,
                )
            except sk.ScalekitNotFoundException as exc:
                raise ConnectionNameRefused() from exc
            except sk.ScalekitBadRequestException as exc:
                raise ConnectionNameRefused(_detail(exc) or "invalid argument") from exc

        resp = self._rpc("get_authorization_link", link)
        if resp is None:
            return None
        if not resp.link:
            raise ScalekitServiceError("Scalekit returned an empty authorization link. Try again in a moment.")
        return resp.link, _aware(resp.expiry)

    def delete_account(self, connection_name: str, identifier: str) -> bool:
        """Revoke the connected account at Scalekit (delete_connected_account: its tokens are
        invalidated and the user must authorize again). False when Scalekit has no such account
        (or connection) to delete, as a second delete answers."""
        _name(connection_name, "connection name")
        _name(identifier, "identifier")
        with deadline(self.settings.timeout):
            resp = self._rpc(
                "delete_connected_account",
                lambda a: self._permitted(
                    "revoke connected accounts",
                    lambda: a.delete_connected_account(connection_name=connection_name, identifier=identifier),
                ),
            )
        return resp is not None

    # -- the environment's connections -------------------------------------------------------
    def _permitted(self, doing: str, call: Any) -> Any:
        """Run an RPC whose PERMISSION_DENIED means these credentials may not do this one thing
        (not that they are wrong)."""
        from scalekit.common import exceptions as sk

        try:
            return call()
        except sk.ScalekitForbiddenException as exc:
            said = _detail(exc)
            raise CredentialsRejectedError(
                f"Scalekit at {self.settings.env_url} does not let these client credentials {doing} "
                f"(PERMISSION_DENIED{': ' + said if said else ''}). Check the API client's permissions under "
                "Developers > Settings > API credentials in the Scalekit dashboard."
            ) from exc

    def list_connections(self, provider: str | None = None, query: str | None = None) -> list[AppConnection]:
        """The environment's connections (list_app_connections), every page under one deadline.
        `provider` keeps those of one connector, exactly as Scalekit writes its key (`GMAIL`);
        `query` (3 to 100 characters) those whose name or provider contains it."""
        if provider is not None and not (0 < len(provider) <= 50 and printable(provider, False) == provider):
            raise UsageError("A provider is 1 to 50 characters of plain text, e.g. GMAIL.")
        if query is not None and not (3 <= len(query) <= 100 and printable(query, False) == query):
            raise UsageError("A connection search needs 3 to 100 characters of plain text.")
        from scalekit.common import exceptions as sk

        def page(connection: Any, token: str | None) -> Any:
            try:
                return connection.list_app_connections(
                    page_size=CONNECTIONS_PAGE_SIZE, page_token=token, provider=provider, query=query
                )
            except sk.ScalekitBadRequestException as exc:
                said = _detail(exc) or "invalid argument"
                raise UsageError(f"Scalekit refused the connection listing: {said}.") from exc

        found: list[AppConnection] = []
        with deadline(self.settings.timeout):
            token: str | None = None
            for _ in range(CONNECTIONS_MAX_PAGES):
                resp = self._rpc(
                    "list_app_connections",
                    lambda c, t=token: self._permitted("list connections", lambda: page(c, t)),
                    on="connection",
                )
                if resp is None:
                    raise ScalekitServiceError(
                        f"Scalekit at {self.settings.env_url} answered NOT_FOUND to the connection listing. Try "
                        "again; if it persists, check status.scalekit.com."
                    )
                listing = resp[0]
                found += [_app_connection(c) for c in listing.connections if c.key_id]
                token = listing.next_page_token or None
                if token is None:
                    break
            else:
                log.debug("list_app_connections: stopped after %d pages", CONNECTIONS_MAX_PAGES)
        return found

    # -- the proxy and tools: the token stays with Scalekit ------------------------------
    def proxy_request(
        self,
        connection_name: str,
        identifier: str,
        path: str,
        method: str = "GET",
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        json: Any = None,
        form: Mapping[str, Any] | None = None,
        body: bytes | str | None = None,
        max_bytes: int = PROXY_MAX_BYTES,
    ) -> ProxyResponse | None:
        """Call the provider's API through Scalekit's proxy (`{env}/proxy{path}`): Scalekit attaches
        the account's token, which never comes here. At most one body: `json` (any JSON value but
        null), `form` (URL-encoded fields) or `body` (raw; give its Content-Type in `headers`).

        Returns the provider's answer whatever its status (a 404 of the provider is an answer);
        None when Scalekit has no such connection, or no ACTIVE account for `identifier`.
        Raises UsageError, before anything is sent, for a path, method, header or query that is
        not plain (see proxy_guard); ProxyDisabledError when Scalekit's proxy is off for the
        connection; ScalekitServiceError for a body over `max_bytes`; and the usual errors for
        credentials, rate limits, outages and the deadline (one for the whole call)."""
        _name(connection_name, "connection name")
        _name(identifier, "identifier")
        path = check_path(path)
        method = check_method(method)
        query = check_query(query)
        headers = check_headers(headers)
        if sum(part is not None for part in (json, form, body)) > 1:
            raise UsageError("Give at most one body: JSON, form fields or raw bytes.")
        if form is not None and not isinstance(form, Mapping):
            raise UsageError("Form fields must be given as a mapping of names to values.")
        if body is not None and not isinstance(body, (bytes, str)):
            raise UsageError("A raw body must be bytes or text.")
        if json is not None:
            try:
                _json.dumps(json)
            except (TypeError, ValueError):
                raise UsageError("The JSON body must be plain JSON (objects, lists, text, numbers).") from None
        with deadline(self.settings.timeout):
            ends = time.monotonic() + _remaining(self.settings.timeout)

            def send(actions: Any) -> ProxyResponse:
                resp = actions.request(
                    connection_name=connection_name,
                    identifier=identifier,
                    path=path,
                    method=method,
                    query_params=query or None,
                    body=json,
                    form_data=dict(form) if form is not None else None,
                    raw_body=body,
                    headers=headers or None,
                    timeout=max(ends - time.monotonic(), 0.05),
                    stream=True,
                )
                try:
                    got, size = [], 0
                    for chunk in resp.iter_content(65536):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ScalekitServiceError(
                                f"The answer through Scalekit's proxy is larger than {max_bytes} bytes; refused."
                            )
                        got.append(chunk)
                    answer = ProxyResponse(resp.status_code, dict(resp.headers), b"".join(got))
                finally:
                    resp.close()
                refusal = _scalekit_refusal(*answer)
                if refusal is not None:
                    raise self._proxy_refused(connection_name, answer.status, *refusal)
                return answer

            result: ProxyResponse | None = self._rpc("proxy_request", send)
            return result

    def _proxy_refused(self, connection_name: str, status: int, code: str, detail: str) -> BaseException:
        """Scalekit's proxy said no ({"detail", "code"}), as one of our errors."""
        url = self.settings.env_url
        said = redact_text(printable(detail[:200], False))
        if code == "TOOL_PROXY_DISABLED":
            return ProxyDisabledError(connection_name, said)
        if code == "NOT_FOUND" or status == 404:
            return _NotFoundError()
        if code in ("UNAUTHORIZED", "UNAUTHENTICATED") or status == 401:
            return self._credentials_rejected()  # the SDK has already logged in again and resent once
        if code in ("RESOURCE_EXHAUSTED", "RATE_LIMITED") or status == 429:
            return self._rate_limited()
        if code == "DEADLINE_EXCEEDED" or status == 504:
            return self._timed_out()
        if code == "UNAVAILABLE" or status == 503:
            return self._unreachable(f"its proxy answered {status} {code}")
        if code == "INVALID_ARGUMENT" or status == 400:
            return UsageError(f"Scalekit's proxy at {url} refused the request as malformed: {said or code}.")
        return ScalekitServiceError(
            f"Scalekit's proxy at {url} refused the call for '{printable(connection_name, False)}' "
            f"({status} {code}{': ' + said if said else ''}). Try again; if it persists, check status.scalekit.com."
        )

    def _refusing_requests(self, what: str, call: Any, tool_name: str = "") -> Any:
        """Run a tools RPC, turning the provider's refusals (TOOL_ERROR) into ToolExecutionError and
        Scalekit's INVALID_ARGUMENT / FAILED_PRECONDITION (bad input, unknown tool) into UsageError."""
        from scalekit.common import exceptions as sk

        try:
            return call()
        except sk.ScalekitToolException as exc:
            raise ToolExecutionError(
                tool_name,
                getattr(getattr(exc, "grpc_status", None), "name", "UNKNOWN"),
                exc.tool_error_code or "",
                redact_text(exc.tool_error_message or _detail(exc)),
                exc.execution_id or "",
            ) from exc
        except sk.ScalekitBadRequestException as exc:
            raise UsageError(f"Scalekit refused {what}: {_detail(exc) or 'invalid argument'}.") from exc

    def list_tools(self, connection_name: str, identifier: str = "", query: str = "") -> list[dict[str, Any]] | None:
        """The tools Scalekit offers for the connection: [{name, description, input_schema}], every
        page (one deadline for all); `query` (3 to 100 characters) narrows them. None when Scalekit
        has no such connection."""
        _name(connection_name, "connection name")
        if identifier:
            _name(identifier, "identifier")
        if query and not (3 <= len(query) <= 100 and printable(query, False) == query):
            raise UsageError("A tool search needs 3 to 100 characters of plain text.")
        tools: list[dict[str, Any]] = []
        with deadline(self.settings.timeout):
            token: str | None = None
            for _ in range(TOOLS_MAX_PAGES):
                resp = self._rpc(
                    "list_tools",
                    lambda a, t=token: self._refusing_requests(
                        "the tool list",
                        lambda: a.list_tools(
                            connection_name=connection_name,
                            identifier=identifier or None,
                            query=query or None,
                            summary=False,
                            page_size=TOOLS_PAGE_SIZE,
                            page_token=t,
                        ),
                    ),
                )
                if resp is None:
                    return None
                for tool in resp.tools:
                    definition = _plain_numbers(tool.definition or {})
                    tools.append(
                        {
                            "name": str(definition.get("name") or ""),
                            "description": str(definition.get("description") or ""),
                            "input_schema": definition.get("input_schema") or {"type": "object", "properties": {}},
                        }
                    )
                token = resp.next_page_token
                if not token:
                    break
        return tools

    def execute_tool(
        self, connection_name: str, identifier: str, tool_name: str, tool_input: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Run one of Scalekit's tools as the account; its result (never a token). None when Scalekit
        has no such connection or no ACTIVE account for `identifier`. Never resent after a failure
        that may have reached the provider. Raises UsageError for bad input or an unknown tool,
        ToolExecutionError when the provider refused (`.reauthorize` when it rejected the token)."""
        _name(connection_name, "connection name")
        _name(identifier, "identifier")
        _name(tool_name, "tool name")
        if not isinstance(tool_input, Mapping):
            raise UsageError("The tool input must be a JSON object.")
        try:
            plain_input = _json.loads(_json.dumps(dict(tool_input)))
        except (TypeError, ValueError):
            raise UsageError("The tool input must be plain JSON (objects, lists, text, numbers).") from None
        with deadline(self.settings.timeout):
            resp = self._rpc(
                "execute_tool",
                lambda a: self._refusing_requests(
                    f"the call of {tool_name}",
                    lambda: a.execute_tool(
                        tool_input=plain_input,
                        tool_name=tool_name,
                        identifier=identifier,
                        connection_name=connection_name,
                    ),
                    tool_name,
                ),
            )
        if resp is None:
            return None
        data = _plain_numbers(resp.data or {})
        return data if isinstance(data, dict) else {"result": data}
