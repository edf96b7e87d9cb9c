"""Real OpenClaw agent turns against a scripted model: the token never reaches the model.

The real `openclaw` CLI (scripts/openclaw-cli) runs with the skill installed in an isolated
workspace and Scalekit's credentials in `skills.entries.scalekit-auth` (as SKILL.md tells users).
Its model is a scripted OpenAI-compatible server on loopback (`models.providers.<id>` with
`api: "openai-completions"`, the package's docs/gateway/local-models.md) that answers each chat
completion with the step its test scripted: calls to OpenClaw's `exec` and `process` tools running
what SKILL.md documents, then a final text. Every request OpenClaw sends to the model is recorded.

What OpenClaw 2026.9.6 sends: only `POST /v1/chat/completions`, always `"stream": true` with
`stream_options.include_usage`, `tool_choice: "auto"`, `max_completion_tokens`, the tools as
OpenAI functions (exec, process, read, write, ... and tool_search for the rest), and the
conversation with each tool result as a `role: "tool"` message (exec: stdout and stderr together).
Tool call ids come back without their underscores, so the scripts use ids without any.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scalekit_auth.emulator import Emulator

from .helpers import ROOT, ship_to, stop_agents, wait_for_agents_to_exit
from .test_request import EchoApi

pytestmark = pytest.mark.openclaw

TOKEN = "ya29.openclaw-turn-canary-4f1c9e27d3"
MODEL = "scripted-1"
CA_VARS = ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SCALEKIT_EMULATOR_CA_DIR")
WAKE_UP = "An async command you ran earlier has completed"  # OpenClaw's exec-completion prompt
WAITING_LINK = re.compile(r'"status": "WAITING", "link": "([^"]+)"')


# -- the scripted model -----------------------------------------------------------------------------


@dataclass
class Seen:
    """One HTTP request the model server received: request line, headers and body, as sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def raw(self) -> bytes:
        head = "".join(f"{name}: {value}\n" for name, value in self.headers.items())
        return f"{self.method} {self.path}\n{head}\n".encode() + self.body

    def json(self) -> dict:
        return json.loads(self.body)


#: One step of a script: a chat-completion request in, the assistant's message out
#: ({"content": text} or {"tool_calls": [...]}).
Reply = Callable[[dict], dict]


def tool_call(call_id: str, name: str, arguments: dict) -> dict:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"tool_calls": [call]}


def text_of(message: dict) -> str:
    content = message.get("content") or ""
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def conversation(request: dict) -> list[dict]:
    """A request's messages without the internal-context notes OpenClaw appends after the last one."""
    messages = list(request["messages"])
    while messages and text_of(messages[-1]).startswith("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"):
        messages.pop()
    return messages


class ScriptedModel:
    """`POST /v1/chat/completions` answered by `reply`: an SSE stream of chat.completion.chunk objects
    when the request says `"stream": true` (OpenClaw always does), else one chat.completion object.
    Any other request is recorded and answered 404 (OpenClaw sent none)."""

    def __init__(self) -> None:
        self.reply: Reply = lambda request: {"content": "(nothing scripted)"}
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _record(self) -> Seen:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length) if length else b"")
                model.seen.append(seen)
                return seen

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                self._record()
                self._send(404, "application/json", b'{"error": {"message": "not scripted"}}')

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                seen = self._record()
                if seen.path != "/v1/chat/completions":
                    self._send(404, "application/json", b'{"error": {"message": "not scripted"}}')
                    return
                request = seen.json()
                try:
                    message = model.reply(request)
                except Exception as err:  # noqa: BLE001 - the test reports it; OpenClaw sees a server error
                    model.errors.append(f"{err.__class__.__name__}: {err}")
                    self._send(500, "application/json", json.dumps({"error": {"message": str(err)}}).encode())
                    return
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                base = {"id": f"chatcmpl-{len(model.seen)}", "created": int(time.time()), "model": request["model"]}
                usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
                if not request.get("stream"):
                    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
                    body = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
                    self._send(200, "application/json", json.dumps(body).encode())
                    return
                delta: dict = {"role": "assistant", "content": message.get("content")}
                if message.get("tool_calls"):
                    delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
                chunk = {**base, "object": "chat.completion.chunk"}
                events = [
                    {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                    {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
                    {**chunk, "choices": [], "usage": usage},  # stream_options.include_usage asks for it
                ]
                data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
                self._send(200, "text/event-stream", data)

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def chats(self) -> list[dict]:
        return [seen.json() for seen in list(self.seen) if seen.path == "/v1/chat/completions"]

    def assert_never_sent(self, secret: str) -> None:
        for seen in list(self.seen):
            assert secret.encode() not in seen.raw, f"the model received it: {seen.method} {seen.path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=30)


# -- an isolated OpenClaw with the skill installed ---------------------------------------------------


@pytest.fixture(scope="module")
def openclaw_cli() -> list[str]:
    """The real `openclaw` (installed once by scripts/openclaw-cli; `make test` runs that first)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "openclaw-cli")], capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


class Claw:
    """HOME and OpenClaw's state folder (config, workspace, sessions, logs) under one temporary folder,
    the skill shipped into <workspace>/skills/scalekit-auth, its own state in <state>/scalekit-auth."""

    def __init__(self, cli: list[str], root: Path, emulator: Emulator, model: ScriptedModel) -> None:
        self.cli = cli
        self.home, self.state = root / "home", root / "state"
        self.workspace = self.state / "workspace"
        self.skill = ship_to(self.workspace / "skills" / "scalekit-auth")
        self.home.mkdir()
        self.skill_state = self.state / "scalekit-auth"
        self.skill_state.mkdir()
        self.runtime = tempfile.mkdtemp(prefix="skt-", dir="/tmp")  # short: Unix socket paths are limited
        self.emulator = emulator
        self.pids: list[int] = []  # background commands exec started, stopped at the end if still running
        python_bin = str(Path(sys.executable).parent)  # `python3` in exec: this venv's, with the packages
        model_entry = {
            "id": MODEL,
            "name": "Scripted",
            "reasoning": False,
            "input": ["text"],
            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
            "contextWindow": 128000,
            "maxTokens": 4096,
        }
        provider = {"baseUrl": model.url, "apiKey": "sk-local", "api": "openai-completions", "models": [model_entry]}
        skill_entry = {
            "apiKey": emulator.client_secret,  # primaryEnv: SCALEKIT_CLIENT_SECRET
            "env": {"SCALEKIT_CLIENT_ID": emulator.client_id, "SCALEKIT_ENVIRONMENT_URL": emulator.url},
        }
        self.config = {
            "agents": {"defaults": {"model": {"primary": f"scripted/{MODEL}"}, "workspace": str(self.workspace)}},
            "models": {"mode": "merge", "providers": {"scripted": provider}},
            "tools": {"exec": {"pathPrepend": [python_bin]}},
            "logging": {"file": str(self.state / "logs" / "openclaw.log")},  # not the shared /tmp/openclaw
            "skills": {"entries": {"scalekit-auth": skill_entry}},
        }
        self.write_config()
        self.env = {
            "PATH": f"{python_bin}:{Path(cli[0]).parent}:/usr/bin:/bin",
            "HOME": str(self.home),
            "OPENCLAW_STATE_DIR": str(self.state),
            "XDG_RUNTIME_DIR": self.runtime,
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
            "SCALEKIT_AUTH_AGENT": "0",
            "SCALEKIT_AUTH_AUTOINSTALL": "0",  # the venv has the packages: a missing one fails at once
            "SCALEKIT_TEST_SESSION": os.environ["SCALEKIT_TEST_SESSION"],
            **{name: os.environ[name] for name in CA_VARS},
        }

    def write_config(self) -> None:
        (self.state / "openclaw.json").write_text(json.dumps(self.config, indent=2))

    def connect_gmail(self, hosts: list[str]) -> None:
        gmail = {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": hosts}
        (self.skill_state / "connections.json").write_text(json.dumps({"gmail": gmail}))

    def command(self, *args: str) -> str:
        """A command as SKILL.md writes it, with {baseDir} the skill's absolute path."""
        return " ".join(["python3", f"{self.skill}/scalekit-auth", *args])

    def openclaw(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.cli, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def skill_command(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        """Run the installed skill's scalekit-auth from the workspace, as an exec there would."""
        return subprocess.run(
            [sys.executable, str(self.skill / "scalekit-auth"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workspace,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    @contextmanager
    def gateway(self) -> Iterator[subprocess.Popen]:
        """`openclaw gateway run` on a free loopback port, ready; stopped (SIGTERM, then SIGKILL) after."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        auth = {"mode": "token", "token": "gateway-test-token"}
        self.config["gateway"] = {"mode": "local", "port": port, "bind": "loopback", "auth": auth}
        self.write_config()
        output = self.state / "gateway.out"
        with open(output, "wb") as log:
            proc = subprocess.Popen(
                [*self.cli, "gateway", "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for(lambda: b"[gateway] ready" in output.read_bytes() or proc.poll() is not None, 180, "the Gateway")
            assert proc.poll() is None, output.read_text(errors="replace")[-4000:]
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def files_holding(self, needle: bytes) -> list[Path]:
        """Every file under HOME and OpenClaw's state folder (sessions, sqlite, logs) holding `needle`."""
        found = []
        for top in (self.home, self.state):
            for path in sorted(top.rglob("*")):
                if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                    found.append(path)
        return found

    def close(self) -> None:
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if str(self.skill).encode() in fh.read():
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        ours = f"XDG_RUNTIME_DIR={self.runtime}"  # any token agent left under our runtime folder
        stop_agents(lambda environ: ours in environ.split("\n"))
        wait_for_agents_to_exit(lambda environ: ours in environ.split("\n"))
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture
def model():
    """The scripted model, running for the test; set `.reply` before the turn."""
    scripted = ScriptedModel()
    yield scripted
    scripted.stop()


@pytest.fixture
def claw(openclaw_cli, tmp_path, emulator, model):
    claw = Claw(openclaw_cli, tmp_path, emulator, model)
    yield claw
    claw.close()


def wait_for(condition: Callable, within: float, what: str):
    """condition()'s first truthy value, asked every 0.1 s; the test fails after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"waited {within:.0f} s for {what}")


def outcome(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


# -- one turn: an API call through `request` ----------------------------------------------------------


def test_a_real_turn_calls_the_api_and_the_model_never_sees_the_token(claw, emulator, model):
    """`openclaw agent --local`: the model runs SKILL.md's API call with exec and gets the answer."""
    emulator.seed("gmail_u3134a", "mess", access_token=TOKEN)
    api = EchoApi(echo_auth=False)
    try:
        claw.connect_gmail([api.url.removeprefix("http://")])
        command = claw.command("request", f"{api.url}/gmail/v1/users/me/profile")

        def reply(request: dict) -> dict:
            if conversation(request)[-1]["role"] == "user":
                return tool_call("callprofile", "exec", {"command": command})
            return {"content": "Your Gmail profile came back."}

        model.reply = reply
        started = time.monotonic()
        done = claw.openclaw(
            *("agent", "--local", "--agent", "main", "--message", "What is my Gmail profile?", "--json"),
            *("--timeout", "180"),
        )
        elapsed = time.monotonic() - started
    finally:
        api.stop()
    print(f"openclaw agent --local: {elapsed:.1f} s, {len(model.seen)} model requests")
    assert done.returncode == 0, outcome(done)
    assert not model.errors, model.errors

    # the exec ran the command, and the API got the token
    assert [(s["method"], s["path"], s["auth"]) for s in api.seen] == [
        ("GET", "/gmail/v1/users/me/profile", f"Bearer {TOKEN}")
    ]
    # what OpenClaw sent: two streamed chat completions, nothing else
    assert [(s.method, s.path) for s in model.seen] == [("POST", "/v1/chat/completions")] * 2
    first, second = model.chats()
    assert (first["model"], first["stream"], first["stream_options"]) == (MODEL, True, {"include_usage": True})
    assert {"exec", "process"} <= {tool["function"]["name"] for tool in first["tools"]}
    assert str(claw.skill / "SKILL.md") in text_of(first["messages"][0])  # the skill is offered to the model
    # the model's second request holds the API's answer (the exec's stdout, then its stderr) ...
    result = conversation(second)[-1]
    assert (result["role"], result["tool_call_id"]) == ("tool", "callprofile")
    answer, status = text_of(result).rsplit("}", 1)
    assert json.loads(answer + "}") == {
        "method": "GET",
        "path": "/gmail/v1/users/me/profile",
        "you_sent": "Bearer (hidden)",
        "body": "",
    }
    assert status == "HTTP 200 OK from gmail"
    # ... and no request ever held the token
    model.assert_never_sent(TOKEN)
    # nor does anything OpenClaw stored: sessions, sqlite databases and their journals, logs
    assert claw.files_holding(TOKEN.encode()) == []
    stored = claw.state / "agents" / "main" / "agent" / "openclaw-agent.sqlite"
    assert stored in claw.files_holding(b"Bearer (hidden)"), "the transcript is not where the search looked"
    assert (claw.state / "logs" / "openclaw.log").is_file()


# -- the background wait, through the Gateway -----------------------------------------------------------


def test_the_background_wait_ends_active_and_the_gateway_wakes_the_model(claw, emulator, model):
    """SKILL.md's link relay through `openclaw gateway run`, with a warm token agent and an account that
    does not exist yet (the case where `auth --json` used to die with AttributeError after its WAITING
    line): exec `background: true` answers "still running"; `process` polls until the WAITING line and
    the model relays the link; once it is approved the command prints ACTIVE and exits 0, and the
    Gateway's exec-completion wake-up gives the model a turn, in which it polls the rest.

    The turn is sent the way the Control UI's chat sends it (`chat.send`): for a session made by
    `openclaw agent` (the `agent` method) the wake-up has no route to a user and tells the model "user
    delivery is disabled for this run ... reply NO_REPLY", without the command's output."""
    claw.connect_gmail([])  # configured; the account does not exist yet
    del claw.env["SCALEKIT_AUTH_AGENT"]  # agents on, as users have them
    command = claw.command("auth", "gmail", "--json")
    handles: list[str] = []  # the exec's process session ("Command still running (session NAME, pid N)")

    def reply(request: dict) -> dict:
        last = conversation(request)[-1]
        text = text_of(last)
        if last["role"] == "user":
            if WAKE_UP in text:
                return tool_call("callpolldone", "process", {"action": "poll", "sessionId": handles[0]})
            return tool_call("callauth", "exec", {"command": command, "background": True})
        running = re.search(r"Command still running \(session ([\w-]+), pid (\d+)\)", text)
        if running:
            handles.append(running.group(1))
            claw.pids.append(int(running.group(2)))
        if '"status": "ACTIVE"' in text:
            return {"content": "Gmail is connected."}
        waiting = WAITING_LINK.search(text)
        if waiting:
            return {"content": f"To let me use your Gmail, open this link within a minute: {waiting.group(1)}"}
        poll = {"action": "poll", "sessionId": handles[0], "timeout": 5000}
        return tool_call(f"callpoll{len(request['messages'])}", "process", poll)

    def failed() -> None:
        """Stop waiting at once when the model was told the command failed (in a poll or a wake-up)."""
        for request in model.chats():
            for message in request["messages"]:
                text = text_of(message)
                ended = re.search(r"Process exited with code (\d+)|Exec failed \(", text)
                if message["role"] != "system" and ended and ended.group(1) != "0":
                    pytest.fail(f"the background command failed:\n{text}")

    def link_the_model_got() -> str | None:
        failed()
        for request in model.chats():
            for message in request["messages"]:
                found = WAITING_LINK.search(text_of(message))
                if message["role"] == "tool" and found:
                    return found.group(1)
        return None

    def poll_after_the_wake_up() -> dict | None:
        failed()
        for request in model.chats():
            last = conversation(request)[-1]
            if last["role"] == "tool" and last.get("tool_call_id") == "callpolldone":
                return request
        return None

    model.reply = reply
    # a warm token agent, started with what OpenClaw's exec hands the skill
    agent_env = {
        **claw.env,
        "SCALEKIT_CLIENT_SECRET": emulator.client_secret,
        "SCALEKIT_CLIENT_ID": emulator.client_id,
        "SCALEKIT_ENVIRONMENT_URL": emulator.url,
    }
    started = claw.skill_command("agent", "start", env=agent_env)
    assert started.returncode == 0, outcome(started)
    try:
        clock = time.monotonic()
        with claw.gateway():
            ready = time.monotonic() - clock
            message = {"sessionKey": "agent:main:main", "message": "Connect my Gmail", "idempotencyKey": "turn-1"}
            sent = claw.openclaw("gateway", "call", "chat.send", "--json", "--params", json.dumps(message))
            assert sent.returncode == 0, outcome(sent)
            link = wait_for(link_the_model_got, 180, "a `process` poll showing the WAITING line")
            relayed = time.monotonic() - clock
            emulator.approve(link)
            after = wait_for(poll_after_the_wake_up, 180, "the model's poll after the exec-completion wake-up")
            woken = time.monotonic() - clock
            warm = json.loads(claw.skill_command("agent", "status", "--json", env=agent_env).stdout)
    finally:
        stopped = claw.skill_command("agent", "stop", env=agent_env)
    assert stopped.returncode == 0, outcome(stopped)
    print(f"gateway ready {ready:.1f} s, link relayed {relayed:.1f} s, wake-up poll {woken:.1f} s")
    assert not model.errors, model.errors
    assert {(s.method, s.path) for s in model.seen} == {("POST", "/v1/chat/completions")}
    assert warm["running"] and warm["context_matches"]  # the agent was warm all along

    # the wake-up: OpenClaw's exec-completion event, exit 0. Its text is the first 180 characters of
    # the output's last 400: the WAITING line, cut before the ACTIVE line.
    wake_up = text_of(next(m for m in conversation(after) if WAKE_UP in text_of(m)))
    assert re.search(rf"Exec completed \({handles[0][:8]}, code 0\) :: \{{", wake_up), wake_up
    # the poll after it: the rest of the output, the ACTIVE line, and the exit code
    rest = text_of(conversation(after)[-1])
    assert rest.endswith("\n\nProcess exited with code 0."), rest
    assert [json.loads(line)["status"] for line in rest.splitlines() if line.startswith("{")] == ["ACTIVE"]
    everything = json.dumps(model.chats())
    assert "unexpected error" not in everything and "Traceback" not in everything
    # the account's new token never reached the model, nor anything OpenClaw stored
    token = emulator.account("gmail_u3134a", "mess")["access_token"]
    model.assert_never_sent(token)
    assert claw.files_holding(token.encode()) == []
