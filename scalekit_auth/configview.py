"""The configuration a call is answered with: which files are read, what they say, and whom a
service resolves to (connection name and identifier). Writes to connections.json go here too.

Files are re-read only when they change (mtime/size/inode), and their locations are resolved
at most once a second while the variables naming them are unchanged, so a warm call costs
microseconds and an edit still takes effect at once.
"""

from __future__ import annotations

import os
import sys
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import connections
from .config import (
    SETTINGS_VARS,
    ScalekitSettings,
    env_file_mode_warning,
    env_files,
    file_signature,
    load_settings,
)
from .connections import Change, ConnectionEntry
from .display import printable
from .errors import ConfigurationError, ServiceNotConfiguredError, URLRefusedError
from .identity import IDENTITY_VARS, agent_name, identity_file
from .invocation import command
from .paths import STATE_VARS, connections_path, state_dir

if TYPE_CHECKING:
    from .services import URL

V = TypeVar("V")


@dataclass(frozen=True)
class Target:
    """A fully resolved request: which connection and which user's account."""

    service: str
    connection_name: str
    identifier: str
    identifier_source: str


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


class ConfigView:
    """What the configuration says now, for `directory` and `environ` (default: the state folder
    and `os.environ`, consulted on every call)."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self._directory = os.fspath(directory) if directory is not None else None
        self._environ = environ
        self._memo = _Memo()
        self._where: tuple[tuple[Any, ...], float, _Locations] | None = None
        self._warned: set[str] = set()

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

    def default_identifier(self) -> str:
        """The identifier a service without one of its own uses: the agent's name, checked."""
        ident, source = self.agent_identity()
        return self._checked_agent_name(ident, source)

    def agent_identity(self) -> tuple[str, str]:
        """(the agent's name as OpenClaw's IDENTITY.md gives it, where it came from)."""
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
        ident, source = self.agent_identity()
        return Target(name, entry.connection_name, self._checked_agent_name(ident, source, name), source)

    @staticmethod
    def _checked_agent_name(ident: str, source: str, service: str = "SERVICE") -> str:
        """The agent's name as an identifier, or an error that says which file it came from."""
        try:
            return connections.check_identifier(ident)
        except ConfigurationError as err:
            raise ConfigurationError(
                f"The agent name read from {source} cannot be used as the identifier: {err} Fix the name there, "
                f"or give this service an identifier: {command('config', service, '<connection> --identifier NAME')}"
            ) from None

    def url_target(self, url: str, *, as_given: bool = False) -> URL:
        """The URL as a token may go to it, with its service (None when unknown): services.check_url
        with the "hosts" listed in connections.json. URLRefusedError when no token may go there."""
        from .services import check_url

        return check_url(url, {s: e.hosts for s, e in self.connections().items() if e.hosts}, as_given=as_given)

    def service_for_url(self, url: str) -> str | None:
        """The service an API URL belongs to: connections.json "hosts" first, then the built-in table
        (None also for a URL no token may go to)."""
        try:
            return self.url_target(url).service
        except URLRefusedError:
            return None

    def service_for_url_or_explain(self, url: str, *, as_given: bool = False) -> str:
        """Like service_for_url, raising URLRefusedError (what is wrong with the URL) or ConfigurationError
        (naming the configured services) when no token goes there. `as_given`: see services.parse_url."""
        return self.explain_unknown(self.url_target(url, as_given=as_given))

    def explain_unknown(self, target: URL) -> str:
        """The target's service, or ConfigurationError naming the configured services."""
        if target.service is None:
            configured = ", ".join(sorted(self.connections())) or "none"
            raise ConfigurationError(
                f"No service is known for {printable(target.host, False)} (configured services: {configured}). "
                'Name the service explicitly, or add the host to that service in connections.json: "hosts": '
                '["api.example.com"].'
            )
        return target.service

    def configure_connection(self, service: str, connection_name: str, identifier: str | None = None) -> Change:
        """Register (or update) which Scalekit connection serves `service`."""
        return self._write(lambda path, current: connections.save(path, service, connection_name, identifier, current))

    def remove_connection(self, service: str) -> Change:
        return self._write(lambda path, current: connections.remove(path, service, current))

    def _write(self, write: Callable[[Path, Callable[[], bool]], Change]) -> Change:
        """Write the connections.json in use; if `migrate` moved it while we waited for the lock, the new one."""
        for _ in range(5):
            path = self.connections_file

            def still_in_use(p: Path = path) -> bool:
                return self.connections_file == p

            try:
                return write(path, still_in_use)
            except connections.MovedError:
                continue
        raise ConfigurationError(
            f"{self.connections_file} keeps moving (is `{command('migrate')}` running?). Try again."
        )


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
