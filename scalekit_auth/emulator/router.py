"""One TLS port for two protocols: terminate TLS, then route by the ALPN the client negotiated.

`h2` goes to the gRPC server, `http/1.1` to the HTTP handler; both listen on private Unix
sockets, so the only TCP port is this one, on 127.0.0.1. This is how the Scalekit SDK
sees the real service: HTTPS and gRPC on the same host:port.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future


class AlpnRouter:
    """TLS terminator that pipes each connection to the Unix socket named for its ALPN protocol."""

    def __init__(
        self,
        context: ssl.SSLContext,
        routes: dict[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_connection: Callable[[str], None] | None = None,
    ) -> None:
        self.context = context
        self.routes = routes
        self.host = host
        self.port = port
        self.on_connection = on_connection or (lambda alpn: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> int:
        """Bind and serve in a background thread; returns the bound port."""
        started: Future[int] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.set_exception_handler(lambda _loop, _ctx: None)  # handshake noise from aborted clients
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle,
                        self.host,
                        self.port,
                        ssl=self.context,
                        ssl_handshake_timeout=10,
                        reuse_address=True,
                    )
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(self._server.sockets[0].getsockname()[1])
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="scalekit-emulator-tls", daemon=True)
        self._thread.start()
        self.port = started.result(timeout=10)
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        alpn = (ssl_object.selected_alpn_protocol() if ssl_object else None) or "http/1.1"
        target = self.routes.get(alpn)
        if target is None:
            writer.transport.abort()
            return
        self.on_connection(alpn)
        try:
            backend_reader, backend_writer = await asyncio.open_unix_connection(target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, backend_writer))
        try:
            await asyncio.gather(self._pipe(reader, backend_writer), self._pipe(backend_reader, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(backend_writer)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        """Stop listening and cut every open connection, as a dying server would."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            for _ in range(3):  # let the transports' close callbacks run, so peers see the cut now
                await asyncio.sleep(0)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
