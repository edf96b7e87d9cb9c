"""API calls without the token in the caller's hands, measured side by side in one run (emulator).

(A) Per shell call, with a warm token agent, against an API stand-in on loopback, alternating:
    `scalekit-auth request URL`, `scalekit-auth header gmail | curl -H @- URL`,
    `scalekit-auth curl URL`, and a bare `curl URL` (no token at all: the floor).
(B) One MCP client session (the official MCP SDK over stdio): the round trip of a `request`
    tool call and of a `status` tool call, after the server is up.

    .venv/bin/python bench/bench_request.py [--runs 15] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import Emulator  # noqa: E402


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        ok = self.headers.get("Authorization", "").startswith("Bearer ")
        data = json.dumps({"emailAddress": "bench@example.com", "messagesTotal": 42, "authorized": ok}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _wall(cmd: list[str] | str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, shell=isinstance(cmd, str))  # noqa: S602
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed ({done.returncode}): {done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--latency", type=float, default=0.05, help="emulated Scalekit latency per call, s")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("bench_request needs curl (scripts/system-deps installs it)")
    py = sys.executable
    from scalekit_auth import agent

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    url = f"http://{host}/gmail/v1/users/me/profile"
    with tempfile.TemporaryDirectory() as tmp, Emulator() as emu:
        state = Path(tmp, "state")
        state.mkdir()
        (state / "connections.json").write_text(
            json.dumps({"gmail": {"connection_name": "gmail_u3134a", "identifier": "bench", "hosts": [host]}})
        )
        emu.seed("gmail_u3134a", "bench", access_token="bench-token")
        emu.set_latency(args.latency)
        runtime = tempfile.mkdtemp(prefix="skr-", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEKIT_")}
        env.update(emu.env)
        env.update(SCALEKIT_AUTH_DIR=str(state), XDG_RUNTIME_DIR=runtime, PATH=f"{Path(py).parent}:{env['PATH']}")
        cli = [py, str(ROOT / "scalekit-auth")]
        commands = {
            "request": [*cli, "request", url],
            "header | curl": f"{py} {ROOT / 'scalekit-auth'} header gmail | curl -s -H @- {url}",
            "scalekit-auth curl": [*cli, "curl", url, "-s"],
            "bare curl (no token)": ["curl", "-s", url],
        }
        agent.start(idle_timeout=600, environ=env)
        try:
            for cmd in commands.values():
                _wall(cmd, env)  # warm: the agent holds the token from here on
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, cmd in commands.items():
                    times[name].append(_wall(cmd, env))
            mcp_request, mcp_status, mcp_start = _mcp(env, url, args.runs)
        finally:
            agent.stop(env)
            emu.set_latency(0)
            server.shutdown()
            shutil.rmtree(runtime, ignore_errors=True)

    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["header | curl"]
    print(f"API calls, Python {sys.version.split()[0]}, emulator latency {args.latency * 1e3:.0f} ms, warm agent")
    print(f"(A) one shell call each ({args.runs} runs, alternating), median:")
    for name, took in medians.items():
        print(f"    {name:22s} {took * 1e3:7.1f} ms   {took / base:.2f}x header | curl")
    print("(B) MCP over stdio (one session):")
    print(f"    server start + initialize  {mcp_start * 1e3:7.1f} ms")
    print(
        f"    request tool call          {mcp_request * 1e3:7.1f} ms   {mcp_request / base:.2f}x a header | curl call"
    )
    print(f"    status tool call           {mcp_status * 1e3:7.1f} ms")
    return 0


def _mcp(env: dict[str, str], url: str, runs: int) -> tuple[float, float, float]:
    import anyio
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=[str(ROOT / "scalekit-auth"), "mcp"], env=env)

    async def go() -> tuple[float, float, float]:
        start = time.perf_counter()
        async with Client(params, read_timeout_seconds=120) as client:
            started = time.perf_counter() - start
            await client.call_tool("request", {"url": url})  # warm
            req, stat = [], []
            for _ in range(runs):
                t = time.perf_counter()
                result = await client.call_tool("request", {"url": url})
                req.append(time.perf_counter() - t)
                assert not result.is_error, result
                t = time.perf_counter()
                await client.call_tool("status", {})
                stat.append(time.perf_counter() - t)
        return statistics.median(req), statistics.median(stat), started

    return anyio.run(go)


if __name__ == "__main__":
    raise SystemExit(main())
