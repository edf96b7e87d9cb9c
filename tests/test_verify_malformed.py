"""Malformed input to custom user verification: a usage error, never "unexpected error".

`scalekit-auth verify ADDRESS` turns any address it cannot use into a usage error (exit 2, one
line).
"""

from __future__ import annotations

import io
import string
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scalekit_auth import cli
from scalekit_auth.errors import ExitCode, UsageError
from scalekit_auth.verify_server import auth_request_id_of

from .conftest import run_script

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
