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
from .errors import ScalekitAuthError, from_wire

PROTOCOL = 1
MAX_REPLY = 1 << 20


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


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process on the other end of a connected Unix socket, as the kernel reports it."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return uid
    if hasattr(socket, "LOCAL_PEERCRED"):  # macOS/BSD: struct xucred {version, uid, ngroups, groups[16]}
        raw = sock.getsockopt(0, socket.LOCAL_PEERCRED, 76)  # SOL_LOCAL is 0
        return struct.unpack_from("2I", raw)[1]
    return None


def trusted_socket(path: str) -> bool:
    """Only our own agent gets a request: its directory and socket are ours and private.

    (The server's uid is checked after connecting, before anything is sent: see `call`.)
    """
    return _private_to_us(os.path.dirname(path), stat.S_IFDIR) and _private_to_us(path, stat.S_IFSOCK)


def call(
    message: dict[str, Any], environ: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict | None:
    """Send one request; the agent's reply, or None when there is no usable agent."""
    env = os.environ if environ is None else environ
    if not paths.agent_enabled(env):
        return None
    path = paths.agent_socket(env)
    if not trusted_socket(path):
        return None  # none running, or files another user could have made: never talk to it
    request = {"v": PROTOCOL, "context": paths.context_fingerprint(env), **message}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout if timeout is not None else _timeout(env))
            sock.connect(path)
            if peer_uid(sock) not in (os.getuid(), None):
                return None  # someone else is listening on our socket's name
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None  # the agent went away mid-request
                data += chunk
                if len(data) > MAX_REPLY:
                    return None
        reply = json.loads(data)
    except (OSError, ValueError):
        return None
    if not isinstance(reply, dict) or reply.get("mismatch"):
        return None
    return reply


def _answer(reply: dict | None) -> Any:
    if reply is None:
        return None
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error")
    if isinstance(error, dict):
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


def ping(environ: Mapping[str, str] | None = None, timeout: float = 15.0, any_context: bool = False) -> dict | None:
    """The agent's status, or None. `any_context` answers even for another configuration."""
    env = os.environ if environ is None else environ
    reply = call({"op": "ping", "any_context": any_context}, env, timeout=timeout)
    return reply.get("result") if reply and reply.get("ok") else None
