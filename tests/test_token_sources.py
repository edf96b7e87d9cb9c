"""One road to a token: the same contract from the in-process source and from the agent, one
fallback rule, and an agent that never answers for another context.

The contract half runs every case against both sources (and the fast path of get_token.py
where it applies). The other half is the defects of issue 20, each as the behaviour it fixes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scalekit_auth import agent, agent_client, paths, protocol, wire
from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import (
    AuthorizationError,
    BatchError,
    CredentialsRejectedError,
    ExitCode,
    RateLimitedError,
    ServiceNotConfiguredError,
    UnsupportedAccountError,
)
from scalekit_auth.sources import AgentSource, LocalSource, Road

from .helpers import ROOT, ship_to


def run(*argv: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def ready(skill, emulator):
    skill.monkeypatch.delenv("SCALEKIT_AUTH_AGENT")
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    skill.configure("slack", "slack_x7y9z", "mess")
    skill.configure("db", "db_demo", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token")
    emulator.seed("slack_x7y9z", "mess", access_token="slack-token")
    emulator.seed("db_demo", "mess", static={"username": "u", "password": "p"}, kind="static")
    yield skill
    agent.stop()


def _start_agent() -> None:
    proc = run("-m", "scalekit_auth", "agent", "start")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(params=["local", "agent"])
def source(request, ready):
    """The same contract from both sources."""
    if request.param == "local":
        yield LocalSource(TokenBroker())
    else:
        _start_agent()
        yield AgentSource()


# -- the contract --------------------------------------------------------------------------


def test_a_token_and_what_comes_with_it(source):
    [creds] = source.credentials(["gmail"])
    assert (creds.service, creds.identifier, creds.connection_name, creds.token) == (
        "gmail",
        "mess",
        "gmail_u3134a",
        "gmail-token",
    )
    assert creds.expires_at is not None


def test_a_batch_comes_back_in_the_order_asked(source):
    found = source.credentials(["slack", "gmail", "slack"])
    assert [c.token for c in found] == ["slack-token", "gmail-token"]


def test_a_batch_with_a_failure_says_which_and_keeps_the_rest(source, emulator):
    emulator.seed("slack_x7y9z", "mess", status="PENDING_AUTH")
    with pytest.raises(BatchError) as caught:
        source.credentials(["gmail", "slack"])
    err = caught.value
    assert [c.token for c in err.results.values()] == ["gmail-token"]
    assert isinstance(err.errors["slack"], AuthorizationError) and err.errors["slack"].link
    assert err.exit_code == ExitCode.AUTHORIZATION_REQUIRED


def test_pending_authorization_carries_its_link(source, emulator):
    emulator.seed("gmail_u3134a", "mess", status="PENDING_AUTH")
    with pytest.raises(AuthorizationError) as caught:
        source.credentials(["gmail"])
    err = caught.value
    assert err.exit_code == ExitCode.AUTHORIZATION_REQUIRED == 4
    assert err.link.startswith("http") and err.expires_at is not None
    assert (err.service, err.identifier, err.connection_name, err.status) == (
        "gmail",
        "mess",
        "gmail_u3134a",
        "PENDING_AUTH",
    )


def test_an_unconfigured_service(source):
    with pytest.raises(ServiceNotConfiguredError) as caught:
        source.credentials(["nosuch"])
    assert caught.value.exit_code == ExitCode.CONFIGURATION == 3
    assert "nosuch" in str(caught.value)


def test_an_account_that_does_not_exist_yet(source, emulator):
    """A new account gets a link; the error has every field, status None (what `auth --json` reads)."""
    emulator.add_connection("notion_q1", "oauth")
    with open(paths.connections_path()) as fh:
        data = json.load(fh)
    data["notion"] = {"connection_name": "notion_q1", "identifier": "mess"}
    with open(paths.connections_path(), "w") as fh:
        json.dump(data, fh)
    with pytest.raises(AuthorizationError) as caught:
        source.credentials(["notion"])
    assert caught.value.link and caught.value.status is None


def test_rate_limiting(source, emulator):
    emulator.fail_next(-1, "RESOURCE_EXHAUSTED")
    try:
        with pytest.raises(RateLimitedError) as caught:
            source.credentials(["gmail"], force_refresh=True)
    finally:
        emulator.clear_faults()
    assert caught.value.exit_code == ExitCode.RATE_LIMITED == 7


def test_an_account_without_a_single_token(source):
    [creds] = source.credentials(["db"])
    assert dict(creds.fields) == {"username": "u", "password": "p"}
    with pytest.raises(UnsupportedAccountError) as caught:
        _ = creds.token
    assert caught.value.exit_code == ExitCode.UNSUPPORTED_ACCOUNT == 8


def test_rejected_credentials(ready, emulator, request):
    for kind in ("local", "agent"):
        ready.monkeypatch.setenv("SCALEKIT_CLIENT_SECRET", f"wrong-{kind}")
        src = LocalSource(TokenBroker()) if kind == "local" else (_start_agent(), AgentSource())[1]
        with pytest.raises(CredentialsRejectedError) as caught:
            src.credentials(["gmail"])
        assert caught.value.exit_code == ExitCode.CREDENTIALS_REJECTED == 6
        agent.stop()


def test_invalidation_fetches_afresh(source, emulator):
    assert source.credentials(["gmail"])[0].token == "gmail-token"
    emulator.rotate_token("gmail_u3134a", "mess", "gmail-token-2")
    assert source.credentials(["gmail"])[0].token == "gmail-token"  # cached
    source.invalidate("gmail")
    assert source.credentials(["gmail"])[0].token == "gmail-token-2"


def test_the_fast_path_gives_the_same_tokens(ready):
    _start_agent()
    proc = run("get_token.py", "gmail", "slack")
    assert (proc.returncode, proc.stdout) == (0, "gmail-token\nslack-token\n"), proc.stderr


def test_the_road_uses_a_running_agent_and_remembers_its_answer(ready, emulator):
    _start_agent()
    road = Road(LocalSource(TokenBroker()), remember=True)
    assert road.token("gmail") == "gmail-token"
    assert road.last_reason is None  # answered by the agent
    lookups = emulator.counters().get("rpc.GetConnectedAccountAuth", 0)
    assert road.token("gmail") == "gmail-token"  # from this process's memory
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == lookups


# -- a malformed agent is no agent ------------------------------------------------------------


class FakeAgent:
    """Something of ours on the agent's socket: answers every request with `reply`, or hangs
    (`ack=False`: never acknowledges), or never accepts at all (`accept=False`: a full queue)."""

    def __init__(self, reply: bytes = b"", *, ack: bool = True, accept: bool = True) -> None:
        self.path = paths.agent_socket()
        agent.ensure_private_dir(os.path.dirname(self.path))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self.sock.listen(0 if not accept else 8)
        self.reply, self.ack, self.accept = reply, ack, accept
        self.connections = 0
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        if accept:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            self.held.append(conn)
            conn.recv(65536)
            if self.ack:
                conn.sendall(wire.ACK + self.reply + b"\n")
                conn.close()

    def close(self) -> None:
        self._stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def _reply(result) -> bytes:
    return json.dumps({"v": protocol.PROTOCOL, "ok": True, "result": result}).encode()


GOOD = {
    "service": "gmail",
    "identifier": "mess",
    "connection_name": "gmail_u3134a",
    "kind": "oauth",
    "token": "agent-token",
    "access_token": "agent-token",
    "scopes": [],
    "expires_at": None,
    "fields": {},
}

MALFORMED = {
    "a list of strings": _reply(["x"]),
    "a numeric token": _reply([{**GOOD, "token": 5, "access_token": 5}]),
    "a bad expiry": _reply([{**GOOD, "expires_at": "soon"}]),
    "another service": _reply([{**GOOD, "service": "slack"}]),
    "an unknown kind": _reply([{**GOOD, "kind": "weird"}]),
    "another protocol version": json.dumps({"v": 1, "ok": True, "result": [GOOD]}).encode(),
    "no version": json.dumps({"ok": True, "result": [GOOD]}).encode(),
    "an unknown error type": json.dumps(
        {"v": protocol.PROTOCOL, "ok": False, "error": {"type": "Boom", "message": "x", "exit_code": 3}}
    ).encode(),
    "an error with a bad exit code": json.dumps(
        {"v": protocol.PROTOCOL, "ok": False, "error": {"type": "ConfigurationError", "message": "x", "exit_code": 99}}
    ).encode(),
    "an authorization error without a link": json.dumps(
        {"v": protocol.PROTOCOL, "ok": False, "error": {"type": "AuthorizationError", "message": "x", "exit_code": 4}}
    ).encode(),
    "an environment error": json.dumps(
        {
            "v": protocol.PROTOCOL,
            "ok": False,
            "error": {"type": "MissingDependencyError", "message": "no SDK", "exit_code": 3, "package": "x"},
        }
    ).encode(),
    "not JSON": b"<html>",
}


@pytest.mark.parametrize("answer", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_answer_makes_the_caller_do_the_work_itself(ready, answer):
    fake = FakeAgent(MALFORMED[answer])
    try:
        road = Road(LocalSource(TokenBroker()), remember=False)
        assert road.token("gmail") == "gmail-token"  # the emulator's, fetched in-process
        assert road.last_reason and fake.connections == 1
        assert road.token("gmail") == "gmail-token"
        assert fake.connections == 1  # never asked again by this process
        header = run("scalekit-auth", "header", "gmail")
        assert (header.returncode, header.stdout) == (0, "Authorization: Bearer gmail-token\n"), header.stderr
    finally:
        fake.close()
        wire._unusable.clear()


def test_the_agent_refuses_a_request_of_another_version(ready):
    _start_agent()
    path = paths.agent_socket()
    request = json.dumps({"v": 1, "context": paths.context_fingerprint(), "op": "token", "services": ["gmail"]})
    line, _pid = wire.exchange(path, request.encode(), 30)
    assert json.loads(line) == {"v": protocol.PROTOCOL, "ok": False, "mismatch": True}
    bad = json.dumps({"v": protocol.PROTOCOL, "context": "x", "op": "token", "services": "gmail"})
    line, _pid = wire.exchange(path, bad.encode(), 30)
    assert b"bad request" in line and b"gmail-token" not in line


# -- context: two copies, two agents ----------------------------------------------------------


def _old_layout_copy(dest: Path, secret: str, connection: str) -> Path:
    copy = ship_to(dest)
    (copy / ".env").write_text(
        f"SCALEKIT_ENV_URL={os.environ['SCALEKIT_ENV_URL']}\nSCALEKIT_CLIENT_ID={os.environ['SCALEKIT_CLIENT_ID']}\n"
        f"SCALEKIT_CLIENT_SECRET={secret}\n"
    )
    os.chmod(copy / ".env", 0o600)
    (copy / "connections.json").write_text(json.dumps({"gmail": {"connection_name": connection, "identifier": "mess"}}))
    return copy


@pytest.mark.slow
def test_two_skill_copies_never_get_each_others_tokens(ready, emulator, tmp_path):
    """Old layout: .env and connections.json in each skill folder, one (empty) state folder."""
    emulator.seed("gmail_b", "mess", access_token="token-of-b")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "OPENCLAW_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "xdg"))

    def call(copy: Path, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *argv], cwd=copy, env=env, capture_output=True, text=True, timeout=120)

    a = _old_layout_copy(tmp_path / "a", emulator.client_secret, "gmail_u3134a")
    b = _old_layout_copy(tmp_path / "b", "wrong-secret", "gmail_u3134a")
    try:
        for _ in range(2):  # the first call starts A's agent; the second is served warm by it
            got_a = call(a, "get_token.py", "gmail")
            assert got_a.stdout == "gmail-token\n", got_a.stderr
        # B, with a wrong secret of its own, is refused: never served by A's warm agent.
        for argv in (["get_token.py", "gmail"], ["scalekit-auth", "token", "gmail"]):
            bad = call(b, *argv)
            assert bad.returncode == ExitCode.CREDENTIALS_REJECTED, bad.stdout + bad.stderr
            assert bad.stdout == ""
        # Fixed, with its own connection: B's account's token, not A's.
        (b / ".env").write_text((b / ".env").read_text().replace("wrong-secret", emulator.client_secret))
        (b / "connections.json").write_text(json.dumps({"gmail": {"connection_name": "gmail_b", "identifier": "mess"}}))
        for _ in range(2):
            for argv in (["get_token.py", "gmail"], ["scalekit-auth", "token", "gmail"]):
                got_b = call(b, *argv)
                assert got_b.stdout == "token-of-b\n", got_b.stderr
            assert call(a, "get_token.py", "gmail").stdout == "gmail-token\n"
    finally:
        for copy in (a, b):
            call(copy, "scalekit-auth", "agent", "stop")


@pytest.mark.parametrize("name", ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "SSL_CERT_FILE", "https_proxy"])
def test_tls_trust_and_proxies_are_part_of_the_context(ready, name):
    before = paths.context_fingerprint()
    assert paths.context_fingerprint({**os.environ, name: "/elsewhere"}) != before


def test_an_edit_both_sides_see_still_reaches_the_agent(ready, emulator):
    _start_agent()
    assert run("get_token.py", "gmail").stdout == "gmail-token\n"
    emulator.seed("notion_n1", "mess", access_token="notion-token")
    ready.configure("notion", "notion_n1", "mess")
    proc = run("get_token.py", "notion")
    assert proc.stdout == "notion-token\n", proc.stderr
    assert agent.status()["cache"]["entries"] == 2  # the agent answered both


# -- a stuck agent ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_frozen_agent_with_a_full_queue_is_named_never_replaced(ready):
    _start_agent()
    pid = agent.status()["pid"]
    os.kill(pid, signal.SIGSTOP)
    queued = []
    try:
        for _ in range(64):  # fill the listen queue: further connects fail with EAGAIN
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(paths.agent_socket())
            except BlockingIOError:
                s.close()
                break
            queued.append(s)
        else:
            pytest.fail("the listen queue never filled")
        token = run("get_token.py", "gmail")
        status = run("-m", "scalekit_auth", "agent", "status")
        started = run("-m", "scalekit_auth", "agent", "start")
    finally:
        for s in queued:
            s.close()
        os.kill(pid, signal.SIGCONT)
    assert token.stdout == "gmail-token\n", token.stderr  # done in-process
    assert status.returncode != 0 and f"pid {pid}" in status.stderr, status.stdout + status.stderr
    assert started.returncode == ExitCode.CONFIGURATION and "not answering" in started.stderr, started.stderr
    assert _status_within(60)["pid"] == pid  # the same agent, answering again: its socket was never taken
    assert len([p for p in _our_agents() if p != pid]) == 0


def _status_within(seconds: float) -> dict:
    """The agent's status once it answers again (a resumed agent first works through its queue)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            info = agent.status()
            if info is not None:
                return info
        except agent_client.AgentNotAnsweringError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _our_agents() -> list[int]:
    from .helpers import agent_processes as _agents

    runtime = os.environ["XDG_RUNTIME_DIR"]
    return [pid for pid, environ in _agents() if f"XDG_RUNTIME_DIR={runtime}" in environ.split("\n")]


@pytest.mark.slow
def test_a_stuck_agent_is_asked_once_per_process(ready):
    """Acknowledges nothing: the fast path waits once, the full path never asks it again."""
    fake = FakeAgent(ack=False)
    try:
        proc = run("get_token.py", "gmail", env={"SCALEKIT_TIMEOUT": "5"})
        assert proc.stdout == "gmail-token\n", proc.stderr
        assert fake.connections == 1
        header = run("scalekit-auth", "header", "gmail")
        assert header.stdout == "Authorization: Bearer gmail-token\n"
        assert fake.connections == 2  # one more process, one more wait: never two in one
    finally:
        fake.close()


def test_an_agent_whose_socket_was_taken_exits(ready):
    _start_agent()
    pid = agent.status()["pid"]
    os.unlink(paths.agent_socket())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and _state(pid) != "Z":
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z", "an unreachable agent lingers"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_starter_that_hangs_costs_this_process_one_wait(ready, monkeypatch):
    import fcntl

    runtime = paths.runtime_dir()
    agent.ensure_private_dir(runtime)
    lock = os.path.join(runtime, os.path.basename(paths.agent_socket()) + ".start-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another caller, stopped while starting the agent
    monkeypatch.setattr(agent, "AUTOSTART_LOCK_WAIT", 0.5)
    monkeypatch.setattr(agent, "_autostart_failed", False)
    tries = []
    real = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda *a: (tries.append(a), real(*a))[1])
    try:
        assert agent.autostart() is False
        first = len(tries)
        assert first > 0
        assert agent.autostart() is False
        assert len(tries) == first  # the second path of the same process does not wait again
    finally:
        os.close(fd)


# -- environment and socket path ------------------------------------------------------------------

SECRETS = {
    "OPENCLAW_GATEWAY_TOKEN": "canary-gateway-token",
    "OPENCLAW_GATEWAY_PASSWORD": "canary-gateway-password",
    "PIP_INDEX_URL": "https://user:canary-index-password@example.invalid/simple",
    "SCALEKIT_EMULATOR_ADMIN_KEY": "canary-admin-key",
    "GRPC_TRACE": "canary-grpc",
    "UV_INDEX_URL": "https://canary-uv@example.invalid",
}


def test_the_agent_gets_an_allowlisted_environment_only(ready):
    proc = run("get_token.py", "gmail", env=SECRETS)
    assert proc.stdout == "gmail-token\n", proc.stderr
    pid = agent.status()["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    for name, value in SECRETS.items():
        assert value.encode() not in environ, name
    assert b"SCALEKIT_CLIENT_SECRET=" in environ and b"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=" in environ


@pytest.mark.slow
def test_a_runtime_folder_too_long_for_a_socket_falls_back_to_a_short_one(ready, tmp_path):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True, mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(deep)}
    assert len(str(deep)) > paths.SOCKET_PATH_MAX
    sock = paths.agent_socket({**os.environ, **env})
    assert len(sock.encode()) <= paths.SOCKET_PATH_MAX and sock.startswith("/tmp/")
    try:
        first = run("get_token.py", "gmail", env=env)
        assert first.stdout == "gmail-token\n", first.stderr
        status = run("-m", "scalekit_auth", "agent", "status", "--json", env=env)
        assert json.loads(status.stdout)["running"], status.stdout + status.stderr
    finally:
        run("-m", "scalekit_auth", "agent", "stop", env=env)


def test_a_socket_path_that_cannot_fit_is_refused_in_one_line(ready):
    with pytest.raises(Exception, match="too long"):
        agent.check_socket_path("/tmp/" + "z" * 200)


# -- async -----------------------------------------------------------------------------------------


def test_a_loop_closed_mid_fetch_leaves_nothing_behind(ready, emulator):
    from scalekit_auth import aio

    emulator.set_latency(1.0)
    loop = asyncio.new_event_loop()
    road = Road(LocalSource(TokenBroker()), agent=False)
    task = loop.create_task(aio.aget_credentials("gmail", broker=road.broker))
    loop.run_until_complete(asyncio.sleep(0.2))  # the fetch is in its thread now
    assert aio._flights
    task.cancel()
    loop.close()
    deadline = time.monotonic() + 60
    while aio._flights and time.monotonic() < deadline:
        time.sleep(0.05)
    emulator.set_latency(0)
    assert aio._flights == {}
