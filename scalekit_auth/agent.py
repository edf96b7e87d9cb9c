"""The scalekit-auth agent: one warm process keeping the Scalekit client and the memory cache.

Like ssh-agent: later `get_token.py` calls ask it over a Unix socket and skip Python's SDK
import, the login and the lookup. It runs the same TokenBroker as the library (no second
implementation), never writes a token to disk, serves only its own user (directory 0700,
socket 0600, peer UID checked with SO_PEERCRED), and exits after an idle period.

    python3 -m scalekit_auth.agent [--idle-timeout SECONDS]     # in the foreground
    scalekit-auth agent start|stop|status                        # detached
"""

from __future__ import annotations

import argparse
import os
import signal
import socketserver
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from . import agent_client, paths, protocol, wire
from .broker import TokenBroker
from .errors import ConfigurationError, ScalekitAuthError
from .invocation import command
from .logs import get_logger
from .wire import ACK, ACK_TIMEOUT, peer_uid

DEFAULT_IDLE_TIMEOUT = 900.0
IDLE_VAR = "SCALEKIT_AGENT_IDLE_TIMEOUT"
#: How long a status check waits for the agent's answer. A socket nobody listens on fails at once;
#: a live agent answers a ping at once (even on a busy machine it is well within this); one that
#: does not is reported as not answering (AgentNotAnsweringError), never taken for dead: its
#: socket is not taken from under it.
PING_TIMEOUT = ACK_TIMEOUT
log = get_logger("scalekit_auth.agent")
#: How long `agent start` waits for the new agent to answer, and `agent stop` for it to go.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def check_socket_path(path: str) -> None:
    """A clear refusal (never a raw OSError) for a socket path the system cannot bind."""
    if len(os.fsencode(path)) > paths.SOCKET_PATH_MAX:
        raise ConfigurationError(
            f"the agent's socket path is too long for this system ({len(os.fsencode(path))} bytes, at most "
            f"{paths.SOCKET_PATH_MAX}): {path}. Set XDG_RUNTIME_DIR to a shorter folder."
        )


def ensure_private_dir(path: str) -> None:
    """Create the runtime directory 0700, or refuse one that others could use."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigurationError(f"{path} is not a directory; remove it so the agent can create its own.")
    if st.st_uid != os.getuid():
        raise ConfigurationError(f"{path} belongs to another user; the agent will not use it (set XDG_RUNTIME_DIR).")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


#: The largest request line the agent reads; real ones are a few hundred bytes. A longer one
#: is answered with an error and the connection closed, so a caller cannot grow the agent.
MAX_REQUEST = 64 * 1024


class _Handler(socketserver.StreamRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        while True:
            line = self.rfile.readline(MAX_REQUEST + 1)
            if not line:
                return
            if len(line) > MAX_REQUEST and not line.endswith(b"\n"):
                self.wfile.write(protocol.reply_error(ScalekitAuthError("request too large")) + b"\n")
                return  # closing drops the rest unread
            if not line.strip():
                continue
            self.wfile.write(ACK)  # at once: the caller knows we are alive and working on it
            self.wfile.flush()
            self.wfile.write(self.server.answer(line) + b"\n")
            self.wfile.flush()
            if self.server.stop_requested.is_set():
                self.server.retire()  # after the reply is out: a stopping agent still answers "stop"
                return


class AgentServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers JSON-line requests on a private Unix socket with the shared TokenBroker."""

    daemon_threads = True
    started_by = "command"  # or "auto": set by serve() from --started-by

    def __init__(self, path: str, broker: TokenBroker, idle_timeout: float, environ: Mapping[str, str]) -> None:
        self.path = path
        self.broker = broker
        self.idle_timeout = idle_timeout
        self.environ = dict(environ)
        self.started = time.time()
        self._last = time.monotonic()
        self._active = 0
        self._lock = threading.Lock()
        self._retiring = False
        self.stop_requested = threading.Event()
        check_socket_path(path)
        ensure_private_dir(os.path.dirname(path))
        if os.path.lexists(path):
            if wire.held_by_us(path):  # alive, even if frozen or of another version: never replaced
                running = agent_client.ping(_unforced(environ), PING_TIMEOUT, any_context=True, raise_if_stuck=True)
                who = f" (pid {running['pid']})" if running else ""
                raise ConfigurationError(
                    f"an agent{who} is already serving {path}; stop it first: {command('agent', 'stop')}"
                )
            os.unlink(path)  # stale socket of an agent that died
        old = os.umask(0o177)
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._inode = os.stat(path).st_ino
        fd = os.open(wire.pid_file(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")

    def retire(self) -> None:
        """Stop in an order clients can observe: first the socket name goes (no new client finds
        this agent, `agent status` says it is not running), then the agent stops answering."""
        with self._lock:
            if self._retiring:
                return
            self._retiring = True
        self._unlink_own_socket()
        threading.Thread(target=self.shutdown, name="agent-shutdown", daemon=True).start()

    def _unlink_own_socket(self) -> None:
        """Remove the socket file if it is still ours (a new agent may have bound the name since)."""
        try:
            if os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        try:
            if wire.recorded_pid(self.path) in (os.getpid(), None):
                os.unlink(wire.pid_file(self.path))
        except FileNotFoundError:
            pass

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Only our own user: the kernel says who is on the other end (SO_PEERCRED)."""
        uid = peer_uid(request)
        return uid is None or uid == os.getuid()  # None: no peer credentials here; the 0700 directory guards

    def touch(self, delta: int) -> None:
        with self._lock:
            self._active += delta
            self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._last

    def context(self) -> str:
        """What decides an answer, now: settings, TLS and proxy variables, and the identity of every
        file read (see paths.context_fingerprint). Computed per request, so an edit both sides see
        still matches, and a caller that sees other files or settings is never served."""
        return paths.context_fingerprint(self.environ)

    def answer(self, line: bytes) -> bytes:
        """The answer line for one request line (never raises)."""
        try:
            request = protocol.parse_request(line)
        except protocol.VersionMismatch:
            return protocol.reply_mismatch()  # another version: the caller does the work itself
        except protocol.ProtocolError as err:
            return protocol.reply_error(ScalekitAuthError(f"bad request: {err}"))
        op = request.op
        if request.context != self.context() and not (op in ("ping", "stop") and request.any_context):
            return b"NO" if request.lines else protocol.reply_mismatch()
        working = op not in ("ping", "stop")  # status checks do not keep an idle agent alive
        if working:
            self.touch(+1)
        try:
            result = self._do(request)
            if request.lines:
                return protocol.lines_answer([item.get("token") for item in result])
            return protocol.reply(result)
        except Exception as err:  # noqa: BLE001 - reported as data, like the in-process path would
            if request.lines:
                return b"NO"  # the caller's full path asks again and reports it
            return protocol.reply_error(err)
        finally:
            if working:
                self.touch(-1)

    def _do(self, request: protocol.Request) -> Any:
        broker = self.broker
        op = request.op
        if op == "token":
            services, identifier, force = request.services, request.identifier, request.force_refresh
            if len(services) == 1:
                found = [broker.get_credentials(services[0], identifier, force_refresh=force)]
            else:
                found = list(broker.get_credentials_many(services, identifier, force_refresh=force).values())
            return [protocol.credentials_to_wire(c) for c in found]
        if op == "invalidate":
            assert request.service is not None
            return broker.invalidate(request.service, request.identifier)
        if op == "clear":
            broker.cache.clear()
            return True
        if op == "ping":
            stats = broker.cache.stats()
            return {
                "pid": os.getpid(),
                "socket": self.path,
                "skill_dir": str(broker.directory),
                "started_at": self.started,
                "idle_for": self.idle_for(),
                "idle_timeout": self.idle_timeout,
                "started_by": self.started_by,
                "context_matches": request.context == self.context(),
                "cache": {"entries": stats.entries, "hits": stats.hits, "misses": stats.misses},
            }
        if op == "stop":
            broker.cache.clear()
            self.stop_requested.set()  # the handler retires the agent once this answer is written
            return {"pid": os.getpid()}
        raise ConfigurationError(f"unknown agent request {op!r}")

    def watch_idle(self) -> None:
        """Shut down after `idle_timeout` seconds without a request, or at once when our socket's
        name was taken from us (nobody could reach this agent any more: it must not linger)."""
        step = max(0.05, min(1.0, self.idle_timeout / 4))
        while not self._stopped.wait(step):
            if self.idle_for() >= self.idle_timeout or not self._owns_socket():
                self.retire()
                return

    def _owns_socket(self) -> bool:
        try:
            return os.lstat(self.path).st_ino == self._inode
        except OSError:
            return False

    def run(self) -> None:
        self._stopped = threading.Event()
        watcher = threading.Thread(target=self.watch_idle, name="agent-idle", daemon=True)
        watcher.start()
        try:
            self.serve_forever(poll_interval=0.2)
        finally:
            self._stopped.set()
            self._unlink_own_socket()
            self.server_close()
            self.broker.close()  # closes the Scalekit client and wipes the cache


def _warm_up(broker: TokenBroker) -> None:
    """Load the SDK and log in now, so even the first request only costs a lookup."""
    try:
        broker.vault(broker.settings()).connect()
    except ScalekitAuthError:
        pass  # reported to whoever asks for a token


def ready_to_serve(environ: Mapping[str, str]) -> None:
    """Refuse, with the reason, to run an agent that could not answer: the Scalekit SDK cannot be
    loaded by this Python, or the configuration is unusable (missing or malformed credentials)."""
    import importlib.util

    if importlib.util.find_spec("scalekit") is None:
        from . import bootstrap

        if not bootstrap.provide("scalekit", environ):
            raise bootstrap.missing_dependency("scalekit-sdk-python")
    TokenBroker(environ=environ).settings()


def serve(idle_timeout: float, environ: Mapping[str, str] | None = None, started_by: str = "command") -> int:
    """Run an agent in this process until stopped or idle."""
    env = dict(os.environ if environ is None else environ)
    env[paths.AGENT_VAR] = "0"  # the agent's own broker never asks an agent
    ready_to_serve(env)
    broker = TokenBroker(environ=env)
    server = AgentServer(paths.agent_socket(env), broker, idle_timeout, env)
    server.started_by = started_by
    signal.signal(signal.SIGTERM, lambda *_: server.retire())
    threading.Thread(target=_warm_up, args=(broker,), name="agent-warm-up", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0


# -- control: start / stop / status -----------------------------------------------------------


def _unforced(environ: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env.pop(paths.AGENT_VAR, None)  # `agent status/stop` work even with SCALEKIT_AUTH_AGENT=0
    return env


def status(environ: Mapping[str, str] | None = None) -> dict | None:
    """The running agent's status, or None when none is running; AgentNotAnsweringError when one is
    there but does not answer."""
    return agent_client.ping(_unforced(environ), PING_TIMEOUT, any_context=True, raise_if_stuck=True)


def idle_timeout_from(environ: Mapping[str, str]) -> float:
    """SCALEKIT_AGENT_IDLE_TIMEOUT, checked (a positive number of seconds, at most a week)."""
    from .config import parse_seconds

    return parse_seconds(environ.get(IDLE_VAR), IDLE_VAR, DEFAULT_IDLE_TIMEOUT, 0, 7 * 86400)


def autostart(environ: Mapping[str, str] | None = None) -> bool:
    """Start an agent for a short-lived shell caller that found none; True when one serves it now.

    Like git's credential cache daemon: the first `get_token.py` starts it, later calls are
    answered by it, and it exits after its idle timeout. Callers racing here are serialised by
    a lock in the private runtime directory, so only one agent is ever started. False (the
    caller does the work itself) when SCALEKIT_AUTH_AGENT=0, when the agent could not work
    (no SDK, unusable configuration: the caller's own call will say why), or when an agent with
    other settings holds the socket."""
    import fcntl

    global _autostart_failed
    env = dict(os.environ if environ is None else environ)
    if not paths.agent_enabled(env) or _autostart_failed:
        return False
    try:
        runtime = paths.runtime_dir(env)
        ensure_private_dir(runtime)
        lock = os.path.join(runtime, os.path.basename(paths.agent_socket(env)) + ".start-lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except (OSError, ScalekitAuthError):
        return False
    try:
        deadline = time.monotonic() + AUTOSTART_LOCK_WAIT
        while True:  # another caller is starting it; one that hangs (Ctrl-Z) must not stall us
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    _autostart_failed = True  # a starter that hangs (Ctrl-Z) costs this process one wait
                    return False
                time.sleep(0.02)
        running = agent_client.ping(_unforced(env), PING_TIMEOUT, any_context=True)
        if running is not None:
            return bool(running.get("context_matches"))
        start(environ=env, started_by="auto", within=AUTOSTART_WITHIN)
        return True
    except ScalekitAuthError as err:
        log.debug("no agent started: %s", err.__class__.__name__)
        _autostart_failed = True  # once per process: the full path must not try (and wait) again
        return False
    finally:
        os.close(fd)


#: Set when starting failed in this process, so a second caller path does not wait again.
_autostart_failed = False
#: How long a caller waits for another caller that is starting the agent, or for its own start.
AUTOSTART_LOCK_WAIT = 3.0
AUTOSTART_WITHIN = 15.0
#: What an agent inherits from the caller that starts it, by exact name: what decides its answers
#: (paths.CONTEXT_VARS: settings, TLS trust, proxies), where its files are, and what Python and
#: the locale need. Nothing else: no gateway tokens, package-index passwords or emulator keys.
AGENT_ENV_NAMES = tuple(
    dict.fromkeys(
        (
            *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"),
            *("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"),
            *paths.CONTEXT_VARS,
            *paths.STATE_VARS,
            *(paths.IDENTITY_FILE_VAR, paths.AGENT_VAR, IDLE_VAR, "SCALEKIT_AUTH_AUTOINSTALL", "SCALEKIT_AUTH_DEBUG"),
            *("XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "OPENCLAW_WORKSPACE_DIR", "OPENCLAW_PROFILE"),
        )
    )
)
#: Path variables made absolute for the agent, which runs in another working directory.
_PATH_VARS = (
    *(paths.SKILL_DIR_VAR, paths.IDENTITY_FILE_VAR, "HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"),
    *("OPENCLAW_STATE_DIR", "OPENCLAW_HOME", "OPENCLAW_WORKSPACE_DIR"),
)


def agent_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment an agent runs with: the allowed names, relative folders made absolute."""
    out = {k: v for k, v in env.items() if k in AGENT_ENV_NAMES}
    for name in _PATH_VARS:
        value = out.get(name, "").strip()
        if value and not value.startswith("~") and not os.path.isabs(value):
            out[name] = os.path.abspath(value)
    return out


def start(
    idle_timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
    started_by: str = "command",
    within: float | None = None,
) -> tuple[dict, bool]:
    """(status, started_now). Idempotent: a running agent for this configuration is kept."""
    env = _unforced(environ)
    running = agent_client.ping(env, PING_TIMEOUT, any_context=True, raise_if_stuck=True)
    if running is not None:
        if running.get("context_matches"):
            return running, False
        raise ConfigurationError(
            "an agent with different settings (environment variables) is running for this skill folder; "
            f"stop it first: {command('agent', 'stop')}"
        )
    check_socket_path(paths.agent_socket(env))
    from . import bootstrap

    python = bootstrap.agent_python(env)  # this one, or the private environment's (a host without the packages)
    if python == sys.executable:
        ready_to_serve(env)  # else the agent checks for itself, and a failure is reported below
    ensure_private_dir(paths.runtime_dir(env))
    # The agent runs elsewhere (its own working directory): pin the IDENTITY.md this caller sees.
    env[paths.IDENTITY_FILE_VAR] = paths.identity_path(env)[0]
    env = agent_environment(env)
    idle = idle_timeout if idle_timeout is not None else idle_timeout_from(env)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [python, "-m", "scalekit_auth.agent", "--idle-timeout", str(idle), "--started-by", started_by],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    limit = START_TIMEOUT if within is None else within
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        info = agent_client.ping(env, timeout=PING_TIMEOUT)
        if info is not None:
            return info, True
        if proc.poll() is not None:
            raise ConfigurationError(
                f"the agent exited at start (code {proc.returncode}); run `python3 -m scalekit_auth.agent` to see why"
            )
        time.sleep(0.05)
    proc.kill()
    raise ConfigurationError(f"the agent did not start within {limit:.0f} seconds")


def stop(environ: Mapping[str, str] | None = None) -> dict | None:
    """Stop the agent (its cache is wiped); None when none was running."""
    env = _unforced(environ)
    reply = agent_client.stop(env, timeout=PING_TIMEOUT)
    if reply is None:
        return None
    path = paths.agent_socket(env)
    deadline = time.monotonic() + STOP_TIMEOUT
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return reply


def main(argv: list[str] | None = None) -> int:
    from . import bootstrap

    bootstrap.claim_process()
    parser = argparse.ArgumentParser(prog="python3 -m scalekit_auth.agent", description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-timeout", type=float, default=None, help="seconds without a request before exiting")
    parser.add_argument("--started-by", choices=("command", "auto"), default="command", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        idle = args.idle_timeout if args.idle_timeout is not None else idle_timeout_from(os.environ)
        if not (0 < idle <= 7 * 86400):
            raise ConfigurationError("--idle-timeout must be a positive number of seconds, at most a week.")
        return serve(idle, started_by=args.started_by)
    except ScalekitAuthError as err:
        print(f"scalekit-auth agent: {err}", file=sys.stderr)
        return int(err.exit_code)
    except OSError as err:  # binding or listening failed: one line, never a traceback
        print(f"scalekit-auth agent: cannot listen: {err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
