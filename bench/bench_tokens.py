"""Token fetching, ours vs the naive approach, side by side in one run against the emulator.

Naive = what most scripts do: a new Scalekit client for every token (one /oauth/token POST,
new TLS connections, one lookup). Ours = one warm client, the memory cache, single-flight
and concurrent batch fetch. The emulator adds a fixed latency to every call to model a
real network (default 50 ms).

    .venv/bin/python bench/bench_tokens.py            # or: make bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import Emulator  # noqa: E402

SERVICES = {
    "gmail": "gmail_u3134a",
    "slack": "slack_x7y9z",
    "github": "github_demo",
    "notion": "notion_demo",
    "linear": "linear_demo",
    "googlecalendar": "googlecalendar_demo",
    "hubspot": "hubspot_demo",
    "salesforce": "salesforce_demo",
    "zendesk": "zendesk_demo",
    "dropbox": "dropbox_demo",
}
IDENTIFIER = "bench"


def naive_get_token(emu: Emulator, connection_name: str) -> str:
    """The baseline: a brand-new SDK client per token, as a one-shot script does."""
    from scalekit.client import ScalekitClient

    client = ScalekitClient(emu.url, emu.client_id, emu.client_secret)
    try:
        acc = client.actions.get_connected_account(connection_name=connection_name, identifier=IDENTIFIER)
        return acc.connected_account.authorization_details["oauth_token"]["access_token"]
    finally:
        client.core_client.grpc_secure_channel.close()


class Counts:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.before = emu.counters()

    def delta(self) -> tuple[int, int]:
        after = self.emu.counters()
        return (
            after.get("oauth_token", 0) - self.before.get("oauth_token", 0),
            after.get("rpc_calls", 0) - self.before.get("rpc_calls", 0),
        )


def timed(func) -> tuple[float, object]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="sequential calls in scenario (a) (default 200)")
    parser.add_argument("--latency", type=float, default=0.05, help="emulated network latency per call, s")
    parser.add_argument("--threads", type=int, default=64, help="threads in scenario (c) (default 64)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Emulator(connections=list(SERVICES.values())) as emu:
        folder = Path(tmp)
        (folder / "connections.json").write_text(
            json.dumps({s: {"connection_name": c, "identifier": IDENTIFIER} for s, c in SERVICES.items()})
        )
        os.environ.update(emu.env)
        os.environ["SCALEKIT_AUTH_DIR"] = str(folder)
        os.environ["SCALEKIT_IDENTITY_FILE"] = str(folder / "none.md")
        for connection in SERVICES.values():
            emu.seed(connection, IDENTIFIER, ttl=3600)

        from scalekit_auth.broker import TokenBroker

        naive_get_token(emu, "gmail_u3134a")  # import the SDK and warm Python before timing anything
        emu.set_latency(args.latency)
        rows = []

        # (a) N sequential get_token("gmail")
        broker = TokenBroker()
        c = Counts(emu)
        ours_t, _ = timed(lambda: [broker.get_token("gmail") for _ in range(args.calls)])
        ours_calls = c.delta()
        c = Counts(emu)
        naive_t, _ = timed(lambda: [naive_get_token(emu, "gmail_u3134a") for _ in range(args.calls)])
        naive_calls = c.delta()
        rows.append(
            (
                f"(a) {args.calls} x get_token('gmail'): wall",
                f"{ours_t * 1e3:.1f} ms",
                f"{naive_t * 1e3:.0f} ms",
                f"{naive_t / ours_t:.0f}x faster",
                ">= 100x",
                naive_t / ours_t >= 100,
            )
        )
        rows.append(
            (
                "(a) upstream calls (/oauth/token, RPCs)",
                f"{ours_calls[0]}, {ours_calls[1]}",
                f"{naive_calls[0]}, {naive_calls[1]}",
                "",
                "1, 1",
                ours_calls == (1, 1),
            )
        )
        broker.close()

        # (b) 10 services at once vs one call vs 10 naive calls (all cold; median of 3 runs)
        def cold_single() -> float:
            b = TokenBroker()
            try:
                return timed(lambda: b.get_token("gmail"))[0]
            finally:
                b.close()

        def cold_batch() -> tuple[float, tuple[int, int]]:
            b = TokenBroker()
            c = Counts(emu)
            try:
                t, tokens = timed(lambda: b.get_tokens(list(SERVICES)))
                assert len(tokens) == len(SERVICES)
                return t, c.delta()
            finally:
                b.close()

        single_t = statistics.median(cold_single() for _ in range(3))
        batches = [cold_batch() for _ in range(3)]
        batch_t = statistics.median(t for t, _ in batches)
        batch_calls = batches[0][1]
        naive10_t, _ = timed(lambda: [naive_get_token(emu, conn) for conn in SERVICES.values()])
        rows.append(
            (
                f"(b) get_tokens({len(SERVICES)} services), cold",
                f"{batch_t * 1e3:.0f} ms ({batch_calls[0]}+{batch_calls[1]} calls)",
                f"{naive10_t * 1e3:.0f} ms",
                f"{naive10_t / batch_t:.1f}x faster",
                "",
                None,
            )
        )
        rows.append(
            (
                "(b) batch vs one cold get_token",
                f"{batch_t * 1e3:.0f} ms",
                f"one call: {single_t * 1e3:.0f} ms",
                f"{batch_t / single_t:.2f}x one call",
                "<= 1.5x",
                batch_t / single_t <= 1.5,
            )
        )

        # (c) N threads, cold, one service
        cold = TokenBroker()
        barrier = threading.Barrier(args.threads)
        c = Counts(emu)

        def worker() -> None:
            barrier.wait()
            cold.get_token("gmail")

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        threads_calls = c.delta()
        cold.close()
        rows.append(
            (
                f"(c) {args.threads} threads cold on 'gmail': lookups",
                f"{threads_calls[1]} RPC ({threads_calls[0]} login)",
                f"{args.threads} RPC, {args.threads} logins",
                "",
                "1",
                threads_calls[1] == 1,
            )
        )

        # (d) warm hit cost
        warm = TokenBroker()
        warm.get_token("gmail")
        runs = timeit.repeat(lambda: warm.get_token("gmail"), number=20000, repeat=7)
        per_call_ns = statistics.median(runs) / 20000 * 1e9
        import scalekit_helper

        scalekit_helper.get_token("gmail")
        facade_runs = timeit.repeat(lambda: scalekit_helper.get_token("gmail"), number=20000, repeat=7)
        facade_ns = statistics.median(facade_runs) / 20000 * 1e9
        naive_one = naive_t / args.calls
        rows.append(
            (
                "(d) warm hit, TokenBroker.get_token",
                f"{per_call_ns / 1e3:.1f} us",
                f"{naive_one * 1e3:.0f} ms",
                f"{naive_one * 1e9 / per_call_ns:,.0f}x",
                "< 20 us",
                per_call_ns < 20000,
            )
        )
        rows.append(
            (
                "(d) warm hit, scalekit_helper.get_token",
                f"{facade_ns / 1e3:.1f} us",
                "",
                "",
                "< 20 us",
                facade_ns < 20000,
            )
        )
        warm.close()
        scalekit_helper.close()

    print(
        f"\nscalekit-auth token benchmark: emulator latency {args.latency * 1e3:.0f} ms per call, "
        f"Python {sys.version.split()[0]}\n"
    )
    header = ("scenario", "ours", "naive / baseline", "ratio", "target", "met")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header[:5], widths, strict=True)) + "  met")
    print("  ".join("-" * w for w in widths) + "  ---")
    for row in rows:
        met = "" if row[5] is None else ("yes" if row[5] else "NO")
        print("  ".join(str(v).ljust(w) for v, w in zip(row[:5], widths, strict=True)) + "  " + met)
    return 0


if __name__ == "__main__":
    sys.exit(main())
