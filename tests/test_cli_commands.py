"""Every `scalekit-auth` subcommand, run as a subprocess against the emulator."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

from .helpers import ROOT, run_on_terminal, run_script
from .test_cli import assert_one_clean_line


@pytest.fixture
def ready(skill, emulator):
    """gmail ACTIVE, slack EXPIRED, notion configured for bob with no account."""
    skill.use(emulator)
    skill.set_agent_name("Mess")
    skill.configure("gmail", "gmail_u3134a")
    skill.configure("slack", "slack_x7y9z")
    skill.configure("notion", "notion_demo", "bob")
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token-xyz", ttl=3600)
    emulator.seed("slack_x7y9z", "mess", "EXPIRED", access_token="stale-slack")
    return skill


top_level = functools.partial(run_script, "scalekit-auth")  # the file at the top of the skill folder


# -- entry points and conventions -----------------------------------------------------


def test_help_lists_every_command_and_the_exit_codes(skill):
    proc = top_level("--help")
    assert proc.returncode == 0
    for command in ("token", "header", "exec", "config", "remove", "list", "status", "doctor", "demo"):
        assert f"  {command}" in proc.stdout
    assert "exit codes:" in proc.stdout


@pytest.mark.parametrize("command", ["token", "header", "exec", "config", "remove", "list", "status", "doctor", "demo"])
def test_every_command_has_help_with_examples(skill, command):
    proc = top_level(command, "--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout


def test_unknown_command_is_a_usage_error(skill):
    proc = top_level("fly")
    assert proc.returncode == 2
    assert "invalid choice: 'fly'" in proc.stderr


@pytest.mark.parametrize("args", [["config"], ["remove"], ["header"], ["token"], ["disconnect"], []])
def test_missing_arguments_are_usage_errors(skill, args):
    proc = top_level(*args)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_fast_paths_never_import_the_sdk(skill):
    code = (
        "import sys\n"
        "from scalekit_auth.cli import main\n"
        "for argv in (['config', 'gmail', 'gmail_u3134a', '--offline'], ['list'], ['list', '--json'],\n"
        "             ['remove', 'gmail']):\n"
        "    assert main(argv) == 0, argv\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'scalekit' not in sys.modules and 'grpc' not in sys.modules, 'SDK imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().endswith("ok"), proc.stderr


def test_python_dash_m_and_the_top_level_file_agree(ready):
    a = ready.cli("token", "gmail")
    b = top_level("token", "gmail")
    c = ready.run("gmail")
    assert a.stdout == b.stdout == c.stdout == "gmail-token-xyz\n"


# -- config / remove / list -------------------------------------------------------------


def test_config_validates_and_leaves_a_broken_file_untouched(skill):
    skill.connections_file.write_text('{"gmail": {"connection_name": ')
    proc = top_level("config", "slack", "slack_x7y9z")
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert "not valid JSON" in proc.stderr
    assert skill.connections_file.read_text() == '{"gmail": {"connection_name": '


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["config", "bad service", "gmail_u3134a"], "service name"),
        (["config", "gmail", "has.dot"], "connection name"),
        (["config", "gmail", "gmail_u3134a", "--identifier", ""], "identifier is empty"),
    ],
)
def test_config_rejects_invalid_names(skill, args, phrase):
    proc = top_level(*args)
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert phrase in proc.stderr
    assert not skill.connections_file.exists()


def test_config_update_prints_what_changed(skill):
    top_level("config", "gmail", "gmail_a", "--offline")
    proc = top_level("config", "gmail", "gmail_b", "-i", "alice", "--offline")
    assert "updated gmail: gmail_a -> gmail_b (identifier alice)" in proc.stderr
    assert proc.stdout == ""


def test_remove(skill):
    top_level("config", "gmail", "gmail_a", "--offline")
    top_level("config", "slack", "slack_a", "--offline")
    proc = top_level("remove", "gmail")
    assert proc.returncode == 0 and "removed gmail" in proc.stderr
    assert "a connected account stays connected at Scalekit" in proc.stderr
    assert "scalekit-auth config gmail gmail_a --offline" in proc.stderr and "disconnect gmail" in proc.stderr
    assert list(json.loads(skill.connections_file.read_text())) == ["slack"]
    again = top_level("remove", "gmail")
    assert again.returncode == 3
    assert "'gmail' is not in" in again.stderr


def test_list_table_and_json(ready):
    proc = top_level("list")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "CONNECTION", "IDENTIFIER"]
    assert lines[1].split() == ["gmail", "gmail_u3134a", "mess", "(default)"]
    assert lines[3].split() == ["notion", "notion_demo", "bob"]
    data = json.loads(top_level("list", "--json").stdout)
    assert [r["service"] for r in data] == ["gmail", "slack", "notion"]
    assert data[2] == {
        "service": "notion",
        "connection_name": "notion_demo",
        "identifier": "bob",
        "identifier_source": "connections.json",
    }


def test_list_status_asks_scalekit_once_per_identifier_without_credentials(ready, emulator):
    proc = top_level("list", "--status", "--json")
    assert proc.returncode == 0, proc.stderr
    data = {r["service"]: r for r in json.loads(proc.stdout)}
    assert data["gmail"]["status"] == "ACTIVE" and data["gmail"]["token_expires_at"].endswith("Z")
    assert data["slack"]["status"] == "EXPIRED"
    assert data["notion"]["status"] == "NOT_CONNECTED"
    assert "gmail-token-xyz" not in proc.stdout + proc.stderr
    counters = emulator.counters()
    assert counters["rpc.ListConnectedAccounts"] == 2  # mess (gmail, slack) and bob (notion)
    assert "rpc.GetConnectedAccountDetails" not in counters and "rpc.GetConnectedAccountAuth" not in counters
    table = top_level("list", "--status")
    assert "ACTIVE" in table.stdout and "in 60 min" in table.stdout


def test_list_with_nothing_configured(skill):
    proc = top_level("list")
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert "No services configured" in proc.stderr


# -- token --json / header / exec ---------------------------------------------------------


def test_token_json_gives_one_stable_object_per_service(ready):
    proc = ready.cli("token", "gmail", "slack", "notion", "ghost", "--json")
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["service"] for o in objs] == ["gmail", "slack", "notion", "ghost"]
    gmail, slack, notion, ghost = objs
    assert gmail["status"] == "ACTIVE" and gmail["token"] == "gmail-token-xyz" and gmail["identifier"] == "mess"
    assert slack["status"] == "EXPIRED" and slack["link"].startswith("http://") and slack["expires_at"].endswith("Z")
    assert "token" not in slack
    assert notion["status"] == "NOT_CONNECTED" and notion["identifier"] == "bob"
    assert ghost["status"] == "ERROR"
    assert ghost["error"]["type"] == "ServiceNotConfiguredError" and ghost["error"]["exit_code"] == 3
    assert proc.returncode == 3  # mixed failures: the configuration problem comes first


def test_token_json_all_good_exits_0(ready):
    proc = ready.cli("token", "gmail", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["token"] == "gmail-token-xyz"


def test_header_for_curl(ready):
    proc = top_level("header", "gmail")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "Authorization: Bearer gmail-token-xyz\n", "")


def test_header_when_authorization_is_needed(ready):
    proc = top_level("header", "slack")
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert "Authorization needed" in proc.stderr


def test_exec_puts_tokens_in_the_environment_not_argv(ready, emulator):
    emulator.seed("slack_x7y9z", "mess", access_token="slack-token-abc")
    script = (
        "import os, sys, pathlib\n"
        "argv = pathlib.Path('/proc/self/cmdline').read_bytes().decode()\n"
        "assert os.environ['GMAIL_TOKEN'] not in argv and os.environ['SLACK_TOKEN'] not in argv\n"
        "print(os.environ['GMAIL_TOKEN'], os.environ['SLACK_TOKEN'])\n"
        "sys.exit(7)\n"
    )
    proc = top_level("exec", "gmail", "slack", "--", sys.executable, "-c", script)
    assert proc.stdout == "gmail-token-xyz slack-token-abc\n", proc.stderr
    assert proc.returncode == 7  # the child's exit code


def test_exec_env_name_overrides(ready, emulator):
    emulator.seed("slack_x7y9z", "mess", access_token="slack-token-abc")
    show = "import os; print(os.environ['GT_TOKEN'])"
    one = top_level("exec", "gmail", "--env", "GT_TOKEN", "--", sys.executable, "-c", show)
    assert one.stdout == "gmail-token-xyz\n"
    two = top_level(
        "exec", "gmail", "slack", "--env", "slack=BOT_TOKEN", "--",
        sys.executable, "-c", "import os; print(os.environ['GMAIL_TOKEN'], os.environ['BOT_TOKEN'])",
    )  # fmt: skip
    assert two.stdout == "gmail-token-xyz slack-token-abc\n"
    bad = top_level("exec", "gmail", "slack", "--env", "X", "--", "true")
    assert bad.returncode == 3 and "--env SERVICE=NAME" in bad.stderr
    invalid = top_level("exec", "gmail", "--env", "1BAD", "--", "true")
    assert invalid.returncode == 3 and "not a valid environment variable name" in invalid.stderr


def test_exec_errors(ready):
    missing_dashes = top_level("exec", "gmail")
    assert missing_dashes.returncode == 2 and "after '--'" in missing_dashes.stderr
    not_found = top_level("exec", "gmail", "--", "no-such-command-here")
    assert not_found.returncode == 127 and "command not found" in not_found.stderr
    needs_auth = top_level("exec", "slack", "--", "true")
    assert needs_auth.returncode == 4 and "Authorization needed" in needs_auth.stderr


# -- status / doctor -----------------------------------------------------------------------


def test_status_one_line_per_service_never_the_token(ready):
    proc = top_level("status")
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:2] == ["gmail", "ACTIVE"] and "expires in 60 min" in lines[0]
    assert lines[1].split()[:2] == ["slack", "EXPIRED"] and "needs authorization" in lines[1]
    assert lines[2].split()[:2] == ["notion", "NOT_CONNECTED"]
    assert "gmail-token-xyz" not in proc.stdout + proc.stderr
    assert proc.returncode == 4
    assert "\033[" not in proc.stdout  # not a terminal: no color


def test_status_exit_codes(ready):
    assert top_level("status", "gmail").returncode == 0
    unknown = top_level("status", "gmail", "dropbox")
    assert unknown.returncode == 3 and "NOT_CONFIGURED" in unknown.stdout


def test_status_when_scalekit_is_down(ready, emulator):
    emulator.stop()
    proc = top_level("status", "gmail")
    assert proc.returncode == 5
    assert "ERROR" in proc.stdout and "Cannot reach Scalekit" in proc.stdout


def test_doctor_all_good(ready):
    (ready.path / ".env").write_text("SCALEKIT_TIMEOUT=60\n")  # bounds the SDK import and login too
    os.chmod(ready.path / ".env", 0o600)
    proc = top_level("doctor")
    assert proc.returncode == 0, proc.stdout
    text = proc.stdout
    for name in (
        *("state folder", ".env", "credentials", "environment URL", "network", "Scalekit", "connections.json"),
        *("identity", "agent"),
    ):
        assert f"ok    {name}:" in text
    assert "credentials accepted" in text
    assert "default identifier 'mess'" in text
    assert os.environ["SCALEKIT_CLIENT_SECRET"] not in text


def test_doctor_warns_about_a_readable_env_file(ready):
    env_file = ready.path / ".env"
    env_file.write_text("SCALEKIT_TIMEOUT=60\n")  # bounds the SDK import and login too
    os.chmod(env_file, 0o644)
    proc = top_level("doctor")
    assert proc.returncode == 0
    assert "warn  .env:" in proc.stdout and f"chmod 600 {env_file}" in proc.stdout


def test_doctor_reports_failures_with_fixes(skill, emulator):
    skill.connections_file.write_text("[1, 2]")
    proc = top_level("doctor", env={"SCALEKIT_ENV_URL": "http://example.com"})
    assert proc.returncode == 3
    assert "fail  credentials: SCALEKIT_CLIENT_ID, SCALEKIT_CLIENT_SECRET not set" in proc.stdout
    assert "fail  environment URL:" in proc.stdout
    assert "warn  Scalekit: not contacted" in proc.stdout
    assert "fail  connections.json:" in proc.stdout


def test_doctor_names_rejected_credentials(ready):
    proc = top_level("doctor", env={"SCALEKIT_CLIENT_SECRET": "wrong-secret-123"})
    assert proc.returncode == 6
    assert "fail  Scalekit:" in proc.stdout and "rejected the client credentials" in proc.stdout
    assert "wrong-secret-123" not in proc.stdout


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, never listening, so nothing else takes it meanwhile)."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    _closed_port.holders.append(holder)  # keep it bound for the rest of the run
    return holder.getsockname()[1]


_closed_port.holders = []


def test_doctor_says_when_there_is_no_route_to_scalekit(ready):
    port = _closed_port()
    proc = top_level("doctor", env={"SCALEKIT_ENV_URL": f"https://127.0.0.1:{port}"})
    assert proc.returncode == 5, proc.stdout
    assert f"fail  network: no route to 127.0.0.1:{port} (Connection refused)" in proc.stdout
    assert "sandbox" in proc.stdout and "network must not be 'none'" in proc.stdout
    assert "warn  Scalekit: not contacted" in proc.stdout


def test_doctor_checks_the_route_through_the_proxy_the_sdk_would_use(ready):
    port = _closed_port()
    proc = top_level(
        "doctor",
        env={
            "SCALEKIT_ENV_URL": "https://acme.scalekit.com",
            "https_proxy": f"http://127.0.0.1:{port}",
            "no_proxy": "",
        },
    )
    assert f"fail  network: no route to the proxy 127.0.0.1:{port} (for acme.scalekit.com)" in proc.stdout


def test_doctor_names_a_state_folder_config_cannot_write_to(skill):
    (skill.path / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}')
    if os.getuid() == 0:  # root writes anywhere: make the file system itself read-only (CI runs as root)
        subprocess.run(["mount", "--bind", str(skill.path), str(skill.path)], check=True, timeout=60)
        expected = f"{skill.path} is on a read-only file system"
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(skill.path)], check=True, timeout=60)
            proc = top_level("doctor")
        finally:
            subprocess.run(["umount", str(skill.path)], check=True, timeout=60)
    else:
        expected = f"{skill.path} is not writable by you"
        os.chmod(skill.path, 0o500)
        try:
            proc = top_level("doctor")
        finally:
            os.chmod(skill.path, 0o700)
    from scalekit_auth.invocation import command  # as the user can run it: python3 /path/scalekit-auth here

    assert f"warn  state folder: {expected}: `{command('config')}` cannot save" in proc.stdout, proc.stdout
    assert "SCALEKIT_AUTH_DIR" in proc.stdout


def test_no_color_is_respected_on_a_terminal(ready):
    def run(env_extra: dict) -> str:
        env = {**os.environ, **env_extra}
        env.pop("NO_COLOR", None) if "NO_COLOR" not in env_extra else None
        code, text = run_on_terminal([sys.executable, str(ROOT / "scalekit-auth"), "status", "gmail"], env)
        assert code == 0, text
        return text

    assert "\033[32m" in run({"TERM": "xterm"})
    assert "\033[" not in run({"TERM": "xterm", "NO_COLOR": "1"})


# -- many writers --------------------------------------------------------------------------


def test_concurrent_config_writes_lose_nothing(skill):
    writer = (
        "import sys\n"
        "from scalekit_auth.cli import main\n"
        "p = int(sys.argv[1])\n"
        "for i in range(25):\n"
        "    assert main(['config', f'svc{p}-{i}', f'conn_{p}_{i}', '--offline']) == 0\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, str(p)], cwd=ROOT, stderr=subprocess.DEVNULL) for p in range(8)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    data = json.loads(skill.connections_file.read_text())
    assert len(data) == 200
    assert data["svc7-24"] == {"connection_name": "conn_7_24"}


# -- exec --env: only names that nothing else interprets ------------------------------------------

DANGEROUS_ENV_NAMES = [
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_DEBUG", "DYLD_INSERT_LIBRARIES", "PATH", "IFS", "BASH_ENV", "ENV",
    "PS4", "SHELLOPTS", "BASHOPTS", "CDPATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS", "PERL5OPT",
    "PERL5LIB", "RUBYOPT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "GCONV_PATH", "HOME", "SHELL", "BASH_FUNC_x%%",
    "GIT_SSH_COMMAND", "SCALEKIT_CLIENT_SECRET", "LC_ALL", "TMPDIR", "1ABC", "A-B", "", "A B", "A=B",
    "SSLKEYLOGFILE", "BROWSER", "LESSOPEN", "RUSTC_WRAPPER", "LUA_INIT", "PS0", "HISTFILE", "ZDOTDIR",
    "GOFLAGS", "MAKEFLAGS", "DOCKER_HOST", "KUBECONFIG", "OPENSSL_CONF", "NODE_EXTRA_CA_CERTS", "npm_config_x_key",
    "MY_GMAIL",
]  # fmt: skip


@pytest.mark.parametrize("name", DANGEROUS_ENV_NAMES)
def test_exec_refuses_variables_that_something_else_interprets(ready, name, tmp_path):
    marker = tmp_path / "exec-ran"  # the command must not run
    proc = top_level("exec", "gmail", "--env", name, "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert proc.returncode == 3, proc.stderr
    assert_one_clean_line(proc.stderr)
    assert "--env" in proc.stderr
    assert "gmail-token" not in proc.stdout + proc.stderr
    assert not marker.exists()


def test_exec_accepts_a_name_of_our_own(ready):
    show = "import os; print(os.environ['MY_GMAIL_TOKEN'])"
    proc = top_level("exec", "gmail", "--env", "MY_GMAIL_TOKEN", "--", sys.executable, "-c", show)
    assert (proc.returncode, proc.stdout) == (0, "gmail-token-xyz\n"), proc.stderr


@pytest.mark.parametrize("argv", [["--debug", "token", "nope"], ["token", "nope", "--debug"]])
def test_debug_works_before_and_after_the_command(skill, argv):
    proc = top_level(*argv)
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr  # --debug shows where the error came from


def test_a_bad_name_in_identity_md_is_traced_to_the_file(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")  # no identifier: the agent's name is used
    skill.set_agent_name("x" * 300)
    proc = top_level("token", "gmail")
    assert proc.returncode == 3, proc.stderr
    assert str(skill.identity_file) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "--identifier" in proc.stderr  # how to get past it
    doctor = top_level("doctor")
    assert doctor.returncode == 3, doctor.stdout
    assert "fail  identity:" in doctor.stdout and str(skill.identity_file) in doctor.stdout, doctor.stdout
