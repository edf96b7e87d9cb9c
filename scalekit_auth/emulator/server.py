"""`Emulator`: a local stand-in for Scalekit that the real, unmodified SDK talks to over TLS."""

from __future__ import annotations

import os
import secrets
import shutil
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import grpc
from scalekit.v1.connected_accounts.connected_accounts_pb2_grpc import add_ConnectedAccountServiceServicer_to_server
from scalekit.v1.connections.connections_pb2_grpc import add_ConnectionServiceServicer_to_server
from scalekit.v1.tools.tools_pb2_grpc import add_ToolServiceServicer_to_server

from .connection_service import ConnectionService
from .http_api import ADMIN_HEADER, CONSENT_PREFIX, EmulatorHandler
from .router import AlpnRouter
from .servicer import ConnectedAccountService, ToolService
from .state import STATUSES, Connection, EmulatorError, World
from .tls import CertificateAuthority

#: Connections an emulator knows unless told otherwise (`name` or `name:static`).
DEFAULT_CONNECTIONS = (
    "gmail_u3134a",
    "slack_x7y9z",
    "github_demo",
    "notion_demo",
    "linear_demo",
    "googlecalendar_demo",
    "openai_demo:static",
)

GRPC_STATUS_NAMES = tuple(code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


def parse_connection(spec: str | Connection) -> Connection:
    """`gmail_u3134a` or `openai_demo:static` -> Connection."""
    if isinstance(spec, Connection):
        return spec
    name, _, kind = spec.strip().partition(":")
    if not name:
        raise ValueError(f"empty connection name in {spec!r}")
    return Connection(name=name, kind=kind or "oauth")


def _socket_dir() -> Path:
    """A private temp directory whose socket paths fit the ~107-byte Unix socket limit."""
    path = Path(tempfile.mkdtemp(prefix="scalekit-emulator-"))
    if len(str(path / "grpc.sock")) <= 100:
        return path
    path.rmdir()
    return Path(tempfile.mkdtemp(prefix="ske-", dir="/tmp"))


def _quiet_about_gone_clients(server: socketserver.BaseServer, request: Any, client_address: Any) -> None:
    """A client that hangs up mid-request (a test's timeout, the emulator stopping) is normal here."""
    import sys

    error = sys.exc_info()[1]
    if isinstance(error, (ConnectionError, TimeoutError, OSError)):
        return
    socketserver.BaseServer.handle_error(server, request, client_address)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handle_error = _quiet_about_gone_clients


class _LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    handle_error = _quiet_about_gone_clients


class Emulator:
    """Scalekit's token endpoint and connected-accounts API on 127.0.0.1, plus test controls.

    Use as a context manager::

        with Emulator() as emu:
            emu.seed("gmail_u3134a", "alice")          # an ACTIVE account
            os.environ.update(emu.env)               # SDK now trusts and reaches it
    """

    def __init__(
        self,
        *,
        port: int = 0,
        consent_port: int = 0,
        connections: Iterable[str | Connection] = DEFAULT_CONNECTIONS,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_ttl: float = 3600.0,
        client_token_ttl: float = 3600.0,
        link_ttl: float = 60.0,
        ca: CertificateAuthority | None = None,
        admin_key: str | None = None,
        verification: str | None = None,
    ) -> None:
        self.port = port
        self.consent_port = consent_port
        self.ca = ca or CertificateAuthority.shared()
        self.admin_key = admin_key or secrets.token_urlsafe(18)
        self.world = World(
            client_id=client_id or "skc_emu_" + secrets.token_hex(6),
            client_secret=client_secret or "emu_secret_" + secrets.token_urlsafe(24),
            connections=[parse_connection(c) for c in connections],
            token_ttl=token_ttl,
            client_token_ttl=client_token_ttl,
            link_ttl=link_ttl,
            verification=verification,
        )
        self._workdir: Path | None = None
        self._grpc: grpc.Server | None = None
        self._http: _UnixHTTPServer | None = None
        self._consent: _LoopbackHTTPServer | None = None
        self._router: AlpnRouter | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> Emulator:
        if self._router is not None:
            return self
        self.world.stopping.clear()
        self._workdir = _socket_dir()
        cert = self.ca.issue_server_certificate(self._workdir)
        grpc_sock = str(self._workdir / "grpc.sock")
        http_sock = str(self._workdir / "http.sock")
        try:
            self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="emu-grpc"))
            servicer = ConnectedAccountService(self.world, self.link_for, lambda: f"{self.pages_url}/verified")
            add_ConnectedAccountServiceServicer_to_server(servicer, self._grpc)
            add_ToolServiceServicer_to_server(ToolService(self.world), self._grpc)
            add_ConnectionServiceServicer_to_server(ConnectionService(self.world), self._grpc)
            self._grpc.add_insecure_port(f"unix:{grpc_sock}")
            self._grpc.start()

            self._http = _UnixHTTPServer(http_sock, EmulatorHandler)
            self._http.emulator = self  # type: ignore[attr-defined]
            self._http.tls = True  # type: ignore[attr-defined] # behind the TLS port: serves the proxy
            self._consent = _LoopbackHTTPServer(("127.0.0.1", self.consent_port), EmulatorHandler)
            self._consent.emulator = self  # type: ignore[attr-defined]
            self.consent_port = self._consent.server_address[1]
            for srv, name in ((self._http, "emu-http"), (self._consent, "emu-consent")):
                t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
                t.start()
                self._threads.append(t)

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(cert.cert_path, cert.key_path)
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            self._router = AlpnRouter(
                ctx,
                {"h2": grpc_sock, "http/1.1": http_sock},
                port=self.port,
                on_connection=self._on_tls_connection,
            )
            self.port = self._router.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything and cut open connections; safe to call twice."""
        self.world.stop_delays()  # calls held back by latency go on now
        if self._router is not None:
            self._router.stop()
            self._router = None
        for srv in (self._http, self._consent):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        self._http = self._consent = None
        if self._grpc is not None:
            self._grpc.stop(grace=0).wait(5)
            self._grpc = None
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._router is not None

    def _on_tls_connection(self, alpn: str) -> None:
        self.world.count("tls_connections")
        self.world.count(f"tls_connections.{alpn}")

    # -- what a client needs -----------------------------------------------------
    @property
    def url(self) -> str:
        """The environment URL (`SCALEKIT_ENV_URL`)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def client_id(self) -> str:
        return self.world.client_id

    @property
    def client_secret(self) -> str:
        return self.world.client_secret

    @property
    def ca_bundle(self) -> str:
        """A PEM bundle: the emulator CA plus the system roots."""
        return str(self.ca.bundle_path)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point the Scalekit SDK (and this skill) at this emulator."""
        return {
            "SCALEKIT_ENV_URL": self.url,
            "SCALEKIT_CLIENT_ID": self.client_id,
            "SCALEKIT_CLIENT_SECRET": self.client_secret,
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": self.ca_bundle,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
            "SCALEKIT_EMULATOR_ADMIN_URL": f"{self.pages_url}/_emulator",
            "SCALEKIT_EMULATOR_ADMIN_KEY": self.admin_key,
        }

    @property
    def pages_url(self) -> str:
        """The HTTP/1.1-only listener for consent pages and the admin API.

        Browsers and curl offer h2 by ALPN, which the TLS port routes to gRPC, so
        anything a person or curl opens lives here instead (loopback only).
        """
        return f"http://127.0.0.1:{self.consent_port}"

    def link_for(self, token: str) -> str:
        """The consent page URL for a link token."""
        return f"{self.pages_url}{CONSENT_PREFIX}{token}"

    @staticmethod
    def _link_token(link: str) -> str:
        path = urlparse(link).path if "://" in link else link
        return path.rsplit("/", 1)[-1]

    # -- test controls -----------------------------------------------------------
    def add_connection(
        self, name: str, kind: str = "oauth", provider: str = "", status: str = "COMPLETED", enabled: bool = True
    ) -> dict[str, Any]:
        """A connection in the environment (listed by ListAppConnections with `status`, DRAFT,
        IN_PROGRESS or COMPLETED, and `enabled`); `provider` defaults to the name's first part."""
        conn = self.world.add_connection(name, kind, provider, status, enabled)
        return {"name": conn.name, "kind": conn.kind, "provider": conn.provider, "status": conn.status}

    def seed(self, connection: str, identifier: str, status: str = "ACTIVE", **kwargs: Any) -> dict[str, Any]:
        """Create or overwrite an account: status, `access_token`, `refresh_token`, `ttl` (s), `static`, `scopes`,
        `org_wide_credential` (the one account of an org_wide connection that holds the shared credential)."""
        return self.world.seed(connection, identifier, status, **kwargs).snapshot()

    def account(self, connection: str, identifier: str) -> dict[str, Any]:
        return self.world.find(connection, identifier).snapshot()

    def accounts(self) -> list[dict[str, Any]]:
        return [a.snapshot() for a in self.world.list()]

    def set_status(self, connection: str, identifier: str, status: str) -> dict[str, Any]:
        return self.world.set_status(connection, identifier, status).snapshot()

    def revoke(self, connection: str, identifier: str) -> dict[str, Any]:
        """The user revoked access at the provider: the account becomes DISCONNECTED."""
        return self.set_status(connection, identifier, "DISCONNECTED")

    def rotate_token(self, connection: str, identifier: str, access_token: str | None = None) -> str:
        return self.world.rotate_token(connection, identifier, access_token)

    def token_history(self, connection: str, identifier: str) -> list[dict[str, Any]]:
        """Every access token the account has had: {token, issued_at, replaced_at (None if current)}."""
        with self.world._lock:
            rows = self.world.token_history.get((connection, identifier), [])
            return [{"token": t, "issued_at": i, "replaced_at": r} for t, i, r in rows]

    def expire_token(self, connection: str, identifier: str) -> None:
        """Make an ACTIVE account's access token due, so the next lookup refreshes it."""
        with self.world._lock:
            self.world.find(connection, identifier).token_expires_at = 1.0

    def fail_next(
        self, count: int = 1, code: str = "UNAVAILABLE", method: str | None = None, message: str = ""
    ) -> None:
        """Fail the next `count` RPCs (-1: every one) with a gRPC status.

        `method` narrows it to one RPC name, targets `/oauth/token` (answered with the matching
        HTTP status), or `*` for every call of either kind.
        """
        if code not in GRPC_STATUS_NAMES:
            raise ValueError(f"code must be a gRPC status name such as UNAVAILABLE, not {code!r}")
        self.world.add_fault(code, int(count), method, message)

    def fail_token_endpoint(self, answer: int | str, count: int = 1) -> None:
        """Answer the next `count` /oauth/token calls (-1: every one) with an HTTP status (400, 404,
        502, ...), "not-json" (a 200 HTML page) or "no-token" (200 JSON without access_token)."""
        if not (isinstance(answer, int) and 100 <= answer <= 599) and answer not in ("not-json", "no-token"):
            raise ValueError(f"answer must be an HTTP status, 'not-json' or 'no-token', not {answer!r}")
        with self.world._lock:
            self.world.token_answers.append([answer, int(count)])

    def set_latency(self, seconds: float) -> None:
        """Delay every /oauth/token call and RPC by `seconds` (models a real network)."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self.world.set_latency(seconds)

    def clear_faults(self) -> None:
        self.world.clear_faults()

    def advance_clock(self, seconds: float) -> None:
        """Let `seconds` pass for the emulator at once: token, client-login and link lifetimes run out
        without the test sleeping (so tests do not depend on how fast the machine is)."""
        self.world.advance_clock(float(seconds))

    def issue_link(self, connection: str, identifier: str) -> dict[str, Any]:
        """A link as an application gets one: the account is created first when missing."""
        self.world.get_or_create(connection, identifier)
        link = self.world.create_link(connection, identifier)
        return {"link": self.link_for(link.token), "expires_at": link.expires_at}

    def latest_link(self, connection: str, identifier: str) -> str | None:
        link = self.world.latest_link(connection, identifier)
        return self.link_for(link.token) if link else None

    def approve(self, link: str) -> dict[str, Any]:
        """Act as the user clicking Allow on `link` (URL or token)."""
        return self.world.approve(self._link_token(link), signed_in_as="admin")[0].snapshot()

    def set_verification(self, mode: str | None) -> None:
        """The environment's user verification mode: None, "custom" or "scalekit_users"."""
        from .state import VERIFICATION_MODES

        if mode not in VERIFICATION_MODES:
            raise ValueError(f"verification must be one of {VERIFICATION_MODES}, not {mode!r}")
        self.world.verification = mode

    def deny(self, link: str) -> dict[str, Any] | None:
        """Act as the user clicking Deny on `link`: the account (unchanged), None when there is none."""
        acc = self.world.deny(self._link_token(link))
        return acc.snapshot() if acc is not None else None

    def counters(self) -> dict[str, int]:
        """Every call seen: `oauth_token`, `rpc.<Name>`, `rpc_calls`, `links_issued`, `tls_connections`, ..."""
        return self.world.counter_snapshot()

    def reset(self) -> None:
        self.world.reset()

    def rotate_client_secret(self, new_secret: str | None = None, revoke_tokens: bool = True) -> str:
        return self.world.rotate_client_secret(new_secret, revoke_tokens)

    def revoke_client_tokens(self) -> None:
        self.world.revoke_client_tokens()

    # -- the proxy and tools ---------------------------------------------------------
    def set_proxy_enabled(self, enabled: bool, connection: str | None = None) -> None:
        """Switch Scalekit's proxy on or off for the environment, or (with `connection`) for that
        connection alone. Off, `{env}/proxy/...` answers 403 `{"detail": ..., "code": "TOOL_PROXY_DISABLED"}`."""
        self.world.set_proxy_enabled(enabled, connection)

    def proxy_requests(self) -> list[dict[str, Any]]:
        """Every request to `/proxy/...`, oldest first: method, path, query, headers (as received),
        body_size, connection_name, identifier, status, outcome ("forwarded", "disabled",
        "not_found", "unauthenticated", "bad_request", "fault") and upstream_account
        ([connection, identifier] the provider acted as, or None)."""
        return self.world.log_snapshot("proxy")

    def http_requests(self) -> list[dict[str, Any]]:
        """Every HTTPS request to the environment URL (admin calls excepted): method, path, authorization."""
        return self.world.log_snapshot("http")

    def fail_tool_call(
        self, code: str = "UNAUTHENTICATED", tool_error_code: str = "401", message: str = "", count: int = 1
    ) -> None:
        """The provider refuses the next `count` tool executions (-1: every one): ExecuteTool answers
        `code` with an ErrorInfo detail {error_code: TOOL_ERROR, tool_error_info: {tool_error_code,
        tool_error_message, execution_id}}, which the SDK raises as ScalekitTool*Exception."""
        if code not in GRPC_STATUS_NAMES:
            raise ValueError(f"code must be a gRPC status name such as UNAUTHENTICATED, not {code!r}")
        self.world.add_tool_fault(code, int(count), tool_error_code, message or f"provider answered {tool_error_code}")

    def tool_calls(self) -> list[dict[str, Any]]:
        """Every ExecuteTool call: tool_name, connection_name, identifier, input, outcome, result."""
        return self.world.log_snapshot("tools")

    def admin_actions(self) -> dict[str, Callable[..., Any]]:
        """The methods the HTTP admin API (`POST /_emulator/<name>`) exposes."""
        return {
            name: getattr(self, name)
            for name in (
                "add_connection",
                "seed",
                "account",
                "accounts",
                "set_status",
                "revoke",
                "rotate_token",
                "expire_token",
                "token_history",
                "fail_next",
                "fail_token_endpoint",
                "set_verification",
                "set_latency",
                "clear_faults",
                "advance_clock",
                "issue_link",
                "latest_link",
                "approve",
                "deny",
                "counters",
                "reset",
                "rotate_client_secret",
                "revoke_client_tokens",
                "set_proxy_enabled",
                "proxy_requests",
                "http_requests",
                "tool_calls",
                "fail_tool_call",
            )
        }


__all__ = ["ADMIN_HEADER", "DEFAULT_CONNECTIONS", "STATUSES", "Emulator", "EmulatorError", "parse_connection"]

if os.name != "posix":  # pragma: no cover - the emulator relies on Unix sockets
    raise ImportError("the Scalekit emulator needs a POSIX system (Unix sockets)")
