"""Custom user verification on this machine: a one-page web server on 127.0.0.1 for one waiting call.

With SCALEKIT_USER_VERIFY_URL=loopback, a waiting call (`auth`, `token --wait`, `get_token(...,
wait=True)`) issues its links with `user_verify_url=http://127.0.0.1:PORT/scalekit-auth/verify`.
After consent Scalekit sends the browser there with `auth_request_id` and `state`. The page
accepts only a `state` of a link this waiting call issued (single-use, until shortly after the
link expires) and asks the person to confirm with a button; the confirmation is a POST whose
Origin and Host must be this page's own, so another web site cannot submit it on the
browser's behalf. Then it calls verify_connected_account_user for that link's identifier and
sends the browser on to Scalekit's done page. Loopback only; it stops with the waiting call.
A POST it cannot frame (Content-Length missing, repeated, not plain digits, or a body shorter
than announced) is answered 400, a body over BODY_MAX 413, before anything is read or looked up.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .display import printable
from .errors import ScalekitAuthError
from .logs import get_logger

log = get_logger("scalekit_auth.verify")

PATH = "/scalekit-auth/verify"


def _page(title: str, text: str) -> bytes:
    return (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f'<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1 id="result">{html.escape(title)}'
        f"</h1><p>{html.escape(text)}</p></body>"
    ).encode()


#: Characters of an auth_request_id (ASCII only: str.isalnum() also accepts other scripts' digits).
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.")
#: Far above any real id; a longer "id" is a pasted mistake, not worth a call to Scalekit.
ID_MAX = 1024


def auth_request_id_of(address: str) -> str:
    """The auth_request_id in an address the browser ended on (or the bare id itself).

    Anything that does not yield one (an address urlsplit cannot parse, such as an unclosed IPv6
    bracket; no id; an id with other characters) is a UsageError with a one-line message."""
    from .errors import UsageError

    text = address.strip()
    try:
        if "auth_request_id=" in text:
            query = urlsplit(text).query if "://" in text else text.split("?", 1)[-1]
            found = (parse_qs(query).get("auth_request_id") or [""])[0]
        elif "://" in text or "?" in text:
            found = ""
        else:
            found = text
    except ValueError as err:  # urlsplit: "Invalid IPv6 URL", a port out of range, ...
        raise UsageError(
            f"That is not a valid address ({printable(str(err), keep_newlines=False)}). Paste the whole address of "
            "the page the browser ended on after the user allowed access (it contains ?auth_request_id=...)."
        ) from None
    if not found or len(found) > ID_MAX or not set(found) <= _ID_CHARS:
        raise UsageError(
            "No auth_request_id in that address. Paste the whole address of the page the browser ended on after "
            "the user allowed access (it contains ?auth_request_id=...)."
        )
    return found


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a browser that hangs up is not news


#: The confirmation form is two short fields; a larger body is not ours.
BODY_MAX = 8192


def _body_length(request: BaseHTTPRequestHandler) -> int | tuple[int, str]:
    """The length of a POST body, or (HTTP status, why) when the request does not frame one we read.

    Exactly one Content-Length of decimal digits (RFC 9110: 1*DIGIT; no sign, no list, no
    repetition), from 1 to BODY_MAX; no Transfer-Encoding (the form is never chunked)."""
    if request.headers.get_all("Transfer-Encoding"):
        return 400, "Transfer-Encoding is not accepted here; send the form with a Content-Length."
    values = request.headers.get_all("Content-Length") or []
    if len(values) != 1:
        return 400, "Exactly one Content-Length is required."
    raw = values[0].strip()
    if not raw or not raw.isascii() or not raw.isdigit():
        return 400, "Content-Length must be a whole number of bytes."
    digits = raw.lstrip("0")
    if len(digits) > len(str(BODY_MAX)) or int(digits or "0") > BODY_MAX:  # int() of 5000 digits raises
        return 413, f"The form is larger than {BODY_MAX} bytes."
    if not digits:
        return 400, "The form is empty."
    return int(digits)


class LoopbackVerifier:
    """The verify page for one waiting call; use as a context manager."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.verified = threading.Event()
        verifier = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # an idle connection does not hold a thread

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                verifier._ask(self)

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                verifier._confirm(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="scalekit-verify", daemon=True)

    def __enter__(self) -> LoopbackVerifier:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=30)
        self._server.server_close()

    def _send(self, request: BaseHTTPRequestHandler, status: int, body: bytes, location: str = "") -> None:
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("Referrer-Policy", "no-referrer")
        if location:
            request.send_header("Location", location)
        request.end_headers()
        request.wfile.write(body)

    def _pending(self, query: dict[str, list[str]]) -> tuple[str, str, str] | None:
        """(auth_request_id, state, identifier) when the state is one of this call's links."""
        auth_request_id = (query.get("auth_request_id") or [""])[0]
        state = (query.get("state") or [""])[0]
        identifier = self.broker.state_issued(state, self.url) if state else None
        if not auth_request_id or identifier is None:
            return None
        return auth_request_id, state, identifier

    def _refuse(self, request: BaseHTTPRequestHandler) -> None:
        log.debug("verify page: refused a request without a state of ours")
        self._send(request, 400, _page("Not verified", "This address does not belong to a link issued here."))

    def _ask(self, request: BaseHTTPRequestHandler) -> None:
        """GET, where Scalekit sends the browser: ask the person to confirm (nothing is verified yet)."""
        parts = urlsplit(request.path)
        if parts.path != PATH:
            return self._send(request, 404, _page("Not found", "Nothing here."))
        pending = self._pending(parse_qs(parts.query))
        if pending is None:
            return self._refuse(request)
        auth_request_id, state, identifier = pending
        body = (
            "<!doctype html><meta charset=utf-8><title>Finish connecting</title>"
            '<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>Finish connecting</h1>'
            f"<p>You allowed access for the account of <b>{html.escape(identifier)}</b>. If that was you, just "
            "now, confirm. If you did not expect this page, close it.</p>"
            f'<form method="post" action="{PATH}">'
            f'<input type="hidden" name="auth_request_id" value="{html.escape(auth_request_id)}">'
            f'<input type="hidden" name="state" value="{html.escape(state)}">'
            '<button id="confirm" type="submit">Confirm</button></form></body>'
        ).encode()
        self._send(request, 200, body)

    def _confirm(self, request: BaseHTTPRequestHandler) -> None:
        """POST from our own page: verify the user with Scalekit."""
        own = self.url.split(PATH, 1)[0]  # http://127.0.0.1:PORT
        if urlsplit(request.path).path != PATH:
            return self._send(request, 404, _page("Not found", "Nothing here."))
        if request.headers.get("Origin") != own or request.headers.get("Host") != own.split("://", 1)[1]:
            return self._send(request, 403, _page("Not verified", "Confirm on this page itself."))
        length = _body_length(request)
        if isinstance(length, tuple):
            status, why = length
            log.debug("verify page: refused a POST: %s", why)
            request.close_connection = True  # the body, if any, is never read: no second request on it
            title = "Too large" if status == 413 else "Bad request"
            return self._send(request, status, _page(title, why))
        try:
            body = request.rfile.read(length)
        except OSError:  # the handler's timeout: a client that announced more than it sends
            request.close_connection = True
            return self._send(request, 408, _page("Bad request", "The form did not arrive in time."))
        if len(body) != length:
            request.close_connection = True
            return self._send(request, 400, _page("Bad request", "The form is shorter than its Content-Length."))
        form = parse_qs(body.decode("utf-8", "replace"))
        pending = self._pending(form)
        if pending is None:
            return self._refuse(request)
        auth_request_id, state, identifier = pending
        try:
            done = self.broker.verify_user(auth_request_id, identifier)
        except ScalekitAuthError as err:
            return self._send(request, 400, _page("Not verified", printable(str(err), keep_newlines=False)))
        self.broker.state_used(state)
        self.verified.set()
        if done.startswith(("https://", "http://")):
            return self._send(request, 303, _page("Verified", "You can close this tab."), location=done)
        return self._send(request, 200, _page("Verified", "You can close this tab."))
