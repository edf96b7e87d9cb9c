"""What may go to Scalekit's proxy: a plain absolute path, a known method, harmless headers.

Pure checks, run before the SDK is called (SDK 2.21 removes dot segments itself, so a path
such as /../api/v1/connected_accounts/auth would leave /proxy with the environment's bearer)."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalekit_auth.errors import ExitCode, UsageError
from scalekit_auth.proxy_guard import check_headers, check_method, check_path, check_query

GOOD_PATHS = [
    "/",
    "/gmail/v1/users/me/profile",
    "/api/chat.postMessage",
    "/repos/octo/hello-world/issues",
    "/v1.0/me/messages",
    "/files/.hidden",
    "/files/x.",
    "/files/...",
    "/drive/v3/files/My%20File",
    "/100%25",
    "/users/alice@example.com",
    "/a:b/c;d=1",
    "/ünïcode/名前",
]

BAD_PATHS = [
    "",
    "gmail/v1/users",  # relative
    "https://evil.example/x",  # absolute URL
    "http://127.0.0.1/x",
    "//evil.example/x",  # authority
    "/a//b",
    "/..",
    "/../api/v1/connected_accounts/auth",
    "/a/../b",
    "/a/./b",
    "/a/.",
    "/a/..;/b",  # Tomcat-style path parameter
    "/a/%2e%2e/b",
    "/a/%2E%2e/b",
    "/a/.%2e/b",
    "/a%2fb",
    "/a%2F..%2Fb",
    "/a%5cb",
    "/a%5C..",
    "/a/%252e%252e/b",  # double-encoded
    "/a/%25252e/b",
    "/a\\..\\b",
    "/a\\b",
    "/x?y=1",
    "/x#frag",
    "/x\r\nHost: evil",
    "/x\x00",
    "/x\ty",
    "/x\x7f",
    "/x\u200by",  # zero-width space
    "/x\u202ey",  # right-to-left override
    "/x/%0d%0aSet-Cookie:a",
    "/x/%00",
    "/a/%c0%ae%c0%ae/b",  # overlong UTF-8 dots
    "/a/%ff",
    "/a/\uff0e\uff0e/b",  # full-width dots (NFKC: ..)
    "/a/%ef%bc%8e%ef%bc%8e/b",  # the same, encoded
    "/a/\u2025/b",  # two dot leader
    "/bad%zz",
    "/trailing%",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_plain_absolute_paths_pass_unchanged(path):
    assert check_path(path) == path


@pytest.mark.parametrize("path", BAD_PATHS)
def test_paths_that_could_leave_the_proxy_are_refused(path):
    with pytest.raises(UsageError) as caught:
        check_path(path)
    assert caught.value.exit_code == ExitCode.USAGE == 2


def test_a_refusal_does_not_echo_the_path():
    with pytest.raises(UsageError) as caught:
        check_path("/files/../../api?access_token=SECRET")
    assert "SECRET" not in str(caught.value) and "files" not in str(caught.value)


@pytest.mark.parametrize("path", [None, 5, b"/x", ["/x"]])
def test_a_path_must_be_text(path):
    with pytest.raises(UsageError):
        check_path(path)


def _reaches(path: str) -> str:
    """Where a server that decodes the path (as many times as it likes) and resolves dot segments,
    treating backslashes as slashes, would end up."""
    for _ in range(4):
        path = unquote(path, errors="replace")
    path = unicodedata.normalize("NFKC", path).replace("\\", "/")
    path = re.sub(r";[^/]*", "", path)
    return posixpath.normpath("/proxy" + path)


_PIECES = st.one_of(
    st.sampled_from(
        ["/", ".", "..", "%2e", "%2E", "%2f", "%5c", "%25", "%252e", "%25252E", "%c0%ae", "\uff0e", "\u2025", "\uff0f"]
        + ["\\", "?", "#", ";", "%", "a", "b", " ", "%20", "\t"]
    ),
    st.text(max_size=3),
)
#: Mostly well-formed paths (/seg/seg...), whose segments are made of the pieces above; and raw junk.
_PATHS = st.one_of(
    st.lists(st.lists(_PIECES, min_size=1, max_size=3).map("".join), min_size=1, max_size=5).map(
        lambda segments: "/" + "/".join(segments)
    ),
    st.lists(_PIECES, max_size=10).map("".join),
)


@settings(max_examples=3000, deadline=None)
@given(_PATHS)
def test_whatever_passes_stays_under_the_proxy_and_is_plain(path):
    try:
        checked = check_path(path)
    except UsageError:
        return
    assert checked == path
    assert path.startswith("/") and not path.startswith("//")
    assert not any(c in path for c in "?#\\")
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in path)
    reached = _reaches(path)
    assert reached == "/proxy" or reached.startswith("/proxy/"), (path, reached)
    segments = path.split("/")
    assert ".." not in segments and "." not in segments


@pytest.mark.parametrize("method", ["get", "GET", "Post", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_known_methods_pass_in_upper_case(method):
    assert check_method(method) == method.upper()


@pytest.mark.parametrize("method", ["", "CONNECT", "TRACE", "GET /x HTTP/1.1\r\n", "G ET", None, "PROPFIND"])
def test_other_methods_are_refused(method):
    with pytest.raises(UsageError):
        check_method(method)


def test_harmless_headers_pass():
    headers = {"Accept": "application/json", "X-Trace": "a b\tc", "Content-Type": "application/xml", "If-Match": '"x"'}
    assert check_headers(headers) == headers
    assert check_headers(None) == {}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "1\r\nX-Injected: 2"},
        {"X-A": "1\nX-Injected: 2"},
        {"X-A": "1\r"},
        {"X-A": "a\x00b"},
        {"X-A": "a\x1bb"},
        {"X-A\r\nX-B": "1"},
        {"X A": "1"},
        {"": "1"},
        {"X-A:": "1"},
        {"X-A": "\u2028"},
        {"X-A": "名前"},  # not Latin-1: requests could not send it
        {"X-A": 5},
        {5: "x"},
    ],
)
def test_header_injection_and_malformed_headers_are_refused(headers):
    with pytest.raises(UsageError) as caught:
        check_headers(headers)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "authorization",
        "connection_name",
        "Connection_name",
        "connection-name",
        "Identifier",
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "X-Api-Version",
        "x-sdk-version",
        "Proxy-Authorization",
    ],
)
def test_headers_that_would_change_whose_account_or_the_framing_are_refused(name):
    """The SDK merges caller headers over its own, so `identifier: bob` would act as bob."""
    with pytest.raises(UsageError):
        check_headers({name: "x"})


def test_headers_must_be_a_mapping():
    with pytest.raises(UsageError):
        check_headers([("X-A", "1")])


def test_query_values_are_plain_values():
    assert check_query({"q": "is:unread", "n": 5, "ids": ["a", "b"]}) == {"q": "is:unread", "n": 5, "ids": ["a", "b"]}
    assert check_query(None) == {}
    for bad in ({"q": {"nested": 1}}, {5: "x"}, [("q", "x")], {"q": None}):
        with pytest.raises(UsageError):
            check_query(bad)
