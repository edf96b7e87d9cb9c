"""Which service an API URL belongs to (`https://gmail.googleapis.com/...` -> `gmail`), and the URL rule:
where a token may go at all.

The URL rule (check_url), for every way a token leaves (`scalekit-auth curl`, ScalekitAuth/session(),
httpx_auth, service_for_url, get_token_for_url): a token goes only to a URL

- whose scheme is https; plain http only to a loopback host (localhost, 127.0.0.0/8, [::1]) that the
  user lists exactly in connections.json "hosts";
- whose host is a DNS name (letters, digits and '-' in dot-separated labels). IP addresses only when the
  user lists them exactly; never an IPv6 zone, a user name before '@', a backslash, a space or control
  character anywhere, a percent-encoded or non-ASCII host, or a trailing dot;
- parsed the way the client that sends it parses it: the URL is refused unless it is unambiguous, and
  the client is handed the normalised absolute URL the rule checked (URL.url: scheme included, host
  lower-cased, dot segments removed, no fragment). tests/test_url_rule.py checks this against libcurl's,
  urllib3's and httpx's own parsers.

Patterns are `host[:port][/path-prefix]`; a host may start with `*.` to match any subdomain. Hosts
compare case-insensitively, paths by whole segments (`/api` matches `/api/x`, not `/apix`). The most
specific pattern wins (exact host over wildcard, then the longest pattern). Patterns a user lists
under `"hosts"` in connections.json beat the built-in table.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from .errors import URLRefusedError

#: Built-in (pattern, service) pairs: the service names to use in connections.json.
BUILTIN: tuple[tuple[str, str], ...] = (
    # Google
    ("gmail.googleapis.com", "gmail"),
    ("www.googleapis.com/gmail", "gmail"),
    ("www.googleapis.com/upload/gmail", "gmail"),
    ("www.googleapis.com/calendar", "google-calendar"),
    ("calendar-json.googleapis.com", "google-calendar"),
    ("www.googleapis.com/drive", "google-drive"),
    ("www.googleapis.com/upload/drive", "google-drive"),
    ("drive.googleapis.com", "google-drive"),
    ("sheets.googleapis.com", "google-sheets"),
    ("docs.googleapis.com", "google-docs"),
    ("people.googleapis.com", "google-contacts"),
    ("tasks.googleapis.com", "google-tasks"),
    ("www.googleapis.com/tasks", "google-tasks"),
    ("youtube.googleapis.com", "youtube"),
    ("www.googleapis.com/youtube", "youtube"),
    # Microsoft Graph
    ("graph.microsoft.com", "microsoft"),
    ("graph.microsoft.com/v1.0/me/messages", "outlook"),
    ("graph.microsoft.com/v1.0/me/mailfolders", "outlook"),
    ("graph.microsoft.com/v1.0/me/sendmail", "outlook"),
    ("graph.microsoft.com/v1.0/me/events", "outlook"),
    ("graph.microsoft.com/v1.0/me/calendar", "outlook"),
    ("graph.microsoft.com/v1.0/me/calendars", "outlook"),
    ("graph.microsoft.com/v1.0/me/drive", "onedrive"),
    ("graph.microsoft.com/v1.0/drives", "onedrive"),
    ("graph.microsoft.com/v1.0/teams", "microsoft-teams"),
    ("graph.microsoft.com/v1.0/chats", "microsoft-teams"),
    ("graph.microsoft.com/v1.0/me/chats", "microsoft-teams"),
    ("graph.microsoft.com/v1.0/me/joinedteams", "microsoft-teams"),
    ("outlook.office.com/api", "outlook"),
    # Chat, docs, project tools
    ("slack.com/api", "slack"),
    ("api.notion.com", "notion"),
    ("api.linear.app", "linear"),
    ("app.asana.com/api", "asana"),
    ("api.trello.com", "trello"),
    ("api.monday.com", "monday"),
    ("api.clickup.com", "clickup"),
    ("api.todoist.com", "todoist"),
    ("api.airtable.com", "airtable"),
    ("api.figma.com", "figma"),
    ("discord.com/api", "discord"),
    ("api.zoom.us", "zoom"),
    ("api.calendly.com", "calendly"),
    ("*.atlassian.net/rest/api", "jira"),
    ("*.atlassian.net/rest/agile", "jira"),
    ("*.atlassian.net/wiki", "confluence"),
    ("api.atlassian.com/ex/jira", "jira"),
    ("api.atlassian.com/ex/confluence", "confluence"),
    # Code
    ("api.github.com", "github"),
    ("uploads.github.com", "github"),
    ("gitlab.com/api", "gitlab"),
    ("api.bitbucket.org", "bitbucket"),
    # CRM and support
    ("*.salesforce.com", "salesforce"),
    ("*.my.salesforce.com", "salesforce"),
    ("api.hubapi.com", "hubspot"),
    ("api.hubspot.com", "hubspot"),
    ("*.zendesk.com/api", "zendesk"),
    ("api.intercom.io", "intercom"),
    ("api.pipedrive.com", "pipedrive"),
    ("*.pipedrive.com/api", "pipedrive"),
    ("api.freshdesk.com", "freshdesk"),
    ("*.freshdesk.com/api", "freshdesk"),
    # Files
    ("api.dropboxapi.com", "dropbox"),
    ("content.dropboxapi.com", "dropbox"),
    ("api.box.com", "box"),
    ("upload.box.com", "box"),
    # Social
    ("api.twitter.com", "twitter"),
    ("api.x.com", "twitter"),
    ("api.linkedin.com", "linkedin"),
    ("graph.facebook.com", "facebook"),
    ("api.spotify.com", "spotify"),
)


def provider_key(service: str) -> str:
    """The Scalekit connector key a service name stands for: its letters and digits, upper case, as
    Scalekit writes connector keys (GMAIL, GOOGLEDWD, HUBSPOT): `gmail` -> GMAIL, `google-calendar`
    -> GOOGLECALENDAR, `microsoft-teams` -> MICROSOFTTEAMS. "" when nothing is left."""
    return re.sub(r"[^A-Za-z0-9]", "", service).upper()


@dataclass(frozen=True)
class Pattern:
    """A parsed `host[:port][/path]` pattern."""

    host: str
    port: int | None
    path: str
    service: str
    source: str

    @property
    def wildcard(self) -> bool:
        return self.host.startswith("*.")

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Higher wins: exact host over wildcard, then the longer pattern."""
        return (0 if self.wildcard else 1, len(self.host) + len(self.path), 1 if self.port is not None else 0)

    def matches(self, host: str, port: int | None, path: str) -> bool:
        if self.wildcard:
            suffix = self.host[1:]  # ".atlassian.net"
            if not host.endswith(suffix) or len(host) == len(suffix):
                return False
        elif host != self.host:
            return False
        if self.port is not None and port != self.port:
            return False
        if not self.path:
            return True
        return path == self.path or path.startswith(self.path + "/")


def parse_pattern(text: str, service: str, source: str = "built-in") -> Pattern:
    """`api.example.com`, `example.com/api`, `localhost:8080/v1`, `[::1]:8080` or `*.example.com` -> Pattern."""
    raw = text.strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    hostport, slash, path = raw.partition("/")
    if hostport.startswith("[") and "]" in hostport:  # [IPv6]:port
        host, _, after = hostport.partition("]")
        host += "]"
        colon, port_text = after[:1], after[1:]
        if after and colon != ":":
            raise ValueError(f"{text!r} is not a host pattern such as 'api.example.com' or '[::1]:8080'")
    else:
        host, colon, port_text = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
        if not colon:
            host = hostport
    host = _canonical_ip(host.lower().rstrip("."))
    if not host or " " in host or (host.startswith("*") and not host.startswith("*.")):
        raise ValueError(f"{text!r} is not a host pattern such as 'api.example.com' or '*.example.com/api'")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r} has an invalid port")
        port = int(port_text)
    path = ("/" + path).rstrip("/").lower() if slash else ""
    return Pattern(host, port, path, service, source)


def _canonical_ip(host: str) -> str:
    """An IP address in a pattern as parse_url writes it (`[::1]`, `127.0.0.1`); any other host unchanged."""
    try:
        if host.startswith("[") and host.endswith("]"):
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        if ":" in host:  # an IPv6 address without brackets (and so without a port)
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return host


_BUILTIN_PATTERNS = tuple(parse_pattern(p, s) for p, s in BUILTIN)


#: The port a URL without one goes to.
DEFAULT_PORTS = {"https": 443, "http": 80}

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: A host whose last label is a number is an IPv4 address to curl, browsers and inet_aton (127.1, 0x7f.1).
_ENDS_IN_A_NUMBER = re.compile(r"(?:.*\.)?(?:[0-9]+|0x[0-9a-f]*)")
#: Everything printable in ASCII: what is left of a path or query once non-ASCII text is percent-encoded.
_ASCII_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class URL:
    """A URL as a token may go to it: `url` is what the client is handed, the rest is what it connects to."""

    url: str  # absolute and normalised: scheme://host[:port]/path[?query]
    scheme: str  # "https" or "http"
    host: str  # lower case; an IPv6 address in brackets, compressed ("[::1]")
    port: int | None  # as written; None: the scheme's default
    path: str  # dot segments removed
    kind: str  # "name" or "ip"
    service: str | None = None  # filled in by check_url

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port) with the default port filled in: what must match for a token to go along."""
        return self.scheme, self.host, self.port or DEFAULT_PORTS[self.scheme]

    @property
    def loopback(self) -> bool:
        if self.kind == "name":
            return self.host == "localhost"
        return ipaddress.ip_address(self.host.strip("[]")).is_loopback


def _refuse(url: str, why: str) -> URLRefusedError:
    shown = url if len(url) <= 200 else url[:200] + "..."
    return URLRefusedError(f"No token is sent to {shown!r}: it {why}.")  # repr: no raw control characters


def _odd_character(url: str) -> str | None:
    """What clients disagree about inside a URL, or None."""
    for ch in url:
        if ch == "\\":
            return "a backslash (some clients read it as '/', others as part of the host)"
        category = unicodedata.category(ch)
        if category in ("Zs", "Zl", "Zp"):
            return "a space"
        if category == "Cc":
            return "a control character"
        if category == "Cf":
            return "an invisible formatting character"
    return None


def parse_url(url: str, *, as_given: bool = False) -> URL:
    """The one parse of a URL a token may be sent to (no policy yet: see check_url). URLRefusedError for
    anything two clients could read differently, with what is wrong and what to do.

    A URL without a scheme means https, for a client that is handed URL.url (curl). `as_given`: the client
    sends the URL as it holds it (requests, httpx), so it must be absolute already: a client reads
    `host:443` as the scheme `host`."""
    if not isinstance(url, str) or not url:
        raise URLRefusedError("No URL given: pass the API URL the token is for, e.g. https://api.github.com/user.")
    odd = _odd_character(url)
    if odd:
        raise _refuse(url, f"contains {odd}; percent-encode it (%20 for a space) or remove it")
    scheme, rest = "https", url  # no scheme: https (curl alone would guess http)
    found = _SCHEME.match(url)
    if found and url[found.end() : found.end() + 2] == "//":
        scheme, rest = found.group()[:-1].lower(), url[found.end() + 2 :]
    elif found and not url[found.end() : found.end() + 1].isdigit():  # not host:port
        scheme = found.group()[:-1].lower()
        if scheme in DEFAULT_PORTS:
            raise _refuse(url, f"is missing the // after {scheme}: (write {scheme}://HOST/PATH)")
    elif url.startswith("//"):
        raise _refuse(url, "has no scheme before // (write https://HOST/PATH)")
    elif as_given:
        raise _refuse(url, "has no scheme (write https://HOST/PATH)")
    if scheme not in DEFAULT_PORTS:
        raise _refuse(
            url, f"uses {scheme}:, and OAuth tokens go only to https:// URLs (http:// only to a loopback host listed "
            'in connections.json "hosts")'
        )  # fmt: skip
    end = min([rest.index(c) for c in "/?#" if c in rest] + [len(rest)])
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise _refuse(
            url, "has a user name (or password) before '@'. The token goes in the Authorization header, and "
            "'name@' can hide which host the URL is for: remove everything up to the '@'"
        )  # fmt: skip
    host, kind, port_text = _host(url, authority)
    port = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise _refuse(url, "has no valid port after ':' (a number from 1 to 65535; or leave out the ':')")
        port = int(port_text)
    before_fragment = tail.partition("#")[0]
    path, question, query = before_fragment.partition("?")
    path = quote(_remove_dot_segments(path) or "/", safe=_ASCII_SAFE)
    normalised = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"
    if question:
        normalised += "?" + quote(query, safe=_ASCII_SAFE)
    return URL(normalised, scheme, host, port, path, kind)


def _host(url: str, authority: str) -> tuple[str, str, str | None]:
    """(host, "name" or "ip", the port's text or None) of `host[:port]` or `[IPv6][:port]`."""
    if authority.startswith("["):
        inside, bracket, after = authority[1:].partition("]")
        if "%" in inside:
            raise _refuse(
                url, "has an IPv6 zone ('%25...' inside [...]), which curl ignores: it connects to the address, "
                "whatever name the zone spells. Use the API's host name instead"
            )  # fmt: skip
        try:
            address = ipaddress.IPv6Address(inside)
        except ValueError:
            address = None
        if not bracket or address is None or (after and not after.startswith(":")):
            raise _refuse(url, "has no valid IPv6 address inside [...]")
        return f"[{address.compressed}]", "ip", after[1:] if after else None
    text, colon, port_text = authority.partition(":")
    if ":" in port_text:
        raise _refuse(url, "has no valid port after ':' (a number from 1 to 65535; or leave out the ':')")
    if not text:
        raise _refuse(url, "has no host name")
    if "%" in text:
        raise _refuse(url, "has a percent-encoded host name; write the host name as it is (e.g. api.github.com)")
    if not text.isascii():
        raise _refuse(
            url, "has a host name that is not plain ASCII; write an international name in its xn-- form, which "
            "every client reads the same way"
        )  # fmt: skip
    host = text.lower()
    if host.endswith("."):
        raise _refuse(url, "has a host name that ends in a dot; remove the dot")
    if _ENDS_IN_A_NUMBER.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host)), "ip", port_text if colon else None
        except ValueError:
            raise _refuse(
                url, "has a host that clients read as an IP address written in a short or numeric form (127.1 is "
                "127.0.0.1); write it as four decimal numbers and list it exactly in connections.json \"hosts\""
            ) from None  # fmt: skip
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise _refuse(
            url, "has no valid host name (letters, digits and '-' in dot-separated labels, like api.github.com)"
        )
    return host, "name", port_text if colon else None


def _remove_dot_segments(path: str) -> str:
    """`/a/./b/../c` -> `/a/c` (RFC 3986 5.2.4), as curl, urllib3 and httpx do before sending."""
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", "..") and kept:
        kept.append("")
    return "/" + "/".join(kept) if path else ""


def check_url(url: str, overrides: Mapping[str, Iterable[str]] | None = None, *, as_given: bool = False) -> URL:
    """`url` parsed by parse_url, with the service it belongs to (None when none is known); URLRefusedError
    when no token may go to it at all (the URL rule: see the module's docstring).

    `overrides` maps service -> host patterns the user listed in connections.json; they beat the built-in
    table. Only they can license an IP address or a plain http:// loopback URL, and only by naming its host
    exactly (no wildcard). `as_given`: see parse_url.
    """
    target = parse_url(url, as_given=as_given)
    custom = [parse_pattern(t, s, "connections.json") for s, texts in (overrides or {}).items() for t in texts]
    path, port = target.path.rstrip("/").lower(), target.origin[2]
    tables: tuple[list[Pattern] | tuple[Pattern, ...], ...] = (custom, _BUILTIN_PATTERNS)
    if target.kind == "ip" or target.scheme == "http":
        if target.scheme == "http" and not target.loopback:
            https = "https" + target.url[len("http") :]
            raise _refuse(
                url, f"is plain http://, which would send the token unencrypted: use {https} (http:// is only for "
                'a loopback host listed in connections.json "hosts")'
            )  # fmt: skip
        exact = [p for p in custom if not p.wildcard and p.host == target.host and p.port in (None, port)]
        if not exact:
            what = "is an IP address" if target.kind == "ip" else f"is plain http:// to {target.host}"
            example = target.host if target.port is None else f"{target.host}:{target.port}"
            raise _refuse(
                url, f'{what}: a token goes there only when connections.json lists that host exactly, e.g. "hosts": '
                f'["{example}"]'
            )  # fmt: skip
        tables = (exact,)
    for patterns in tables:
        found = [p for p in patterns if p.matches(target.host, port, path)]
        if found:
            return replace(target, service=max(found, key=lambda p: p.specificity).service)
    return target


def service_for_url(url: str, overrides: Mapping[str, Iterable[str]] | None = None) -> str | None:
    """The service a URL belongs to, or None (also for a URL no token may go to; see check_url)."""
    try:
        return check_url(url, overrides).service
    except URLRefusedError:
        return None
