"""What may be sent through Scalekit's proxy: pure checks, run before the SDK is called.

`actions.request` in scalekit-sdk-python 2.21 builds `{env}/proxy` + path and hands it to
requests, which removes dot segments: `/../api/v1/connected_accounts/auth` goes out as
`GET /api/v1/connected_accounts/auth` with the environment's own bearer token, i.e. to
Scalekit's management API. It also merges the caller's headers over its own, so a header
`identifier: bob` would act as another user. A path or a header may come from a language
model, so only plain ones pass. Refusals never repeat the path (it may carry a secret).

Standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from .display import printable
from .errors import UsageError

#: Longer paths are refused (no real API path comes close).
MAX_PATH = 2048
MAX_HEADER_VALUE = 8192
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Headers the caller may not set (compared in lower case, `_` read as `-`): the credentials and
#: account selectors Scalekit's SDK sets itself, and the framing and hop-by-hop headers.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "connection-name",
        "identifier",
        "x-api-version",
        "x-sdk-version",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    }
)

_EXAMPLE = "a plain absolute path such as /gmail/v1/users/me/profile"
_ENCODED_SEPARATOR = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp")


def _refuse(reason: str) -> UsageError:
    return UsageError(f"The proxy path must be {_EXAMPLE}: {reason}. Put query parameters in the query, not the path.")


def _invisible(text: str) -> bool:
    return any(unicodedata.category(c) in _INVISIBLE for c in text)


def _dot_segment(path: str) -> bool:
    """A `.` or `..` segment, also as `..;param` (path parameters) or with surrounding blanks."""
    return any(seg.split(";", 1)[0].strip() in (".", "..") for seg in path.split("/"))


def check_path(path: Any) -> str:
    """`path` unchanged if it is a plain absolute path that stays under the proxy, else UsageError.

    Refused: anything not starting with a single `/` (relative paths, absolute URLs, `//host`),
    empty segments (`//`), `.`/`..` segments (also percent-encoded, double-encoded, overlong
    UTF-8 or full-width), percent-encoded dots, slashes and backslashes (`%2e`, `%2f`, `%5c`, in
    any case and however often `%25`-encoded), backslashes, `?` and `#`, control and invisible
    characters (also percent-encoded), malformed escapes, invalid UTF-8, and paths over 2048
    characters."""
    if not isinstance(path, str) or not path:
        raise _refuse("it is empty" if path == "" else "it must be text")
    if len(path) > MAX_PATH:
        raise _refuse(f"it is longer than {MAX_PATH} characters")
    if _invisible(path):
        raise _refuse("it contains control or invisible characters")
    if not path.startswith("/") or "://" in path:
        raise _refuse("it must start with / (not a URL, not a relative path)")
    if "//" in path:
        raise _refuse("it contains an empty segment (//)")
    if "\\" in path:
        raise _refuse("it contains a backslash")
    if "?" in path or "#" in path:
        raise _refuse("it contains ? or #")
    if _BAD_ESCAPE.search(path):
        raise _refuse("it contains a malformed percent-escape")
    if _dot_segment(path):
        raise _refuse("it contains a . or .. segment")
    # The path as servers that decode %25 once, twice, ... would see it: never an encoded separator.
    layer = path
    while True:
        if _ENCODED_SEPARATOR.search(layer):
            raise _refuse("it contains a percent-encoded dot, slash or backslash")
        deeper = re.sub("%25", "%", layer, flags=re.IGNORECASE)
        if deeper == layer:
            break
        layer = deeper
    try:
        decoded = unquote(layer, errors="strict")
    except UnicodeDecodeError:
        raise _refuse("it is not valid UTF-8 once decoded") from None
    if _invisible(decoded):
        raise _refuse("it contains percent-encoded control characters")
    normal = unicodedata.normalize("NFKC", decoded)
    if "\\" in normal or "//" in normal or _dot_segment(normal):
        raise _refuse("it contains characters that read as dots or slashes")
    return path


def check_method(method: Any) -> str:
    """The HTTP method in upper case, if it is one of METHODS."""
    if isinstance(method, str) and method.upper() in METHODS:
        return method.upper()
    raise UsageError(f"The HTTP method must be one of {', '.join(METHODS)}.")


def check_headers(headers: Any) -> dict[str, str]:
    """A copy of `headers` if every name is an HTTP token that is not RESERVED_HEADERS and every
    value is Latin-1 text without control characters (tab allowed), else UsageError."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise UsageError("Headers must be given as a mapping of names to values.")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            shown = printable(name, False) if isinstance(name, str) else type(name).__name__
            raise UsageError(f"'{shown}' is not a valid HTTP header name.")
        if name.lower().replace("_", "-") in RESERVED_HEADERS:
            raise UsageError(
                f"The header {name} cannot be set: Scalekit and scalekit-auth set it "
                "(credentials, the account, or the message framing)."
            )
        if not isinstance(value, str):
            raise UsageError(f"The value of header {name} must be text.")
        if len(value) > MAX_HEADER_VALUE or any(
            (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F or ord(c) > 0xFF for c in value
        ):
            raise UsageError(
                f"The value of header {name} contains line breaks, control characters or characters "
                "outside Latin-1 (or is over 8 KiB)."
            )
        out[name] = value
    return out


def check_query(query: Any) -> dict[str, Any]:
    """A copy of `query` if it maps text names to text, numbers or booleans (or lists of them)."""
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise UsageError("Query parameters must be given as a mapping of names to values.")
    scalar = (str, int, float)
    for name, value in query.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if not isinstance(name, str) or not all(isinstance(v, scalar) for v in values):
            raise UsageError("Query parameters must map names to text or numbers (or lists of them).")
    return dict(query)
