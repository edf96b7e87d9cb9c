"""The local token agent: start/stop/status, idle exit, fallback, errors, reload, permissions."""

from __future__ import annotations

import functools
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalekit_auth import agent, agent_client, paths

from .helpers import ROOT, run_script

LOOKUP = "rpc.GetConnectedAccountAuth"


cli = functools.partial(run_script, "scalekit-auth")


# get_token.py's own code path, run in a fresh interpreter, reporting whether it loaded the SDK
PROBE = """
import sys
from scalekit_auth.cli import get_token_main
code = get_token_main(sys.argv[1:])
print("SDK-LOADED" if "scalekit" in sys.modules else "SDK-NOT-LOADED", file=sys.stderr)
sys.exit(code)
"""


def probe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def ready(skill, emulator):
    skill.monkeypatch.delenv("SCALEKIT_AUTH_AGENT")  # these tests are about the agent
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    skill.configure("slack", "slack_x7y9z", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token")
    return skill


@pytest.fixture
def running(ready):
    proc = cli("agent", "start")
    assert proc.returncode == 0, proc.stderr
    return agent.status()


def test_start_is_idempotent_status_reports_and_stop_ends_it(ready):
    assert cli("agent", "status").returncode == 1
    first = cli("agent", "start")
    assert first.returncode == 0 and "agent started (pid" in first.stderr
    info = json.loads(cli("agent", "status", "--json").stdout)
    assert info["running"] and info["context_matches"]
    again = cli("agent", "start")
    assert "already running" in again.stderr and str(info["pid"]) in again.stderr
    text = cli("agent", "status").stdout
    assert text.startswith(f"running  pid {info['pid']}")
    stopped = cli("agent", "stop")
    assert stopped.returncode == 0 and "its cache is gone" in stopped.stderr
    assert not Path(info["socket"]).exists()
    assert cli("agent", "status").returncode == 1
    assert gone(info["pid"])


def gone(pid: int, within: float = 60) -> bool:
    """True once the process has exited (a zombie waiting for its reaper counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_calls_go_through_the_agent_without_loading_the_sdk(running, emulator):
    for _ in range(3):
        proc = probe("gmail")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "gmail-token\n"
        assert "SDK-NOT-LOADED" in proc.stderr
    assert emulator.counters()[LOOKUP] == 1  # one lookup, then the agent's cache
    assert agent.status()["cache"]["hits"] >= 2


def test_python_get_token_uses_the_agent(running, emulator):
    code = (
        "import sys\nfrom scalekit_helper import get_token\n"
        "print(get_token('gmail'))\nprint('scalekit' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["gmail-token", "False"], proc.stderr


def test_header_and_exec_through_the_agent(running):
    assert cli("header", "gmail").stdout == "Authorization: Bearer gmail-token\n"
    show = "import os; print(os.environ['GMAIL_TOKEN'])"
    proc = cli("exec", "gmail", "--", sys.executable, "-c", show)
    assert (proc.returncode, proc.stdout) == (0, "gmail-token\n")


def test_errors_cross_the_socket_unchanged(running, emulator):
    for args, code in ((["nope"], 3), (["slack"], 4), (["gmail", "nope"], 3)):
        via_agent = probe(*args)
        in_process = probe(*args, env={"SCALEKIT_AUTH_AGENT": "0"})
        assert via_agent.returncode == in_process.returncode == code
        assert "SDK-NOT-LOADED" in via_agent.stderr
        first_line = via_agent.stderr.splitlines()[0]
        if args != ["slack"]:  # the link differs between two calls
            assert first_line == in_process.stderr.splitlines()[0]
        else:
            assert first_line.startswith("get_token.py: Authorization needed: the slack account for 'mess'")


def test_python_sees_the_same_exception_from_the_agent(running):
    code = (
        "import sys\nfrom scalekit_helper import get_token, AuthorizationError\n"
        "try:\n    get_token('slack')\nexcept AuthorizationError as err:\n"
        "    print(type(err).__name__, err.service, err.identifier, err.link.startswith('http'),"
        " err.expires_at.tzinfo is not None, err.exit_code)\n"
        "print('scalekit' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["AuthorizationError", "slack", "mess", "True", "True", "4", "False"], proc.stderr


def test_config_changes_take_effect_in_the_agent(running, emulator):
    emulator.seed("slack_x7y9z", "mess", access_token="slack-token")
    assert probe("gmail").stdout == "gmail-token\n"
    assert cli("config", "gmail", "slack_x7y9z").returncode == 0
    proc = probe("gmail")
    assert proc.stdout == "slack-token\n" and "SDK-NOT-LOADED" in proc.stderr


def test_disconnect_makes_the_agent_forget_the_token(running, emulator):
    assert probe("gmail").stdout == "gmail-token\n"  # the agent holds it now
    assert cli("disconnect", "gmail", "--yes").returncode == 0
    after = probe("gmail")
    assert after.returncode == 4 and "gmail-token" not in after.stdout, after.stderr
    assert "SDK-NOT-LOADED" in after.stderr  # the agent answered, having asked Scalekit again


def test_disabled_with_the_variable_and_bypassed_for_other_settings(running, emulator):
    off = probe("gmail", env={"SCALEKIT_AUTH_AGENT": "0"})
    assert off.stdout == "gmail-token\n" and "SDK-LOADED" in off.stderr
    other = probe("gmail", env={"SCALEKIT_CACHE_MARGIN": "10"})  # a different configuration
    assert other.stdout == "gmail-token\n" and "SDK-LOADED" in other.stderr


def test_fallback_when_the_agent_dies_mid_request(running, emulator):
    assert probe("slack").returncode == 4  # the agent has logged in to Scalekit (slack needs authorization)
    emulator.set_latency(600)  # held at Scalekit until we say so
    lookups = emulator.counters().get(LOOKUP, 0)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE, "gmail"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while emulator.counters().get(LOOKUP, 0) == lookups:  # the agent is now asking Scalekit for this request
        assert time.monotonic() < deadline and proc.poll() is None, "the request never reached the agent"
        time.sleep(0.02)
    os.kill(running["pid"], signal.SIGKILL)
    emulator.set_latency(0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "gmail-token\n"  # a new agent (started by this call) or the call itself finished the job


def test_idle_agent_exits_by_itself(ready):
    import re

    started = cli("agent", "start", "--idle-timeout", "1")
    assert started.returncode == 0, started.stderr
    pid = int(re.search(r"agent started \(pid (\d+)", started.stderr).group(1))  # it may be gone already
    socket_path = Path(paths.agent_socket())
    # Whenever the socket is there, the agent answers on it: it removes the socket before it stops.
    deadline = time.monotonic() + 60
    while socket_path.exists() and time.monotonic() < deadline:
        answer = agent_client.ping(timeout=30, any_context=True)
        assert answer is not None or not socket_path.exists(), "socket left behind by an agent that stopped answering"
        time.sleep(0.05)
    assert not socket_path.exists(), f"still running after 60 s: {agent.status()}"
    assert agent.status() is None
    assert gone(pid, within=60)


def test_stop_wipes_the_cache(ready, emulator):
    cli("agent", "start")
    probe("gmail")
    probe("gmail")
    assert emulator.counters()[LOOKUP] == 1
    cli("agent", "stop")
    cli("agent", "start")
    assert agent.status()["cache"]["entries"] == 0
    probe("gmail")
    assert emulator.counters()[LOOKUP] == 2


def test_private_directory_and_socket_and_no_token_on_disk(running):
    sock = Path(running["socket"])
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(sock.stat().st_mode)
    probe("gmail")
    for folder in (sock.parent, Path(os.environ["SCALEKIT_AUTH_DIR"])):
        for path in folder.rglob("*"):
            if path.is_file():
                assert b"gmail-token" not in path.read_bytes()


# A stdlib client for another user: asks for a token with the right context.
OTHER_USER_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
try:
    s.connect(sys.argv[1])
except OSError as err:
    print("CONNECT-REFUSED", err.errno); sys.exit(0)
try:
    s.sendall(json.dumps({"v": 1, "op": "token", "services": ["gmail"], "context": sys.argv[2]}).encode() + b"\\n")
    data = s.recv(65536)
except (BrokenPipeError, ConnectionResetError):  # the agent hung up before or after our request
    data = b""
print("REPLY" if data else "CLOSED-WITHOUT-REPLY", data.decode()[:200])
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user")
@pytest.mark.system
def test_another_user_cannot_use_the_agent(running):
    sock = running["socket"]
    context = paths.context_fingerprint()
    nobody = {"user": 65534, "group": 65534, "env": {"PATH": "/usr/bin:/bin"}}
    blocked = subprocess.run(
        ["/usr/bin/python3", "-c", OTHER_USER_CLIENT, sock, context],
        capture_output=True, text=True, timeout=60, cwd="/", **nobody,
    )  # fmt: skip
    assert blocked.stdout.startswith("CONNECT-REFUSED 13"), blocked.stdout + blocked.stderr  # EACCES: 0700 dir
    # Even with the directory and socket opened up, the agent checks who is calling (SO_PEERCRED).
    base = os.environ["XDG_RUNTIME_DIR"]
    os.chmod(base, 0o711)
    os.chmod(Path(sock).parent, 0o711)
    os.chmod(sock, 0o666)
    try:
        peer = subprocess.run(
            ["/usr/bin/python3", "-c", OTHER_USER_CLIENT, sock, context],
            capture_output=True, text=True, timeout=60, cwd="/", **nobody,
        )  # fmt: skip
    finally:
        os.chmod(base, 0o700)
        os.chmod(Path(sock).parent, 0o700)
        os.chmod(sock, 0o600)
    assert peer.stdout.startswith("CLOSED-WITHOUT-REPLY"), peer.stdout + peer.stderr
    assert "gmail-token" not in peer.stdout
    assert [c.token for c in agent_client.credentials(["gmail"])] == ["gmail-token"]  # and we still can


def test_an_insecure_runtime_directory_is_refused(ready, tmp_path, monkeypatch):
    runtime = Path(os.environ["XDG_RUNTIME_DIR"]) / "scalekit-auth"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, 65534, 65534) if os.getuid() == 0 else pytest.skip("needs root to chown")
    proc = cli("agent", "start")
    assert proc.returncode == 3
    assert "belongs to another user" in proc.stderr


# -- a forged agent: another local user binds the socket name first ----------------------------

# Runs as `nobody`: listens on argv[1], records every byte a client sends to argv[2], answers
# every request with a token of its own. argv[3] is a file created once it listens.
FORGED_AGENT = """
import json, os, socket, sys
path, log, ready = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
os.chmod(path, 0o777)
srv.listen(8)
open(ready, "w").close()
while True:
    conn, _ = srv.accept()
    conn.settimeout(30)
    try:
        data = conn.recv(65536)
        with open(log, "ab") as fh:
            fh.write(data)
        result = [{"service": "gmail", "identifier": "mess", "connection_name": "x", "kind": "oauth",
                   "token": "FORGED-TOKEN", "access_token": "FORGED-TOKEN", "scopes": [], "expires_at": None,
                   "fields": {}}]
        ping = {"pid": 1, "socket": path, "skill_dir": "/", "started_at": 0, "idle_for": 0, "idle_timeout": 900,
                "context_matches": True, "cache": {"entries": 0, "hits": 0, "misses": 0}}
        conn.sendall(json.dumps({"ok": True, "result": ping if b'"ping"' in data else result}).encode() + b"\\n")
    except OSError:
        pass
    finally:
        conn.close()
"""


@pytest.fixture
def forged(ready):
    """Start a forged agent as `nobody`; returns a function that launches it on a socket path."""
    import shutil
    import tempfile

    if os.getuid() != 0:
        pytest.fail("this test needs root (CI runs as root) to act as another local user")
    procs = []
    shared = Path(tempfile.mkdtemp(prefix="ska-forged-", dir="/tmp"))  # the attacker can reach it, as /tmp
    os.chmod(shared, 0o777)
    os.chmod(os.environ["XDG_RUNTIME_DIR"], 0o755)  # reachable, like /tmp when XDG_RUNTIME_DIR is unset

    def launch(sock: Path) -> Path:
        log, flag = shared / "received.bin", shared / "listening"
        proc = subprocess.Popen(
            ["/usr/bin/python3", "-c", FORGED_AGENT, str(sock), str(log), str(flag)],
            user=65534, group=65534, env={"PATH": "/usr/bin:/bin"}, cwd="/",
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the forged agent did not start within 60 s"
            time.sleep(0.05)
        return log

    yield launch
    for proc in procs:
        proc.kill()
        proc.wait(timeout=60)
    shutil.rmtree(shared, ignore_errors=True)


def _no_forged_token(log: Path, *results: subprocess.CompletedProcess) -> None:
    for proc in results:
        assert "FORGED-TOKEN" not in proc.stdout + proc.stderr
    assert not log.exists() or log.read_bytes() == b"", f"the forged agent learnt: {log.read_bytes()[:200]!r}"


@pytest.mark.system
def test_a_runtime_directory_made_by_another_user_is_not_trusted(forged, emulator):
    """As in /tmp when XDG_RUNTIME_DIR is unset: the attacker made the directory first and listens in it."""
    runtime = Path(paths.runtime_dir())
    runtime.mkdir(mode=0o777)
    os.chmod(runtime, 0o777)
    os.chown(runtime, 65534, 65534)
    log = forged(Path(paths.agent_socket()))
    token = probe("gmail")
    via_cli = cli("header", "gmail")
    status = cli("agent", "status")
    assert token.returncode == 0 and token.stdout == "gmail-token\n", token.stderr  # done in-process instead
    assert via_cli.stdout == "Authorization: Bearer gmail-token\n"
    assert status.returncode == 1 and "FORGED" not in status.stdout
    _no_forged_token(log, token, via_cli, status)


@pytest.mark.system
def test_a_socket_of_another_user_in_our_directory_is_not_trusted(forged, emulator):
    """Our private directory, but the socket in it belongs to someone else (it was opened up for a moment)."""
    runtime = Path(paths.runtime_dir())
    runtime.mkdir(mode=0o700, parents=True)
    os.chmod(runtime, 0o777)
    log = forged(Path(paths.agent_socket()))
    os.chmod(runtime, 0o700)
    token = probe("gmail")
    assert token.stdout == "gmail-token\n", token.stderr
    _no_forged_token(log, token)


@pytest.mark.system
def test_the_peer_is_checked_even_when_every_file_looks_like_ours(forged, emulator):
    """Socket and directory chowned to us: only the kernel's word on the peer (SO_PEERCRED) gives it away."""
    runtime = Path(paths.runtime_dir())
    runtime.mkdir(mode=0o700, parents=True)
    os.chmod(runtime, 0o777)
    sock = Path(paths.agent_socket())
    log = forged(sock)
    os.chmod(runtime, 0o700)
    os.chown(sock, os.getuid(), os.getgid())
    os.chmod(sock, 0o600)
    token = probe("gmail")
    status = cli("agent", "status", "--json")
    assert token.stdout == "gmail-token\n", token.stderr
    # The impostor got nothing; the call started our own agent in its place.
    info = json.loads(status.stdout)
    assert info["running"] and os.stat(f"/proc/{info['pid']}").st_uid == os.getuid()
    _no_forged_token(log, token, status)


@pytest.mark.slow
def test_a_frozen_agent_costs_callers_seconds_not_the_scalekit_timeout(ready, monkeypatch):
    """SIGSTOP: the kernel still accepts connections, nobody answers. Callers fall back quickly;
    status names the stuck process; start does not take its socket from under it."""
    monkeypatch.setenv("SCALEKIT_TIMEOUT", "120")  # waiting for the agent's answer could take 6 minutes
    assert cli("agent", "start").returncode == 0
    pid = agent.status()["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        token = probe("gmail")
        took = time.monotonic() - started
        status = cli("agent", "status")
        again = cli("agent", "start")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert token.returncode == 0 and token.stdout == "gmail-token\n", token.stderr
    assert "SDK-LOADED" in token.stderr  # done in-process
    assert took < 60, f"{took:.0f} s behind a frozen agent"
    assert status.returncode == 1
    assert f"pid {pid}" in status.stderr and "not answering" in status.stderr, status.stderr
    assert again.returncode == 3 and f"pid {pid}" in again.stderr and "not answering" in again.stderr, again.stderr
    assert agent.status()["pid"] == pid  # it was left alone, and answers again once resumed


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_an_oversized_request_is_cut_off_not_buffered(running):
    import socket as socket_module

    assert probe("gmail").stdout == "gmail-token\n"  # the agent has loaded the SDK and logged in: memory is settled
    pid, before = running["pid"], _rss_kb(running["pid"])
    with socket_module.socket(socket_module.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(running["socket"])
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(64):  # 64 MB without a newline
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent hung up on us: good
    assert _rss_kb(pid) - before < 16 * 1024, "the agent buffered the oversized request"
    assert agent.status()["pid"] == pid  # and it still serves


@pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf", "0"])
def test_a_bad_idle_timeout_is_refused_with_its_name(ready, value):
    proc = cli("agent", "start", env={"SCALEKIT_AGENT_IDLE_TIMEOUT": value})
    assert proc.returncode == 3, proc.stderr
    assert "SCALEKIT_AGENT_IDLE_TIMEOUT" in proc.stderr and "Traceback" not in proc.stderr
    assert agent.status() is None


def test_the_agent_hands_every_caller_the_same_fresh_link(running, emulator):
    """Shell callers come and go; the agent remembers the link it issued, so retries cost no new one."""
    first = cli("token", "slack")
    second = cli("token", "slack")
    assert first.returncode == second.returncode == 4
    link = [w for w in first.stderr.split() if "/connect/" in w]
    assert link and link == [w for w in second.stderr.split() if "/connect/" in w]
    assert emulator.counters()["links_issued"] == 1


def test_an_agent_that_could_not_answer_does_not_start(skill, emulator):
    """No credentials: `agent start` says why and no agent is left running."""
    proc = cli("agent", "start")
    assert proc.returncode == 3 and "not configured" in proc.stderr, proc.stderr
    assert agent.status() is None


def test_an_agent_without_the_sdk_for_its_python_does_not_start(ready, tmp_path):
    """No SDK for this Python and the private install turned off: nothing to run the agent with."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), str(ROOT / "scalekit-auth"), "agent", "start"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SCALEKIT_AUTH_AUTOINSTALL": "0"},
    )
    assert proc.returncode == 3 and "'scalekit-sdk-python' is not installed" in proc.stderr, proc.stderr
    assert agent.status() is None
    assert "Traceback" not in proc.stderr


# -- starting itself ---------------------------------------------------------------------------


def _agent_pids(runtime: str) -> list[int]:
    from .helpers import agent_processes

    return [pid for pid, environ in agent_processes() if f"XDG_RUNTIME_DIR={runtime}" in environ.split("\n")]


def test_the_first_shell_call_starts_the_agent_and_later_calls_use_it(ready, emulator):
    assert agent.status() is None
    first = probe("gmail")
    assert (first.returncode, first.stdout) == (0, "gmail-token\n"), first.stderr
    info = agent.status()
    assert info is not None and info["started_by"] == "auto"
    second = probe("gmail")
    assert second.stdout == "gmail-token\n" and "SDK-NOT-LOADED" in second.stderr  # answered by the agent
    assert emulator.counters()[LOOKUP] == 1  # one lookup, by the agent, for both calls
    status = cli("agent", "status")
    assert "started by the first shell call" in status.stdout + status.stderr


def test_callers_racing_to_start_the_agent_start_only_one(ready, emulator):
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "get_token.py"), "gmail"], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert outs == ["gmail-token\n"] * 8
    assert len(_agent_pids(os.environ["XDG_RUNTIME_DIR"])) == 1


def test_no_agent_is_started_when_it_is_turned_off_or_could_not_work(ready, skill, emulator):
    off = probe("gmail", env={"SCALEKIT_AUTH_AGENT": "0"})
    assert off.stdout == "gmail-token\n"
    assert agent.status() is None
    broken = probe("gmail", env={"SCALEKIT_CLIENT_SECRET": ""})  # no credentials: nothing to serve
    assert broken.returncode == 3 and "SCALEKIT_CLIENT_SECRET" in broken.stderr
    assert agent.status() is None


def test_a_long_lived_python_process_never_starts_an_agent(ready):
    from scalekit_helper import get_token

    assert get_token("gmail") == "gmail-token"
    assert agent.status() is None


def test_curl_starts_the_agent_too(ready, tmp_path):
    fake = tmp_path / "curl"
    fake.write_text("#!/bin/sh\necho called\n")
    fake.chmod(0o755)
    done = cli(
        "curl", "https://gmail.googleapis.com/gmail/v1/users/me/profile", env={"PATH": f"{tmp_path}:/usr/bin:/bin"}
    )
    assert done.returncode == 0 and done.stdout == "called\n", done.stderr
    assert agent.status()["started_by"] == "auto"


def test_an_agent_that_died_is_replaced_by_the_next_call(ready):
    import signal as _signal

    assert probe("gmail").returncode == 0
    first = agent.status()
    os.kill(first["pid"], _signal.SIGKILL)  # crashed: its socket file stays behind
    deadline = time.monotonic() + 60
    while agent.status() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    again = subprocess.run(
        [sys.executable, str(ROOT / "get_token.py"), "gmail"], capture_output=True, text=True, timeout=60
    )
    assert again.stdout == "gmail-token\n", again.stderr
    second = agent.status()
    assert second is not None and second["pid"] != first["pid"]


def test_a_relative_state_folder_still_reaches_the_agent(ready, skill):
    relative = os.path.relpath(skill.path, skill.path.parent)
    env = {**os.environ, "SCALEKIT_AUTH_DIR": relative}
    runs = [
        subprocess.run(
            [sys.executable, str(ROOT / "get_token.py"), "gmail"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=skill.path.parent,
        )  # fmt: skip
        for _ in range(2)
    ]
    assert [r.stdout for r in runs] == ["gmail-token\n"] * 2, runs[-1].stderr
    assert agent.status() is not None and agent.status()["started_by"] == "auto"


@pytest.mark.slow
def test_a_caller_does_not_wait_long_for_another_that_hangs_while_starting_the_agent(ready):
    import fcntl

    runtime = paths.runtime_dir()
    agent.ensure_private_dir(runtime)
    lock = os.path.join(runtime, os.path.basename(paths.agent_socket()) + ".start-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a caller suspended (Ctrl-Z) in the middle of starting it
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "get_token.py"), "gmail"], capture_output=True, text=True, timeout=60
        )
    finally:
        os.close(fd)
    assert done.stdout == "gmail-token\n", done.stderr  # did the work itself after a short wait


def test_the_agent_does_not_inherit_unrelated_secrets(ready):
    probe("gmail", env={"AWS_SECRET_ACCESS_KEY": "canary-unrelated-secret"})
    pid = agent.status()["pid"]
    with open(f"/proc/{pid}/environ", "rb") as fh:
        environ = fh.read()
    assert b"canary-unrelated-secret" not in environ
    assert b"SCALEKIT_CLIENT_SECRET=" in environ  # what it needs, it has
