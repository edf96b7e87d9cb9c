"""The agent's wire protocol, client side: one JSON line per request, an ACK line, one answer line.

Standard library only (os, _socket, stat, struct): the fast path of `get_token.py` uses it
without loading anything else (the C `_socket` module spares the fast path `socket.py`, which
pulls in enum and selectors, about 5 ms). Only our own agent is ever spoken to: its directory and
socket must be ours and private, and the kernel must say the listener runs as our user.
"""

from __future__ import annotations

import _socket
import os
import stat
import struct
import time

TYPE_CHECKING = False  # typing costs ~9 ms to import; this path must stay lean

if TYPE_CHECKING:
    import socket
    from collections.abc import Mapping

MAX_REPLY = 1 << 20
#: The agent acknowledges a request the moment it reads it, then works on it. A caller waits
#: this long for that first line: an agent that is stopped (SIGSTOP), wedged or starved gets a
#: few seconds, not the minutes a Scalekit lookup may take, before the caller does the work itself.
ACK_TIMEOUT = 5.0
ACK = b'{"ack": true}\n'


def answer_within(env: Mapping[str, str]) -> float:
    """How long a caller waits for an acknowledged answer: the agent's own Scalekit deadline
    (SCALEKIT_TIMEOUT, default 10 s), twice (it may first wait for another caller's fetch of the
    same token), plus a margin. Past it the agent counts as stuck for the rest of the process."""
    try:
        seconds = float(env.get("SCALEKIT_TIMEOUT", "") or 10)
    except ValueError:
        seconds = 10.0
    if not seconds > 0:  # also NaN
        seconds = 10.0
    return min(seconds, 300.0) * 2 + 5


def _private_to_us(path: str, kind: int) -> bool:
    """`path` is a `kind` (not a symlink), owned by us, and nobody else may use it."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.getuid() and not stat.S_IMODE(st.st_mode) & 0o077


def trusted_socket(path: str) -> bool:
    """Only our own agent gets a request: its directory and socket are ours and private.

    (The server's uid is checked after connecting, before anything is sent: see `exchange`.)
    """
    return _private_to_us(os.path.dirname(path), stat.S_IFDIR) and _private_to_us(path, stat.S_IFSOCK)


def peer(sock: socket.socket | _socket.socket) -> tuple[int | None, int | None]:
    """(pid, uid) of the process on the other end of a connected Unix socket, as the kernel reports
    them; None where the platform cannot tell."""
    if hasattr(_socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12))
        return pid, uid
    if hasattr(_socket, "LOCAL_PEERCRED"):  # macOS/BSD: struct xucred {version, uid, ngroups, groups[16]}
        raw = sock.getsockopt(0, _socket.LOCAL_PEERCRED, 76)  # SOL_LOCAL is 0
        return None, struct.unpack_from("2I", raw)[1]
    return None, None


def peer_uid(sock: socket.socket | _socket.socket) -> int | None:
    """The uid of the process on the other end (see `peer`)."""
    return peer(sock)[1]


def read_line(sock: socket.socket | _socket.socket, buffer: bytearray, timeout: float) -> bytes | None:
    """The next line from the socket (without waiting longer than `timeout` in all); None if it closed."""
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


def pid_file(path: str) -> str:
    """Where the agent at socket `path` records its pid (beside the socket, 0600)."""
    return path + ".pid"


def recorded_pid(path: str) -> int | None:
    """The pid the agent at socket `path` recorded, if that process still exists: names an agent
    that cannot be asked (frozen, its queue full)."""
    try:
        with open(pid_file(path), "rb") as fh:
            pid = int(fh.read(32).strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def held_by_us(path: str) -> bool:
    """True when a process of our user accepts (or queues) connections at `path`: an agent that
    is alive, even if frozen, and so must never be replaced. A refused connection or a missing
    file means it is gone; a listener of another user is an impostor, not ours to keep."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.connect(path)
        return peer_uid(sock) in (os.getuid(), None)
    except BlockingIOError:
        return True  # the listen queue is full: someone is there, not accepting (the file is ours)
    except OSError:
        return False
    finally:
        sock.close()


class ForeignListenerError(ConnectionError):
    """Another user's process listens on our agent's socket name: never sent anything."""

    def __init__(self, pid: int | None) -> None:
        super().__init__("another user listens on the agent's socket")
        self.pid = pid


class AgentTimeoutError(TimeoutError):
    """The agent did not acknowledge (or answer) in time; `pid` says which process holds the socket."""

    def __init__(self, pid: int | None) -> None:
        super().__init__("the agent did not answer in time")
        self.pid = pid


#: Agents found unusable by this process (socket path -> why): asked once, never again, so a
#: stuck agent costs one bounded wait per process, whichever path (fast or full) met it first.
_unusable: dict[str, str] = {}


def usable(path: str) -> bool:
    """False once this process found the agent at `path` stuck or speaking another protocol."""
    return path not in _unusable


def give_up(path: str, why: str) -> None:
    """Do not ask the agent at `path` again in this process."""
    _unusable.setdefault(path, why)


def exchange(path: str, request: bytes, answer_within: float) -> tuple[bytes | None, int | None]:
    """(the answer line, the agent's pid) for one request line; (None, pid) when the agent went away.
    ForeignListenerError when the listener is not our user. AgentTimeoutError when it does not acknowledge within
    ACK_TIMEOUT (or answer within `answer_within`), or when its listen queue is full (a frozen
    agent: alive, so never to be replaced); OSError when there is nobody to connect to."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(min(answer_within, ACK_TIMEOUT))
        try:
            sock.connect(path)
        except (BlockingIOError, TimeoutError):
            # EAGAIN: the listen backlog is full. Someone listens but does not accept: stuck, not gone.
            raise AgentTimeoutError(None) from None
        pid, uid = peer(sock)
        if uid not in (os.getuid(), None):
            raise ForeignListenerError(pid)  # someone else is listening on our socket's name
        try:
            sock.sendall(request + b"\n")
            buffer = bytearray()
            line = read_line(sock, buffer, min(answer_within, ACK_TIMEOUT))
            if line is not None and line + b"\n" == ACK:  # acknowledged: now it works on the request
                line = read_line(sock, buffer, answer_within)
        except TimeoutError:
            raise AgentTimeoutError(pid) from None
        return line, pid
    finally:
        sock.close()
