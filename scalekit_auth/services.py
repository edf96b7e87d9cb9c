"""Which service an API URL belongs to: `https://gmail.googleapis.com/...` -> `gmail`.

Patterns are `host[:port][/path-prefix]`; a host may start with `*.` to match any
subdomain. Hosts compare case-insensitively, paths by whole segments (`/api` matches
`/api/x`, not `/apix`). The most specific pattern wins (exact host over wildcard, then the
longest pattern). Patterns a user lists under `"hosts"` in connections.json beat the
built-in table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from .display import printable
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
    """`api.example.com`, `example.com/api`, `localhost:8080/v1` or `*.example.com` -> Pattern."""
    raw = text.strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    hostport, slash, path = raw.partition("/")
    host, colon, port_text = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if not colon:
        host = hostport
    host = host.lower().rstrip(".")
    if not host or " " in host or (host.startswith("*") and not host.startswith("*.")):
        raise ValueError(f"{text!r} is not a host pattern such as 'api.example.com' or '*.example.com/api'")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r} has an invalid port")
        port = int(port_text)
    path = ("/" + path).rstrip("/").lower() if slash else ""
    return Pattern(host, port, path, service, source)


_BUILTIN_PATTERNS = tuple(parse_pattern(p, s) for p, s in BUILTIN)


#: The port a URL without one goes to.
DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class URL:
    """A URL as a token may go to it: `url` is what the client is handed, the rest is what it connects to."""

    url: str
    scheme: str
    host: str
    port: int | None  # as written; None: the scheme's default
    path: str
    service: str | None = None  # filled in by check_url

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port) with the default port filled in: what must match for a token to go along."""
        return self.scheme, self.host, self.port or DEFAULT_PORTS[self.scheme]


def _refuse(url: str, why: str) -> URLRefusedError:
    return URLRefusedError(f"{printable(url, False)!r}: {why}")


def parse_url(url: str) -> URL:
    """The one parse of a URL a token may be sent to; URLRefusedError for anything else."""
    text = url.strip() if isinstance(url, str) else ""
    scheme = text.split("://", 1)[0].lower() if "://" in text else "https"
    if scheme not in DEFAULT_PORTS:
        raise URLRefusedError(
            f"{printable(scheme, False)}:// URLs carry no OAuth token: only http:// and https:// URLs belong to a "
            "service."
        )
    try:
        parts = urlsplit(text if "://" in text else "https://" + text)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError as err:
        raise _refuse(text, f"not a URL ({err})") from None
    if not host:
        raise _refuse(text, "no host name")
    return URL(text, scheme, host, port, parts.path)


def check_url(url: str, overrides: Mapping[str, Iterable[str]] | None = None) -> URL:
    """`url` parsed by parse_url, with the service it belongs to (None when none is known).

    `overrides` maps service -> host patterns the user listed in connections.json; they beat
    the built-in table. URLRefusedError when no token may go to the URL at all.
    """
    target = parse_url(url)
    path = target.path.rstrip("/").lower()
    custom = [parse_pattern(t, s, "connections.json") for s, texts in (overrides or {}).items() for t in texts]
    for patterns in (custom, _BUILTIN_PATTERNS):
        found = [p for p in patterns if p.matches(target.host, target.port, path)]
        if found:
            return replace(target, service=max(found, key=lambda p: p.specificity).service)
    return target


def service_for_url(url: str, overrides: Mapping[str, Iterable[str]] | None = None) -> str | None:
    """The service a URL belongs to, or None (also for a URL no token may go to; see check_url)."""
    try:
        return check_url(url, overrides).service
    except URLRefusedError:
        return None
