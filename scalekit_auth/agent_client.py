"""Talk to a running scalekit-auth agent. Standard library only: no Scalekit SDK on this path.

`call` raises AgentUnusable whenever no usable agent answers (none running, it died, it is
stuck, it serves other settings, it speaks another protocol, its own set-up is broken): the
caller then does the work in-process. An answer that *is* an error (authorization needed, not
configured, ...) is raised as the same exception the in-process path would raise. Whatever
made an agent unusable in a way that will not change by asking again (stuck, another protocol,
other settings) is remembered for this process (wire.give_up): it is never asked twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import paths, protocol, wire
from .errors import ConfigurationError, ScalekitAuthError
from .invocation import command


class AgentUnusable(Exception):  # noqa: N818 - a condition, not a failure to report
    """No usable agent answered; the message says why (for --debug). `absent` is True when nothing
    listens at all (so starting one may help), False when one is there but cannot be used."""

    def __init__(self, why: str, *, absent: bool = False) -> None:
        super().__init__(why)
        self.absent = absent


class AgentNotAnsweringError(ConfigurationError):
    """Something holds our agent's socket (it is ours, the peer is our user) but does not answer."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"the agent (pid {pid})" if pid else "the agent"
        super().__init__(
            f"{who} at {path} is not answering (stopped or overloaded). "
            f"Resume or end it ({f'kill {pid}' if pid else 'kill it'}), then run: {command('agent', 'start')}"
        )


#: Errors about the agent's environment, not the caller's request: the caller falls back to itself.
ENVIRONMENT_ERRORS = ("MissingDependencyError",)


def call(
    op: str,
    environ: Mapping[str, str] | None = None,
    timeout: float | None = None,
    *,
    raise_if_stuck: bool = False,
    **fields: Any,
) -> Any:
    """Send one request; the agent's checked result. AgentUnusable when there is no usable agent;
    the decoded ScalekitAuthError when the answer is an error.

    An agent that does not acknowledge within ACK_TIMEOUT (or answer in time) counts as unusable
    for the rest of this process, or raises AgentNotAnsweringError with `raise_if_stuck` (for
    `agent status` / `agent start`, which must name it, never replace it)."""
    env = os.environ if environ is None else environ
    if not paths.agent_enabled(env):
        raise AgentUnusable("agents are turned off (SCALEKIT_AUTH_AGENT=0)")
    path = paths.agent_socket(env)
    if not raise_if_stuck and not wire.usable(path):
        raise AgentUnusable("this process found the agent unusable before")
    if not wire.trusted_socket(path):
        # None running, or files another user could have made: never talk to it.
        raise AgentUnusable("no agent is running", absent=True)
    request = protocol.request(op, paths.context_fingerprint(env), **fields)
    try:
        line, pid = wire.exchange(path, request, timeout if timeout is not None else wire.answer_within(env))
    except TimeoutError as err:
        wire.give_up(path, "it did not answer in time")
        if raise_if_stuck:
            raise AgentNotAnsweringError(path, getattr(err, "pid", None) or wire.recorded_pid(path)) from None
        raise AgentUnusable("the agent did not answer in time") from None
    except OSError as err:  # refused, missing, or another user's listener (which our agent replaces)
        raise AgentUnusable(f"no agent of ours is listening ({err.__class__.__name__})", absent=True) from None
    if line is None:
        raise AgentUnusable("the agent went away mid-request")
    try:
        ok, result = protocol.parse_reply(line)
    except protocol.ProtocolError as err:
        wire.give_up(path, str(err))
        raise AgentUnusable(f"unusable answer: {err}") from None
    if ok:
        return result
    if result.__class__.__name__ in ENVIRONMENT_ERRORS:
        wire.give_up(path, "its own set-up is broken")
        raise AgentUnusable(f"the agent cannot work: {result}")
    raise result


def credentials(
    services: list[str],
    identifier: str | None = None,
    force_refresh: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list:
    """[ServiceCredentials, ...] in order, from the agent; AgentUnusable to fall back.

    Raises the same ScalekitAuthError (or BatchError) the in-process path would."""
    names = list(dict.fromkeys(services))
    result = call("token", environ, services=names, identifier=identifier, force_refresh=force_refresh)
    try:
        return protocol.credentials_list_from_wire(result, [n.strip().lower() for n in names])
    except protocol.ProtocolError as err:
        wire.give_up(paths.agent_socket(environ), str(err))
        raise AgentUnusable(f"unusable answer: {err}") from None


def invalidate(service: str, identifier: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Ask the agent to forget a cached token (no-op without a usable agent)."""
    try:
        call("invalidate", environ, service=service, identifier=identifier)
    except (AgentUnusable, ScalekitAuthError):
        pass


def ping(
    environ: Mapping[str, str] | None = None,
    timeout: float = wire.ACK_TIMEOUT,
    any_context: bool = False,
    raise_if_stuck: bool = False,
) -> dict | None:
    """The agent's checked status, or None when none answers. `any_context` answers even for
    another configuration; `raise_if_stuck` raises AgentNotAnsweringError for one that is there
    but does not answer."""
    try:
        result = call("ping", environ, timeout, raise_if_stuck=raise_if_stuck, any_context=any_context)
        return protocol.ping_from_wire(result)
    except (AgentUnusable, protocol.ProtocolError):
        return None
    except AgentNotAnsweringError:
        raise
    except ScalekitAuthError:
        return None


def stop(environ: Mapping[str, str] | None = None, timeout: float = wire.ACK_TIMEOUT) -> dict | None:
    """Ask the agent to stop; its answer ({pid}), or None when none answered."""
    try:
        result = call("stop", environ, timeout, raise_if_stuck=True, any_context=True)
    except (AgentUnusable, protocol.ProtocolError):
        return None
    except AgentNotAnsweringError:
        raise
    except ScalekitAuthError:
        return None
    return result if isinstance(result, dict) else None
