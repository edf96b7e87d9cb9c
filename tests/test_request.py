"""`scalekit-auth request` and `scalekit_helper.request`: the API's answer, never the token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scalekit_auth.errors import ExitCode

from .helpers import ROOT

TOKEN = "ya29.request-token-canary-0123456789"


class EchoApi:
    """An API that echoes what it got, the Authorization header included (a hostile or buggy
    API), in its body and in a response header; /big answers `size` bytes; /status/N answers N."""

    def __init__(self, echo_auth: bool = True) -> None:
        self.seen: list[dict] = []
        self.echo_auth = echo_auth
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization", "")
                shown = auth if api.echo_auth else ("Bearer (hidden)" if auth else "")
                api.seen.append({"method": self.command, "path": self.path, "auth": auth, "body": body,
                                 "headers": dict(self.headers)})  # fmt: skip
                status = 200
                if "/status/" in self.path:
                    status = int(self.path.rsplit("/", 1)[1].split("?")[0])
                if "/big" in self.path:
                    data = b"x" * 100_000
                else:
                    data = json.dumps(
                        {"method": self.command, "path": self.path, "you_sent": shown, "body": body.decode()}
                    ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Echo", shown)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo(skill, emulator):
    skill.use(emulator)
    emulator.seed("gmail_u3134a", "mess", access_token=TOKEN)
    api = EchoApi()
    host = api.url.removeprefix("http://")
    skill.connections_file.write_text(
        json.dumps({"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": [host]}})
    )
    yield api
    api.stop()


def run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scalekit-auth", "request", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_the_answer_comes_back_and_the_token_never_does(echo):
    proc = run(f"{echo.url}/gmail/v1/users/me/profile")
    assert proc.returncode == 0, proc.stderr
    assert echo.seen[-1]["auth"] == f"Bearer {TOKEN}"  # the API got it
    answer = json.loads(proc.stdout)
    assert answer["path"] == "/gmail/v1/users/me/profile"
    assert answer["you_sent"] == "Bearer [REDACTED]"
    assert TOKEN not in proc.stdout + proc.stderr
    assert "HTTP 200" in proc.stderr


def test_a_method_a_json_body_headers_and_query(echo):
    proc = run("POST", f"{echo.url}/x", "--json", '{"a": 1}', "-H", "X-Trace: t1", "--query", "q=1", "--query", "r=2")
    assert proc.returncode == 0, proc.stderr
    seen = echo.seen[-1]
    assert seen["method"] == "POST" and seen["path"] == "/x?q=1&r=2" and json.loads(seen["body"]) == {"a": 1}
    assert seen["headers"]["Content-Type"] == "application/json" and seen["headers"]["X-Trace"] == "t1"


def test_form_fields(echo):
    proc = run("PUT", f"{echo.url}/f", "--form", "a=1", "--form", "b=two words")
    assert proc.returncode == 0, proc.stderr
    assert echo.seen[-1]["body"] == b"a=1&b=two+words"


def test_an_http_error_has_its_own_exit_code(echo):
    proc = run(f"{echo.url}/status/404")
    assert proc.returncode == ExitCode.HTTP_ERROR == 11
    assert "HTTP 404" in proc.stderr and TOKEN not in proc.stdout + proc.stderr


def test_the_envelope_and_the_headers_are_redacted_too(echo):
    proc = run(f"{echo.url}/e", "--json-out")
    envelope = json.loads(proc.stdout)
    assert envelope["status"] == 200 and envelope["body"]["you_sent"] == "Bearer [REDACTED]"
    assert envelope["headers"]["x-echo"] == "Bearer [REDACTED]"
    included = run(f"{echo.url}/e", "--include")
    assert included.stdout.startswith("HTTP 200") and "x-echo: Bearer [REDACTED]" in included.stdout
    assert TOKEN not in proc.stdout + included.stdout


def test_bodies_are_bounded_or_streamed_to_a_file(echo, tmp_path):
    cut = run(f"{echo.url}/big", "--max-bytes", "1000")
    assert cut.returncode == 0 and len(cut.stdout) == 1000 and "cut at 1000 bytes" in cut.stderr
    target = tmp_path / "out.bin"
    saved = run(f"{echo.url}/big", "--output", str(target))
    assert saved.returncode == 0 and saved.stdout == ""
    assert target.stat().st_size == 100_000 and oct(target.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "argv",
    [
        ["-H", "Authorization: Bearer mine"],
        ["-H", "X-A: 1\r\nX-Injected: 2"],
        ["-H", "no colon"],
        ["--json", "{not json"],
        ["--query", "novalue"],
        ["--json", "{}", "--data", "x"],
    ],
)
def test_bad_input_is_a_usage_error_before_anything_is_sent(echo, argv):
    proc = run(f"{echo.url}/x", *argv)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "unexpected" not in proc.stderr
    assert echo.seen == []


def test_a_url_of_another_service_or_host_gets_no_token(echo):
    other = run("https://api.github.com/user")
    assert other.returncode == ExitCode.CONFIGURATION and echo.seen == []
    wrong = run(f"{echo.url}/x", "--service", "slack")
    assert wrong.returncode in (ExitCode.USAGE, ExitCode.CONFIGURATION) and echo.seen == []


def test_authorization_needed_gives_the_link_not_a_request(echo, emulator):
    emulator.seed("gmail_u3134a", "mess", status="PENDING_AUTH")
    proc = run(f"{echo.url}/x")
    assert proc.returncode == ExitCode.AUTHORIZATION_REQUIRED and "http" in proc.stderr
    assert echo.seen == []


def test_the_python_form(echo):
    import scalekit_helper

    response = scalekit_helper.request(f"{echo.url}/py", method="POST", json={"k": "v"})
    assert response.ok and response.json()["you_sent"] == "Bearer [REDACTED]"
    assert json.loads(echo.seen[-1]["body"]) == {"k": "v"}
    named = scalekit_helper.request("gmail", f"{echo.url}/named")
    assert named.status == 200 and TOKEN not in named.text
    scalekit_helper.close()


class HostileApi:
    """An API host that puts the token it received wherever it can: the reason phrase, a header
    name, and the body at an offset the caller picks (/offset/N)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                offset = int(self.path.rsplit("/", 1)[1]) if "/offset/" in self.path else 0
                data = b"x" * offset + token.encode() + b"y" * 100
                self.send_response(200, "OK " + token)
                self.send_header(f"X-{token}", "1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(skill, emulator):
    skill.use(emulator)
    emulator.seed("gmail_u3134a", "mess", access_token=TOKEN)
    api = HostileApi()
    host = api.url.removeprefix("http://")
    skill.connections_file.write_text(
        json.dumps({"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": [host]}})
    )
    yield api
    api.stop()


@pytest.mark.parametrize("extra", [[], ["--include"], ["--json-out"], ["--max-bytes", "100"]])
def test_a_host_echoing_the_token_anywhere_gets_it_redacted_everywhere(hostile, extra):
    """The reason phrase, a header name, and a body cut so the token straddles --max-bytes."""
    proc = run(f"{hostile.url}/offset/80", *extra)
    assert proc.returncode == 0, proc.stderr
    for part in (TOKEN, TOKEN[:12]):
        assert part not in proc.stdout + proc.stderr, (part, proc.stdout, proc.stderr)


def test_output_is_private_even_when_the_file_existed_and_never_a_symlink(echo, tmp_path):
    existing = tmp_path / "existing.out"
    existing.write_text("old")
    existing.chmod(0o644)
    assert run(f"{echo.url}/x", "--output", str(existing)).returncode == 0
    assert oct(existing.stat().st_mode & 0o777) == "0o600"
    link = tmp_path / "link.out"
    link.symlink_to(tmp_path / "elsewhere")
    refused = run(f"{echo.url}/x", "--output", str(link))
    assert refused.returncode == ExitCode.USAGE and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("target", ["/nonexistent/dir/f", "/tmp"])
def test_an_output_that_cannot_be_written_is_a_usage_error_before_the_call(echo, target):
    proc = run("POST", f"{echo.url}/x", "--output", target)
    assert proc.returncode == ExitCode.USAGE and "unexpected" not in proc.stderr, proc.stderr
    assert echo.seen == []  # the POST never happened


def test_a_closed_stdout_is_reported_not_a_crash(echo):
    argv = [sys.executable, "scalekit-auth", "request", f"{echo.url}/x"]
    proc = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT,
        stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert "unexpected error" not in proc.stderr and "stdout" in proc.stderr, proc.stderr


def test_a_header_value_that_is_not_latin_1_is_a_usage_error(echo):
    proc = run(f"{echo.url}/x", "-H", "X-Note: €")
    assert proc.returncode == ExitCode.USAGE and "unexpected" not in proc.stderr, proc.stderr
