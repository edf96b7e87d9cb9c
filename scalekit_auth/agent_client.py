"""Talk to a running scalekit-auth agent. Standard library only: no Scalekit SDK on this path.

Every function returns None when no usable agent answers (none running, it died, it serves
a different configuration, a protocol problem): the caller then does the work in-process.
An answer that *is* an error (authorization needed, not configured, ...) is raised as the
same exception the in-process path would raise.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from collections.abc import Mapping
from typing import Any

from . import paths
from .errors import ConfigurationError, ScalekitAuthError, from_wire

PROTOCOL = 1
MAX_REPLY = 1 << 20
#: The agent acknowledges a request the moment it reads it, then works on it. A caller waits
#: this long for that first line: an agent that is stopped (SIGSTOP), wedged or starved gets a
#: few seconds, not the minutes a Scalekit lookup may take, before the caller does the work itself.
ACK_TIMEOUT = 5.0
ACK = b'{"ack": true}\n'


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


def _private_to_us(path: str, kind: int) -> bool:
    """`path` is a `kind` (not a symlink), owned by us, and nobody else may use it."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.getuid() and not stat.S_IMODE(st.st_mode) & 0o077


def peer(sock: socket.socket) -> tuple[int | None, int | None]:
    """(pid, uid) of the process on the other end of a connected Unix socket, as the kernel reports
    them; None where the platform cannot tell."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return pid, uid
    if hasattr(socket, "LOCAL_PEERCRED"):  # macOS/BSD: struct xucred {version, uid, ngroups, groups[16]}
        raw = sock.getsockopt(0, socket.LOCAL_PEERCRED, 76)  # SOL_LOCAL is 0
        return None, struct.unpack_from("2I", raw)[1]
    return None, None


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process on the other end (see `peer`)."""
    return peer(sock)[1]


def _read_line(sock: socket.socket, buffer: bytearray, timeout: float) -> bytes | None:
    """The next line from the socket (without waiting longer than `timeout` in all); None if it closed."""
    import time

    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
        if len(buffer) > MAX_REPLY:
            return None
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def trusted_socket(path: str) -> bool:
    """Only our own agent gets a request: its directory and socket are ours and private.

    (The server's uid is checked after connecting, before anything is sent: see `call`.)
    """
    return _private_to_us(os.path.dirname(path), stat.S_IFDIR) and _private_to_us(path, stat.S_IFSOCK)


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
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(min(answer_within, ACK_TIMEOUT))
            sock.connect(path)
            pid, uid = peer(sock)
            if uid not in (os.getuid(), None):
                return None  # someone else is listening on our socket's name
            sock.sendall(json.dumps(request).encode() + b"\n")
            buffer = bytearray()
            line = _read_line(sock, buffer, min(answer_within, ACK_TIMEOUT))
            if line is not None and line + b"\n" == ACK:  # acknowledged: now it works on the request
                line = _read_line(sock, buffer, answer_within)
            if line is None:
                return None  # the agent went away mid-request
        reply = json.loads(line)
    except TimeoutError:
        if raise_if_stuck:
            raise AgentNotAnsweringError(path, pid) from None
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
