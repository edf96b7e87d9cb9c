"""Shared fixtures: a running emulator per test, and an isolated skill folder.

gRPC reads its trusted roots once per process, so every emulator in the test run
shares one CA, and the CA variables are set before any test makes a channel.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import CertificateAuthority, Emulator  # noqa: E402

_CA = CertificateAuthority.shared()
for _name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
    os.environ[_name] = str(_CA.bundle_path)
os.environ["SCALEKIT_EMULATOR_CA_DIR"] = str(_CA.directory)
# Shell calls start a token agent by themselves; in tests only those about the agent may (they
# opt in by removing this). Every process started from here carries the session marker, so the
# check at the end of the session finds any agent a test left behind.
os.environ["SCALEKIT_AUTH_AGENT"] = "0"
os.environ.setdefault("SCALEKIT_TEST_SESSION", f"{os.getpid()}-{time.time():.0f}")


@pytest.fixture
def emulator():
    """A fresh emulator with the default connections; stopped after the test."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def sdk(emulator):
    """A real ScalekitClient pointed at the emulator."""
    from scalekit.client import ScalekitClient

    client = ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)
    yield client
    client.core_client.grpc_secure_channel.close()


def run_script(
    script: str | os.PathLike,
    *args: str,
    env: dict | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike | None = None,
    inherit: bool = True,
):
    """Run a top-level script of the skill folder (get_token.py, scalekit-auth) as a shell user would.

    `script` is relative to this checkout, or the path of one in another copy; `env` adds to this
    process's environment, or (inherit=False) is the whole environment."""
    import subprocess

    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})} if inherit else env,
        stdin=subprocess.DEVNULL,
    )


def popen_as_in_a_terminal(argv: list[str], **kwargs):
    """Popen for a child that must react to Ctrl-C (SIGINT) as it would in a terminal.

    A program started in the background by a non-interactive shell (`make test &`, CI) inherits
    SIGINT *ignored*, and Python then never raises KeyboardInterrupt. A handled signal is reset
    to the default on exec, so installing Python's own handler around the spawn gives the child
    the disposition a terminal user has.
    """
    import signal
    import subprocess

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(argv, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


def run_on_terminal(argv: list[str], env: dict | None = None, on_output=None, timeout: float = 120) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdin, stdout and stderr; (exit code, everything it wrote).

    `on_output(text_so_far)` is called after each chunk (e.g. to click a link it printed); text it
    returns is typed on the terminal (e.g. the answer to a prompt). Uses subprocess rather than
    pty.fork(): forking a multi-threaded test process can deadlock the child.
    """
    import select
    import subprocess
    import time

    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True, close_fds=True
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if on_output is not None:
                typed = on_output(seen.decode(errors="replace"))
                if typed:
                    os.write(master, typed.encode())
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, seen.decode(errors="replace")


class Skill:
    """A throwaway skill folder wired to the process environment for one test."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self.monkeypatch = monkeypatch
        self.identity_file = path.parent / "IDENTITY.md"
        self.connections_file = path / "connections.json"

    def configure(self, service: str, connection_name: str, identifier: str | None = None) -> None:
        import json

        data = json.loads(self.connections_file.read_text()) if self.connections_file.exists() else {}
        data[service] = {"connection_name": connection_name}
        if identifier:
            data[service]["identifier"] = identifier
        self.connections_file.write_text(json.dumps(data))

    def set_agent_name(self, name: str) -> None:
        self.identity_file.write_text(f"# Who am I\n\n- **Name:** {name}\n- **Role:** helper\n")

    def use(self, emu: Emulator, *, via: str = "environ") -> None:
        """Point the skill at an emulator through the process environment or the .env file."""
        creds = {
            "SCALEKIT_ENV_URL": emu.url,
            "SCALEKIT_CLIENT_ID": emu.client_id,
            "SCALEKIT_CLIENT_SECRET": emu.client_secret,
        }
        if via == "environ":
            for key, value in creds.items():
                self.monkeypatch.setenv(key, value)
        else:
            (self.path / ".env").write_text("".join(f"{k}={v}\n" for k, v in creds.items()))

    def run(self, *args: str, script: str = "get_token.py", env: dict | None = None, timeout: float = 60):
        """Run a top-level script (get_token.py) as a shell user would; returns CompletedProcess."""
        return run_script(script, *args, env=env, timeout=timeout)

    def cli(self, *args: str, env: dict | None = None, timeout: float = 60):
        """Run `python3 -m scalekit_auth ARGS`."""
        import subprocess

        return subprocess.run(
            [sys.executable, "-m", "scalekit_auth", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def skill(tmp_path, monkeypatch):
    """An empty skill folder; no Scalekit credentials anywhere; no IDENTITY.md."""
    keep = ("SCALEKIT_EMULATOR_CA_DIR", "SCALEKIT_AUTH_AGENT", "SCALEKIT_TEST_SESSION")
    for name in list(os.environ):
        if (name.startswith("SCALEKIT_") and name not in keep) or name.startswith("OPENCLAW_"):
            monkeypatch.delenv(name)
    home = tmp_path / "user-home"  # no ~/.openclaw, ~/.config or ~/.cache of the real user
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "skill"
    folder.mkdir()
    monkeypatch.setenv("SCALEKIT_AUTH_DIR", str(folder))
    monkeypatch.setenv("SCALEKIT_IDENTITY_FILE", str(tmp_path / "IDENTITY.md"))
    runtime = tempfile.mkdtemp(prefix="ska-", dir="/tmp")  # short: Unix socket paths are limited
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield Skill(folder, monkeypatch)
    from scalekit_auth import agent, api

    api.close()
    agent.stop()
    ours = f"XDG_RUNTIME_DIR={runtime}"
    stop_agents(lambda environ: ours in environ.split("\n"))  # any other one started under it
    wait_for_agents_to_exit(lambda environ: ours in environ.split("\n"))
    shutil.rmtree(runtime, ignore_errors=True)


def wait_for_agents_to_exit(match, within: float = 60.0) -> None:
    """A stopped agent takes a moment to exit (gRPC shutdown): wait, and kill what is left."""
    import signal

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not [pid for pid, environ in _agents() if match(environ)]:
            return
        time.sleep(0.05)
    for pid, environ in _agents():
        if match(environ):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _agents() -> list[tuple[int, str]]:
    """(pid, environment) of every scalekit-auth agent process of this user (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # exited, waiting to be reaped: not running
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().split(b"\0")
            if b"scalekit_auth.agent" not in cmdline:
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        found.append((int(entry), "\n".join(environ)))
    return found


def stop_agents(match) -> list[int]:
    """SIGTERM every agent whose environment `match`es; their pids."""
    import signal

    stopped = []
    for pid, environ in _agents():
        if match(environ):
            try:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
            except OSError:
                pass
    return stopped


def pytest_sessionfinish(session, exitstatus):
    """No test may leave an agent behind: find them (by the session marker), stop them, and fail."""
    if hasattr(session.config, "workerinput"):
        return  # the controller checks once every worker is done
    marker = "SCALEKIT_TEST_SESSION=" + os.environ["SCALEKIT_TEST_SESSION"]
    deadline = time.monotonic() + 10  # one stopped by the last test may still be shutting down
    while time.monotonic() < deadline and any(marker in environ.split("\n") for _, environ in _agents()):
        time.sleep(0.1)
    left = stop_agents(lambda environ: marker in environ.split("\n"))
    if left:
        session.config.stash_left_agents = left
        print(f"\nscalekit-auth tests: {len(left)} token agent(s) left running (pids {left}); stopped them", flush=True)
        session.exitstatus = 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the test item (for screenshots on failure)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# -- a third-party API stand-in (tests of requests/httpx/curl auth) -------------------------------


class StandIn:
    """An HTTP API that answers 200 only to `Bearer <current token>`; records what it saw."""

    def __init__(self, current_token) -> None:
        self.current_token = current_token
        self.seen: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding") == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization", "")
                stand_in.seen.append({"path": self.path, "auth": auth, "body": body})
                if self.path.startswith("/gmail/redirect?to="):  # an API that sends the client elsewhere
                    self.send_response(302)
                    self.send_header("Location", self.path.split("?to=", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ok = auth == f"Bearer {stand_in.current_token()}"
                if ok and self.path.startswith("/gmail/v1/users/me/messages"):
                    payload = {"messages": [{"id": "m1", "threadId": "t1"}, {"id": "m2", "threadId": "t2"}]}
                else:
                    payload = {"ok": True, "path": self.path} if ok else {"error": "invalid_token"}
                data = json.dumps(payload).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815 - stdlib naming

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(skill, emulator):
    """gmail configured (identifier mess, the stand-in's host listed), an ACTIVE account, the stand-in."""
    skill.use(emulator)
    emulator.seed("gmail_u3134a", "mess", access_token="token-1")
    stand_in = StandIn(lambda: emulator.account("gmail_u3134a", "mess")["access_token"])
    host = stand_in.url.removeprefix("http://")
    skill.connections_file.write_text(
        json.dumps({"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": [f"{host}/gmail"]}})
    )
    yield stand_in
    stand_in.stop()


# -- the skill as it ships ----------------------------------------------------------------------


def shipped_files() -> list[str]:
    """The files `clawhub publish` uploads: no dot-paths, no symlinks, minus .gitignore and .clawhubignore."""
    import pathspec

    rules = []
    for name in (".gitignore", ".clawhubignore"):
        rules += (ROOT / name).read_text().splitlines()
    ignored = pathspec.GitIgnoreSpec.from_lines(rules)
    found = []
    for folder, dirs, files in os.walk(ROOT):
        rel_dir = Path(folder).relative_to(ROOT)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        dirs[:] = [d for d in dirs if not ignored.match_file(str(rel_dir / d) + "/")]
        for name in files:
            rel = str(rel_dir / name) if str(rel_dir) != "." else name
            if name.startswith(".") or os.path.islink(ROOT / rel) or ignored.match_file(rel):
                continue
            found.append(rel)
    return sorted(found)


def ship_to(dest: Path) -> Path:
    """A copy of what ships, as `clawhub install` puts it in <workspace>/skills/<slug>."""
    for rel in shipped_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest
