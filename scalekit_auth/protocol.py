"""The agent's messages: every request and answer is encoded and decoded here, and checked strictly.

Both sides validate what they read (protocol version, operation, field types, list lengths).
A message that does not follow the protocol raises ProtocolError: the caller then treats the
agent as unusable and does the work itself; the agent answers "bad request". An answer that
*is* an error (authorization needed, not configured, ...) decodes to the same exception class,
message, exit code and fields the in-process path raises.

Importing this module costs nothing beyond `os`: the fast path of `get_token.py` uses the
plain "lines" form, which needs no json; the JSON helpers import json when first used.
"""

from __future__ import annotations

from .lines import MAX_TEXT, PROTOCOL, lines_answer, lines_request, parse_lines, plain_token

TYPE_CHECKING = False  # typing costs ~9 ms to import

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .credentials import ServiceCredentials
    from .errors import ScalekitAuthError

__all__ = ["PROTOCOL", "ProtocolError", "lines_answer", "lines_request", "parse_lines", "plain_token"]
OPS = ("token", "invalidate", "clear", "ping", "stop")
#: At most this many services in one request (a batch on the command line is a handful).
MAX_SERVICES = 100
MAX_NAME = 64
KINDS = ("oauth", "static", "trusted_idp")


class ProtocolError(Exception):
    """A message that does not follow the protocol (another version, a bug, or not our agent)."""


class VersionMismatch(ProtocolError):  # noqa: N818 - named for what it is
    """The other side speaks another version of the protocol."""


# -- JSON messages ---------------------------------------------------------------------------


def _dumps(data: dict[str, Any]) -> bytes:
    import json

    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def _loads(line: bytes) -> dict[str, Any]:
    import json

    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError("not JSON") from err
    if not isinstance(data, dict):
        raise ProtocolError("not a JSON object")
    if data.get("v") != PROTOCOL:
        raise VersionMismatch(f"protocol version {data.get('v')!r}, expected {PROTOCOL}")
    return data


def _text(value: object, what: str, *, limit: int = MAX_TEXT, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > limit or (not value and not empty):
        raise ProtocolError(f"{what}: expected text")
    return value


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _number(value: object, what: str) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"{what}: expected a finite number")
    return float(value)


def _texts(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 10_000:
        raise ProtocolError(f"{what}: expected a list")
    return tuple(_text(v, what, empty=True) for v in value)


def request(op: str, context: str, **fields: Any) -> bytes:
    """One request line (without the newline)."""
    return _dumps({"v": PROTOCOL, "context": context, "op": op, **fields})


class Request:
    """A request the agent has checked: `op`, `context`, and the fields that op takes."""

    __slots__ = ("op", "context", "services", "identifier", "force_refresh", "lines", "any_context", "service")

    def __init__(self, data: dict[str, Any]) -> None:
        op = data.get("op")
        if op not in OPS:
            raise ProtocolError(f"unknown operation {op!r}")
        self.op: str = op
        self.context: str = _text(data.get("context"), "context", limit=128)
        self.any_context = data.get("any_context", False)
        if not isinstance(self.any_context, bool):
            raise ProtocolError("any_context: expected true or false")
        self.identifier = _optional_text(data.get("identifier"), "identifier")
        self.services: list[str] = []
        self.service: str | None = None
        self.force_refresh = False
        self.lines = False
        if op == "token":
            services = data.get("services")
            if not isinstance(services, list) or not 0 < len(services) <= MAX_SERVICES:
                raise ProtocolError(f"services: expected a list of 1 to {MAX_SERVICES} names")
            self.services = list(dict.fromkeys(_text(s, "service", limit=MAX_NAME) for s in services))
            self.force_refresh = data.get("force_refresh", False)
            if not isinstance(self.force_refresh, bool):
                raise ProtocolError("force_refresh: expected true or false")
            fmt = data.get("format")
            if fmt not in (None, "lines"):
                raise ProtocolError(f"unknown format {fmt!r}")
            self.lines = fmt == "lines"
        elif op == "invalidate":
            self.service = _text(data.get("service"), "service", limit=MAX_NAME)


def parse_request(line: bytes) -> Request:
    """The agent's side: a checked Request, or ProtocolError."""
    return Request(_loads(line))


def reply(result: Any) -> bytes:
    return _dumps({"v": PROTOCOL, "ok": True, "result": result})


def reply_error(err: BaseException) -> bytes:
    return _dumps({"v": PROTOCOL, "ok": False, "error": error_to_wire(err)})


def reply_mismatch() -> bytes:
    """This agent serves other settings (or another protocol): the caller does the work itself."""
    return _dumps({"v": PROTOCOL, "ok": False, "mismatch": True})


def parse_reply(line: bytes) -> tuple[bool, Any]:
    """(True, result) or (False, the decoded exception); ProtocolError for anything else, including
    the agent saying it serves other settings."""
    data = _loads(line)
    ok = data.get("ok")
    if ok is True and "result" in data:
        return True, data["result"]
    if ok is False and data.get("mismatch") is True:
        raise ProtocolError("the agent serves other settings")
    if ok is False and isinstance(data.get("error"), dict):
        return False, error_from_wire(data["error"])
    raise ProtocolError("neither a result nor an error")


# -- credentials ------------------------------------------------------------------------------


def credentials_to_wire(creds: ServiceCredentials) -> dict[str, Any]:
    from .errors import ScalekitAuthError

    try:
        token: str | None = creds.token
    except ScalekitAuthError:
        token = None
    return {
        "service": creds.service,
        "identifier": creds.identifier,
        "connection_name": creds.connection_name,
        "kind": creds.kind,
        "token": token,
        "access_token": creds.access_token,
        "scopes": list(creds.scopes),
        "expires_at": creds.expires_at.timestamp() if creds.expires_at else None,
        "fields": dict(creds.fields),
    }


def _json_value(value: object, depth: int = 0) -> bool:
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        import math

        return math.isfinite(value)
    if depth > 8:
        return False
    if isinstance(value, list):
        return all(_json_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v, depth + 1) for k, v in value.items())
    return False


def credentials_from_wire(data: object, service: str | None = None) -> ServiceCredentials:
    """ServiceCredentials from the agent's answer, checked field by field; `service`, when given,
    is the one this item must be for."""
    import datetime as dt
    from types import MappingProxyType

    from .credentials import ServiceCredentials

    if not isinstance(data, dict):
        raise ProtocolError("credentials: expected an object")
    name = _text(data.get("service"), "service", limit=MAX_NAME)
    if service is not None and name != service:
        raise ProtocolError(f"credentials for {name!r}, asked for {service!r}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ProtocolError(f"unknown credential kind {kind!r}")
    fields = data.get("fields", {})
    if not isinstance(fields, dict) or not _json_value(fields):
        raise ProtocolError("fields: expected an object of JSON values")
    token = data.get("token")
    if token is not None:
        _text(token, "token")
    expires = data.get("expires_at")
    return ServiceCredentials(
        service=name,
        identifier=_text(data.get("identifier"), "identifier"),
        connection_name=_text(data.get("connection_name"), "connection_name"),
        kind=kind,
        access_token=_text(data.get("access_token", ""), "access_token", empty=True),
        scopes=_texts(data.get("scopes", []), "scopes"),
        expires_at=None if expires is None else dt.datetime.fromtimestamp(_number(expires, "expires_at"), tz=dt.UTC),
        fields=MappingProxyType(dict(fields)),
    )


def credentials_list_from_wire(result: object, services: Sequence[str]) -> list[ServiceCredentials]:
    """One checked item per requested service, in order."""
    if not isinstance(result, list) or len(result) != len(services):
        raise ProtocolError("expected one credentials item per service")
    return [credentials_from_wire(item, name) for item, name in zip(result, services, strict=True)]


# -- errors -----------------------------------------------------------------------------------

#: The fields an error carries across, with how each is checked on the way in.
_TEXT_FIELDS = ("service", "link", "identifier", "connection_name", "status", "package")
_LIST_FIELDS = ("missing", "configured")


def _error_classes() -> dict[str, type[ScalekitAuthError]]:
    from . import errors

    return {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.ScalekitAuthError)
    }


def error_to_wire(err: BaseException) -> dict[str, Any]:
    """An error as plain JSON data (message, class, exit code, the fields callers use)."""
    from .errors import BatchError, ExitCode, ScalekitAuthError

    known = isinstance(err, ScalekitAuthError) and err.__class__.__name__ in _error_classes()
    data: dict[str, Any] = {
        "type": err.__class__.__name__ if known else "ScalekitAuthError",
        "message": str(err) if isinstance(err, ScalekitAuthError) else f"unexpected error ({err.__class__.__name__})",
        "exit_code": int(getattr(err, "exit_code", ExitCode.ERROR)),
    }
    for name in (*_TEXT_FIELDS, *_LIST_FIELDS):
        value = getattr(err, name, None)
        if isinstance(value, str) or (isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)):
            data[name] = list(value) if isinstance(value, (tuple, list)) else value
    expires_at = getattr(err, "expires_at", None)
    if expires_at is not None:
        data["expires_at"] = expires_at.timestamp()
    if isinstance(err, BatchError):
        data["results"] = {s: credentials_to_wire(c) for s, c in err.results.items() if not isinstance(c, str)}
        data["errors"] = {service: error_to_wire(e) for service, e in err.errors.items()}
    return data


def error_from_wire(data: Mapping[str, Any], depth: int = 0) -> ScalekitAuthError:
    """The same exception class, message, exit code and fields as on the other side."""
    import datetime as dt

    from .errors import AuthorizationError, BatchError, ExitCode

    cls = _error_classes().get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown error type {data.get('type')!r}")
    code = data.get("exit_code")
    if isinstance(code, bool) or not isinstance(code, int) or code not in ExitCode._value2member_map_:
        raise ProtocolError(f"unknown exit code {code!r}")
    err = cls.__new__(cls)
    Exception.__init__(err, _text(data.get("message"), "message", empty=True))
    err.exit_code = ExitCode(code)
    if isinstance(err, AuthorizationError):
        for name in ("identifier", "connection_name", "status"):
            setattr(err, name, None)
        err.expires_at = None
        if not isinstance(data.get("link"), str) or not isinstance(data.get("service"), str):
            raise ProtocolError("an authorization error without its link")
    for name in _TEXT_FIELDS:
        if name in data:
            setattr(err, name, _optional_text(data[name], name))
    for name in _LIST_FIELDS:
        if name in data:
            setattr(err, name, _texts(data[name], name))
    if "expires_at" in data:
        err.expires_at = dt.datetime.fromtimestamp(_number(data["expires_at"], "expires_at"), tz=dt.UTC)  # type: ignore[attr-defined]
    if isinstance(err, BatchError):
        results, errors = data.get("results", {}), data.get("errors", {})
        if depth or not isinstance(results, dict) or not isinstance(errors, dict) or not errors:
            raise ProtocolError("a batch error without its parts")
        err.results = {_text(s, "service"): credentials_from_wire(c, s) for s, c in results.items()}
        err.errors = {
            _text(s, "service"): error_from_wire(e, depth + 1) if isinstance(e, dict) else _bad(e)
            for s, e in errors.items()
        }
    return err


def _bad(value: object) -> ScalekitAuthError:
    raise ProtocolError(f"expected an error object, not {type(value).__name__}")


def ping_from_wire(result: object) -> dict[str, Any]:
    """The agent's status, checked: the fields `agent status` and the start-up logic read."""
    if not isinstance(result, dict):
        raise ProtocolError("status: expected an object")
    pid = result.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ProtocolError("status: no pid")
    if not isinstance(result.get("context_matches"), bool):
        raise ProtocolError("status: context_matches")
    return result
