"""The URL rule: a token goes only to an https URL (plain http only to a loopback host the user
lists), whose host is a DNS name (IP literals only when the user lists them exactly; never a
zone, userinfo, backslash, control character, percent-escape or trailing dot), parsed the way the
client that sends it parses it. One rule, services.check_url, for every way a token leaves:
`scalekit-auth curl` (curl is handed the URL the rule checked), ScalekitAuth/session(),
httpx_auth, service_for_url and get_token_for_url.

The differential tests parse generated URLs with the project and with the clients' own parsers:
libcurl's URL API (loaded from the system's libcurl with ctypes), urllib3 (requests) and httpx.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import json
import os
import stat
import string

import httpx
import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url as urllib3_parse_url

from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import URLRefusedError
from scalekit_auth.http_auth import ScalekitAuth, httpx_auth, origin
from scalekit_auth.services import BUILTIN, DEFAULT_PORTS, check_url, service_for_url

from .helpers import run_script

run_cli = functools.partial(run_script, "scalekit-auth")

# -- libcurl's own URL parser -------------------------------------------------------------------
# Values from include/curl/urlapi.h of curl 7.88.1 (Debian bookworm's libcurl4-openssl-dev): the
# CURLUPart enum counts URL, SCHEME, USER, PASSWORD, OPTIONS, HOST, PORT, PATH, QUERY, FRAGMENT,
# ZONEID from 0; the flags are bits.
CURLUPART_URL, CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT, CURLUPART_ZONEID = 0, 1, 5, 6, 10
CURLU_DEFAULT_PORT = 1 << 0
CURLU_NON_SUPPORT_SCHEME = 1 << 3
CURLU_GUESS_SCHEME = 1 << 9
#: The flags libcurl itself parses CURLOPT_URL with (lib/url.c, parseurlandfillconn, curl 7.88.1):
#: what the curl tool does with the URL on its command line.
TRANSFER_FLAGS = CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME


@functools.cache
def libcurl() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libcurl.so.4")
    except OSError as err:
        pytest.fail(
            f"libcurl.so.4 cannot be loaded ({err}): the URL differential test parses URLs with the system's "
            "libcurl, which comes with curl (scripts/system-deps installs it: apt-get install curl libcurl4)."
        )
    lib.curl_url.restype = ctypes.c_void_p
    lib.curl_url.argtypes = []
    lib.curl_url_cleanup.restype = None
    lib.curl_url_cleanup.argtypes = [ctypes.c_void_p]
    lib.curl_url_set.restype = ctypes.c_int
    lib.curl_url_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    lib.curl_url_get.restype = ctypes.c_int
    lib.curl_url_get.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
    lib.curl_free.restype = None
    lib.curl_free.argtypes = [ctypes.c_void_p]
    return lib


def curl_parts(url: str) -> dict[str, str | None] | None:
    """scheme, host, port (default filled in) and zone as libcurl sees `url`; None when it refuses it."""
    lib = libcurl()
    handle = lib.curl_url()
    assert handle, "curl_url() returned NULL"
    try:
        if lib.curl_url_set(handle, CURLUPART_URL, url.encode("utf-8", "surrogateescape"), TRANSFER_FLAGS) != 0:
            return None
        found: dict[str, str | None] = {}
        for name, part, flags in (
            ("scheme", CURLUPART_SCHEME, 0),
            ("host", CURLUPART_HOST, 0),
            ("port", CURLUPART_PORT, CURLU_DEFAULT_PORT),
            ("zone", CURLUPART_ZONEID, 0),
        ):
            out = ctypes.c_void_p()
            if lib.curl_url_get(handle, part, ctypes.byref(out), flags) != 0 or not out.value:
                found[name] = None
                continue
            found[name] = ctypes.string_at(out.value).decode("utf-8", "surrogateescape")
            lib.curl_free(out)
        return found
    finally:
        lib.curl_url_cleanup(handle)


@pytest.mark.system
def test_the_libcurl_binding_reads_parts_as_curl_does():
    """The enum values above, checked against URLs whose parts are known."""
    assert curl_parts("https://Example.COM:8443/x?y#z") == {
        "scheme": "https", "host": "Example.COM", "port": "8443", "zone": None,
    }  # fmt: skip
    assert curl_parts("example.com/x") == {"scheme": "http", "host": "example.com", "port": "80", "zone": None}
    assert curl_parts("http://[fe80::1%25eth0]/") == {
        "scheme": "http",
        "host": "[fe80::1]",
        "port": "80",
        "zone": "eth0",
    }
    assert curl_parts("http://[::1") is None


# -- the URLs: API URLs, wildcard hosts, and every trick the issue found ---------------------------

#: The user's connections.json "hosts": a wildcard, loopback hosts listed exactly (IPv4, IPv6, name).
OVERRIDES = {"crm": ["*.corp.example/api", "127.0.0.1:8080", "[::1]:9000", "localhost", "api.github.com/crm"]}

label = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=10)
zone = st.text(alphabet=string.ascii_letters + string.digits + ".-_%", min_size=0, max_size=16)
builtin_hosts = sorted({p.split("/", 1)[0].replace("*", "acme") for p, _ in BUILTIN})
tricky_hosts = [
    "localhost", "LOCALHOST", "127.0.0.1", "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "127.0.0.1.",
    "[::1]", "[::ffff:127.0.0.1]", "[0:0::1]", "[::1%25.atlassian.net]", "[::ffff:127.0.0.1%25.atlassian.net]",
    "[::1%.atlassian.net]", "[fe80::1%25eth0]", "[::1]x", "[]", "[::1", "", "api.github.com.", "api%2egithub.com",
    "api.github.com%00.evil", "evil.com\\@api.github.com", "api.github.com\\.evil.com", "\u0430pi.github.com",
    "api.github.com\u3002", "api..github.com", ".api.github.com", "-a.atlassian.net", "a_b.atlassian.net",
    "x.corp.example", "1.2.3.4.atlassian.net", "acme.atlassian.net.evil.com", "api.github.com:443@evil.com",
    "acme.atlassian.net\t", "acme.atlassian.net%20", "acme.zendesk.com#.evil.com", "api.github.com?.evil",
]  # fmt: skip
hosts = st.one_of(
    st.sampled_from(builtin_hosts + tricky_hosts),
    st.builds(
        lambda labels, suffix: ".".join(labels) + suffix,
        st.lists(label, min_size=1, max_size=3),
        st.sampled_from([".atlassian.net", ".salesforce.com", ".zendesk.com", ".pipedrive.com", ".corp.example", ""]),
    ),
    st.builds(lambda a, z: f"[{a}%25{z}]", st.ip_addresses(v=6).map(str), zone),
    st.builds(lambda a, z: f"[{a}%{z}]", st.ip_addresses(v=6).map(str), zone),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
schemes = st.sampled_from(
    ["https://"] * 4 + ["http://", "HTTPS://", "HtTp://", "", "", "//", "ftp://", "file://", "ws://", "https:/",
     "https:", "https:\\\\", "https:///", " https://", "javascript:", "gopher://", "https+unix://"]
)  # fmt: skip
userinfo = st.sampled_from(["", "", "", "", "user@", "user:pw@", "api.github.com@", ":@", "a%40b@", "x@y@"])
ports = st.one_of(
    st.sampled_from(["", "", "", ":443", ":80", ":8080", ":9000", ":", ":0", ":65536", ":99999", ":0443", ":+443",
                     ": 443", ":443:80", ":1e3", ":0x50"]),
    st.integers(1, 65535).map(lambda p: f":{p}"),
)  # fmt: skip
urlish = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%\\ \t\n\x00\x7f\u0085\u202e\u00e9{}|^`\""
paths = st.one_of(
    st.sampled_from(["", "/", "/rest/api/3/issue", "/api/v2/tickets.json", "/user", "/gmail/v1/users/me", "/api/x",
                     "/crm/deals", "/api/../x", "/./api/x", "/%2e%2e/api", "\\api", "/a b", "/a\tb", "/@evil.com",
                     "/services/data/v60.0", "/wiki/rest", "/api/v1/deals"]),
    st.text(alphabet=urlish, max_size=12).map(lambda s: "/" + s),
)  # fmt: skip
tails = st.sampled_from(
    ["", "", "", "?a=b", "#frag", "?x=@evil.com/", "#@evil.com", "?%0d%0a", "#\\@evil", "?q=caf\u00e9"]
)
composed = st.builds(lambda *parts: "".join(parts), schemes, userinfo, hosts, ports, paths, tails)
anything = st.one_of(
    st.text(alphabet=urlish, max_size=40),
    st.builds(lambda s, rest: s + rest, schemes, st.text(alphabet=urlish, max_size=40)),
)


def _api_url(pattern: str, tenant: str, scheme: str, user: str, port: str, more: str, tail: str) -> str:
    host, _, prefix = pattern.partition("/")
    return f"{scheme}{user}{host.replace('*', tenant)}{port}{'/' + prefix if prefix else ''}{more}{tail}"


#: URLs of every pattern (built in and the user's), mostly as an API client writes them.
api_urls = st.builds(
    _api_url,
    st.sampled_from([p for p, _ in BUILTIN] + OVERRIDES["crm"]),
    st.lists(label.filter(lambda s: s[0] != "-" and s[-1] != "-"), min_size=1, max_size=2).map(".".join),
    st.sampled_from(["https://"] * 6 + ["", "HTTPS://", "http://"]),
    st.sampled_from([""] * 9 + ["user@", "api.github.com@"]),
    st.sampled_from([""] * 6 + [":443", ":8080", ":9000", ":"]),
    st.sampled_from(["", "/", "/v1/items", "/x/../y", "/./a", "/%41", "/a?b=c"]),
    tails,
)
#: The same URLs with a little junk spliced in anywhere: the characters parsers disagree about.
spliced = st.builds(
    lambda url, at, junk: url[: at % (len(url) + 1)] + junk + url[at % (len(url) + 1) :],
    api_urls,
    st.integers(0, 120),
    st.text(alphabet=urlish, min_size=1, max_size=3),
)
urls = st.one_of(api_urls, spliced, composed, anything)

#: URLs the issue reported, and their relatives: each must be refused (or agree with curl).
REPORTED = [
    "http://[::ffff:127.0.0.1%25.atlassian.net]:18080/rest/api/3/issue",
    "http://[::1%25.atlassian.net]:18080/rest/api/3/issue",
    "https://[::ffff:127.0.0.1%25x.salesforce.com]/services/data",
    "https://[::1%25x.zendesk.com]/api/v2/tickets",
    "https://[::1%25x.pipedrive.com]/api/v1/deals",
    "https://[::1%25x.corp.example]/api/x",
    "api.github.com/user",
    "http://api.github.com/user",
    "https://api.github.com@evil.example/user",
    "https://evil.example\\@api.github.com/user",
]


def _accepted(url: str, as_given: bool = False):
    """The project's verdict: the URL it would hand a client with a token attached, or None."""
    try:
        target = check_url(url, OVERRIDES, as_given=as_given)
    except URLRefusedError:
        return None
    return target if target.service is not None else None


@settings(max_examples=1500, deadline=None)
@given(url=urls)
@example(url=REPORTED[0])
@example(url=REPORTED[1])
@example(url=REPORTED[2])
@example(url=REPORTED[3])
@example(url=REPORTED[4])
@example(url=REPORTED[5])
@example(url=REPORTED[6])
@example(url=REPORTED[7])
@example(url=REPORTED[8])
@example(url=REPORTED[9])
@pytest.mark.system
def test_curl_connects_where_the_project_checked(url):
    """Whenever the project would attach a token, libcurl, parsing the URL the project hands to curl
    the way curl does, agrees on scheme, host and port, and sees no IPv6 zone."""
    target = _accepted(url)
    if target is None:
        return
    parts = curl_parts(target.url)
    assert parts is not None, f"curl refuses {target.url!r}, which the project accepted from {url!r}"
    seen = (parts["scheme"], (parts["host"] or "").lower(), int(parts["port"] or 0))
    assert seen == target.origin, f"{url!r} -> {target.url!r}: curl connects to {seen}, the project checked {target}"
    assert parts["zone"] is None, f"{target.url!r}: curl sees the IPv6 zone {parts['zone']!r}"
    assert target.scheme == "https" or target.host in ("localhost", "127.0.0.1", "[::1]"), target


@settings(max_examples=800, deadline=None)
@given(url=urls)
@example(url=REPORTED[0])
@example(url=REPORTED[8])
@example(url=REPORTED[9])
def test_requests_and_httpx_connect_where_the_project_checked(url):
    """ScalekitAuth checks the URL requests prepared, httpx_auth the one httpx built: whenever that passes,
    the client connects to the scheme, host and port the project checked."""
    try:
        prepared = requests.Request("GET", url).prepare().url
    except Exception:  # noqa: BLE001 - requests refuses the URL: nothing is sent
        prepared = None
    target = _accepted(prepared, as_given=True) if prepared else None
    if target is not None:
        u = urllib3_parse_url(prepared)  # what requests' adapter hands urllib3's pool manager
        seen = (u.scheme, _host_key(u.host), u.port or DEFAULT_PORTS.get(u.scheme or ""))
        assert seen == (target.scheme, _host_key(target.host), target.origin[2]), (url, prepared, target)
    try:
        built = httpx.Request("GET", url).url
    except Exception:  # noqa: BLE001 - httpx refuses the URL: nothing is sent
        return
    target = _accepted(str(built), as_given=True)
    if target is not None:
        seen = (built.scheme, _host_key(built.raw_host.decode("ascii")), built.port or DEFAULT_PORTS.get(built.scheme))
        assert seen == (target.scheme, _host_key(target.host), target.origin[2]), (url, str(built), target)


def _host_key(host: str | None) -> str:
    """A host as a connection sees it: lower case, an IP address in one canonical form, no brackets."""
    bare = (host or "").lower().strip("[]")
    try:
        return ipaddress.ip_address(bare).compressed
    except ValueError:
        return bare


@pytest.mark.system
@pytest.mark.parametrize(("pattern", "service"), BUILTIN)
def test_every_built_in_host_passes_the_rule_and_curl_agrees(pattern, service):
    """The differential is not vacuous: an ordinary URL of every built-in pattern gets a token, and curl
    is handed an absolute https URL it reads the same way."""
    host, _, path = pattern.partition("/")
    url = f"{host.replace('*', 'acme')}{f'/{path}' if path else ''}/v1/items?q=1"
    target = check_url(url)
    assert target.service == service
    assert target.url == f"https://{url}"
    parts = curl_parts(target.url)
    assert parts is not None and (parts["scheme"], parts["host"], int(parts["port"] or 0)) == target.origin


# -- the rule, case by case: what is refused says why and what to do ------------------------------


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://[::ffff:127.0.0.1%25.atlassian.net]:18080/rest/api/3/issue", "zone"),
        ("https://[::1%25.atlassian.net]/rest/api/3/issue", "zone"),
        ("https://[::1%.atlassian.net]/rest/api/3/issue", "zone"),
        ("https://[fe80::1%25eth0]/api", "zone"),
        ("https://[::ffff:127.0.0.1%25x.salesforce.com]/services", "zone"),
        ("https://[::1%25x.zendesk.com]/api/v2", "zone"),
        ("https://[::1%25x.pipedrive.com]/api/v1", "zone"),
        ("http://api.github.com/user", "https://api.github.com/user"),
        ("HTTP://gmail.googleapis.com/gmail/v1", "https://"),
        ("https://api.github.com@evil.example/user", "user name"),
        ("https://user:pw@api.github.com/user", "user name"),
        ("https://evil.example\\@api.github.com/user", "backslash"),
        ("https://api.github.com\\.evil.example/user", "backslash"),
        ("https://api.github.com /user", "space"),
        ("https://api.github.com/us\ter", "control"),
        ("https://api.github.com/user\x00", "control"),
        ("https://api.github.com/user\u0085", "control"),
        ("https://api%2egithub.com/user", "percent"),
        ("https://api.github.com./user", "dot"),
        ("https://api..github.com/user", "host name"),
        ("https://\u0430pi.github.com/user", "xn--"),
        ("https://127.0.0.1/rest", "IP address"),
        ("https://127.1/user", "IP address"),
        ("https://0x7f.0.0.1/user", "IP address"),
        ("https://2130706433/user", "IP address"),
        ("https://[::1]/user", "IP address"),
        ("https://1.2.3.4.atlassian.net.5/rest/api", "IP address"),
        ("ftp://api.github.com/user", "https://"),
        ("https:/api.github.com/user", "//"),
        ("//api.github.com/user", "scheme"),
        ("https://api.github.com:/user", "port"),
        ("https://api.github.com:0/user", "port"),
        ("https://api.github.com:99999/user", "port"),
        ("https://api.github.com:+443/user", "port"),
        ("", "No URL"),
    ],
)
def test_a_refused_url_says_what_is_wrong_in_one_line(url, phrase):
    with pytest.raises(URLRefusedError) as caught:
        check_url(url, OVERRIDES)
    message = str(caught.value)
    assert phrase in message and "\n" not in message and "\x00" not in message, message
    assert service_for_url(url, OVERRIDES) is None


@pytest.mark.parametrize(
    ("url", "service", "sent"),
    [
        ("api.github.com/user", "github", "https://api.github.com/user"),
        ("HTTPS://API.GitHub.com:443/user?x=1#frag", "github", "https://api.github.com:443/user?x=1"),
        ("https://acme.atlassian.net/rest/api/3/../3/issue", "jira", "https://acme.atlassian.net/rest/api/3/issue"),
        (
            "https://www.googleapis.com/gmail/../drive/v3/files",
            "google-drive",
            "https://www.googleapis.com/drive/v3/files",
        ),
        ("https://x.corp.example/api/deals", "crm", "https://x.corp.example/api/deals"),
        ("http://127.0.0.1:8080/v1", "crm", "http://127.0.0.1:8080/v1"),
        ("http://[::1]:9000/v1", "crm", "http://[::1]:9000/v1"),
        ("http://[0:0::1]:9000/v1", "crm", "http://[::1]:9000/v1"),
        ("http://localhost/v1", "crm", "http://localhost/v1"),
        ("http://LOCALHOST:3000/v1", "crm", "http://localhost:3000/v1"),
        ("https://api.github.com/crm/x", "crm", "https://api.github.com/crm/x"),
        (
            "https://gmail.googleapis.com/gmail/v1?q=caf\u00e9",
            "gmail",
            "https://gmail.googleapis.com/gmail/v1?q=caf%C3%A9",
        ),
    ],
)
def test_accepted_urls_are_handed_on_absolute_and_normalised(url, service, sent):
    target = check_url(url, OVERRIDES)
    assert (target.service, target.url) == (service, sent)


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://127.0.0.1:9090/v1", "IP address"),  # listed with another port
        ("http://127.0.0.2:8080/v1", "IP address"),  # not listed
        ("http://x.corp.example/api/deals", "https://"),  # a wildcard licenses https only
        ("https://[::1]:9001/v1", "IP address"),
        ("http://localhost.corp.example/api", "https://"),
    ],
)
def test_ip_addresses_and_plain_http_need_an_exact_listing(url, phrase):
    with pytest.raises(URLRefusedError, match=phrase):
        check_url(url, OVERRIDES)


def test_plain_http_is_for_loopback_hosts_only_even_when_listed():
    with pytest.raises(URLRefusedError, match="https://crm.example.com/v1"):
        check_url("http://crm.example.com/v1", {"crm": ["crm.example.com"]})
    with pytest.raises(URLRefusedError, match="IP address"):
        check_url("https://10.0.0.5/v1", {"crm": ["*.example.com"]})
    assert check_url("https://10.0.0.5/v1", {"crm": ["10.0.0.5"]}).service == "crm"


@pytest.mark.parametrize("listed", ["[::1]", "::1", "[0:0::1]:9000", "http://[::1]:9000/v1"])
def test_a_listed_ipv6_address_is_read_in_any_spelling(listed):
    assert check_url("http://[::1]:9000/v1/x", {"crm": [listed]}).service == "crm"


def test_origin_is_the_rules_parse():
    assert origin("https://API.github.com/x") == ("https", "api.github.com", 443)
    assert origin("http://127.0.0.1:8080/x") == ("http", "127.0.0.1", 8080)
    assert origin("http://[::1%25.atlassian.net]:80/rest/api") is None
    assert origin("https://api.github.com@evil.example/") is None


# -- requests and httpx: the rule holds with a service named, too ---------------------------------


@pytest.fixture
def broker(api):
    b = TokenBroker()
    yield b
    b.close()


@pytest.mark.parametrize(
    "url", ["http://gmail.googleapis.com/gmail/v1/users/me/profile", "https://127.0.0.1:9/gmail/x", "https://[::1]/x"]
)
@pytest.mark.parametrize("service", ["gmail", None])
def test_requests_never_attaches_a_token_to_a_refused_url(api, broker, emulator, url, service):
    with pytest.raises(URLRefusedError):
        requests.Request("GET", url, auth=ScalekitAuth(service, broker=broker)).prepare()
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == 0


@pytest.mark.parametrize("url", ["http://gmail.googleapis.com/gmail/v1/users/me/profile", "https://127.0.0.1:9/x"])
def test_httpx_never_attaches_a_token_to_a_refused_url(api, broker, emulator, url):
    sent = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    with httpx.Client(auth=httpx_auth("gmail", broker=broker), transport=transport) as client:
        with pytest.raises(URLRefusedError):
            client.get(url)
    assert sent == []
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == 0


@pytest.mark.parametrize(
    "url", ["http://gmail.googleapis.com/gmail/v1/users/me/profile", "gmail.googleapis.com/gmail/v1/users/me/profile"]
)
def test_get_token_for_url_refuses_what_its_caller_would_send_in_clear_or_misread(api, emulator, url):
    """The caller's own client sends the URL as given: plain http, or no scheme (curl would guess http)."""
    from scalekit_helper import get_token_for_url

    with pytest.raises(URLRefusedError, match="https://"):
        get_token_for_url(url)
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == 0
    assert service_for_url(url.removeprefix("http://")) == "gmail"  # naming the service is not sending a token


# -- scalekit-auth curl, end to end ----------------------------------------------------------------

WILDCARD_ZONES = [
    ("jira", "http://[::ffff:127.0.0.1%25.atlassian.net]:{port}/rest/api/3/issue"),
    ("jira", "http://[::1%25.atlassian.net]:{port}/rest/api/3/issue"),
    ("salesforce", "http://[::ffff:127.0.0.1%25x.salesforce.com]:{port}/services/data"),
    ("zendesk", "http://[::ffff:127.0.0.1%25x.zendesk.com]:{port}/api/v2/tickets.json"),
    ("pipedrive", "http://[::ffff:127.0.0.1%25x.pipedrive.com]:{port}/api/v1/deals"),
    ("crm", "http://[::ffff:127.0.0.1%25x.corp.example]:{port}/api/deals"),
]


def _configure(skill, services: list[str]) -> None:
    """Every service on the emulator's gmail_u3134a account (it has token-1); crm owns *.corp.example/api."""
    entries = json.loads(skill.connections_file.read_text())
    for service in services:
        entries[service] = {"connection_name": "gmail_u3134a", "identifier": "mess"}
    entries.setdefault("crm", {"connection_name": "gmail_u3134a", "identifier": "mess"})["hosts"] = [
        "*.corp.example/api"
    ]
    skill.connections_file.write_text(json.dumps(entries))


@pytest.mark.system
@pytest.mark.parametrize(("service", "template"), WILDCARD_ZONES)
def test_curl_never_sends_a_token_to_an_ipv6_zone_dressed_as_a_host(skill, api, emulator, service, template):
    _configure(skill, [service])
    url = template.format(port=api.url.rsplit(":", 1)[1])
    proc = run_cli("curl", url, "-s", "-m", "20")
    assert [hit["auth"] for hit in api.seen] == [], "the token reached 127.0.0.1"
    assert proc.returncode == 3, proc
    assert "zone" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == 0
    which = run_cli("which", url)
    assert which.returncode == 3 and which.stdout == "" and "zone" in which.stderr, which


@pytest.fixture
def fake_curl(tmp_path):
    """A curl first on PATH that records its arguments (and the header it was handed) and exits 0."""
    fake = tmp_path / "bin" / "curl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{fake.parent}:{os.environ['PATH']}"}, tmp_path / "argv"


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("api.github.com/user", "https://api.github.com/user"),
        ("API.GITHUB.COM/user", "https://api.github.com/user"),
        ("https://api.github.com/user/../user#x", "https://api.github.com/user"),
    ],
)
def test_curl_is_handed_the_absolute_https_url_the_project_matched(skill, api, fake_curl, url, sent):
    _configure(skill, ["github"])
    env, argv = fake_curl
    proc = run_cli("curl", url, "-s", env=env)
    assert proc.returncode == 0, proc.stderr
    assert argv.read_text().splitlines()[-1] == sent


@pytest.mark.parametrize(
    "url",
    ["http://api.github.com/user", "http://api.github.com:443/user", "HTTP://api.github.com/user",
     "https://api.github.com@127.0.0.1/user", "https://127.0.0.1\\@api.github.com/user"],
)  # fmt: skip
def test_curl_refuses_cleartext_and_userinfo_before_a_token_exists(skill, api, emulator, fake_curl, url):
    _configure(skill, ["github"])
    env, argv = fake_curl
    proc = run_cli("curl", url, "-s", env=env)
    assert proc.returncode == 3, proc
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not argv.exists(), "curl ran"
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == 0
