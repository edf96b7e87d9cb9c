"""Talk to a running scalekit-auth agent. Standard library only: no Scalekit SDK on this path.

Every function returns None when no usable agent answers (none running, it died, it serves
a different configuration, a protocol problem): the caller then does the work in-process.
An answer that *is* an error (authorization needed, not configured, ...) is raised as the
same exception the in-process path would raise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from . import paths
from .errors import ConfigurationError, ScalekitAuthError, from_wire
from .wire import ACK_TIMEOUT, PROTOCOL, exchange, trusted_socket


class AgentNotAnsweringError(ConfigurationError):
    """Something holds our agent's socket (it is ours, the peer is our user) but does not answer."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"the agent (pid {pid})" if pid else "the agent"
        super().__init__(
            f"{who} at {path} is not answering (stopped or overloaded). "
            f"Resume or end it ({f'kill {pid}' if pid else 'kill it'}), then run: scalekit-auth agent start"
        )


def _timeout(env: Mapping[str, str]) -> float:
    """Long enough for the agent's own Scalekit calls (and their retries) to finish."""
    try:
        scalekit_timeout = float(env.get("SCALEKIT_TIMEOUT", "") or 10)
    except ValueError:
        scalekit_timeout = 10.0
    return min(max(scalekit_timeout, 1.0), 300.0) * 3 + 5


def call(
    message: dict[str, Any],
    environ: Mapping[str, str] | None = None,
    timeout: float | None = None,
    *,
    raise_if_stuck: bool = False,
) -> dict | None:
    """Send one request; the agent's reply, or None when there is no usable agent.

    An agent that does not acknowledge within ACK_TIMEOUT counts as unusable (None), or raises
    AgentNotAnsweringError with `raise_if_stuck` (for `agent status` / `agent start`).
    """
    env = os.environ if environ is None else environ
    if not paths.agent_enabled(env):
        return None
    path = paths.agent_socket(env)
    if not trusted_socket(path):
        return None  # none running, or files another user could have made: never talk to it
    request = {"v": PROTOCOL, "context": paths.context_fingerprint(env), **message}
    answer_within = timeout if timeout is not None else _timeout(env)
    pid = None
    try:
        line, pid = exchange(path, json.dumps(request).encode(), answer_within)
        if line is None:
            return None  # the agent went away mid-request, or someone else listens on the name
        reply = json.loads(line)
    except TimeoutError as err:
        if raise_if_stuck:
            raise AgentNotAnsweringError(path, getattr(err, "pid", pid)) from None
        return None
    except (OSError, ValueError):
        return None
    if not isinstance(reply, dict) or reply.get("mismatch"):
        return None
    return reply


#: Errors about the agent's environment, not the caller's request: the caller falls back to itself.
ENVIRONMENT_ERRORS = ("MissingDependencyError",)


def _answer(reply: dict | None) -> Any:
    if reply is None:
        return None
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error")
    if isinstance(error, dict):
        if error.get("type") in ENVIRONMENT_ERRORS:
            return None  # the agent's own set-up is broken (e.g. no SDK for its Python): do the work here
        raise from_wire(error)
    return None


def credentials(
    services: list[str],
    identifier: str | None = None,
    force_refresh: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]] | None:
    """[{service, identifier, token, kind, expires_at}, ...] in order, from the agent; None to fall back.

    Raises the same ScalekitAuthError (or BatchError) the in-process path would.
    """
    result = _answer(
        call({"op": "token", "services": services, "identifier": identifier, "force_refresh": force_refresh}, environ)
    )
    if result is None:
        return None
    if not isinstance(result, list) or len(result) != len(dict.fromkeys(services)):
        return None
    return result


def tokens(
    services: list[str], identifier: str | None = None, environ: Mapping[str, str] | None = None
) -> list[str] | None:
    """Just the tokens, in order (see credentials)."""
    found = credentials(services, identifier, environ=environ)
    return None if found is None else [item["token"] for item in found]


def invalidate(service: str, identifier: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Ask the agent to forget a cached token (no-op without an agent)."""
    try:
        _answer(call({"op": "invalidate", "service": service, "identifier": identifier}, environ))
    except ScalekitAuthError:
        pass


def ping(
    environ: Mapping[str, str] | None = None,
    timeout: float = ACK_TIMEOUT,
    any_context: bool = False,
    raise_if_stuck: bool = False,
) -> dict | None:
    """The agent's status, or None. `any_context` answers even for another configuration."""
    env = os.environ if environ is None else environ
    reply = call({"op": "ping", "any_context": any_context}, env, timeout=timeout, raise_if_stuck=raise_if_stuck)
    return reply.get("result") if reply and reply.get("ok") else None
