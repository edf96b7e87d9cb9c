"""Hostile input on every channel, generated: whatever arrives, the answer is a result or one of our
errors, never a traceback, a hang, a raw control character on the terminal, or a token sent elsewhere.

Channels: command-line arguments, environment variables, .env, connections.json (see also
test_config.py), IDENTITY.md, the agent's socket, and the HTTP helpers' redirects and 401s.
"""

from __future__ import annotations

import io
import json
import os
import string
from contextlib import redirect_stderr, redirect_stdout

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalekit_auth import cli, config, identity
from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import ConfigurationError, ExitCode
from scalekit_auth.http_auth import ScalekitAuth

from .helpers import StandIn

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
EXIT_CODES = {int(c) for c in ExitCode} | {126, 127}

# Text a hostile chat user or a broken file could produce: controls, escapes, unicode, long runs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=40),
    st.sampled_from(["", " ", "-", "--", "\x1b[31m", "\x00", "\n", "../../etc/passwd", "a" * 5000, "ß", "🙂", "%s%n"]),
)


def _no_raw_controls(text: str) -> None:
    bad = [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127]
    assert not bad, f"raw control characters reached the terminal: {text[:300]!r}"


# -- command-line arguments (in-process: the same code path, hundreds of cases per second) -------


@pytest.fixture
def configured(skill):
    """A skill folder with one service and no Scalekit credentials: every path short of the network."""
    skill.configure("gmail", "gmail_u3134a", "mess")
    return skill


COMMANDS = [
    "token", "header", "which", "config", "connections", "remove", "disconnect", "list", "status", "exec", "curl",
    "auth", "agent",
]  # fmt: skip


@settings(max_examples=250, suppress_health_check=FIXTURES, deadline=None)
@given(command=st.sampled_from(COMMANDS), args=st.lists(nasty_text, max_size=4), debug=st.booleans())
def test_any_arguments_give_an_exit_code_and_clean_output(configured, command, args, debug):
    if command == "agent":
        args = ["status", *args]  # never start or stop agents from generated input
    if command == "exec":
        args = [*args, "--", "/bin/true"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([*(["--debug"] if debug else []), command, *args])
    assert code in EXIT_CODES, (code, err.getvalue())
    if not debug:
        assert "Traceback" not in err.getvalue()
    _no_raw_controls(err.getvalue())
    _no_raw_controls(out.getvalue())


# -- environment variables ----------------------------------------------------------------------

ENV_VARS = list(config.SETTINGS_VARS)  # every variable the settings are read from


@settings(max_examples=300, suppress_health_check=FIXTURES, deadline=None)
@given(values=st.dictionaries(st.sampled_from(ENV_VARS), nasty_text.filter(lambda v: "\x00" not in v), max_size=6))
def test_any_environment_gives_settings_or_a_configuration_error(tmp_path, values):
    try:
        found = config.load_settings(tmp_path, values)
    except ConfigurationError as err:
        _no_raw_controls(cli_text(err))
        secret = values.get("SCALEKIT_CLIENT_SECRET", "")
        if len(secret) >= 8:
            assert secret not in str(err)
    else:
        assert found.env_url.startswith(("https://", "http://"))
        assert found.client_secret not in repr(found)


def cli_text(err: BaseException) -> str:
    """What the command line shows for an error."""
    from scalekit_auth.display import printable

    return printable(str(err), keep_newlines=False)


# -- .env ---------------------------------------------------------------------------------------

env_lines = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(ENV_VARS + ["X", "export A", ""]), nasty_text),
        nasty_text,
    ),
    max_size=8,
)


@settings(max_examples=300, suppress_health_check=FIXTURES, deadline=None)
@given(lines=env_lines, raw=st.binary(max_size=120), use_raw=st.booleans())
def test_any_env_file_gives_values_or_a_configuration_error(tmp_path, lines, raw, use_raw):
    path = tmp_path / ".env"
    if use_raw:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        values = config.read_env_file(path)
    except ConfigurationError as err:
        assert str(path) in str(err)
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


# -- IDENTITY.md --------------------------------------------------------------------------------

identity_text = st.lists(
    st.one_of(
        nasty_text,
        st.builds(lambda v: f"- **Name:** {v}", nasty_text),
        st.builds(lambda v: f"Name: {v}", nasty_text),
        st.just("- **Name:**"),
    ),
    max_size=6,
).map("\n".join)


@settings(max_examples=300, suppress_health_check=FIXTURES, deadline=None)
@given(text=identity_text)
def test_any_identity_file_gives_a_usable_identifier_or_says_where_it_came_from(skill, text):
    skill.configure("gmail", "gmail_u3134a")
    skill.identity_file.write_text(text, encoding="utf-8", errors="surrogatepass")
    name = identity.parse_agent_name(text)
    assert name is None or (name and "\n" not in name and name == name.lower())
    broker = TokenBroker()
    try:
        target = broker.resolve("gmail")
    except ConfigurationError as err:
        assert str(skill.identity_file) in str(err)
    else:
        assert target.identifier and target.identifier == target.identifier.strip()
    finally:
        broker.close()


# -- the agent's socket -------------------------------------------------------------------------

request_lines = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda obj: json.dumps(obj).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
            max_leaves=10,
        ),
    ),
    st.builds(
        lambda op, services, extra: json.dumps({"op": op, "services": services, **extra}).encode(),
        st.sampled_from(["token", "invalidate", "clear", "ping", "stop", "nope", None, 3]),
        st.one_of(st.lists(st.text(max_size=10), max_size=3), st.text(max_size=5), st.none(), st.integers()),
        st.dictionaries(
            st.sampled_from(["identifier", "force_refresh", "service", "context", "any_context"]),
            st.one_of(st.none(), st.text(max_size=5), st.integers(), st.booleans()),
            max_size=3,
        ),
    ),  # fmt: skip
)


@pytest.fixture
def agent_server(configured):
    """An AgentServer answering in-process (its socket unused): the request handling alone."""
    from scalekit_auth import agent, paths

    env = {**os.environ, paths.AGENT_VAR: "0"}
    server = agent.AgentServer(paths.agent_socket(env), TokenBroker(environ=env), 60, env)
    server.retire = lambda: None  # a generated "stop" must not end the test's server
    yield server
    server.server_close()
    server.broker.close()


@settings(max_examples=300, suppress_health_check=FIXTURES, deadline=None)
@given(line=request_lines)
def test_any_request_line_gets_a_json_answer_and_never_a_crash(agent_server, line):
    answer = agent_server.answer(line)
    assert isinstance(answer, bytes) and b"\n" not in answer  # always one sendable line
    if answer in (b"NO",) or answer.startswith(b"OK\t"):
        return  # the fast path's plain form, asked for by the line
    reply = json.loads(answer)
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
    if not reply["ok"] and "error" in reply:
        assert "Traceback" not in json.dumps(reply["error"])


# -- HTTP: redirects and 401s never carry the token to another origin ---------------------------


@pytest.fixture
def elsewhere():
    """Two other origins that answer 401 to everything: another host name, and another port."""
    by_name, by_port = StandIn(lambda: "never"), StandIn(lambda: "never")
    by_name.url = by_name.url.replace("127.0.0.1", "localhost")
    yield [by_name, by_port]
    by_name.stop()
    by_port.stop()


@settings(max_examples=40, suppress_health_check=FIXTURES, deadline=None)
@given(
    target=st.integers(0, 1),
    path=st.text(alphabet=string.ascii_letters + string.digits + "/-_.", max_size=20),
    method=st.sampled_from(["GET", "POST", "PUT"]),
)
def test_a_redirect_anywhere_else_never_earns_that_origin_a_token(api, elsewhere, target, path, method):
    other = elsewhere[target]
    other.seen.clear()
    broker = TokenBroker()
    try:
        where = f"{other.url}/{path.lstrip('/')}"
        resp = requests.request(
            method, f"{api.url}/gmail/redirect?to={where}", auth=ScalekitAuth("gmail", broker=broker), timeout=60
        )
        assert resp.status_code in (401, 302, 301)
    finally:
        broker.close()
    assert all(hit["auth"] == "" for hit in other.seen), other.seen
