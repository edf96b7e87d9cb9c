"""TokenBroker: the one explicit, thread-safe object that turns a service name into a token.

Flow (one way only): resolve configuration -> vault (one warm Scalekit client per set of
credentials) -> SDK. Configuration problems are found before the SDK is imported.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import connections
from .config import ScalekitSettings, load_settings, skill_dir
from .connections import Change, ConnectionEntry
from .credentials import ServiceCredentials
from .errors import AuthorizationError, ServiceNotConfiguredError, UnknownConnectionError
from .identity import agent_name

log = logging.getLogger("scalekit_auth")

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class Target:
    """A fully resolved request: which connection and which user's account."""

    service: str
    connection_name: str
    identifier: str
    identifier_source: str


class TokenBroker:
    """Resolves services, keeps warm Scalekit clients, and fetches credentials.

    `directory` and `environ` default to the skill folder and `os.environ`, read on
    every call, so edits to .env or connections.json take effect immediately.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None):
        self._directory = Path(directory) if directory is not None else None
        self._environ = environ
        self._lock = threading.Lock()
        self._vaults: dict[tuple[str, str, str, float], object] = {}

    def __repr__(self) -> str:
        return f"TokenBroker(directory={str(self.directory)!r}, clients={len(self._vaults)})"

    # -- configuration ---------------------------------------------------------
    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @property
    def directory(self) -> Path:
        return self._directory if self._directory is not None else skill_dir(self.environ)

    @property
    def connections_file(self) -> Path:
        return self.directory / connections.FILE_NAME

    def connections(self) -> dict[str, ConnectionEntry]:
        return connections.load(self.connections_file)

    def resolve(self, service: str, identifier: str | None = None) -> Target:
        """Service -> connection name and identifier, or ServiceNotConfiguredError."""
        name = connections.normalize_service(service)
        entries = self.connections()
        entry = entries.get(name)
        if entry is None:
            raise ServiceNotConfiguredError(name, sorted(entries), str(self.connections_file))
        if identifier is not None:
            return Target(name, entry.connection_name, connections.check_identifier(identifier), "argument")
        if entry.identifier:
            return Target(name, entry.connection_name, entry.identifier, str(self.connections_file))
        ident, source = agent_name(self.environ)
        return Target(name, entry.connection_name, connections.check_identifier(ident), source)

    def settings(self) -> ScalekitSettings:
        return load_settings(self.directory, self.environ)

    def configure_connection(self, service: str, connection_name: str, identifier: str | None = None) -> Change:
        """Register (or update) which Scalekit connection serves `service`."""
        return connections.save(self.connections_file, service, connection_name, identifier)

    def remove_connection(self, service: str) -> Change:
        return connections.remove(self.connections_file, service)

    # -- the vault ---------------------------------------------------------------
    def vault(self, settings: ScalekitSettings):
        """The warm client for these credentials; a change of credentials makes a new one."""
        from .vault import Vault

        key = (settings.env_url, settings.client_id, settings.client_secret, settings.timeout)
        with self._lock:
            vault = self._vaults.get(key)
            if vault is None:
                stale = list(self._vaults.values())
                self._vaults = {key: Vault(settings)}
                vault = self._vaults[key]
                for old in stale:
                    old.close()
            return vault

    def close(self) -> None:
        """Close every Scalekit client (their gRPC channels)."""
        with self._lock:
            vaults, self._vaults = list(self._vaults.values()), {}
        for vault in vaults:
            vault.close()

    # -- tokens --------------------------------------------------------------------
    def get_credentials(self, service: str, identifier: str | None = None) -> ServiceCredentials:
        """Credentials of an ACTIVE account, or AuthorizationError carrying a fresh link."""
        target = self.resolve(service, identifier)
        settings = self.settings()
        vault = self.vault(settings)
        snap = vault.account(target.connection_name, target.identifier)
        if snap is not None and snap.status == ACTIVE:
            log.debug("%s: account for %s is ACTIVE", target.service, target.identifier)
            return ServiceCredentials.from_snapshot(target.service, target.identifier, target.connection_name, snap)
        status = snap.status if snap is not None else None
        link = vault.authorization_link(target.connection_name, target.identifier)
        if link is None:
            raise UnknownConnectionError(target.service, target.connection_name)
        log.debug("%s: account for %s is %s; authorization link issued", target.service, target.identifier, status)
        raise AuthorizationError(
            target.service,
            link[0],
            link[1],
            identifier=target.identifier,
            connection_name=target.connection_name,
            status=status,
        )

    def get_token(self, service: str, identifier: str | None = None) -> str:
        """The access token (or single API key) for `service`."""
        return self.get_credentials(service, identifier).token
