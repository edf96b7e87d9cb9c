"""Call an API with the token attached inside this process: the caller gets the API's answer,
never the token (what a language model should run instead of printing a token).

`api_request()` is the Python form (`scalekit_helper.request`), `cmd_request` in commands.py
the command line (`scalekit-auth request [METHOD] URL`). The token goes only where the URL
rule of services.py lets it; the body is read up to a bound (or streamed to a file); every
occurrence of the token, or of the Scalekit client secret, in the answer is redacted before
anyone sees it.
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .display import printable
from .errors import UsageError

if TYPE_CHECKING:
    from .sources import Road

#: local: the token is attached here; scalekit: the call goes through Scalekit's proxy.
VIAS = ("local", "scalekit")
#: Makes `--via scalekit` the default for `request` (and scalekit_helper.request).
VIA_VAR = "SCALEKIT_REQUEST_VIA"
#: Read at most this much of a response body into memory (and onto stdout) unless told otherwise.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
REDACTED = b"[REDACTED]"
#: Headers the caller may not set: the token is added for them, and these would reroute or smuggle.
FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "host", "content-length", "transfer-encoding"})


@dataclass
class ApiResponse:
    """What an API answered, with every secret already redacted."""

    status: int
    reason: str
    url: str
    service: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    saved_to: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    def envelope(self) -> dict[str, Any]:
        """The machine-readable form (`--json-out`): status, headers, body (JSON when it is JSON)."""
        body: Any = self.text
        if "json" in self.headers.get("content-type", "").lower():
            try:
                body = self.json()
            except ValueError:
                pass
        return {
            "service": self.service,
            "url": self.url,
            "status": self.status,
            "reason": self.reason,
            "ok": self.ok,
            "headers": self.headers,
            "body": body,
            "truncated": self.truncated,
            "saved_to": self.saved_to,
        }


def check_header(line: str) -> tuple[str, str]:
    """'Name: value' -> (name, value); UsageError for anything a server could read as two headers
    or as ours to set."""
    name, sep, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c in name for c in ' \t()<>@,;:\\"/[]?={}') or not name.isascii():
        raise UsageError(f"-H {printable(line, False)!r}: expected 'Name: value', e.g. -H 'Accept: application/json'.")
    if any(c in line for c in "\r\n\x00"):
        raise UsageError(f"-H {printable(name, False)}: a header may not contain line breaks or NUL.")
    if any(ord(c) > 0xFF or (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise UsageError(
            f"-H {printable(name, False)}: a header value must be Latin-1 text without control characters "
            "(encode anything else, e.g. as percent-escapes or base64)."
        )
    if name.lower() in FORBIDDEN_HEADERS:
        raise UsageError(f"-H {name}: set by scalekit-auth itself (the token is added for you); leave it out.")
    return name, value


def pairs(items: Iterable[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {printable(item, False)!r}: expected KEY=VALUE.")
        out.append((key, value))
    return out


def read_body_argument(value: str, what: str) -> bytes:
    """A body given inline, or as @FILE (@- for stdin)."""
    if not value.startswith("@"):
        return value.encode()
    path = value[1:]
    try:
        if path == "-":
            import sys

            return sys.stdin.buffer.read()
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise UsageError(f"{what} {printable(value, False)}: cannot read it ({err.strerror}).") from None


def open_output(path: str) -> int:
    """The file `--output` writes to, opened before anything is sent (a POST must not happen for
    nothing): private (0600, also when it existed), never through a symlink. UsageError if it
    cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as err:
        why = "it is a symbolic link" if err.errno == 40 else (err.strerror or "cannot open it")  # ELOOP
        raise UsageError(f"--output {printable(path, False)}: cannot write it ({why}).") from None
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass
    return fd


def _secrets_to_redact(token: str, road: Road | None) -> list[bytes]:
    from urllib.parse import quote

    values = {token, quote(token, safe="")}
    if road is not None:
        try:
            secret = road.broker.settings().client_secret
        except Exception:  # noqa: BLE001 - redaction must never be why a call fails
            secret = ""
        if secret:
            values |= {secret, quote(secret, safe="")}
    return sorted((v.encode() for v in values if len(v) >= 4), key=len, reverse=True)


def redact(data: bytes, secrets: list[bytes]) -> bytes:
    for secret in secrets:
        data = data.replace(secret, REDACTED)
    return data


def api_request(
    service_or_url: str,
    url: str | None = None,
    *,
    method: str = "GET",
    service: str | None = None,
    identifier: str | None = None,
    json: Any = None,
    data: bytes | str | None = None,
    form: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    output: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    via: str | None = None,
    road: Road | None = None,
) -> ApiResponse:
    """Call an API with `service`'s token attached here; the answer, redacted, never the token.

    `request("https://gmail.googleapis.com/gmail/v1/users/me/profile")` works the service out
    from the URL; `request("gmail", "https://...")` names it. HTTP errors are returned (check
    `.ok` / `.status`), not raised; our own errors (not configured, authorization needed with
    its link, a URL the token may not go to) raise as get_token's do.

    `via="scalekit"` (or SCALEKIT_REQUEST_VIA=scalekit) sends the call through Scalekit's proxy:
    the token never leaves Scalekit, and a path (`request("gmail", "/gmail/v1/users/me/profile",
    via="scalekit")`) is enough.
    """
    from .sources import road_for

    road = road or road_for(None)
    via = (via or os.environ.get(VIA_VAR, "") or "local").strip().lower()
    if via not in VIAS:
        raise UsageError(f"via {printable(via, False)!r}: use local or scalekit (SCALEKIT_REQUEST_VIA too).")
    if via == "scalekit":
        return _via_scalekit(
            road, service_or_url, url, method=method, service=service, identifier=identifier, json=json, data=data,
            form=form, headers=headers, query=query, max_bytes=max_bytes, output=output,
        )  # fmt: skip
    if url is None:
        if "://" not in service_or_url:
            raise UsageError(
                f"{printable(service_or_url, False)!r} is not a URL: give the full https:// URL of the API "
                "(request('gmail', 'https://gmail.googleapis.com/...') or request('https://...'))."
            )
        url = service_or_url
    elif service is None:
        service = service_or_url
    method = method.upper()
    if method not in METHODS:
        raise UsageError(f"{printable(method, False)} is not an HTTP method ({', '.join(METHODS)}).")
    if sum(x is not None for x in (json, data, form)) > 1:
        raise UsageError("Give one body: --json, --data or --form.")
    chosen = _service_for(road, url, service)
    send_headers = {}
    for name, value in (headers or {}).items():
        name, value = check_header(f"{name}: {value}")
        send_headers[name] = value
    body: bytes | None = None
    if json is not None:
        body = json if isinstance(json, bytes) else _json.dumps(json).encode()
        send_headers.setdefault("Content-Type", "application/json")
    elif data is not None:
        body = data.encode() if isinstance(data, str) else data
    elif form is not None:
        from urllib.parse import urlencode

        body = urlencode(list(form.items()) if isinstance(form, Mapping) else list(form)).encode()
        send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    from .bootstrap import import_or_explain

    requests = import_or_explain("requests", "requests")
    from .http_auth import ScalekitAuth

    token = road.token(chosen, identifier)  # errors (authorization needed, ...) before anything is sent
    out_fd = open_output(output) if output is not None else None
    auth = ScalekitAuth(chosen, identifier, road=road)
    params = list(query.items()) if isinstance(query, Mapping) else list(query or [])
    try:
        with requests.Session() as session:
            session.trust_env = False  # straight to the host the URL rule approved: no proxy, no .netrc
            response = session.request(
                method, url, params=params, data=body, headers=send_headers, auth=auth, timeout=timeout,
                stream=True, allow_redirects=False,
            )  # fmt: skip
            token = _sent_token(response) or token
            secrets = _secrets_to_redact(token, road)
            return _read(response, chosen, secrets, max_bytes, output, out_fd)
    except requests.RequestException as err:
        from .errors import ScalekitAuthError

        if out_fd is not None:
            os.close(out_fd)
        why = redact(str(err).encode(), _secrets_to_redact(token, road)).decode()
        raise ScalekitAuthError(f"{method} {printable(url, False)} failed: {printable(why, False)}") from None


def _service_for(road: Road, url: str, service: str | None) -> str:
    """The service whose token goes to `url`, under the URL rule (services.check_url): the URL's own
    service, which must be the one named, if any."""
    broker = road.broker
    target = broker.url_target(url, as_given=True)
    if service is None:
        return broker.explain_unknown(target)
    from .connections import normalize_service

    name = normalize_service(service)
    if target.service != name:
        raise UsageError(
            f"{printable(target.host, False)} is not a known host of {name}, so its token is not sent there. "
            f'If it is one, add it to that service in connections.json: "hosts": ["{printable(target.host, False)}"].'
        )
    return name


def _via_scalekit(
    road: Road,
    service_or_url: str,
    url: str | None,
    *,
    method: str,
    service: str | None,
    identifier: str | None,
    json: Any,
    data: bytes | str | None,
    form: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    headers: Mapping[str, str] | None,
    query: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    max_bytes: int,
    output: str | None,
) -> ApiResponse:
    """The same call through Scalekit's proxy: a full URL must be one of the service's (the URL
    rule), a path needs the service; the path itself is checked by the vault before anything goes."""
    from urllib.parse import parse_qsl

    broker = road.broker
    target_url = url if url is not None else service_or_url
    if url is not None and service is None:
        service = service_or_url
    params = list(query.items()) if isinstance(query, Mapping) else list(query or [])
    if "://" in target_url:
        name = _service_for(road, target_url, service)
        checked = broker.url_target(target_url, as_given=True)
        path, _, qs = checked.path.partition("?") if "?" in checked.path else (checked.path, "", "")
        qs = qs or (checked.url.split("?", 1)[1] if "?" in checked.url else "")
        params = parse_qsl(qs, keep_blank_values=True) + params
    elif target_url.startswith("/"):
        if service is None:
            raise UsageError("A path needs its service: --service NAME (or give the full https:// URL).")
        from .connections import normalize_service

        name, path = normalize_service(service), target_url
    else:
        raise UsageError(
            f"{printable(target_url, False)!r}: give the API's full https:// URL, or a path with --service."
        )
    method = method.upper()
    if method not in METHODS:
        raise UsageError(f"{printable(method, False)} is not an HTTP method ({', '.join(METHODS)}).")
    send_headers = dict(check_header(f"{k}: {v}") for k, v in (headers or {}).items())
    body: dict[str, Any] = {}
    if json is not None:
        body["json"] = _json.loads(json) if isinstance(json, bytes) else json
    elif data is not None:
        body["body"] = data
    elif form is not None:
        body["form"] = dict(form.items() if isinstance(form, Mapping) else form)
    grouped: dict[str, list[str]] = {}
    for key, value in params:  # a repeated key keeps every value (Gmail's labelIds=A&labelIds=B)
        grouped.setdefault(key, []).append(value)
    out_fd = open_output(output) if output is not None else None
    answer = broker.proxy_request(
        name, identifier, path, method=method, query=grouped or None, headers=send_headers, **body
    )
    secrets = _secrets_to_redact("", road)
    result = ApiResponse(
        status=answer.status,
        reason="",
        url=f"scalekit-proxy:{name}{path}",
        service=name,
        headers={
            k.lower(): redact(v.encode("latin-1", "replace"), secrets).decode("latin-1")
            for k, v in answer.headers.items()
        },
    )
    data_out = redact(answer.body, secrets)
    if out_fd is not None:
        with os.fdopen(out_fd, "wb") as out:
            out.write(data_out)
        result.saved_to = output
        return result
    result.truncated = len(data_out) > max_bytes
    result.body = data_out[:max_bytes]
    return result


def _sent_token(response: Any) -> str | None:
    """The token the final request carried (a 401 retry may have fetched a fresh one)."""
    value = response.request.headers.get("Authorization", "") if response.request is not None else ""
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def _clean_headers(headers: Any, secrets: list[bytes]) -> dict[str, str]:
    """Header names and values with every secret redacted (a hostile host may echo one in either)."""

    def clean(text: str) -> str:
        return redact(text.encode("latin-1", "replace"), secrets).decode("latin-1")

    return {clean(k.lower()): clean(v) for k, v in headers.items()}


def _read(
    response: Any, service: str, secrets: list[bytes], max_bytes: int, output: str | None, out_fd: int | None = None
) -> ApiResponse:
    result = ApiResponse(
        status=response.status_code,
        reason=redact(str(response.reason or "").encode("latin-1", "replace"), secrets).decode("latin-1"),
        url=redact(str(response.url).encode(), secrets).decode(),
        service=service,
        headers=_clean_headers(response.headers, secrets),
    )
    overlap = max((len(s) for s in secrets), default=0)
    if out_fd is not None:
        with os.fdopen(out_fd, "wb") as out:
            tail = b""
            for chunk in response.iter_content(65536):
                data = tail + chunk
                keep = max(overlap - 1, 0)
                clean = redact(data, secrets)
                # hold back the end, in case a secret spans two chunks
                if keep and len(clean) > keep:
                    out.write(clean[:-keep])
                    tail = clean[-keep:]
                else:
                    tail = clean
            out.write(redact(tail, secrets))
        result.saved_to = output
        return result
    # Read past the bound by the longest secret, redact, then cut: a secret straddling the cut
    # would otherwise leave its first characters behind, unmatched.
    buffer = bytearray()
    for chunk in response.iter_content(65536):
        buffer += chunk
        if len(buffer) > max_bytes + overlap:
            break
    cleaned = redact(bytes(buffer[: max_bytes + overlap]), secrets)
    result.truncated = len(buffer) > max_bytes
    result.body = cleaned[:max_bytes]
    return result
