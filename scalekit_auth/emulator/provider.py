"""The emulated provider API behind Scalekit's proxy (Gmail, Slack, GitHub, ... all alike).

It identifies the caller by the credential the proxy attached, as a real provider would,
and answers with a small JSON echo of what it received and whose account it acted as.
The answer never contains a credential. A few paths are special:

- `/status/<code>`: answer that HTTP status (a provider error, passed through by the proxy);
- `/bytes/<n>`: answer `n` bytes of `application/octet-stream` (at most 64 MiB).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from .state import World

MAX_BYTES = 64 * 1024 * 1024
#: Request headers the echo never repeats (the credential and what could carry one).
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


def _json(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _body_of(content_type: str, body: bytes) -> Any:
    kind = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if kind == "application/x-www-form-urlencoded":
        return parse_qs(text, keep_blank_values=True)
    return text


def answer(
    world: World, credential: str, method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes, tuple[str, str] | None]:
    """(status, headers, body, (connection, identifier) of the account acted as, or None)."""
    acc = world.account_by_credential(credential)
    if acc is None:
        status, hdrs, payload = _json(
            401, {"error": {"code": 401, "message": "Request had invalid authentication credentials."}}
        )
        return status, hdrs, payload, None
    who = acc.key
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "bytes" and parts[1].isdigit():
        size = min(int(parts[1]), MAX_BYTES)
        return 200, {"Content-Type": "application/octet-stream"}, b"\xab" * size, who
    status = 200
    if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit() and 200 <= int(parts[1]) <= 599:
        status = int(parts[1])
    echo = {
        "provider": acc.connection.provider,
        "connection_name": acc.connection.name,
        "identifier": acc.identifier,
        "method": method,
        "path": path,
        "query": parse_qs(query, keep_blank_values=True),
        "headers": {k: v for k, v in headers.items() if k not in _PRIVATE_HEADERS},
        "body": _body_of(headers.get("content-type", ""), body) if body else None,
    }
    if status >= 400:
        echo = {"error": {"code": status, "message": f"emulated provider error {status}"}, "request": echo}
    code, hdrs, payload = _json(status, echo)
    return code, hdrs, payload, who
