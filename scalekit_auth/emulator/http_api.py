"""HTTP/1.1 side of the emulator: `/oauth/token`, the consent pages, and the admin API."""

from __future__ import annotations

import html
import json
import secrets
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import provider
from .state import EmulatorError

if TYPE_CHECKING:
    from .server import Emulator

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a secret
CONSENT_PREFIX = "/connect/"
ADMIN_PREFIX = "/_emulator/"
ADMIN_HEADER = "X-Emulator-Admin-Key"
PROXY_PREFIX = "/proxy"
#: The headers the Scalekit SDK adds to a proxied request; they are Scalekit's, not forwarded.
_SCALEKIT_HEADERS = frozenset(
    {"authorization", "connection_name", "identifier", "x-api-version", "x-sdk-version", "user-agent"}
)
#: Hop-by-hop and framing headers, never forwarded as they came.
_HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "accept-encoding",
    }
)

_GRPC_TO_HTTP = {
    "UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 429,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 409,
    "DEADLINE_EXCEEDED": 410,
    "INTERNAL": 500,
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
 main {{ max-width: 26rem; margin: 10vh auto; background: #fff; border-radius: 12px;
        padding: 2rem; box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
 h1 {{ font-size: 1.3rem; margin-top: 0; }}
 .who {{ background: #f0f2f5; padding: .6rem .8rem; border-radius: 8px; }}
 .row {{ display: flex; gap: .8rem; margin-top: 1.5rem; }}
 button {{ flex: 1; font-size: 1rem; padding: .7rem; border-radius: 8px; border: 1px solid #ccd; cursor: pointer; }}
 #allow {{ background: #2451d6; color: #fff; border-color: #2451d6; }}
 small {{ color: #667; }}
</style></head>
<body><main>{body}<p><small>Scalekit emulator &middot; for offline testing only</small></p></main></body></html>
"""


def _page(title: str, body: str) -> bytes:
    return _PAGE.format(title=html.escape(title), body=body).encode()


class EmulatorHandler(BaseHTTPRequestHandler):
    """One handler for both listeners; `server.emulator` is the owning Emulator."""

    protocol_version = "HTTP/1.1"
    server_version = "ScalekitEmulator/1"

    @property
    def emu(self) -> Emulator:
        return self.server.emulator  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: request lines can carry link tokens."""

    # -- plumbing ------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _html(self, status: int, title: str, body: str) -> None:
        self._send(status, _page(title, body), "text/html; charset=utf-8")

    # -- routing -------------------------------------------------------------
    def _record(self) -> bool:
        """Log a request to the HTTPS listener (admin calls excepted); True when it is for the proxy."""
        path = self.path.split("?", 1)[0]
        on_tls = bool(getattr(self.server, "tls", False))
        if on_tls and not path.startswith(ADMIN_PREFIX):
            self.emu.world.log(
                "http",
                {"method": self.command, "path": path, "authorization": self.headers.get("Authorization", "")},
            )
        return on_tls and (path == PROXY_PREFIX or path.startswith(PROXY_PREFIX + "/"))

    def _any_method(self) -> None:
        if self._record():
            return self._proxy()
        self._body()
        self._json(404, {"error": "not_found", "error_description": f"no route for {self.command}"})

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _any_method  # noqa: N815 - stdlib naming

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        if self._record():
            return self._proxy()
        self._json(404, {"error": "not_found"})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self._record():
            return self._proxy()
        path = self.path.split("?", 1)[0]
        if path.startswith(CONSENT_PREFIX):
            return self._consent_page(path[len(CONSENT_PREFIX) :])
        if path == "/keys":
            return self._json(200, {"keys": []})
        if path == "/verified":  # where verify_connected_account_user sends the browser last
            return self._html(200, "Verified", '<h1 id="result">Verified</h1><p>You can close this tab.</p>')
        if path.startswith(ADMIN_PREFIX):
            return self._admin(path[len(ADMIN_PREFIX) :], {})
        if path == "/":
            return self._html(200, "Scalekit emulator", "<h1>Scalekit emulator</h1><p>Running.</p>")
        self._json(404, {"error": "not_found", "error_description": f"no route for {path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self._record():
            return self._proxy()
        path = self.path.split("?", 1)[0]
        body = self._body()
        if path == TOKEN_PATH:
            return self._token(body)
        if path.startswith(CONSENT_PREFIX):
            return self._consent_decision(path[len(CONSENT_PREFIX) :], body)
        if path.startswith(ADMIN_PREFIX):
            try:
                args = json.loads(body or b"{}")
            except ValueError:
                return self._json(400, {"error": "invalid_json"})
            if not isinstance(args, dict):
                return self._json(400, {"error": "body must be a JSON object"})
            return self._admin(path[len(ADMIN_PREFIX) :], args)
        self._json(404, {"error": "not_found", "error_description": f"no route for {path}"})

    # -- Scalekit's proxy: {env}/proxy{path} -----------------------------------
    def _scalekit_refusal(self, status: int, code: str, detail: str) -> None:
        """How Scalekit's proxy itself refuses: `{"detail": ..., "code": ...}` (the Java SDK's ProxyException)."""
        self._json(status, {"detail": detail, "code": code})

    def _proxy(self) -> None:
        world = self.emu.world
        world.count("proxy_requests")
        world.delay()
        target = urlsplit(self.path)
        path = target.path[len(PROXY_PREFIX) :] or "/"
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._body()
        entry: dict[str, Any] = {
            "method": self.command,
            "path": path,
            "query": target.query,
            "headers": dict(headers),
            "body_size": len(body),
            "connection_name": headers.get("connection_name", ""),
            "identifier": headers.get("identifier", ""),
            "upstream_account": None,
        }

        def refuse(status: int, code: str, detail: str, outcome: str) -> None:
            entry.update(status=status, outcome=outcome)
            world.log("proxy", entry)
            self._scalekit_refusal(status, code, detail)

        bearer = headers.get("authorization", "")
        bearer = bearer[7:] if bearer.lower().startswith("bearer ") else ""
        if not world.client_token_valid(bearer):
            return refuse(401, "UNAUTHORIZED", "invalid or expired access token", "unauthenticated")
        fault = world.take_fault("proxy", rpc=False)
        if fault is not None:
            return refuse(
                _GRPC_TO_HTTP.get(fault.code, 500), fault.code, fault.message or f"injected {fault.code}", "fault"
            )
        connection, identifier = entry["connection_name"], entry["identifier"]
        if not connection or not identifier:
            return refuse(
                400, "INVALID_ARGUMENT", "the connection_name and identifier headers are required", "bad_request"
            )
        try:
            world.connection(connection)
            if not world.proxy_allowed(connection):
                return refuse(403, "TOOL_PROXY_DISABLED", "proxy not enabled for provider", "disabled")
            acc = world.usable_account(connection, identifier)
        except EmulatorError as err:
            return refuse(_GRPC_TO_HTTP.get(err.code, 400), err.code, err.message, "not_found")
        credential = acc.access_token or next((v for v in acc.static_details.values() if isinstance(v, str)), "")
        forwarded = {k: v for k, v in headers.items() if k not in _SCALEKIT_HEADERS and k not in _HOP_HEADERS}
        status, out_headers, out_body, who = provider.answer(
            world, credential, self.command, path, target.query, forwarded, body
        )
        entry.update(status=status, outcome="forwarded", upstream_account=list(who) if who else None)
        world.log("proxy", entry)
        self._send(status, out_body, out_headers.pop("Content-Type", "application/octet-stream"), out_headers)

    # -- /oauth/token ----------------------------------------------------------
    def _token(self, body: bytes) -> None:
        world = self.emu.world
        world.count("oauth_token")
        world.delay()
        answer = world.take_token_answer()
        if answer == "not-json":  # e.g. a dashboard or proxy page at the URL
            return self._html(200, "Sign in", "<h1>Sign in to Scalekit</h1>")
        if answer == "no-token":
            return self._json(200, {"token_type": "Bearer"})
        if isinstance(answer, int):
            return self._json(answer, {"error": "injected", "error_description": f"injected HTTP {answer}"})
        fault = world.take_fault(TOKEN_PATH, rpc=False)
        if fault is not None:
            return self._json(
                _GRPC_TO_HTTP.get(fault.code, 500),
                {"error": fault.code.lower(), "error_description": fault.message or f"injected {fault.code}"},
            )
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return self._json(400, {"error": "unsupported_grant_type", "error_description": "use client_credentials"})
        issued = world.issue_client_token(form.get("client_id", ""), form.get("client_secret", ""))
        if issued is None:
            return self._json(401, {"error": "invalid_client", "error_description": "client authentication failed"})
        token, ttl = issued
        self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)})

    # -- consent pages ---------------------------------------------------------
    def _consent_page(self, token: str) -> None:
        world = self.emu.world
        world.count("consent_page_views")
        try:
            link = world.link(token)
            if link.used:
                raise EmulatorError("FAILED_PRECONDITION", "This authorization link has already been used.")
            if link.expires_at <= world.now():
                raise EmulatorError("DEADLINE_EXCEEDED", "This authorization link has expired.")
        except EmulatorError as err:
            return self._link_refused(err)
        connection, identifier = link.account_key
        provider = world.connections[connection].provider if connection in world.connections else connection
        left = max(0, int(link.expires_at - world.now()))
        body = (
            f"<h1>Connect {html.escape(provider.title())}</h1>"
            f"<p>An agent is asking to use your <b>{html.escape(provider.title())}</b> account.</p>"
            f'<p class="who">Connection: <code id="connection">{html.escape(connection)}</code><br>'
            f'Account for: <code id="identifier">{html.escape(identifier)}</code></p>'
            f'<p><small id="expiry">This link expires in {left} seconds.</small></p>'
            f'<form method="post"><div class="row">'
            f'<button id="deny" name="decision" value="deny">Deny</button>'
            f'<button id="allow" name="decision" value="allow">Allow</button>'
            f"</div></form>"
        )
        self._html(200, f"Connect {provider.title()}", body)

    def _consent_decision(self, token: str, body: bytes) -> None:
        world = self.emu.world
        form = parse_qs(body.decode("utf-8", "replace"))
        decision = form.get("decision", [""])[0]
        try:
            if decision == "allow":
                acc, then = world.approve(token, signed_in_as=form.get("signed_in_as", [""])[0])
                if then:  # custom user verification: on to the application's verify page
                    return self._send(303, b"", "text/plain", {"Location": then})
                return self._html(
                    200,
                    "Connected",
                    f'<h1 id="result">Connected</h1><p>{html.escape(acc.connection.provider.title())} is now connected '
                    f"for <code>{html.escape(acc.identifier)}</code>. You can close this tab.</p>",
                )
            if decision == "deny":
                world.deny(token)
                return self._html(
                    200, "Access denied", '<h1 id="result">Access denied</h1><p>Nothing was connected.</p>'
                )
            return self._html(400, "Bad request", "<h1>Choose Allow or Deny.</h1>")
        except EmulatorError as err:
            return self._link_refused(err)

    def _link_refused(self, err: EmulatorError) -> None:
        status = {"NOT_FOUND": 404, "DEADLINE_EXCEEDED": 410, "FAILED_PRECONDITION": 410, "PERMISSION_DENIED": 403}.get(
            err.code, 400
        )
        self._html(
            status,
            "Link not valid",
            f'<h1 id="result">Link not valid</h1><p>{html.escape(err.message)}</p>'
            "<p>Ask the agent for a new authorization link.</p>",
        )

    # -- admin API -------------------------------------------------------------
    def _admin(self, action: str, args: dict[str, Any]) -> None:
        key = self.headers.get(ADMIN_HEADER, "")
        if not secrets.compare_digest(key.encode(), self.emu.admin_key.encode()):
            return self._json(403, {"error": "forbidden", "error_description": f"send the {ADMIN_HEADER} header"})
        handler = self.emu.admin_actions().get(action)
        if handler is None:
            return self._json(404, {"error": "unknown_action", "actions": sorted(self.emu.admin_actions())})
        try:
            result = handler(**args)
        except EmulatorError as err:
            return self._json(_GRPC_TO_HTTP.get(err.code, 400), {"error": err.code, "error_description": err.message})
        except (TypeError, ValueError, KeyError) as err:
            return self._json(400, {"error": "bad_request", "error_description": str(err)})
        self._json(HTTPStatus.OK, {"ok": True, "result": result})
