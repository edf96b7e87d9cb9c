"""The async API: aget_token, aget_tokens, aget_credentials and httpx.AsyncClient auth.

They never block the event loop: each test below would hang (and fail at its deadline) if
the Scalekit round trip ran on the loop, because the only thing that ends the emulator's
held call is another task on that same loop.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from scalekit_auth.errors import AuthorizationError, BatchError, ServiceNotConfiguredError
from scalekit_helper import aget_credentials, aget_token, aget_tokens, httpx_auth

LOOKUP = "rpc.GetConnectedAccountAuth"


@pytest.fixture
def ready(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    skill.configure("slack", "slack_x7y9z", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="async-gmail")
    emulator.seed("slack_x7y9z", "mess", access_token="async-slack")
    return skill


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _release_later(emulator) -> None:
    """Runs on the loop: if the loop were blocked by the fetch, this never ran and the fetch hung."""
    await asyncio.sleep(0.05)
    emulator.set_latency(0)


def test_aget_token_fetches_in_a_thread_while_the_loop_runs(ready, emulator):
    emulator.set_latency(600)  # held at Scalekit until the loop itself lets it go

    async def main():
        token, _ = await asyncio.gather(aget_token("gmail"), _release_later(emulator))
        return token

    assert run(main()) == "async-gmail"


def test_a_hundred_tasks_on_a_cold_token_make_one_lookup(ready, emulator):
    async def main():
        return await asyncio.gather(*(aget_token("gmail") for _ in range(100)))

    assert run(main()) == ["async-gmail"] * 100
    assert emulator.counters()[LOOKUP] == 1


def test_a_cached_token_needs_no_thread(ready, emulator, monkeypatch):
    run(aget_token("gmail"))

    async def no_threads(*args, **kwargs):
        raise AssertionError("a cached token must not go to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    assert run(aget_token("gmail")) == "async-gmail"
    assert emulator.counters()[LOOKUP] == 1


def test_the_same_errors_as_the_sync_api(ready):
    with pytest.raises(ServiceNotConfiguredError):
        run(aget_token("nope"))
    with pytest.raises(AuthorizationError):
        run(aget_token("gmail", identifier="someone-else"))
    with pytest.raises(BatchError) as caught:
        run(aget_tokens(["gmail", "nope"]))
    assert caught.value.tokens == {"gmail": "async-gmail"}
    with pytest.raises(TypeError):
        run(aget_tokens("gmail"))


def test_aget_tokens_and_credentials(ready):
    assert run(aget_tokens(["slack", "gmail"])) == {"slack": "async-slack", "gmail": "async-gmail"}
    creds = run(aget_credentials("gmail"))
    assert creds.kind == "oauth" and creds.token == "async-gmail"


def test_httpx_async_client_gets_the_token_without_blocking_the_loop(ready, emulator):
    seen = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"ok": True})

    emulator.set_latency(600)

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(api), auth=httpx_auth("gmail")) as client:
            response, _ = await asyncio.gather(
                client.get("https://gmail.googleapis.com/gmail/v1/users/me/profile"), _release_later(emulator)
            )
        return response.status_code

    assert run(main()) == 200
    assert seen == ["Bearer async-gmail"]


def test_httpx_async_client_retries_once_with_a_fresh_token_on_401(ready, emulator):
    calls = []

    def api(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("authorization"))
        return httpx.Response(401 if len(calls) == 1 else 200)

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(api), auth=httpx_auth("gmail")) as client:
            first = await client.get("https://gmail.googleapis.com/x")  # warm the cache
            emulator.rotate_token("gmail_u3134a", "mess", "rotated-token")
            calls.clear()
            second = await client.get("https://gmail.googleapis.com/x")
        return first.status_code, second.status_code

    statuses = run(main())
    assert statuses[1] == 200
    assert calls == ["Bearer async-gmail", "Bearer rotated-token"]


def test_cancelling_the_first_caller_does_not_cancel_the_others(ready, emulator):
    emulator.set_latency(600)  # the fetch is held until the loop lets it go

    async def main():
        first = asyncio.create_task(aget_token("gmail"))
        await asyncio.sleep(0.05)  # the first task leads the fetch
        second = asyncio.create_task(aget_token("gmail"))
        await asyncio.sleep(0.05)
        first.cancel()
        await _release_later(emulator)
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert run(main()) == "async-gmail"
    assert emulator.counters()[LOOKUP] == 1
