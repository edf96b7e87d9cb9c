"""Where a token comes from: one contract, two sources, and the one rule that chooses between them.

    TokenSource    credentials(services, identifier, force_refresh) -> [ServiceCredentials]
                   invalidate(service, identifier) -> int;  close()
    LocalSource    in-process: configuration -> memory cache -> vault -> Scalekit SDK (TokenBroker)
    AgentSource    the warm local agent over its private socket (standard library only)
    Road           the rule: ask the agent when one may be used, else do the work here

Every caller that wants a token (the Python API, the command line, the async API, the HTTP
auth adapters) goes through a Road; nothing else decides between the agent and the
in-process path. The fast path of `get_token.py` (fastpath.py) is the one documented shortcut
for start-up time and follows the same rule: the same socket, the same per-process verdict
(wire.usable / wire.give_up) and the same start-up (agent.autostart).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from .errors import BatchError

if TYPE_CHECKING:
    from .broker import TokenBroker
    from .credentials import ServiceCredentials


class TokenSource(Protocol):
    """What a token comes from. Errors are the library's own exceptions, the same from every
    source: one service raises its error, several raise BatchError (`.results`, `.errors`)."""

    def credentials(
        self, services: Sequence[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> list[ServiceCredentials]:
        """Credentials for each service (duplicates dropped), in the order given."""
        ...

    def invalidate(self, service: str, identifier: str | None = None) -> int:
        """Forget cached credentials of `service` (one identifier, or all); how many were dropped."""
        ...

    def close(self) -> None:
        """Release connections and wipe cached tokens."""
        ...


def _unique(services: Iterable[str]) -> list[str]:
    if isinstance(services, (str, bytes)):
        raise TypeError(
            f"expected a list of services, e.g. [{services!r}], not a single string (for one service use get_token)"
        )
    return list(dict.fromkeys(services))


class LocalSource:
    """In-process: the TokenBroker's configuration, memory cache and Scalekit client."""

    def __init__(self, broker: TokenBroker) -> None:
        self.broker = broker

    def credentials(
        self, services: Sequence[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> list[ServiceCredentials]:
        names = _unique(services)
        if len(names) == 1:
            return [self.broker.get_credentials(names[0], identifier, force_refresh=force_refresh)]
        return list(self.broker.get_credentials_many(names, identifier, force_refresh=force_refresh).values())

    def invalidate(self, service: str, identifier: str | None = None) -> int:
        return self.broker.invalidate(service, identifier)

    def close(self) -> None:
        self.broker.close()


class AgentSource:
    """The local agent. AgentUnusable (agent_client) when none can answer for this caller."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def credentials(
        self, services: Sequence[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> list[ServiceCredentials]:
        from . import agent_client

        return agent_client.credentials(_unique(services), identifier, force_refresh, self._environ)

    def invalidate(self, service: str, identifier: str | None = None) -> int:
        from . import agent_client

        agent_client.invalidate(service, identifier, self._environ)
        return 0

    def close(self) -> None:
        pass  # the agent outlives its callers; `scalekit-auth agent stop` ends it


class Road:
    """The one fallback rule, decided here and nowhere else:

    1. agents turned off (SCALEKIT_AUTH_AGENT=0), or this process found the agent unusable
       before (stuck, another protocol, other settings): in-process;
    2. else ask the agent; its answer, errors included, is the answer;
    3. nothing listens and this is a short-lived shell call (`may_start`), or a host process that
       lacks the skill's packages (its sys.path is never changed): start the agent once
       (agent.autostart: under a lock, never two; it runs in the private environment), then ask it;
    4. anything else: in-process, at once.

    A long-lived process (`remember`) keeps what the agent handed out in its own memory cache,
    so its warm hits cost microseconds, and never starts an agent (it would outlive nobody)."""

    def __init__(
        self,
        local: LocalSource,
        environ: Mapping[str, str] | None = None,
        *,
        may_start: bool = False,
        remember: bool = True,
        agent: bool = True,
    ) -> None:
        self.local = local
        self.agent = AgentSource(environ)
        self.use_agent = agent
        self._environ = environ
        self.may_start = may_start
        self.remember = remember
        #: Why the last call was answered in-process (None: by the agent); for --debug and tests.
        self.last_reason: str | None = None

    @property
    def broker(self) -> TokenBroker:
        return self.local.broker

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def credentials(
        self, services: Sequence[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> list[ServiceCredentials]:
        from .errors import MissingDependencyError

        names = _unique(services)
        if not names:
            return []
        if self.remember and not force_refresh:
            try:
                hits = [self.broker.cached_credentials(n, identifier) for n in names]
            except MissingDependencyError:
                hits = [None]  # a host without the packages: only the agent can answer
            if all(h is not None for h in hits):
                return hits  # type: ignore[return-value]
        found = self._from_agent(names, identifier, force_refresh)
        if found is None:
            return self.local.credentials(names, identifier, force_refresh=force_refresh)
        if self.remember:
            try:
                for creds in found:
                    self.broker.remember(creds)
            except MissingDependencyError:
                pass
        return found

    @staticmethod
    def _local_possible() -> bool:
        """Whether this process can do the work itself: one of ours (it may load the private
        packages), or a host that has every package. Otherwise the agent, running in the private
        environment, is the only way, and may be started even by a long-lived process."""
        from . import bootstrap

        return bootstrap.OWN_PROCESS or bootstrap.packages_here()

    def _from_agent(
        self, names: list[str], identifier: str | None, force_refresh: bool
    ) -> list[ServiceCredentials] | None:
        from . import paths

        env = self._env()
        if not self.use_agent or not paths.agent_enabled(env):
            self.last_reason = "agents are turned off"
            return None
        from .agent_client import AgentUnusable

        for attempt in range(2):
            try:
                found = self.agent.credentials(names, identifier, force_refresh=force_refresh)
                self.last_reason = None
                return found
            except AgentUnusable as why:
                self.last_reason = str(why)
                if attempt or not (why.absent and (self.may_start or not self._local_possible())):
                    return None
            from .agent import autostart

            if not autostart(env):
                self.last_reason = "no agent could be started"
                return None
        return None

    def invalidate(self, service: str, identifier: str | None = None) -> int:
        """Forget it here and in a running agent."""
        dropped = self.local.invalidate(service, identifier)
        from . import paths

        if self.use_agent and paths.agent_enabled(self._env()):
            self.agent.invalidate(service, identifier)
        return dropped

    def token(self, service: str, identifier: str | None = None, *, force_refresh: bool = False) -> str:
        """The access token (or single API key) for `service`."""
        return self.credentials([service], identifier, force_refresh=force_refresh)[0].token

    def close(self) -> None:
        self.local.close()

    def tokens(
        self, services: Iterable[str], identifier: str | None = None, *, force_refresh: bool = False
    ) -> dict[str, str]:
        """{service: token} in order; BatchError (with `.tokens`) if any fails."""
        from .errors import ScalekitAuthError

        names = _unique(services)
        try:
            found = self.credentials(names, identifier, force_refresh=force_refresh)
        except BatchError as err:
            tokens, errors = _split_tokens(err.results)
            errors.update(err.errors)
        except ScalekitAuthError as err:
            if len(names) != 1:
                raise
            tokens, errors = {}, {names[0]: err}
        else:
            tokens, errors = _split_tokens(dict(zip(names, found, strict=True)))
        if errors:
            raise BatchError(tokens, {n: errors[n] for n in names if n in errors})
        return tokens


def _split_tokens(found: Mapping[str, ServiceCredentials]) -> tuple[dict[str, str], dict[str, BaseException]]:
    from .errors import ScalekitAuthError

    tokens: dict[str, str] = {}
    errors: dict[str, BaseException] = {}
    for service, creds in found.items():
        try:
            tokens[service] = creds.token
        except ScalekitAuthError as err:
            errors[service] = err
    return tokens, errors


def road_for(broker: TokenBroker | None) -> Road:
    """The process-wide road for None; else a road over that broker (an agent is asked only when
    the broker reads the same files and environment as this process)."""
    from .api import default_road

    if broker is None:
        return default_road()
    road = default_road()
    if broker is road.broker:
        return road
    return Road(LocalSource(broker), broker.environ, agent=broker.follows_process)
