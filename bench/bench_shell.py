"""Shell use, `TOKEN=$(python3 get_token.py gmail)`, measured side by side in one run (emulator).

(A) The fast path: `python3 get_token.py gmail` answered by a warm agent, against a bare
    `python3 -c pass`, in a fresh copy of the skill with no bytecode cache
    (PYTHONDONTWRITEBYTECODE=1), then with one. Runs alternate between the two commands.
(B) 20 calls in a row, as a script makes them: the default (the first call starts the agent,
    the rest use it), with the agent off (SCALEKIT_AUTH_AGENT=0), and a reference-style client
    (a new ScalekitClient per call: one login and one lookup, as a one-shot script written
    from Scalekit's docs would do).

    .venv/bin/python bench/bench_shell.py [--runs 20] [--latency 0.05]
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import Emulator  # noqa: E402

SHIPPED = ("get_token.py", "scalekit-auth", "scalekit_helper.py", "SKILL.md", "requirements.txt", "scalekit_auth")

REFERENCE = """
import os, sys
from scalekit import ScalekitClient
env = os.environ
client = ScalekitClient(env["SCALEKIT_ENV_URL"], env["SCALEKIT_CLIENT_ID"], env["SCALEKIT_CLIENT_SECRET"])
acc = client.actions.get_connected_account(connection_name="gmail_u3134a", identifier="bench").connected_account
print(acc.authorization_details["oauth_token"]["access_token"])
"""


def _copy(dest: Path) -> Path:
    dest.mkdir()
    for name in SHIPPED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return took


def _side_by_side(a: list[str], b: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Medians of `a` and `b`, run alternately (so a busy moment hits both alike)."""
    ta, tb = [], []
    for _ in range(runs):
        ta.append(_wall(a, env))
        tb.append(_wall(b, env))
    return statistics.median(ta), statistics.median(tb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05, help="emulated network latency per call, s")
    args = parser.parse_args()
    py = sys.executable
    from scalekit_auth import agent

    with tempfile.TemporaryDirectory() as tmp, Emulator() as emu:
        state = Path(tmp, "state")
        state.mkdir()
        (state / "connections.json").write_text(json.dumps({"gmail": {"connection_name": "gmail_u3134a"}}))
        emu.seed("gmail_u3134a", "bench", access_token="bench-token")
        emu.set_latency(args.latency)
        runtime = tempfile.mkdtemp(prefix="skb-", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEKIT_")}
        env.update(emu.env)
        env.update(
            SCALEKIT_AUTH_DIR=str(state),
            SCALEKIT_IDENTITY_FILE=str(Path(tmp, "IDENTITY.md")),
            XDG_RUNTIME_DIR=runtime,
        )
        Path(tmp, "IDENTITY.md").write_text("- Name: bench\n")

        # (A) fast path vs python3 -c pass
        fresh = _copy(Path(tmp, "fresh"))
        nocache = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        get_token = [py, str(fresh / "get_token.py"), "gmail"]
        agent.start(idle_timeout=600, environ=nocache)
        _wall(get_token, nocache)  # the agent's cache is warm from here on
        a_nocache = _side_by_side([py, "-c", "pass"], get_token, nocache, args.runs)
        assert not list(fresh.rglob("__pycache__")), "a bytecode cache appeared"
        import compileall

        compileall.compile_dir(str(fresh / "scalekit_auth"), quiet=1)
        withcache = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        a_cache = _side_by_side([py, "-c", "pass"], get_token, withcache, args.runs)
        agent.stop(nocache)

        # (B) 20 calls in a row
        calls = 20
        default = [py, str(ROOT / "get_token.py"), "gmail"]
        assert agent.status(env) is None
        start = time.perf_counter()
        for _ in range(calls):
            _wall(default, env)
        b_default = time.perf_counter() - start
        auto = agent.status(env)
        agent.stop(env)
        off = {**env, "SCALEKIT_AUTH_AGENT": "0"}
        start = time.perf_counter()
        for _ in range(calls):
            _wall(default, off)
        b_off = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(calls):
            _wall([py, "-c", REFERENCE], off)
        b_reference = time.perf_counter() - start
        emu.set_latency(0)
        shutil.rmtree(runtime, ignore_errors=True)

    print(f"Shell calls, Python {sys.version.split()[0]}, emulator latency {args.latency * 1e3:.0f} ms per call")
    print(f"(A) python3 get_token.py gmail, warm agent, vs python3 -c pass ({args.runs} runs each, alternating):")
    for label, (bare, ours) in (("no bytecode cache", a_nocache), ("bytecode cache   ", a_cache)):
        ratio = ours / bare
        print(
            f"    {label}: {ours * 1e3:5.1f} ms vs {bare * 1e3:5.1f} ms = {ratio:.2f}x  (target <= 2x: "
            f"{'met' if ratio <= 2 else 'NOT met'})"
        )
    print(f"(B) {calls} calls in a row:")
    print(f"    default (agent starts itself): {b_default:6.2f} s   started by: {auto and auto.get('started_by')}")
    print(f"    agent off:                     {b_off:6.2f} s   {b_off / b_default:.1f}x the default")
    print(f"    reference client per call:     {b_reference:6.2f} s   {b_reference / b_default:.1f}x the default")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
