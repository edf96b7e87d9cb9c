"""Command-line start-up costs, side by side in one run against the emulator.

Each command is run as a fresh process (as a shell script would) `--runs` times; the table
shows median wall time and median peak memory (RSS), and each command's time as a fraction
of `scalekit-auth token gmail`.

    .venv/bin/python bench/bench_cli.py [--runs 10] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import Emulator  # noqa: E402

# Forks the command from a small, freshly exec'd interpreter: a child forked straight from
# this (large) process would report this process's memory as its own peak RSS.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def measure(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(median seconds, median peak RSS in MB) over `runs` fresh processes."""
    times, rss = [], []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, *cmd], env=env, capture_output=True, text=True, check=True
        )
        wall, maxrss, code = proc.stdout.split()
        if int(code) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({code}): {proc.stderr}")
        times.append(float(wall))
        rss.append(int(maxrss) / 1024)
    return statistics.median(times), statistics.median(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05, help="emulated network latency per call, s")
    args = parser.parse_args()

    # As after `pip install` (which byte-compiles), and whatever PYTHONDONTWRITEBYTECODE says here.
    import compileall

    compileall.compile_dir(str(ROOT / "scalekit_auth"), quiet=1)
    compileall.compile_file(str(ROOT / "scalekit_helper.py"), quiet=1)

    with tempfile.TemporaryDirectory() as tmp, Emulator() as emu:
        folder = Path(tmp)
        (folder / "connections.json").write_text(
            json.dumps({"gmail": {"connection_name": "gmail_u3134a", "identifier": "bench"}})
        )
        emu.seed("gmail_u3134a", "bench")
        emu.set_latency(args.latency)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEKIT_")}
        env.update(emu.env)
        env["SCALEKIT_AUTH_DIR"] = str(folder)
        env["SCALEKIT_IDENTITY_FILE"] = str(folder / "none.md")
        cli = [sys.executable, str(ROOT / "scalekit-auth")]
        cases = [
            ("scalekit-auth --help", [*cli, "--help"]),
            ("scalekit-auth list", [*cli, "list"]),
            (
                "scalekit-auth config gmail gmail_u3134a --offline",
                [*cli, "config", "gmail", "gmail_u3134a", "-i", "bench", "--offline"],
            ),
            ("scalekit-auth token gmail", [*cli, "token", "gmail"]),
            ("python3 get_token.py gmail", [sys.executable, str(ROOT / "get_token.py"), "gmail"]),
        ]
        measure(cases[3][1], env, 1)  # warm the page cache
        env["SCALEKIT_AUTH_AGENT"] = "0"
        results = [(name, *measure(cmd, env, args.runs)) for name, cmd in cases]

        # The same `python3 get_token.py gmail`, with a warm agent and with an agent whose cache is emptied
        # before every run (it still has the SDK loaded and its client logged in).
        runtime = tempfile.mkdtemp(prefix="skb-", dir="/tmp")
        env.update(SCALEKIT_AUTH_AGENT="1", XDG_RUNTIME_DIR=runtime)
        from scalekit_auth import agent, agent_client

        get_token = [sys.executable, str(ROOT / "get_token.py"), "gmail"]
        agent.start(idle_timeout=300, environ=env)
        try:
            measure(get_token, env, 1)
            warm = measure(get_token, env, args.runs)
            cold_times, cold_rss = [], []
            for _ in range(args.runs):
                agent_client.call("clear", env)
                t, r = measure(get_token, env, 1)
                cold_times.append(t)
                cold_rss.append(r)
            cold = (statistics.median(cold_times), statistics.median(cold_rss))
        finally:
            agent.stop(env)
        no_agent = results[4][1:]

    token_time = results[3][1]
    print(
        f"\nscalekit-auth CLI start-up: {args.runs} runs each, median; emulator latency "
        f"{args.latency * 1e3:.0f} ms per call; Python {sys.version.split()[0]}\n"
    )
    header = ("command", "wall", "peak RSS", "vs token", "target", "met")
    rows = []
    for name, wall, rss in results:
        fast = name.split()[1] in ("--help", "list", "config")
        ratio = wall / token_time
        rows.append(
            (
                name,
                f"{wall * 1e3:.0f} ms",
                f"{rss:.1f} MB",
                f"{ratio:.2f}x",
                "< 0.20x" if fast else "",
                ("yes" if ratio < 0.2 else "NO") if fast else "",
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

    print("\n`python3 get_token.py gmail` with the token agent (same run):\n")
    header2 = ("setting", "wall", "peak RSS", "speed-up", "target", "met")
    rows2 = [
        ("no agent (SCALEKIT_AUTH_AGENT=0)", f"{no_agent[0] * 1e3:.0f} ms", f"{no_agent[1]:.1f} MB", "1.0x", "", "")
    ]
    for label, (wall, rss) in (("agent running, warm cache", warm), ("agent running, cold cache", cold)):
        speed = no_agent[0] / wall
        warm_row = label.endswith("warm cache")
        target = "<= 80 ms, >= 10x, <= 25 MB" if warm_row else ""
        met = ("yes" if wall <= 0.080 and speed >= 10 and rss <= 25 else "NO") if warm_row else ""
        rows2.append((label, f"{wall * 1e3:.0f} ms", f"{rss:.1f} MB", f"{speed:.1f}x", target, met))
    widths = [max(len(r[i]) for r in [header2, *rows2]) for i in range(len(header2))]
    for row in [header2, tuple("-" * w for w in widths), *rows2]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
