"""Plain helpers shared by the test modules: running the skill's scripts, finding token agents,
a third-party API stand-in, the files that ship. The fixtures and hooks stay in conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from scalekit_auth.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent


# -- running the skill as a shell user does -----------------------------------------------------


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


# -- token agent processes (Linux /proc) ----------------------------------------------------------


def wait_for_agents_to_exit(match, within: float = 60.0) -> None:
    """A stopped agent takes a moment to exit (gRPC shutdown): wait, and kill what is left."""
    import signal

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not [pid for pid, environ in agent_processes() if match(environ)]:
            return
        time.sleep(0.05)
    for pid, environ in agent_processes():
        if match(environ):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def agent_processes() -> list[tuple[int, str]]:
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
    for pid, environ in agent_processes():
        if match(environ):
            try:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
            except OSError:
                pass
    return stopped


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
        # polls for shutdown every 50 ms, not the default 500: stop() waits for the next poll after each test
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
