"""The emulator's in-memory world: connections, connected accounts, links, client tokens, faults, counters.

Everything here is guarded by one lock; the gRPC servicer and the HTTP handlers only
call these methods. No gRPC or HTTP types appear in this module.
"""

from __future__ import annotations

import builtins
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ACTIVE", "EXPIRED", "PENDING_AUTH", "PENDING_VERIFICATION", "DISCONNECTED")
#: Connection kinds: OAuth, static (API key), Google domain-wide delegation, a trusted identity
#: provider's federated AWS-style keys, and ORG_WIDE: "one admin-authorized credential is shared
#: across all users" on the connection's one account with is_org_wide_credential; the per-user
#: accounts are "consent-only records with no real credential" (the SDK 2.21.0 descriptors).
KINDS = ("oauth", "static", "google_dwd", "trusted_idp", "org_wide")

# Scopes a real connector of that provider would typically carry; purely cosmetic.
_PROVIDER_SCOPES = {
    "gmail": ["https://www.googleapis.com/auth/gmail.readonly"],
    "googlecalendar": ["https://www.googleapis.com/auth/calendar"],
    "googledrive": ["https://www.googleapis.com/auth/drive.readonly"],
    "slack": ["channels:read", "chat:write"],
    "github": ["repo", "read:user"],
    "notion": ["read_content"],
    "linear": ["read"],
}


class EmulatorError(Exception):
    """A request the emulated service refuses; `code` is a gRPC status name, `error_code` the
    ErrorInfo detail Scalekit attaches to some answers (e.g. RESOURCE_NOT_FOUND), if any."""

    def __init__(self, code: str, message: str, error_code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_code = error_code


def provider_of(connection_name: str) -> str:
    """`gmail_u3134a` -> `gmail`: the provider is the part before the first `_` or `-`."""
    for sep in ("_", "-"):
        connection_name = connection_name.split(sep, 1)[0]
    return connection_name.lower()


def new_access_token() -> str:
    return "emu_at_" + secrets.token_urlsafe(24)


def new_refresh_token() -> str:
    return "emu_rt_" + secrets.token_urlsafe(24)


#: How far a connection's set-up has come (ConnectionStatus in the SDK's descriptors).
CONNECTION_STATUSES = ("DRAFT", "IN_PROGRESS", "COMPLETED")


@dataclass
class Connection:
    name: str
    kind: str = "oauth"
    provider: str = ""
    #: What ListAppConnections reports: set-up status and the enabled switch.
    status: str = "COMPLETED"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"connection kind must be one of {KINDS}, not {self.kind!r}")
        if self.status not in CONNECTION_STATUSES:
            raise ValueError(f"connection status must be one of {CONNECTION_STATUSES}, not {self.status!r}")
        self.provider = self.provider or provider_of(self.name)

    @property
    def provider_key(self) -> str:
        """The connector's key as Scalekit writes it (`GMAIL`, `GOOGLECALENDAR`)."""
        return self.provider.upper()

    @property
    def auth_mode(self) -> str:
        return "ORG_WIDE" if self.kind == "org_wide" else "USER"


@dataclass
class Account:
    id: str
    connection: Connection
    identifier: str
    status: str = "PENDING_AUTH"
    access_token: str = ""
    refresh_token: str = ""
    scopes: list[str] = field(default_factory=list)
    token_expires_at: float = 0.0
    static_details: dict[str, Any] = field(default_factory=dict)
    updated_at: float = field(default_factory=time.time)
    last_used_at: float = 0.0
    #: The one account of an ORG_WIDE connection that holds the shared credential.
    org_wide_credential: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.connection.name, self.identifier)

    def snapshot(self) -> dict[str, Any]:
        """A plain copy for tests and the admin API."""
        return {
            "id": self.id,
            "connection_name": self.connection.name,
            "identifier": self.identifier,
            "status": self.status,
            "kind": self.connection.kind,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "scopes": list(self.scopes),
            "token_expires_at": self.token_expires_at,
            "static_details": dict(self.static_details),
            "org_wide_credential": self.org_wide_credential,
        }


@dataclass
class Link:
    token: str
    account_key: tuple[str, str]
    expires_at: float
    used: bool = False
    outcome: str = ""  # "", "allowed", "denied"
    user_verify_url: str = ""
    state: str = ""


@dataclass
class AuthRequest:
    """A consent waiting for the application to verify the user (custom user verification)."""

    account_key: tuple[str, str]
    expires_at: float
    used: bool = False


#: User verification modes of an environment (AgentKit > User Verification in the dashboard):
#: None - no verification (older environments); "custom" - the app verifies (user_verify_url +
#: verify_connected_account_user); "scalekit_users" - whoever consents must be signed in to Scalekit.
VERIFICATION_MODES = (None, "custom", "scalekit_users")
AUTH_REQUEST_TTL = 600.0
#: How many entries each request log (proxy, tools, HTTPS) keeps.
LOG_LIMIT = 1000


@dataclass
class Fault:
    code: str
    remaining: int
    method: str | None = None
    message: str = ""
    tool_error_code: str = ""


class World:
    """All mutable emulator state, thread-safe."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        connections: list[Connection],
        token_ttl: float = 3600.0,
        client_token_ttl: float = 3600.0,
        link_ttl: float = 60.0,
        verification: str | None = None,
    ) -> None:
        if verification not in VERIFICATION_MODES:
            raise ValueError(f"verification must be one of {VERIFICATION_MODES}, not {verification!r}")
        self.verification = verification
        self.auth_requests: dict[str, AuthRequest] = {}
        #: Armed answers of /oauth/token: [answer, remaining] (see Emulator.fail_token_endpoint).
        self.token_answers: list[list] = []
        self._lock = threading.RLock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.client_token_ttl = client_token_ttl
        self.link_ttl = link_ttl
        self.latency = 0.0
        self.clock_offset = 0.0
        #: Set when the emulator stops, so calls held back by `latency` end at once.
        self.stopping = threading.Event()
        self._latency_changed = threading.Condition(threading.Lock())
        self.connections: dict[str, Connection] = {c.name: c for c in connections}
        self.accounts: dict[tuple[str, str], Account] = {}
        self.links: dict[str, Link] = {}
        self.client_tokens: dict[str, float] = {}
        self.faults: list[Fault] = []
        #: Armed provider refusals of ExecuteTool (answered with a TOOL_ERROR detail).
        self.tool_faults: list[Fault] = []
        self.counters: Counter[str] = Counter()
        self.token_history: dict[tuple[str, str], list[list]] = {}  # [token, issued_at, replaced_at]
        self._initial_connections = list(connections)
        #: Scalekit's proxy ({env}/proxy{path}): on for the environment unless switched off, and
        #: per connection on top of that (the docs enable it per environment and provider).
        self.proxy_enabled = True
        self.proxy_disabled_for: set[str] = set()
        #: What the proxy, the tools RPCs and the HTTPS listener saw (newest last, bounded).
        self.proxy_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.tool_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.http_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)

    # -- counters and faults -------------------------------------------------
    def now(self) -> float:
        """The emulator's wall clock: real time plus whatever `advance_clock` added."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward (tokens, client logins and links age at once)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self.clock_offset += float(seconds)

    def set_latency(self, seconds: float) -> None:
        """Hold every later call back by `seconds`; calls already held back see the new value at once
        (so a test can keep a call in flight for as long as it needs, then let it go)."""
        with self._latency_changed:
            self.latency = float(seconds)
            self._latency_changed.notify_all()

    def stop_delays(self) -> None:
        """The emulator is stopping: every held-back call goes on now."""
        with self._latency_changed:
            self.stopping.set()
            self._latency_changed.notify_all()

    def delay(self) -> None:
        """Hold a call back by the configured latency (ends early when it is lowered or the emulator stops)."""
        started = time.monotonic()
        with self._latency_changed:
            while not self.stopping.is_set():
                left = started + self.latency - time.monotonic()
                if left <= 0:
                    return
                self._latency_changed.wait(left)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def counter_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)

    def add_fault(self, code: str, count: int = 1, method: str | None = None, message: str = "") -> None:
        with self._lock:
            self.faults.append(Fault(code=code, remaining=count, method=method, message=message))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.tool_faults.clear()
            self.token_answers.clear()
        self.set_latency(0.0)

    def take_token_answer(self) -> int | str | None:
        """The next armed /oauth/token answer (an HTTP status, "not-json" or "no-token"), consumed once."""
        with self._lock:
            for armed in self.token_answers:
                if armed[1] != 0:
                    armed[1] -= 1 if armed[1] > 0 else 0
                    self.counters["faults_injected"] += 1
                    return armed[0]
            return None

    def take_fault(self, method: str, *, rpc: bool = True) -> Fault | None:
        """The first armed fault matching `method`, consumed once; None when the call should succeed.

        A fault without a method applies to every RPC (not to /oauth/token); `*` applies to all.
        """
        with self._lock:
            for fault in self.faults:
                if not (fault.method == method or fault.method == "*" or (fault.method is None and rpc)):
                    continue
                if fault.remaining == 0:
                    continue
                if fault.remaining > 0:
                    fault.remaining -= 1
                self.counters["faults_injected"] += 1
                return fault
            return None

    def add_tool_fault(self, code: str, count: int, tool_error_code: str, message: str) -> None:
        with self._lock:
            self.tool_faults.append(Fault(code=code, remaining=count, message=message, tool_error_code=tool_error_code))

    def take_tool_fault(self) -> Fault | None:
        """The next armed provider refusal of a tool call, consumed once."""
        with self._lock:
            for fault in self.tool_faults:
                if fault.remaining == 0:
                    continue
                if fault.remaining > 0:
                    fault.remaining -= 1
                self.counters["faults_injected"] += 1
                return fault
            return None

    def reset(self) -> None:
        """Forget every account, link, fault and counter; keep credentials and connections."""
        with self._lock:
            self.accounts.clear()
            self.token_answers.clear()
            self.links.clear()
            self.faults.clear()
            self.tool_faults.clear()
            self.counters.clear()
            self.token_history.clear()
            self.clock_offset = 0.0
            self.connections = {c.name: c for c in self._initial_connections}
            self.proxy_enabled = True
            self.proxy_disabled_for.clear()
            self.proxy_log.clear()
            self.tool_log.clear()
            self.http_log.clear()
        self.set_latency(0.0)

    def _new_account(self, conn: Connection, identifier: str) -> Account:
        """An account stamped with the emulator's clock (which tests may have moved forward)."""
        return Account(id="ca_" + secrets.token_hex(8), connection=conn, identifier=identifier, updated_at=self.now())

    # -- client credentials --------------------------------------------------
    def issue_client_token(self, client_id: str, client_secret: str) -> tuple[str, float] | None:
        with self._lock:
            ok = secrets.compare_digest(client_id.encode(), self.client_id.encode()) and secrets.compare_digest(
                client_secret.encode(), self.client_secret.encode()
            )
            if not ok:
                self.counters["oauth_token_rejected"] += 1
                return None
            token = "emu_ct_" + secrets.token_urlsafe(24)
            self.client_tokens[token] = self.now() + self.client_token_ttl
            return token, self.client_token_ttl

    def client_token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self.client_tokens.get(token)
            return expiry is not None and expiry > self.now()

    def rotate_client_secret(self, new_secret: str | None = None, revoke_tokens: bool = True) -> str:
        with self._lock:
            self.client_secret = new_secret or "emu_secret_" + secrets.token_urlsafe(24)
            if revoke_tokens:
                self.client_tokens.clear()
            return self.client_secret

    def revoke_client_tokens(self) -> None:
        with self._lock:
            self.client_tokens.clear()

    # -- connections and accounts --------------------------------------------
    def add_connection(
        self, name: str, kind: str = "oauth", provider: str = "", status: str = "COMPLETED", enabled: bool = True
    ) -> Connection:
        with self._lock:
            conn = Connection(name=name, kind=kind, provider=provider, status=status, enabled=bool(enabled))
            self.connections[name] = conn
            return conn

    def list_connections(self, provider: str | None = None, query: str | None = None) -> builtins.list[Connection]:
        """What ListAppConnections finds, by name: `provider` must equal the connector's key exactly
        (case-sensitive, `GMAIL`); `query` is found in the name or the key, in any case."""
        with self._lock:
            found = sorted(self.connections.values(), key=lambda c: c.name)
        if provider is not None:
            found = [c for c in found if c.provider_key == provider]
        if query is not None:
            needle = query.lower()
            found = [c for c in found if needle in c.name.lower() or needle in c.provider_key.lower()]
        return found

    def connection(self, name: str) -> Connection:
        conn = self.connections.get(name)
        if conn is None:
            raise EmulatorError("NOT_FOUND", f"connection '{name}' not found")
        return conn

    def find(self, connection: str = "", identifier: str = "", account_id: str = "") -> Account:
        with self._lock:
            if account_id:
                for acc in self.accounts.values():
                    if acc.id == account_id:
                        return acc
                raise EmulatorError("NOT_FOUND", f"connected account '{account_id}' not found")
            if not connection or not identifier:
                raise EmulatorError("INVALID_ARGUMENT", "connector and identifier are required")
            self.connection(connection)
            found = self.accounts.get((connection, identifier))
            if found is None:
                raise EmulatorError("NOT_FOUND", "connected account not found")
            return found

    def _set_access_token(self, acc: Account, token: str) -> None:
        """Replace the access token, keeping a history of when each one was current."""
        now = self.now()
        history = self.token_history.setdefault(acc.key, [])
        if history and history[-1][2] is None:
            history[-1][2] = now
        history.append([token, now, None])
        acc.access_token = token

    def _grant(self, acc: Account, access_token: str | None = None, ttl: float | None = None) -> None:
        """Give an account fresh credentials, as a completed authorization would."""
        if acc.connection.kind == "oauth" or acc.org_wide_credential:
            self._set_access_token(acc, access_token or new_access_token())
            acc.refresh_token = acc.refresh_token or new_refresh_token()
            acc.scopes = acc.scopes or list(_PROVIDER_SCOPES.get(acc.connection.provider, ["read"]))
            acc.token_expires_at = self.now() + (self.token_ttl if ttl is None else ttl)
        elif acc.connection.kind == "google_dwd":
            self._set_access_token(acc, access_token or new_access_token())
            acc.scopes = acc.scopes or ["https://www.googleapis.com/auth/gmail.readonly"]
            acc.token_expires_at = self.now() + (self.token_ttl if ttl is None else ttl)
        elif acc.connection.kind == "trusted_idp":
            # all four are held here; the API returns only db_user and access_key_id (servicer)
            acc.token_expires_at = self.now() + (ttl if ttl is not None else self.token_ttl)
            acc.static_details = {
                "db_user": "analytics_reader",
                "access_key_id": "ASIA" + secrets.token_hex(8).upper(),
                "secret_access_key": "emu_sak_" + secrets.token_urlsafe(24),
                "session_token": "emu_st_" + secrets.token_urlsafe(24),
            }
        elif acc.connection.kind == "org_wide":
            pass  # a consent-only record: the credential is on the connection's org-wide account
        elif not acc.static_details:
            acc.static_details = {"api_key": access_token or "emu_key_" + secrets.token_urlsafe(24)}
        acc.updated_at = self.now()

    def create(
        self, connection: str, identifier: str, *, oauth: dict | None = None, static: dict | None = None
    ) -> Account:
        """CreateConnectedAccount: a connection name Scalekit does not know is a bad request (its
        documented answers are 400, 401 and 409; no 404)."""
        with self._lock:
            conn = self.connections.get(connection)
            if conn is None:
                raise EmulatorError("INVALID_ARGUMENT", f"invalid connector: no connection named '{connection}'")
            if not identifier:
                raise EmulatorError("INVALID_ARGUMENT", "identifier is required")
            if (connection, identifier) in self.accounts:
                raise EmulatorError("ALREADY_EXISTS", "connected account already exists")
            acc = self._new_account(conn, identifier)
            self.accounts[acc.key] = acc
            self._apply_details(acc, oauth, static)
            return acc

    def update(
        self,
        connection: str,
        identifier: str,
        account_id: str = "",
        *,
        oauth: dict | None = None,
        static: dict | None = None,
    ) -> Account:
        with self._lock:
            acc = self.find(connection, identifier, account_id)
            self._apply_details(acc, oauth, static)
            return acc

    def _apply_details(self, acc: Account, oauth: dict | None, static: dict | None) -> None:
        if oauth and oauth.get("access_token"):
            self._set_access_token(acc, oauth["access_token"])
            acc.refresh_token = oauth.get("refresh_token", "") or acc.refresh_token
            acc.scopes = list(oauth.get("scopes") or acc.scopes)
            acc.token_expires_at = self.now() + 3600
            acc.status = "ACTIVE"
        elif static:
            acc.static_details = dict(static)
            acc.status = "ACTIVE"
        acc.updated_at = self.now()

    def delete(self, connection: str, identifier: str, account_id: str = "") -> None:
        with self._lock:
            acc = self.find(connection, identifier, account_id)
            del self.accounts[acc.key]
            for link in self.links.values():
                if link.account_key == acc.key:
                    link.used = True

    def seed(
        self,
        connection: str,
        identifier: str,
        status: str = "ACTIVE",
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        ttl: float | None = None,
        static: dict | None = None,
        scopes: list[str] | None = None,
        kind: str | None = None,
        org_wide_credential: bool = False,
    ) -> Account:
        """Put an account into any state directly; creates the connection if it is unknown.
        `org_wide_credential`: the ORG_WIDE connection's one account holding the shared credential."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        with self._lock:
            conn = self.connections.get(connection)
            if conn is None:
                conn = self.add_connection(connection, kind or ("static" if static else "oauth"))
            if org_wide_credential:
                if conn.kind != "org_wide":
                    raise ValueError(f"only an org_wide connection has an org-wide credential, not {conn.kind!r}")
                holder = self.org_wide_holder(connection)
                if holder is not None and holder.identifier != identifier:
                    raise ValueError(f"{connection} already has its org-wide credential on {holder.identifier!r}")
            acc = self.accounts.get((connection, identifier))
            if acc is None:
                acc = self._new_account(conn, identifier)
                self.accounts[acc.key] = acc
            acc.org_wide_credential = org_wide_credential
            acc.status = status
            if refresh_token is not None:
                acc.refresh_token = refresh_token
            if scopes is not None:
                acc.scopes = list(scopes)
            if static is not None:
                acc.static_details = dict(static)
            if status != "PENDING_AUTH" or access_token:
                self._grant(acc, access_token, ttl)
            return acc

    def set_status(self, connection: str, identifier: str, status: str) -> Account:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        with self._lock:
            acc = self.find(connection, identifier)
            acc.status = status
            acc.updated_at = self.now()
            return acc

    def rotate_token(self, connection: str, identifier: str, access_token: str | None = None) -> str:
        """Replace an account's access token server-side (as a provider-side refresh would)."""
        with self._lock:
            acc = self.find(connection, identifier)
            self._grant(acc, access_token or new_access_token())
            return acc.access_token if acc.connection.kind == "oauth" else ""

    def org_wide_holder(self, connection: str) -> Account | None:
        """The account holding an ORG_WIDE connection's shared credential (at most one), if any."""
        with self._lock:
            return next(
                (a for a in self.accounts.values() if a.connection.name == connection and a.org_wide_credential), None
            )

    def lookup_with_refresh(self, connection: str, identifier: str, account_id: str = "") -> Account:
        """What GetConnectedAccountAuth sees: an ACTIVE account past its expiry gets a new token."""
        with self._lock:
            acc = self.find(connection, identifier, account_id)
            if (
                acc.status == "ACTIVE"
                and (acc.connection.kind == "oauth" or acc.org_wide_credential)
                and acc.token_expires_at
                and acc.token_expires_at <= self.now()
            ):
                self._set_access_token(acc, new_access_token())
                acc.token_expires_at = self.now() + self.token_ttl
                acc.updated_at = self.now()
                self.counters["token_refreshes"] += 1
            acc.last_used_at = self.now()
            return acc

    def list(
        self,
        *,
        connector: str = "",
        identifier: str = "",
        provider: str = "",
        connection_names: list[str] | None = None,
        org_wide_credential: bool | None = None,
    ) -> list[Account]:
        with self._lock:
            out = []
            for acc in sorted(self.accounts.values(), key=lambda a: (a.connection.name, a.identifier)):
                if connector and acc.connection.name != connector:
                    continue
                if identifier and acc.identifier != identifier:
                    continue
                if provider and acc.connection.provider != provider:
                    continue
                if connection_names and acc.connection.name not in connection_names:
                    continue
                if org_wide_credential is not None and acc.org_wide_credential != org_wide_credential:
                    continue
                out.append(acc)
            return out

    def get_or_create(self, connection: str, identifier: str) -> Account:
        """The account, created PENDING_AUTH when missing (what get_or_create_connected_account ends in)."""
        with self._lock:
            conn = self.connection(connection)
            acc = self.accounts.get((connection, identifier))
            if acc is None:
                acc = self._new_account(conn, identifier)
                self.accounts[acc.key] = acc
            return acc

    # -- authorization links -------------------------------------------------
    def create_link(self, connection: str, identifier: str, user_verify_url: str = "", state: str = "") -> Link:
        """A single-use consent link. An unknown connection is NOT_FOUND with error code
        RESOURCE_NOT_FOUND (the SDK 2.21.0 descriptors; older docs said 400 "invalid connector").
        An identifier without an account gets a link too: Scalekit creates the account when the
        user authorizes (approve)."""
        with self._lock:
            if connection not in self.connections:
                raise EmulatorError(
                    "NOT_FOUND", f"connection '{connection}' not found in this environment", "RESOURCE_NOT_FOUND"
                )
            if not identifier:
                raise EmulatorError("INVALID_ARGUMENT", "identifier is required")
            link = Link(
                token=secrets.token_urlsafe(18),
                account_key=(connection, identifier),
                expires_at=self.now() + self.link_ttl,
                user_verify_url=user_verify_url,
                state=state,
            )
            self.links[link.token] = link
            self.counters["links_issued"] += 1
            return link

    def link(self, token: str) -> Link:
        with self._lock:
            link = self.links.get(token)
            if link is None:
                raise EmulatorError("NOT_FOUND", "this authorization link does not exist")
            return link

    def _usable_link(self, token: str) -> Link:
        link = self.link(token)
        if link.used:
            raise EmulatorError("FAILED_PRECONDITION", "this authorization link has already been used")
        if link.expires_at <= self.now():
            raise EmulatorError("DEADLINE_EXCEEDED", "this authorization link has expired")
        if link.account_key[0] not in self.connections:
            raise EmulatorError("NOT_FOUND", "the connection this link was for no longer exists")
        return link

    def approve(self, token: str, signed_in_as: str = "") -> tuple[Account, str]:
        """What clicking Allow does, per the environment's verification mode: (account, where the
        browser goes next, "" for Scalekit's own done page).

        No verification: ACTIVE. "scalekit_users": ACTIVE, but only for someone signed in to
        Scalekit (else PERMISSION_DENIED, nothing changes). "custom": PENDING_VERIFICATION, and
        the browser is sent to the link's user_verify_url with auth_request_id and state; a link
        without one fails (failed_to_exchange) and nothing changes."""
        with self._lock:
            link = self._usable_link(token)
            acc = self.accounts.get(link.account_key)
            if self.verification == "scalekit_users" and not signed_in_as:
                raise EmulatorError(
                    "PERMISSION_DENIED",
                    "Sign in to the Scalekit dashboard first: this environment lets only Scalekit users connect.",
                )
            if self.verification == "custom" and not link.user_verify_url:
                raise EmulatorError(
                    "FAILED_PRECONDITION",
                    "failed_to_exchange: user_verify_url not configured for verification redirect",
                )
            link.used = True
            link.outcome = "allowed"
            if acc is None:  # "When a user authorizes, Scalekit creates a connected account"
                acc = self._new_account(self.connections[link.account_key[0]], link.account_key[1])
                self.accounts[acc.key] = acc
            self._grant(acc, new_access_token())
            self.counters["links_approved"] += 1
            if self.verification != "custom":
                acc.status = "ACTIVE"
                return acc, ""
            acc.status = "PENDING_VERIFICATION"
            request_id = secrets.token_urlsafe(32)
            self.auth_requests[request_id] = AuthRequest(link.account_key, self.now() + AUTH_REQUEST_TTL)
            from urllib.parse import urlencode

            sep = "&" if "?" in link.user_verify_url else "?"
            query = urlencode({"auth_request_id": request_id, "state": link.state})
            return acc, f"{link.user_verify_url}{sep}{query}"

    def verify_user(self, auth_request_id: str, identifier: str) -> Account:
        """verify_connected_account_user: NOT_FOUND for an unknown, used or expired request,
        PERMISSION_DENIED when the identifier is not the account's; else the account is ACTIVE."""
        with self._lock:
            request = self.auth_requests.get(auth_request_id)
            if request is None or request.used or request.expires_at <= self.now():
                raise EmulatorError("NOT_FOUND", "no pending user verification for this auth_request_id")
            if request.account_key[1] != identifier:
                self.counters["verifications_refused"] += 1
                raise EmulatorError("PERMISSION_DENIED", "identifier does not match the connected account")
            request.used = True
            acc = self.accounts.get(request.account_key)
            if acc is None:
                raise EmulatorError("NOT_FOUND", "the connected account no longer exists")
            acc.status = "ACTIVE"
            acc.updated_at = self.now()
            self.counters["verifications"] += 1
            return acc

    def deny(self, token: str) -> Account | None:
        """What clicking Deny does: the link is spent; nothing on the account changes (Scalekit
        shows access_denied on its own page and records no decision the API could read), and
        none is created. The account, or None when there is none."""
        with self._lock:
            link = self._usable_link(token)
            link.used = True
            link.outcome = "denied"
            self.counters["links_denied"] += 1
            return self.accounts.get(link.account_key)

    # -- the proxy and tools ---------------------------------------------------
    def set_proxy_enabled(self, enabled: bool, connection: str | None = None) -> None:
        with self._lock:
            if connection is None:
                self.proxy_enabled = bool(enabled)
                return
            self.connection(connection)
            if enabled:
                self.proxy_disabled_for.discard(connection)
            else:
                self.proxy_disabled_for.add(connection)

    def proxy_allowed(self, connection: str) -> bool:
        with self._lock:
            return self.proxy_enabled and connection not in self.proxy_disabled_for

    def usable_account(self, connection: str, identifier: str) -> Account:
        """The ACTIVE account a proxied request or a tool call acts as, its token refreshed when due.
        NOT_FOUND for an unknown connection, a missing account or one that is not ACTIVE."""
        with self._lock:
            if not connection or not identifier:
                raise EmulatorError("INVALID_ARGUMENT", "connection_name and identifier are required")
            self.connection(connection)
            acc = self.accounts.get((connection, identifier))
            if acc is None:
                raise EmulatorError("NOT_FOUND", "connected account not found")
            if acc.status != "ACTIVE":
                raise EmulatorError("NOT_FOUND", f"connected account is not active (status {acc.status})")
            if acc.connection.kind == "org_wide" and not acc.org_wide_credential:
                # the user consented; Scalekit acts with the connection's shared credential
                holder = self.org_wide_holder(connection)
                if holder is None or holder.status != "ACTIVE":
                    raise EmulatorError("NOT_FOUND", "the org-wide credential of this connection is not authorized")
                return self.lookup_with_refresh(connection, holder.identifier)
            return self.lookup_with_refresh(connection, identifier)

    def account_by_credential(self, credential: str) -> Account | None:
        """The account whose current credential this is (what a provider checks on each call)."""
        if not credential:
            return None
        with self._lock:
            for acc in self.accounts.values():
                if acc.access_token and secrets.compare_digest(acc.access_token.encode(), credential.encode()):
                    return acc
                for value in acc.static_details.values():
                    if isinstance(value, str) and value and secrets.compare_digest(value.encode(), credential.encode()):
                        return acc
            return None

    def log(self, which: str, entry: dict[str, Any]) -> None:
        with self._lock:
            {"proxy": self.proxy_log, "tools": self.tool_log, "http": self.http_log}[which].append(entry)

    def log_snapshot(self, which: str) -> builtins.list[dict[str, Any]]:
        import copy

        with self._lock:
            log = {"proxy": self.proxy_log, "tools": self.tool_log, "http": self.http_log}[which]
            return copy.deepcopy(list(log))

    def latest_link(self, connection: str, identifier: str) -> Link | None:
        with self._lock:
            found = [lk for lk in self.links.values() if lk.account_key == (connection, identifier)]
            return found[-1] if found else None
