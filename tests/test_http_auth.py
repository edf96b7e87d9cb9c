"""Tokens in real HTTP requests: requests/httpx auth, 401 recovery, session(), curl, which.

A small local API stand-in (127.0.0.1) accepts only the account's *current* token, as a
real provider does after Scalekit rotates it.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import stat
from pathlib import Path

import httpx
import pytest
import requests

from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import ConfigurationError
from scalekit_auth.http_auth import ScalekitAuth, httpx_auth

from .helpers import ROOT, StandIn, run_script


@pytest.fixture
def broker(api):
    b = TokenBroker()
    yield b
    b.close()


# -- requests -------------------------------------------------------------------------------


def test_the_token_goes_in_the_authorization_header(api, broker):
    resp = requests.get(f"{api.url}/gmail/v1/users/me/profile", auth=ScalekitAuth("gmail", broker=broker), timeout=60)
    assert resp.status_code == 200
    assert api.seen[-1]["auth"] == "Bearer token-1"


def test_401_refreshes_the_token_and_resends_once(api, broker, emulator):
    auth = ScalekitAuth("gmail", broker=broker)
    assert requests.get(f"{api.url}/gmail/x", auth=auth, timeout=60).status_code == 200  # caches token-1
    emulator.rotate_token("gmail_u3134a", "mess", "token-2")  # the provider now wants token-2
    resp = requests.post(f"{api.url}/gmail/send", data=b"hello", auth=auth, timeout=60)
    assert resp.status_code == 200
    assert [r.status_code for r in resp.history] == [401]
    assert [s["auth"] for s in api.seen[1:]] == ["Bearer token-1", "Bearer token-2"]
    assert api.seen[-1]["body"] == b"hello"  # the same body was sent again
    assert broker.get_token("gmail") == "token-2"  # and the cache holds the new token


def test_a_second_401_goes_back_to_the_caller(api, broker, emulator):
    auth = ScalekitAuth("gmail", broker=broker)
    requests.get(f"{api.url}/gmail/x", auth=auth, timeout=60)
    emulator.rotate_token("gmail_u3134a", "mess", "token-2")
    api.current_token = lambda: "the-provider-accepts-nothing"
    resp = requests.get(f"{api.url}/gmail/x", auth=auth, timeout=60)
    assert resp.status_code == 401
    assert len(api.seen) == 3  # first call, the 401, one retry: no loop


def test_no_resend_when_scalekit_has_no_newer_token(api, broker):
    api.current_token = lambda: "something-else"
    resp = requests.get(f"{api.url}/gmail/x", auth=ScalekitAuth("gmail", broker=broker), timeout=60)
    assert resp.status_code == 401
    assert len(api.seen) == 1


def test_a_streaming_body_is_not_resent(api, broker, emulator):
    auth = ScalekitAuth("gmail", broker=broker)
    requests.get(f"{api.url}/gmail/x", auth=auth, timeout=60)
    emulator.rotate_token("gmail_u3134a", "mess", "token-2")
    resp = requests.post(f"{api.url}/gmail/upload", data=(c for c in [b"a", b"b"]), auth=auth, timeout=60)
    assert resp.status_code == 401
    assert len(api.seen) == 2
    assert api.seen[-1]["body"] == b"ab"


def test_a_file_body_is_rewound_and_resent(api, broker, emulator):
    auth = ScalekitAuth("gmail", broker=broker)
    requests.get(f"{api.url}/gmail/x", auth=auth, timeout=60)
    emulator.rotate_token("gmail_u3134a", "mess", "token-2")
    resp = requests.put(f"{api.url}/gmail/file", data=io.BytesIO(b"file-content"), auth=auth, timeout=60)
    assert resp.status_code == 200
    assert [s["body"] for s in api.seen[1:]] == [b"file-content", b"file-content"]


def test_the_service_comes_from_the_url(api, broker):
    resp = requests.get(f"{api.url}/gmail/v1/users/me/profile", auth=ScalekitAuth(broker=broker), timeout=60)
    assert resp.status_code == 200


def test_an_unknown_url_is_explained_and_nothing_is_sent(api, broker):
    with pytest.raises(ConfigurationError, match=r"No service is known for .*configured services: gmail"):
        requests.get(f"{api.url}/other/x", auth=ScalekitAuth(broker=broker), timeout=60)
    assert api.seen == []


def test_readme_example_fetches_unread_gmail_with_session(api):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(# Unread Gmail.*?)```", readme, re.S)
    assert block, "the README's session() example is missing"
    code = block.group(1).replace("https://gmail.googleapis.com", api.url)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert [m["id"] for m in scope["unread"]["messages"]] == ["m1", "m2"]
    assert api.seen[-1]["path"].startswith("/gmail/v1/users/me/messages?q=is%3Aunread")


def test_get_token_for_url(api):
    from scalekit_helper import get_token_for_url, service_for_url

    assert get_token_for_url(f"{api.url}/gmail/v1/x") == "token-1"
    assert service_for_url("https://api.github.com/user") == "github"
    with pytest.raises(ConfigurationError, match="configured services: gmail"):
        get_token_for_url("https://unknown.example.org/x")


# -- httpx -----------------------------------------------------------------------------------


def test_httpx_401_refreshes_and_resends_once(api, broker, emulator):
    auth = httpx_auth("gmail", broker=broker)
    with httpx.Client(auth=auth, timeout=60) as client:
        assert client.get(f"{api.url}/gmail/x").status_code == 200
        emulator.rotate_token("gmail_u3134a", "mess", "token-2")
        resp = client.post(f"{api.url}/gmail/send", content=b"hi")
        assert resp.status_code == 200
        assert [s["auth"] for s in api.seen[1:]] == ["Bearer token-1", "Bearer token-2"]
        api.current_token = lambda: "nothing"
        emulator.rotate_token("gmail_u3134a", "mess", "token-3")
        assert client.get(f"{api.url}/gmail/x").status_code == 401
        assert len(api.seen) == 5


def test_httpx_does_not_resend_a_stream(api, broker, emulator):
    with httpx.Client(auth=httpx_auth(broker=broker), timeout=60) as client:
        client.get(f"{api.url}/gmail/x")
        emulator.rotate_token("gmail_u3134a", "mess", "token-2")
        resp = client.post(f"{api.url}/gmail/upload", content=(c for c in [b"a", b"b"]))
        assert resp.status_code == 401
        assert len(api.seen) == 2


# -- command line -----------------------------------------------------------------------------


run_cli = functools.partial(run_script, "scalekit-auth")
# The curl command needs a curl on PATH (apt): those tests are marked system, unless they put a fake one first.


@pytest.mark.system
def test_curl_with_detected_service(api):
    proc = run_cli("curl", f"{api.url}/gmail/v1/users/me/messages?q=is:unread", "-s", "--fail")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["messages"][0]["id"] == "m1"
    assert api.seen[-1]["auth"] == "Bearer token-1"


@pytest.mark.system
def test_curl_exit_code_is_curls(api):
    api.current_token = lambda: "nothing"
    proc = run_cli("curl", f"{api.url}/gmail/x", "-s", "--fail")
    assert proc.returncode == 22  # curl's code for an HTTP error with --fail


def test_curl_never_puts_the_token_in_argv(api, tmp_path):
    fake = tmp_path / "curl"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {tmp_path}/argv\n'
        f'for a in "$@"; do case "$a" in @*) cat "${{a#@}}" > {tmp_path}/header;; esac; done\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = run_cli("curl", f"{api.url}/gmail/x", env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    assert "token-1" not in (tmp_path / "argv").read_text()
    assert (tmp_path / "header").read_text() == "Authorization: Bearer token-1\n"
    assert not list(Path(tmp_path).glob("*token*"))


@pytest.mark.system
def test_curl_unknown_url(api):
    proc = run_cli("curl", "https://unknown.example.org/x")
    assert proc.returncode == 3
    assert "No service is known for unknown.example.org" in proc.stderr


def test_which(api):
    assert run_cli("which", "https://gmail.googleapis.com/gmail/v1/users/me/messages").stdout == "gmail\n"
    assert run_cli("which", f"{api.url}/gmail/v1/x").stdout == "gmail\n"
    unknown = run_cli("which", "https://unknown.example.org/")
    assert unknown.returncode == 3 and unknown.stdout == ""
    assert "configured services: gmail" in unknown.stderr


def test_bad_hosts_in_connections_json_are_explained(skill):
    skill.connections_file.write_text(json.dumps({"gmail": {"connection_name": "g", "hosts": "api.example.com"}}))
    proc = run_cli("which", "https://api.example.com/")
    assert proc.returncode == 3
    assert '"hosts"' in proc.stderr and "must be a list of strings" in proc.stderr


# -- a 401 after a redirect to another host never earns that host a token ----------------------


@pytest.fixture
def foreign():
    """Another host (reached as `localhost`, while the API is 127.0.0.1) that answers 401 to everything."""
    other = StandIn(lambda: "never-this")
    other.url = other.url.replace("127.0.0.1", "localhost")
    yield other
    other.stop()


def _no_token_reached(foreign, emulator, lookups_before: int) -> None:
    assert foreign.seen, "the redirect was not followed: the test proves nothing"
    assert all(hit["auth"] == "" for hit in foreign.seen), foreign.seen
    assert emulator.counters()["rpc.GetConnectedAccountAuth"] == lookups_before  # no fresh token was fetched


@pytest.mark.parametrize("target", ["/x", "http://{other}/x"])
def test_requests_does_not_retry_a_401_from_another_host(api, broker, emulator, foreign, target):
    auth = ScalekitAuth("gmail", broker=broker)
    assert requests.get(f"{api.url}/gmail/x", auth=auth, timeout=60).status_code == 200
    before = emulator.counters()["rpc.GetConnectedAccountAuth"]
    where = target.format(other=foreign.url.removeprefix("http://"))
    where = foreign.url + where if where.startswith("/") else where
    resp = requests.get(f"{api.url}/gmail/redirect?to={where}", auth=auth, timeout=60)
    assert resp.status_code == 401
    _no_token_reached(foreign, emulator, before)


def test_a_session_does_not_retry_a_401_from_another_host(api, broker, emulator, foreign):
    s = requests.Session()
    s.auth = ScalekitAuth("gmail", broker=broker)
    assert s.get(f"{api.url}/gmail/x", timeout=60).status_code == 200
    before = emulator.counters()["rpc.GetConnectedAccountAuth"]
    assert s.get(f"{api.url}/gmail/redirect?to={foreign.url}/y", timeout=60).status_code == 401
    _no_token_reached(foreign, emulator, before)


def test_httpx_does_not_retry_a_401_from_another_host(api, broker, emulator, foreign):
    with httpx.Client(auth=httpx_auth("gmail", broker=broker), timeout=60, follow_redirects=True) as client:
        assert client.get(f"{api.url}/gmail/x").status_code == 200
        before = emulator.counters()["rpc.GetConnectedAccountAuth"]
        assert client.get(f"{api.url}/gmail/redirect?to={foreign.url}/y").status_code == 401
    _no_token_reached(foreign, emulator, before)


# -- curl: the token goes to the one URL it was fetched for ------------------------------------


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["http://other.example/x"], "one URL"),
        (["-s", "http://other.example/x"], "one URL"),
        (["--url", "http://other.example/x"], "--url"),
        (["-K", "/dev/null"], "-K"),
        (["--config", "/dev/null"], "--config"),
        (["--next", "http://other.example/x"], "--next"),
        (["-:"], "-:"),
        (["--location-trusted"], "--location-trusted"),
        (["--resolve", "127.0.0.1:80:10.0.0.1"], "--resolve"),
        (["--connect-to", "::10.0.0.1:"], "--connect-to"),
        (["-x", "http://proxy.example:3128"], "-x"),
        (["-sx", "http://proxy.example:3128"], "-x"),
        (["--proxy", "http://proxy.example:3128"], "--proxy"),
        (["--unix-socket", "/tmp/x.sock"], "--unix-socket"),
        (["-k"], "-k"),
        (["-sk"], "-k"),
        (["--insecure"], "--insecure"),
        (["--", "http://other.example/x"], "one URL"),
        (["--no-such-curl-option"], "--no-such-curl-option"),
        (["--no-globoff"], "--no-globoff"),
        (["--proxy1.0", "127.0.0.1:9"], "--proxy1.0"),
        (["--trace-ascii", "/tmp/x"], "--trace-ascii"),
        (["--trace", "/tmp/x"], "--trace"),
        (["--libcurl", "/tmp/x"], "--libcurl"),
        (["-v"], "-v"),
        (["-sv"], "-v"),
        (["--stderr", "/tmp/x"], "--stderr"),
        (["--loc"], "--loc"),
        (["--location-t"], "--location-t"),
    ],
)
@pytest.mark.system
def test_curl_refuses_arguments_that_could_send_the_token_elsewhere(api, emulator, extra, phrase):
    before = len(api.seen)
    proc = run_cli("curl", f"{api.url}/gmail/x", *extra)
    assert proc.returncode == 2, proc.stderr
    assert phrase in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "token-1" not in proc.stdout + proc.stderr
    assert len(api.seen) == before  # curl never ran
    assert emulator.counters().get("rpc.GetConnectedAccountAuth", 0) == 0  # refused before fetching a token


@pytest.mark.parametrize(
    "extra",
    [["-s", "--fail"], ["-sS", "-o", "/dev/null"], ["-H", "Accept: application/json", "-s"], ["-L", "-s"],
     ["-d", "x=1", "-s"], ["-so/dev/null"], ["--max-time", "60", "-s"], ["-sSf", "-X", "GET"]],
)  # fmt: skip
@pytest.mark.system
def test_curl_accepts_ordinary_options(api, extra):
    proc = run_cli("curl", f"{api.url}/gmail/x", *extra)
    assert proc.returncode == 0, proc.stderr
    assert api.seen[-1]["auth"] == "Bearer token-1"


@pytest.mark.system
def test_curl_ignores_the_users_curlrc(api, tmp_path):
    """~/.curlrc could add URLs or --location-trusted: curl runs with -q (no config file)."""
    (tmp_path / ".curlrc").write_text(f'url = "{api.url}/curlrc-leak"\n')
    proc = run_cli("curl", f"{api.url}/gmail/x", "-s", env={"HOME": str(tmp_path), "CURL_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert [hit["path"] for hit in api.seen] == ["/gmail/x"]


@pytest.mark.system
def test_curl_does_not_expand_globs_in_the_url(api):
    """curl would turn {a,b} or [1-2] into several URLs (hosts) sharing the header: globbing is off."""
    port = api.url.rsplit(":", 1)[1]
    proc = run_cli("curl", "--service", "gmail", f"http://{{127.0.0.1,localhost}}:{port}/gmail/x", "-s")
    assert proc.returncode != 0
    assert not api.seen  # no request at all: neither host got the token


@pytest.mark.system
def test_curl_with_service_still_needs_a_host_of_that_service(api):
    before = len(api.seen)
    proc = run_cli("curl", "--service", "gmail", "https://other.example/x", "-s")
    assert proc.returncode == 3, proc.stderr
    assert "other.example" in proc.stderr and "hosts" in proc.stderr, proc.stderr
    assert len(api.seen) == before


def test_curl_ignores_proxies_from_the_environment(api, tmp_path):
    """curl gets no *_proxy variables and --noproxy '*': the request goes straight to the URL's host."""
    fake = tmp_path / "curl"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\nenv > {tmp_path}/env\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "x:9",
           "no_proxy": "127.0.0.1,localhost"}  # fmt: skip
    proc = run_cli("curl", f"{api.url}/gmail/x", "-s", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "--noproxy\n*\n" in (tmp_path / "argv").read_text()
    assert not [line for line in (tmp_path / "env").read_text().splitlines() if "_proxy=" in line.lower()]
