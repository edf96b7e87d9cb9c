"""The async API against the emulator, side by side with calling the sync API from a coroutine.

(a) 100 concurrent tasks ask for one cold token: Scalekit lookups and logins made.
(b) A ticker task wakes every 10 ms while a cold token is fetched with 300 ms of latency per
    Scalekit call: the largest gap between ticks (the event loop's longest stall).

    .venv/bin/python bench/bench_async.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import Emulator  # noqa: E402

LOOKUP = "rpc.GetConnectedAccountAuth"


def _env(emu: Emulator, folder: str) -> None:
    for key in [k for k in os.environ if k.startswith("SCALEKIT_")]:
        del os.environ[key]
    os.environ.update(emu.env)
    os.environ.update(SCALEKIT_AUTH_DIR=folder, SCALEKIT_AUTH_AGENT="0", SCALEKIT_TIMEOUT="30")
    Path(folder, "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a", "identifier": "u"}}')


async def _ticker(stop: asyncio.Event, gaps: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.010)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def _with_ticker(fetch) -> float:
    stop, gaps = asyncio.Event(), []
    ticker = asyncio.create_task(_ticker(stop, gaps))
    await asyncio.sleep(0.05)  # ticking steadily first
    await fetch()
    await asyncio.sleep(0.05)
    stop.set()
    await ticker
    return max(gaps)


def main() -> int:
    from scalekit_auth import api
    from scalekit_helper import aget_token, get_token

    with Emulator() as emu, tempfile.TemporaryDirectory() as folder:
        _env(emu, folder)
        emu.seed("gmail_u3134a", "u", access_token="bench-token")

        # (a) 100 tasks, one cold token
        async def hundred():
            return await asyncio.gather(*(aget_token("gmail") for _ in range(100)))

        asyncio.run(hundred())
        async_calls = (emu.counters().get(LOOKUP, 0), emu.counters().get("oauth_token", 0))

        api.close()
        emu.reset()
        emu.seed("gmail_u3134a", "u", access_token="bench-token")

        async def hundred_sync_in_threads():
            return await asyncio.gather(*(asyncio.to_thread(get_token, "gmail") for _ in range(100)))

        asyncio.run(hundred_sync_in_threads())
        thread_calls = (emu.counters().get(LOOKUP, 0), emu.counters().get("oauth_token", 0))

        # (b) the loop's longest stall while a cold token is fetched (300 ms per Scalekit call)
        emu.set_latency(0.3)
        api.close()
        stall_async = asyncio.run(_with_ticker(lambda: aget_token("gmail")))
        api.close()

        async def sync_on_the_loop():
            return get_token("gmail")  # what an async framework gets from the sync API

        stall_sync = asyncio.run(_with_ticker(sync_on_the_loop))
        emu.set_latency(0)
        api.close()

    print("Async API vs the sync API from a coroutine (emulator; 300 ms per Scalekit call in (b))")
    print(f"(a) 100 tasks, one cold token: aget_token -> {async_calls[0]} lookup(s), {async_calls[1]} login(s);")
    print(f"    100 x to_thread(get_token) -> {thread_calls[0]} lookup(s), {thread_calls[1]} login(s)")
    print(f"(b) longest event-loop stall while fetching: aget_token {stall_async * 1000:.0f} ms,")
    print(f"    get_token on the loop {stall_sync * 1000:.0f} ms ({stall_sync / stall_async:.0f}x longer)")
    target = async_calls[0] == 1 and stall_async < 0.050
    print(f"targets (1 lookup; stall < 50 ms): {'met' if target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
