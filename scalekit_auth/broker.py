"""TokenBroker: the one explicit, thread-safe object that turns a service name into a token.

Flow (one way only): resolve configuration -> memory cache -> vault (one warm Scalekit
client per set of credentials) -> SDK. Configuration problems are found before the SDK
is imported. Configuration files are re-read only when they change (mtime/size/inode),
so a warm cache hit costs microseconds and an edit still takes effect at once.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from . import connections
from .cache import TokenCache
from .config import (
    LOOPBACK,
    SETTINGS_VARS,
    ScalekitSettings,
    env_file_mode_warning,
    env_files,
    file_signature,
    load_settings,
)
from .connections import Change, ConnectionEntry
from .credentials import ServiceCredentials
from .deadlines import deadline
from .errors import (
    AuthorizationError,
    BatchError,
    ConfigurationError,
    ServiceNotConfiguredError,
    UnknownConnectionError,
    UsageError,
    printable,
)
from .identity import IDENTITY_VARS, agent_name, identity_file
from .logs import get_logger
from .paths import STATE_VARS, connections_path, state_dir

log = get_logger("scalekit_auth")

ACTIVE = "ACTIVE"
MAX_BATCH_WORKERS = 16
#: States of links issued with a user_verify_url, kept for the loopback page's check (newest kept).
MAX_STATES = 1000
#: A consent given just before its link expired may still be verified this long after.
AUTH_REQUEST_GRACE = 600.0
#: A link is handed out again only this soon after it was issued (and while over half its life is left):
#: enough for an agent retrying in a loop, short enough that a link spent by a Deny is soon replaced.
LINK_REUSE_WINDOW = 15.0
#: VerifyConnectedAccountUserRequest.auth_request_id: 1 to 1000 characters (the SDK's descriptors).
AUTH_REQUEST_ID_MAX = 1000
#: SCALEKIT_USER_VERIFY_URL=loopback outside a waiting call: nothing listens here, so the browser
#: shows an unreachable page whose address (with auth_request_id) the user passes to `verify`.
LOOPBACK_UNSERVED = "http://127.0.0.1:9/scalekit-auth/verify"

V = TypeVar("V")


@dataclass(frozen=True)
class Target:
    """A fully resolved request: which connection and which user's account."""

    service: str
    connection_name: str
    identifier: str
    identifier_source: str


@dataclass(frozen=True)
class AccountStatus:
    """What `status`/`list --status` show: never a credential."""

    target: Target
    status: str | None  # None: Scalekit has no account for this identifier yet
    expires_at: object = None  # datetime of the access token's expiry, when known
    updated_at: object = None  # when Scalekit last changed the account


class _Memo:
    """One remembered value per key, replaced when its signature changes."""

    def __init__(self) -> None:
        self._values: dict[Any, tuple[Any, Any]] = {}

    def get(self, key: Any, signature: Any, compute: Callable[[], V]) -> V:
        hit = self._values.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1]
        value = compute()  # errors are not remembered: the next call reports them again
        self._values[key] = (signature, value)
        return value


class TokenBroker:
    """Resolves services, caches credentials in memory, keeps warm Scalekit clients.

    `directory` and `environ` default to the skill folder and `os.environ`, consulted on
    every call, so edits to .env or connections.json take effect immediately.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self._directory = os.fspath(directory) if directory is not None else None
        self._environ = environ
        self._lock = threading.Lock()
        self._vaults: dict[tuple[str, str, str, float], Any] = {}
        self._memo = _Memo()
        self._where: tuple[tuple[Any, ...], float, _Locations] | None = None
        self._warned: set[str] = set()
        #: state -> (identifier, accept until (epoch), user_verify_url) of links issued with a verify URL.
        self._states: dict[str, tuple[str, float, str]] = {}
        #: The last link issued per (environment, connection, identifier, verify URL): (error, lifetime, status).
        self._links: dict[tuple, tuple[AuthorizationError, float, str]] = {}
        self.cache: TokenCache[ServiceCredentials] = TokenCache()

    def __repr__(self) -> str:
        return f"TokenBroker(directory={str(self.directory)!r}, clients={len(self._vaults)}, cache={self.cache!r})"

    # -- configuration ---------------------------------------------------------
    @property
    def follows_process(self) -> bool:
        """True when this broker reads what the process does (no folder or environment of its own),
        so an agent serving this process's settings may answer for it."""
        return self._directory is None and self._environ is None

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _env_values(self, names: tuple[str, ...]) -> tuple[Any, ...]:
        """The raw values of `names`, cheaply: a change signature, not for display."""
        env = self.environ
        if env is os.environ:
            data = getattr(os.environ, "_data", None)
            if data is not None:
                keys = self._memo.get(("encoded", names), None, lambda: tuple(os.environ.encodekey(n) for n in names))
                return tuple(data.get(k) for k in keys)
        return tuple(env.get(n) for n in names)

    def _locations(self) -> _Locations:
        """Where this call's files are: the state folder, the connections.json in use, the .env files
        read, and IDENTITY.md. Resolving them takes a dozen stat and path calls, so the answer is
        kept while the variables naming them (and, in an OpenClaw exec, the working directory) are
        unchanged, for at most LOCATIONS_TTL seconds: a long-lived process follows ~/.openclaw
        appearing or `migrate` moving files within a second. The files' contents are checked on
        every call (their own signatures), so an edit still takes effect at once."""
        key = self._env_values(LOCATION_VARS)
        if key[_SHELL_AT] is not None:
            key = (*key, _cwd())
        now = _time.monotonic()
        hit = self._where
        if hit is not None and hit[0] == key and now - hit[1] < LOCATIONS_TTL:
            return hit[2]
        env = self.environ
        state = state_dir(env)
        found = _Locations(
            state=state,
            connections=connections_path(env),
            env_files=tuple(str(p) for p in env_files(Path(state), env)),
            identity=str(identity_file(env)),
        )
        self._where = (key, now, found)
        return found

    def _dir(self) -> str:
        """The state folder as a string (the hot path avoids pathlib)."""
        if self._directory is not None:
            return self._directory
        return self._locations().state

    @property
    def directory(self) -> Path:
        """The state folder, resolved now."""
        return Path(self._directory if self._directory is not None else state_dir(self.environ))

    def _connections_path(self, directory: str | None = None, *, fresh: bool = False) -> str:
        folder = directory or self._directory
        if folder is not None:
            return os.path.join(folder, connections.FILE_NAME)
        return connections_path(self.environ) if fresh else self._locations().connections

    @property
    def connections_file(self) -> Path:
        """The connections.json in use (the state folder's, or the skill folder's until migrated), resolved now."""
        return Path(self._connections_path(fresh=True))

    def connections(self, directory: str | None = None) -> dict[str, ConnectionEntry]:
        path = self._connections_path(directory)
        return self._memo.get(("connections", path), file_signature(path), lambda: connections.load(Path(path)))

    def settings(self, directory: str | None = None) -> ScalekitSettings:
        env = self.environ
        if directory is None and self._directory is None:
            where = self._locations()
            folder, files = where.state, where.env_files
        else:
            folder = directory or self._dir()
            files = tuple(str(p) for p in env_files(Path(folder), env))
        signature = (self._env_values(SETTINGS_VARS), files, tuple(file_signature(f) for f in files))
        return self._memo.get(("settings", folder), signature, lambda: self._load_settings(folder, list(files), env))

    def _load_settings(self, folder: str, files: list[str], env: Mapping[str, str]) -> ScalekitSettings:
        """Read the settings (only when something changed) and warn once about a readable .env."""
        settings = load_settings(Path(folder), env)
        for env_file in files:
            warning = env_file_mode_warning(Path(env_file))
            if warning and env_file != files[0] and not _defines_secret(env_file):
                continue  # another program's .env (OpenClaw's) without our secret: not ours to judge
            if warning and env_file not in self._warned:
                self._warned.add(env_file)
                print(
                    f"scalekit-auth: warning: {warning}; it holds your client secret. Run: chmod 600 {env_file}",
                    file=sys.stderr,
                )
        return settings

    def _agent_name(self) -> tuple[str, str]:
        env = self.environ
        path = self._locations().identity
        return self._memo.get(("identity", path), file_signature(path), lambda: agent_name(env))

    def resolve(self, service: str, identifier: str | None = None, directory: str | None = None) -> Target:
        """Service -> connection name and identifier, or ServiceNotConfiguredError."""
        name = connections.normalize_service(service)
        entries = self.connections(directory)
        entry = entries.get(name)
        if entry is None:
            raise ServiceNotConfiguredError(name, sorted(entries), self._connections_path(directory))
        if identifier is not None:
            return Target(name, entry.connection_name, connections.check_identifier(identifier), "argument")
        if entry.identifier:
            return Target(name, entry.connection_name, entry.identifier, "connections.json")
        ident, source = self._agent_name()
        return Target(name, entry.connection_name, self._checked_agent_name(ident, source, name), source)

    @staticmethod
    def _checked_agent_name(ident: str, source: str, service: str = "SERVICE") -> str:
        """The agent's name as an identifier, or an error that says which file it came from."""
        try:
            return connections.check_identifier(ident)
        except ConfigurationError as err:
            raise ConfigurationError(
                f"The agent name read from {source} cannot be used as the identifier: {err} Fix the name there, "
                f"or give this service an identifier: scalekit-auth config {service} <connection> --identifier NAME"
            ) from None

    def service_for_url(self, url: str) -> str | None:
        """The service an API URL belongs to: connections.json "hosts" first, then the built-in table."""
        from .services import service_for_url

        overrides = {s: e.hosts for s, e in self.connections().items() if e.hosts}
        return service_for_url(url, overrides)

    def service_for_url_or_explain(self, url: str) -> str:
        """Like service_for_url, raising ConfigurationError (naming the configured services) when unknown."""
        scheme = url.strip().split("://", 1)[0].lower() if "://" in url else "https"
        if scheme not in ("http", "https"):
            raise ConfigurationError(
                f"{printable(scheme, False)}:// URLs carry no OAuth token: only http:// and https:// URLs belong to a "
                "service."
            )
        service = self.service_for_url(url)
        if service is None:
            configured = ", ".join(sorted(self.connections())) or "none"
            raise ConfigurationError(
                f"No service is known for {_host_of(url)} (configured services: {configured}). Name the service "
                'explicitly, or add the host to that service in connections.json: "hosts": ["api.example.com"].'
            )
        return service

    def configure_connection(self, service: str, connection_name: str, identifier: str | None = None) -> Change:
        """Register (or update) which Scalekit connection serves `service`."""
        return self._write(lambda path, current: connections.save(path, service, connection_name, identifier, current))

    def remove_connection(self, service: str) -> Change:
        return self._write(lambda path, current: connections.remove(path, service, current))

    def _write(self, write: Callable[[Path, Callable[[], bool]], Change]) -> Change:
        """Write the connections.json in use; if `migrate` moved it while we waited for the lock, the new one."""
        for _ in range(5):
            path = self.connections_file
            try:
                return write(path, lambda p=path: self.connections_file == p)
            except connections.MovedError:
                continue
        raise ConfigurationError(
            f"{self.connections_file} keeps moving (is `scalekit-auth migrate` running?). Try again."
        )

    # -- the vault ---------------------------------------------------------------
    def vault(self, settings: ScalekitSettings):
        """The warm client for these credentials; a change of credentials makes a new one."""
        key = (settings.env_url, settings.client_id, settings.client_secret, settings.timeout)
        vault = self._vaults.get(key)
        if vault is not None:
            return vault
        from .vault import Vault

        with self._lock:
            vault = self._vaults.get(key)
            if vault is None:
                stale = list(self._vaults.values())
                vault = Vault(settings)
                self._vaults = {key: vault}
                for old in stale:
                    old.close()
            return vault

    def close(self) -> None:
        """Close every Scalekit client (their gRPC channels) and forget cached tokens."""
        with self._lock:
            vaults, self._vaults = list(self._vaults.values()), {}
        for vault in vaults:
            vault.close()
        self.cache.clear()

    # -- tokens --------------------------------------------------------------------
    def _fetch(self, target: Target, settings: ScalekitSettings, force: bool = False) -> ServiceCredentials:
        """One upstream lookup: credentials when ACTIVE, else AuthorizationError with a fresh link."""
        vault = self.vault(settings)
        snap = vault.account(target.connection_name, target.identifier)
        if snap is not None and snap.status == ACTIVE:
            log.debug("%s: account for %s is ACTIVE", target.service, target.identifier)
            return ServiceCredentials.from_snapshot(target.service, target.identifier, target.connection_name, snap)
        status = snap.status if snap is not None else None
        key = (settings.env_url, target.connection_name, target.identifier, _verify_url(settings))
        with self._lock:
            issued = self._links.get(key)
        if (
            issued is not None
            and issued[2] == (status or "PENDING_AUTH")  # nothing happened to the account since
            and issued[0].seconds_left > max(issued[1] / 2, issued[1] - LINK_REUSE_WINDOW)
        ):
            # Kind to Scalekit's rate limit (and its webhooks): the same still-fresh link again.
            log.debug("%s: account for %s is %s; reusing its link", target.service, target.identifier, status)
            raise AuthorizationError(**{**issued[0]._link_fields(), "status": status})
        log.debug("%s: account for %s is %s; authorization link issued", target.service, target.identifier, status)
        error = self._link_error(vault, target, status)
        with self._lock:
            self._links = {k: v for k, v in self._links.items() if v[0].seconds_left > 0}
            # the status the account has once the link exists (a first link creates it PENDING_AUTH)
            self._links[key] = (error, max(error.seconds_left, 0.0), status or "PENDING_AUTH")
        raise error

    def _link_error(
        self, vault: Any, target: Target, status: str | None, user_verify_url: str | None = None
    ) -> AuthorizationError:
        """A fresh authorization link for the target, as an AuthorizationError (not raised).

        A first connection creates the account first (get_or_create_connected_account), as
        Scalekit's docs do: a link is for an existing account. With custom user verification the
        link carries `user_verify_url` (SCALEKIT_USER_VERIFY_URL, or a waiting call's loopback
        page) and a fresh random `state`, remembered for `state_issued`."""
        if status is None and not vault.ensure_account(target.connection_name, target.identifier):
            raise UnknownConnectionError(target.service, target.connection_name)
        if user_verify_url is None:
            user_verify_url = _verify_url(vault.settings)
        state = ""
        if user_verify_url:
            import secrets

            state = secrets.token_urlsafe(24)
        link = vault.authorization_link(target.connection_name, target.identifier, user_verify_url, state)
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

    def get_credentials(
        self, service: str, identifier: str | None = None, *, force_refresh: bool = False
    ) -> ServiceCredentials:
        """Credentials of an ACTIVE account (cached in memory), or AuthorizationError with a fresh link."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        cache = self.cache
        if (cache.margin, cache.default_ttl, cache.max_entries) != (
            settings.cache_margin,
            settings.cache_ttl,
            settings.cache_max,
        ):
            cache.margin, cache.default_ttl, cache.max_entries = (
                settings.cache_margin,
                settings.cache_ttl,
                settings.cache_max,
            )
            cache.trim()

        def fetch() -> ServiceCredentials:
            with deadline(settings.timeout):
                return self._fetch(target, settings, force_refresh)

        creds = cache.get(
            (settings.env_url, target.connection_name, target.identifier),
            fetch,
            _expiry,
            force=force_refresh or not settings.cache,
            store=settings.cache,
        )
        if creds.service != target.service:  # two services sharing one connection
            creds = dataclasses.replace(creds, service=target.service)
        return creds

    def cached_credentials(self, service: str, identifier: str | None = None) -> ServiceCredentials | None:
        """The credentials if the memory cache holds fresh ones, else None: no network, no waiting
        (what the async API checks on the event loop before going to a thread)."""
        try:
            target = self.resolve(service, identifier)
            settings = self.settings()
        except ConfigurationError:
            return None  # the full call reports it
        if not settings.cache:
            return None
        creds = self.cache.peek((settings.env_url, target.connection_name, target.identifier))
        if creds is not None and creds.service != target.service:
            creds = dataclasses.replace(creds, service=target.service)
        return creds

    def remember(self, creds: ServiceCredentials) -> None:
        """Keep credentials another source (the agent) handed out in this process's memory cache."""
        settings = self.settings()
        if settings.cache:
            key = (settings.env_url, creds.connection_name, creds.identifier)
            self.cache.get(key, lambda: creds, _expiry, force=True, store=True)

    def get_token(self, service: str, identifier: str | None = None, *, force_refresh: bool = False) -> str:
        """The access token (or single API key) for `service`."""
        return self.get_credentials(service, identifier, force_refresh=force_refresh).token

    def invalidate(self, service: str, identifier: str | None = None) -> int:
        """Forget cached credentials of `service` (one identifier, or all when None)."""
        name = connections.normalize_service(service)
        entry = self.connections().get(name)
        if entry is None:
            return 0
        connection_name = entry.connection_name
        ident = connections.check_identifier(identifier) if identifier is not None else None
        return self.cache.invalidate(lambda key: key[1] == connection_name and (ident is None or key[2] == ident))

    def account_status(self, service: str, identifier: str | None = None) -> AccountStatus:
        """The account's live status from Scalekit (details only: no credentials are fetched)."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        with deadline(settings.timeout):
            snap = self.vault(settings).account_status(target.connection_name, target.identifier)
        if snap is None:
            return AccountStatus(target, None)
        return AccountStatus(target, snap.status, snap.expires_at, snap.updated_at)

    def authorization_link(
        self, service: str, identifier: str | None = None, user_verify_url: str | None = None
    ) -> AuthorizationError:
        """A fresh authorization link, as the AuthorizationError get_token would raise (not raised).

        `user_verify_url` overrides SCALEKIT_USER_VERIFY_URL for this link (a waiting call's own page)."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        vault = self.vault(settings)
        with deadline(settings.timeout):
            snap = vault.account_status(target.connection_name, target.identifier)
            return self._link_error(vault, target, snap.status if snap is not None else None, user_verify_url)

    def forget_link(self, service: str, identifier: str | None = None) -> None:
        """Issue a new link next time (a wait ended without the user connecting: the link may be spent)."""
        target = self.resolve(service, identifier)
        with self._lock:
            self._links = {
                k: v for k, v in self._links.items() if k[1:3] != (target.connection_name, target.identifier)
            }

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

    def verify_user(self, auth_request_id: str, identifier: str) -> str:
        """Complete a custom user verification (verify_connected_account_user); Scalekit's done page URL."""
        from .connections import check_identifier

        ident = check_identifier(identifier)
        if not 0 < len(auth_request_id) <= AUTH_REQUEST_ID_MAX:
            raise UsageError(
                f"An auth_request_id has 1 to {AUTH_REQUEST_ID_MAX} characters, not {len(auth_request_id)}."
            )
        settings = self.settings()
        with deadline(settings.timeout):
            return self.vault(settings).verify_user(auth_request_id, ident)

    # -- batch -----------------------------------------------------------------------
    def many(self, services: Iterable[str], one: Callable[[str], V]) -> dict[str, V]:
        """Run `one(service)` for each service concurrently; BatchError if any fails."""
        if isinstance(services, (str, bytes)):
            raise TypeError(
                f"expected a list of services, e.g. [{services!r}], not a single string (for one service use get_token)"
            )
        names = list(dict.fromkeys(services))
        if not names:
            return {}
        results: dict[str, V] = {}
        errors: dict[str, BaseException] = {}
        if len(names) == 1:
            try:
                results[names[0]] = one(names[0])
            except Exception as err:  # noqa: BLE001 - reported per service below
                errors[names[0]] = err
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(MAX_BATCH_WORKERS, len(names))) as pool:
                futures = {name: pool.submit(one, name) for name in names}
                for name, future in futures.items():
                    try:
                        results[name] = future.result()
                    except Exception as err:  # noqa: BLE001 - reported per service below
                        errors[name] = err
        if errors:
            ok = {n: results[n] for n in names if n in results}
            raise BatchError(ok, {n: errors[n] for n in names if n in errors})
        return {n: results[n] for n in names}

    def get_tokens(
        self, services: Iterable[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> dict[str, str]:
        """Tokens for several services, fetched concurrently, in the order given.

        If any fails, raises BatchError: `.tokens` holds the ones that worked and
        `.errors` the exception of each one that did not. A single string is refused
        (TypeError): it would otherwise be read letter by letter.
        """
        return self.many(services, lambda s: self.get_token(s, identifier, force_refresh=force_refresh))

    def get_credentials_many(
        self, services: Iterable[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> dict[str, ServiceCredentials]:
        """Like get_tokens, returning ServiceCredentials."""
        return self.many(services, lambda s: self.get_credentials(s, identifier, force_refresh=force_refresh))


def _verify_url(settings: ScalekitSettings) -> str:
    """The user_verify_url for links issued outside a waiting call."""
    configured = settings.user_verify_url
    return LOOPBACK_UNSERVED if configured == LOOPBACK else configured


class _Locations(NamedTuple):
    state: str
    connections: str
    env_files: tuple[str, ...]
    identity: str


#: Every variable that changes where the files are (see TokenBroker._locations).
LOCATION_VARS = tuple(dict.fromkeys((*STATE_VARS, *IDENTITY_VARS, "XDG_RUNTIME_DIR")))
_SHELL_AT = LOCATION_VARS.index("OPENCLAW_SHELL")
#: How long a resolved set of locations is reused while nothing that names them changed.
LOCATIONS_TTL = 1.0


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""


def _defines_secret(path: str) -> bool:
    from .config import CLIENT_SECRET_VAR, read_env_file

    try:
        return bool(read_env_file(Path(path)).get(CLIENT_SECRET_VAR))
    except ConfigurationError:
        return False


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url if "://" in url else "https://" + url).netloc or repr(url)
    except ValueError:
        return repr(url)


def _expiry(creds: ServiceCredentials):
    return creds.expires_at
