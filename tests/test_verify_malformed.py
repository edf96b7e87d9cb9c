"""Malformed input to custom user verification: a usage error or an HTTP 4xx, never "unexpected error",
a dropped connection or a hang.

`scalekit-auth verify ADDRESS` turns any address it cannot use into a usage error (exit 2, one
line). The loopback verify page answers a POST whose Content-Length is missing, not a number,
negative, duplicated or too large with 400 (413 for too large) before reading any body.
"""

from __future__ import annotations

import io
import socket
import string
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scalekit_auth import cli
from scalekit_auth.errors import ExitCode, UsageError
from scalekit_auth.verify_server import PATH, LoopbackVerifier, auth_request_id_of

from .helpers import run_script

# -- verify ADDRESS -----------------------------------------------------------------------------

ID_CHARS = set(string.ascii_letters + string.digits + "-_=.")

odd_addresses = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda scheme, host, tail: f"{scheme}{host}{tail}",
        st.sampled_from(["http://", "https://", "", "//", "http:", "ftp://"]),
        st.sampled_from(["[::1", "[::1]", "[", "]", "[v1.x]", "[::1%25", "a:b:c", "h:99999", "h:-1", "@", "%"]),
        st.text(alphabet="/?&=#[]%:@auth_request_id", max_size=40),
    ),
)


@settings(max_examples=500, deadline=None)
@given(address=odd_addresses)
@example("http://[::1/?auth_request_id=abc")
@example("http://[::1]:99999/?auth_request_id=abc")
@example("https://h/?auth_request_id=%ff%fe")
@example("auth_request_id=\u0663\u0664")  # Arabic-Indic digits: alphanumeric, but not an id
@example("x?auth_request_id=" + "a" * 5000)
def test_any_address_gives_an_id_or_a_usage_error(address):
    try:
        found = auth_request_id_of(address)
    except UsageError as err:
        assert "\n" not in str(err) and "auth_request_id" in str(err)
    else:
        assert found and set(found) <= ID_CHARS and len(found) <= 1024, found


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(address=odd_addresses.filter(lambda a: not a.startswith("-") and "\x00" not in a))
@example("http://[::1/?auth_request_id=abc")
def test_verify_never_says_unexpected_error_for_an_address(skill, address):
    """In process, as the command line runs it: a malformed address is exit 2 before any network call."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["verify", address])
    # a well-formed id gets as far as the (missing) credentials: exit 3; anything else is a usage error
    assert code in (int(ExitCode.USAGE), int(ExitCode.CONFIGURATION)), (code, err.getvalue())
    assert "unexpected error" not in err.getvalue() and "Traceback" not in err.getvalue()


def test_a_broken_ipv6_address_is_a_usage_error_on_one_line(skill):
    done = run_script("scalekit-auth", "verify", "http://[::1/?auth_request_id=abc")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "unexpected error" not in done.stderr and "not a valid address" in done.stderr


# -- the loopback page ---------------------------------------------------------------------------


class _NoBroker:
    """The page refuses before any link lookup for these requests; anything else is a test failure."""

    def state_issued(self, state, url):  # pragma: no cover - must not be reached
        raise AssertionError("the page looked up a state for a malformed request")

    def verify_user(self, auth_request_id, identifier):  # pragma: no cover - must not be reached
        raise AssertionError("the page verified a malformed request")


@pytest.fixture
def page():
    with LoopbackVerifier(_NoBroker()) as verifier:
        yield verifier


def _post(page: LoopbackVerifier, length_headers: list[str], body: bytes = b"") -> bytes:
    """A raw POST from the page's own origin; everything the server sends before closing."""
    port = int(page.url.split(":")[2].split("/")[0])
    own = f"127.0.0.1:{port}"
    head = [f"POST {PATH} HTTP/1.1", f"Host: {own}", f"Origin: http://{own}", *length_headers, "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        conn.shutdown(socket.SHUT_WR)  # the body is all there is: a server waiting for more gets EOF
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


MALFORMED = {
    "not-a-number": (["Content-Length: abc"], 400),
    "negative": (["Content-Length: -5"], 400),
    "exponent": (["Content-Length: 1e3"], 400),
    "signed": (["Content-Length: +5"], 400),
    "hex": (["Content-Length: 0x10"], 400),
    "empty": (["Content-Length:"], 400),
    "zero": (["Content-Length: 0"], 400),
    "twice-same": (["Content-Length: 5", "Content-Length: 5"], 400),
    "twice-different": (["Content-Length: 5", "Content-Length: 7"], 400),
    "list": (["Content-Length: 5, 7"], 400),
    "missing": ([], 400),  # a form post always has one
    "chunked": (["Transfer-Encoding: chunked"], 400),
    "short-body": (["Content-Length: 100"], 400),  # announced 100 bytes, sent 25, then end of stream
    "huge": (["Content-Length: 99999999999999999999999999999"], 413),
    "over-limit": (["Content-Length: 8193"], 413),
    "over-limit-zero-padded": (["Content-Length: " + "0" * 40 + "8193"], 413),
}


@pytest.mark.parametrize(("headers", "status"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_the_verify_page_answers_a_malformed_content_length(page, headers, status):
    received = _post(page, headers, b"state=x&auth_request_id=y")
    assert received.startswith(f"HTTP/1.0 {status} ".encode()), received[:200]
    assert not page.verified.is_set()
