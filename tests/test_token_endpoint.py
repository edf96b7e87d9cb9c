"""Every answer of Scalekit's token endpoint (POST /oauth/token, the client login) becomes one of
our errors, with a fix that tells a wrong URL from wrong credentials from an outage. No SDK
exception class, and no traceback, ever reaches the user. Through the real SDK and the emulator.
"""

from __future__ import annotations

import pytest

from .test_cli import assert_one_clean_line

ANSWERS = [
    # (what /oauth/token answers, exit code, what the one line must say)
    (400, 6, "refused the login as malformed"),
    (401, 6, "rejected the client credentials"),
    (403, 6, "rejected the client credentials"),
    (404, 3, "has no Scalekit token endpoint"),
    (429, 7, "rate-limiting"),
    (500, 5, "could not log in right now"),
    (502, 5, "could not log in right now"),
    (503, 5, "could not log in right now"),
    (504, 5, "did not answer within"),
    ("not-json", 3, "not as a Scalekit environment does"),
    ("no-token", 3, "not as a Scalekit environment does"),
]
# 429 is retried with backoff until the default 10 s deadline runs short: about 7 s on average.
PARAMS = [pytest.param(*a, id=str(a[0]), marks=[pytest.mark.slow] if a[0] == 429 else []) for a in ANSWERS]


@pytest.mark.parametrize(("answer", "code", "says"), PARAMS)
def test_each_token_endpoint_answer_has_its_own_message_and_exit_code(skill, emulator, answer, code, says):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess")
    emulator.fail_token_endpoint(answer, count=-1)
    proc = skill.run("gmail")
    assert proc.returncode == code, proc.stderr
    assert says in proc.stderr
    assert_one_clean_line(proc.stderr)
    assert "Scalekit" in proc.stderr and "Exception" not in proc.stderr and "unexpected" not in proc.stderr
    assert proc.stdout == ""


def test_a_wrong_url_and_wrong_credentials_get_different_fixes(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.fail_token_endpoint(404)
    wrong_url = skill.run("gmail").stderr
    wrong_secret = skill.run("gmail", env={"SCALEKIT_CLIENT_SECRET": "not-the-secret"}).stderr
    assert "environment URL" in wrong_url and "SCALEKIT_CLIENT_SECRET" not in wrong_url
    assert "SCALEKIT_CLIENT_SECRET" in wrong_secret and "not-the-secret" not in wrong_secret


def test_fidelity_md_names_the_sdk_exception_each_token_endpoint_status_raises(emulator):
    """What FIDELITY.md says of /oauth/token, checked against the real SDK: each HTTP status raises
    the exception class named beside it (429 TooManyRequests, 500 InternalServer, 502 Unknown, 503
    ServiceUnavailable, 504 GatewayTimeout, ...)."""
    from scalekit.client import ScalekitClient

    from .helpers import ROOT

    row = next(line for line in (ROOT / "FIDELITY.md").read_text().splitlines() if line.startswith("| `/oauth/token`"))
    for status in (400, 401, 403, 404, 429, 500, 502, 503, 504):
        emulator.fail_token_endpoint(status, count=-1)
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is what is checked
            ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)
        emulator.clear_faults()
        assert f"{status} → `{type(caught.value).__name__}`" in row
