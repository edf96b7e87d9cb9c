"""TokenBroker: the in-process source of tokens, one explicit, thread-safe object.

Flow (one way only): configuration (ConfigView: files, settings, whom a service resolves to)
-> memory cache -> vault (one warm Scalekit client per set of credentials) -> SDK. An account
that is not ACTIVE gets an authorization link from the LinkIssuer. Configuration problems are
found before the SDK is imported. Whether a caller is answered by this broker or by the local
agent is decided elsewhere, once (sources.Road).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from . import connections
from .cache import TokenCache
from .config import ScalekitSettings
from .configview import ConfigView, Target
from .credentials import ServiceCredentials
from .deadlines import deadline
from .errors import AuthorizationError, BatchError, ConfigurationError, UsageError
from .invocation import command
from .links import LinkIssuer
from .logs import get_logger

if TYPE_CHECKING:
    from .vault import AppConnection

__all__ = ["AccountStatus", "ConnectionMatches", "Target", "TokenBroker"]

log = get_logger("scalekit_auth")

ACTIVE = "ACTIVE"
MAX_BATCH_WORKERS = 16
#: VerifyConnectedAccountUserRequest.auth_request_id: 1 to 1000 characters (the SDK's descriptors).
AUTH_REQUEST_ID_MAX = 1000

V = TypeVar("V")


@dataclass(frozen=True)
class AccountStatus:
    """What `status`/`list --status` show: never a credential."""

    target: Target
    status: str | None  # None: Scalekit has no account for this identifier yet
    expires_at: _dt.datetime | None = None  # the access token's expiry, when known
    updated_at: _dt.datetime | None = None  # when Scalekit last changed the account


class ConnectionMatches(NamedTuple):
    """The connections at Scalekit that may serve a service (TokenBroker.find_connections)."""

    provider: str  # the connector key the service name stands for (GMAIL)
    matches: list[AppConnection]  # of that provider, or named like the service; else the near matches
    near: bool  # True: nothing matched exactly, `matches` are near matches (offer them, never pick one)
    listed: list[AppConnection]  # every connection of the environment, when they were all listed (else [])


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())


class TokenBroker(ConfigView):
    """The configuration view, plus the memory cache, the warm Scalekit clients and the links.

    `directory` and `environ` default to the state folder and `os.environ`, consulted on
    every call, so edits to .env or connections.json take effect immediately.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        super().__init__(directory, environ)
        self._lock = threading.Lock()
        self._vaults: dict[tuple[str, str, str, float], Any] = {}
        self.links = LinkIssuer()
        self.cache: TokenCache[ServiceCredentials] = TokenCache()

    def __repr__(self) -> str:
        return f"TokenBroker(directory={str(self.directory)!r}, clients={len(self._vaults)}, cache={self.cache!r})"

    # -- the vault ---------------------------------------------------------------
    def vault(self, settings: ScalekitSettings):
        """The warm client for these credentials; a change of credentials makes a new one."""
        key = (settings.env_url, settings.client_id, settings.client_secret, settings.timeout)
        vault = self._vaults.get(key)
        if vault is not None:
            return vault
        from .vault import Vault, load_sdk

        load_sdk()  # before any deadline starts: a first-run private install may take a minute
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
        raise self.links.for_inactive(vault, target, snap.status if snap is not None else None)

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
            self.vault(settings)  # the SDK is loaded (installed on a first run) before the clock starts
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

        def doomed(key: Hashable) -> bool:
            # The cache takes any hashable key; this broker's are (env_url, connection_name, identifier).
            k = cast("tuple[str, str, str]", key)
            return k[1] == connection_name and (ident is None or k[2] == ident)

        return self.cache.invalidate(doomed)

    def account_status(self, service: str, identifier: str | None = None) -> AccountStatus:
        """The account's live status from Scalekit (details only: no credentials are fetched)."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        vault = self.vault(settings)
        with deadline(settings.timeout):
            snap = vault.account_status(target.connection_name, target.identifier)
        if snap is None:
            return AccountStatus(target, None)
        return AccountStatus(target, snap.status, snap.expires_at, snap.updated_at)

    def account_statuses(self, services: Iterable[str], identifier: str | None = None) -> dict[str, AccountStatus]:
        """account_status of several services, in the order given, in as few calls as Scalekit
        allows: the services are grouped by identifier, and each group asks for the accounts of up
        to 20 connections at once (Vault.list_accounts), so N services of one identifier cost
        ceil(N/20) calls instead of N. Where the listing cannot answer, the accounts are looked up
        one by one. Raises BatchError (`.results`, `.errors`) if any service fails, like many()."""
        if isinstance(services, (str, bytes)):
            raise TypeError(f"expected a list of services, e.g. [{services!r}], not a single string")
        names = list(dict.fromkeys(services))
        results: dict[str, AccountStatus] = {}
        errors: dict[str, BaseException] = {}
        targets: dict[str, Target] = {}
        for name in names:
            try:
                targets[name] = self.resolve(name, identifier)
            except Exception as err:  # noqa: BLE001 - reported per service below
                errors[name] = err
        if targets:
            try:
                settings = self.settings()
                vault = self.vault(settings)
            except Exception as err:  # noqa: BLE001 - the same failure for every service
                errors.update(dict.fromkeys(targets, err))
                targets = {}
        chunks: list[list[tuple[str, Target]]] = []
        by_identifier: dict[str, list[tuple[str, Target]]] = {}
        for name, target in targets.items():
            by_identifier.setdefault(target.identifier, []).append((name, target))
        from .vault import LIST_NAMES_MAX

        for group in by_identifier.values():
            connections_of_group = list(dict.fromkeys(t.connection_name for _, t in group))
            for start in range(0, len(connections_of_group), LIST_NAMES_MAX):
                part = set(connections_of_group[start : start + LIST_NAMES_MAX])
                chunks.append([(n, t) for n, t in group if t.connection_name in part])

        def one_chunk(chunk: list[tuple[str, Target]]) -> dict[str, AccountStatus]:
            ident = chunk[0][1].identifier
            with deadline(settings.timeout):
                found = vault.list_accounts([t.connection_name for _, t in chunk], ident)
                if found is None:  # the listing cannot answer: one lookup per account
                    found = {}
                    for _, t in chunk:
                        snap = vault.account_status(t.connection_name, t.identifier)
                        if snap is not None:
                            found[(t.connection_name, t.identifier)] = snap
            out = {}
            for name, t in chunk:
                snap = found.get((t.connection_name, t.identifier))
                out[name] = (
                    AccountStatus(t, None)
                    if snap is None
                    else AccountStatus(t, snap.status, snap.expires_at, snap.updated_at)
                )
            return out

        if chunks:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(MAX_BATCH_WORKERS, len(chunks))) as pool:
                futures = [(chunk, pool.submit(one_chunk, chunk)) for chunk in chunks]
                for chunk, future in futures:
                    try:
                        results.update(future.result())
                    except Exception as err:  # noqa: BLE001 - reported per service below
                        errors.update({name: err for name, _ in chunk})
        if errors:
            ok = {n: results[n] for n in names if n in results}
            raise BatchError(ok, {n: errors[n] for n in names if n in errors})
        return {n: results[n] for n in names}

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
            return self.links.issue(vault, target, snap.status if snap is not None else None, user_verify_url)

    # -- the environment's connections, and revoking an account ----------------------------------
    def app_connections(self, provider: str | None = None, query: str | None = None) -> list[AppConnection]:
        """The environment's connections at Scalekit (name, provider, status, auth mode), every page;
        `provider` keeps one connector's (`GMAIL`), `query` (3 to 100 characters) searches names and providers."""
        settings = self.settings()
        return cast("list[AppConnection]", self.vault(settings).list_connections(provider, query))

    def find_connections(self, service: str) -> ConnectionMatches:
        """The connections that may serve `service`, under one deadline: first those of the connector
        the name stands for (`gmail` -> GMAIL, Scalekit filters), else, from the whole listing, those
        named like the service, else near matches (a provider or name that starts with it)."""
        from .services import provider_key

        name = connections.normalize_service(service)
        key = provider_key(name)
        settings = self.settings()
        vault = self.vault(settings)
        with deadline(settings.timeout):
            if key:
                try:
                    exact = vault.list_connections(provider=key)
                except UsageError:  # a Scalekit that refuses this filter: look through them all
                    exact = []
                if exact:
                    return ConnectionMatches(key, exact, False, [])
            listed: list[AppConnection] = vault.list_connections()
        wanted = _alnum(name)
        named = [c for c in listed if _alnum(c.name) == wanted]
        if named:
            return ConnectionMatches(key, named, False, listed)
        near = [
            c
            for c in listed
            if len(wanted) >= 3 and (_alnum(c.provider).startswith(wanted) or _alnum(c.name).startswith(wanted))
        ]
        return ConnectionMatches(key, near, True, listed)

    def check_connection(self, connection_name: str) -> tuple[AppConnection | None, list[AppConnection]]:
        """(the connection named exactly so, or None; every connection when they had to be listed):
        a search by the name first, then the whole listing, so the answer never hangs on how
        Scalekit's search matches."""
        name = connections.check_connection_name(connection_name)
        settings = self.settings()
        vault = self.vault(settings)
        with deadline(settings.timeout):
            if 3 <= len(name) <= 100:
                try:
                    hits = [c for c in vault.list_connections(query=name) if c.name == name]
                except UsageError:
                    hits = []
                if hits:
                    return hits[0], []
            listed: list[AppConnection] = vault.list_connections()
        return next((c for c in listed if c.name == name), None), listed

    def disconnect(self, service: str, identifier: str | None = None) -> bool:
        """Revoke the service's connected account at Scalekit (delete_connected_account) and forget
        its cached credentials and link here; False when Scalekit had no such account. The entry in
        connections.json stays (remove_connection forgets it)."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        revoked = bool(self.vault(settings).delete_account(target.connection_name, target.identifier))
        self.invalidate(target.service, target.identifier)
        self.links.forget(target.connection_name, target.identifier)
        return revoked

    # -- calls made by Scalekit for the account (the token never comes here) -------------------
    def _as_account(self, service: str, identifier: str | None, call: Callable[[Any, Target], V | None]) -> V:
        """`call(vault, target)` for the account; when Scalekit says there is no ACTIVE account,
        the same AuthorizationError (with its link) get_token raises, or UnknownConnectionError."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        vault = self.vault(settings)
        result = call(vault, target)
        if result is not None:
            return result
        with deadline(settings.timeout):
            snap = vault.account_status(target.connection_name, target.identifier)
            if snap is not None and snap.status == ACTIVE:
                from .errors import ScalekitServiceError

                raise ScalekitServiceError(
                    f"Scalekit says the {target.service} account for '{target.identifier}' is not usable, though its "
                    "status is ACTIVE. Try again; if it persists, authorize it again: "
                    f"{command('auth', target.service, '--force')}"
                )
            raise self.links.for_inactive(vault, target, snap.status if snap is not None else None)

    def proxy_request(self, service: str, identifier: str | None, path: str, **request: Any) -> Any:
        """The provider's answer to `path`, called through Scalekit's proxy as the account
        (Vault.proxy_request; the token stays at Scalekit)."""
        return self._as_account(
            service, identifier, lambda v, t: v.proxy_request(t.connection_name, t.identifier, path, **request)
        )

    def list_tools(self, service: str, identifier: str | None = None, query: str = "") -> list[dict[str, Any]]:
        """Scalekit's tools for the service's connection, with their input schemas."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        vault = self.vault(settings)
        found = vault.list_tools(target.connection_name, target.identifier, query)
        if found is None:
            from .errors import UnknownConnectionError

            raise UnknownConnectionError(target.service, target.connection_name)
        return found

    def execute_tool(
        self, service: str, identifier: str | None, tool_name: str, tool_input: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run one of Scalekit's tools as the account: its result, never a token."""
        return self._as_account(
            service, identifier, lambda v, t: v.execute_tool(t.connection_name, t.identifier, tool_name, tool_input)
        )

    def forget_link(self, service: str, identifier: str | None = None) -> None:
        """Issue a new link next time (a wait ended without the user connecting: the link may be spent)."""
        target = self.resolve(service, identifier)
        self.links.forget(target.connection_name, target.identifier)

    def state_issued(self, state: str, user_verify_url: str) -> str | None:
        """See LinkIssuer.state_issued (the loopback verify page's check)."""
        return self.links.state_issued(state, user_verify_url)

    def state_used(self, state: str) -> None:
        self.links.state_used(state)

    def verify_user(self, auth_request_id: str, identifier: str) -> str:
        """Complete a custom user verification (verify_connected_account_user); Scalekit's done page URL."""
        from .connections import check_identifier

        ident = check_identifier(identifier)
        if not 0 < len(auth_request_id) <= AUTH_REQUEST_ID_MAX:
            raise UsageError(
                f"An auth_request_id has 1 to {AUTH_REQUEST_ID_MAX} characters, not {len(auth_request_id)}."
            )
        settings = self.settings()
        vault = self.vault(settings)
        with deadline(settings.timeout):
            return vault.verify_user(auth_request_id, ident)

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


def _expiry(creds: ServiceCredentials):
    return creds.expires_at
