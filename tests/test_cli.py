"""get_token.py and `python3 -m scalekit_auth` as a shell user meets them: stdout, stderr, exit code."""

from __future__ import annotations

import json

import pytest

from scalekit_auth.errors import ExitCode


def assert_one_clean_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_token_alone_on_stdout(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="shell-token-1")
    proc = skill.run("gmail")
    assert proc.returncode == 0
    assert proc.stdout == "shell-token-1\n"
    assert proc.stderr == ""


def test_token_subcommand_is_the_same(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "bob", access_token="bob-token")
    proc = skill.cli("token", "gmail", "--identifier", "bob")
    assert (proc.returncode, proc.stdout) == (0, "bob-token\n")


def test_authorization_needed_prints_the_link_and_exits_4(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    proc = skill.run("gmail")
    assert proc.returncode == ExitCode.AUTHORIZATION_REQUIRED == 4
    assert proc.stdout == ""
    assert_one_clean_line(proc.stderr)
    link = emulator.latest_link("gmail_u3134a", "mess")
    assert link in proc.stderr
    assert "expires in about 1 minute" in proc.stderr


def test_unknown_service_exits_3(skill, emulator):
    skill.use(emulator)
    proc = skill.run("gmail")
    assert proc.returncode == ExitCode.CONFIGURATION == 3
    assert proc.stdout == ""
    assert_one_clean_line(proc.stderr)
    assert proc.stderr.startswith("get_token.py: 'gmail' is not configured")


def test_missing_credentials_exit_3_and_are_listed(skill):
    skill.configure("gmail", "gmail_u3134a")
    proc = skill.run("gmail")
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert (
        "SCALEKIT_ENVIRONMENT_URL (or SCALEKIT_ENV_URL), SCALEKIT_CLIENT_ID, SCALEKIT_CLIENT_SECRET are not set"
        in proc.stderr
    )


def test_malformed_connections_json_exits_3_without_a_traceback(skill, emulator):
    skill.use(emulator)
    skill.connections_file.write_text('{"gmail": {"connection_name": "gmail_u3134a",}}')
    proc = skill.run("gmail")
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert "not valid JSON" in proc.stderr and "line 1, column" in proc.stderr
    assert "Unexpected error" not in proc.stderr


def test_wrong_secret_exits_6(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    proc = skill.run("gmail", env={"SCALEKIT_CLIENT_SECRET": "not-the-secret"})
    assert proc.returncode == ExitCode.CREDENTIALS_REJECTED == 6
    assert_one_clean_line(proc.stderr)
    assert "rejected the client credentials" in proc.stderr
    assert "=====" not in proc.stderr


def test_scalekit_down_exits_5(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.stop()
    proc = skill.run("gmail", timeout=30)
    assert proc.returncode == ExitCode.UNAVAILABLE == 5
    assert_one_clean_line(proc.stderr)
    assert "Cannot reach Scalekit" in proc.stderr and "connection refused" in proc.stderr
    assert "urllib3" not in proc.stderr and "HTTPSConnectionPool" not in proc.stderr


@pytest.mark.slow  # the retries take most of the 10 s: about 7 s on average
def test_rate_limited_exits_7(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent")
    emulator.fail_next(-1, "RESOURCE_EXHAUSTED")  # every lookup, however many retries the deadline allows
    # The deadline also covers this fresh interpreter's SDK import and login (a second on an idle machine, a
    # few on a busy one): the default 10 s, not 2 s that a loaded machine can spend before the first lookup.
    proc = skill.run("gmail", env={"SCALEKIT_TIMEOUT": "10"})
    assert proc.returncode == ExitCode.RATE_LIMITED == 7
    assert_one_clean_line(proc.stderr)
    assert "rate-limiting" in proc.stderr
    assert "Verify connection exists" not in proc.stderr


def test_api_key_account_without_single_token_exits_8(skill, emulator):
    skill.use(emulator)
    skill.configure("db", "db_demo")
    emulator.seed("db_demo", "agent", static={"username": "u", "password": "p"}, kind="static")
    proc = skill.run("db")
    assert proc.returncode == ExitCode.UNSUPPORTED_ACCOUNT == 8
    assert_one_clean_line(proc.stderr)
    assert "'oauth_token'" not in proc.stderr


def test_api_key_account_prints_its_key(skill, emulator):
    skill.use(emulator)
    skill.configure("openai", "openai_demo")
    emulator.seed("openai_demo", "agent", static={"api_key": "sk-shell"})
    proc = skill.run("openai")
    assert (proc.returncode, proc.stdout) == (0, "sk-shell\n")


@pytest.mark.parametrize("args", [[], ["gmail", "--bogus"], ["gmail", "--identifier"]])
def test_usage_errors_exit_2(skill, args):
    proc = skill.run(*args)
    assert proc.returncode == ExitCode.USAGE == 2
    assert "usage: get_token.py" in proc.stderr


def test_help_documents_exit_codes(skill):
    proc = skill.run("--help")
    assert proc.returncode == 0
    assert "exit codes:" in proc.stdout and "authorization needed" in proc.stdout


def test_debug_shows_the_traceback(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    proc = skill.run("gmail", "--debug", env={"SCALEKIT_CLIENT_SECRET": "nope"})
    assert proc.returncode == 6
    assert "Traceback" in proc.stderr


def test_config_command_writes_the_entry(skill):
    proc = skill.cli("config", "gmail", "gmail_u3134a", "--identifier", "mess", "--offline")
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert "added gmail -> gmail_u3134a (identifier mess)" in proc.stderr
    assert json.loads(skill.connections_file.read_text()) == {
        "gmail": {"connection_name": "gmail_u3134a", "identifier": "mess"}
    }
    proc = skill.cli("config", "gmail", "bad name!", "--offline")
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)


def test_config_then_token_from_the_shell(skill, emulator):
    skill.use(emulator)
    assert skill.cli("config", "slack", "slack_x7y9z").returncode == 0
    emulator.seed("slack_x7y9z", "agent", access_token="slack-from-shell")
    assert skill.run("slack").stdout == "slack-from-shell\n"


def test_a_missing_package_is_named_with_the_install_command(skill):
    import subprocess
    import sys

    from .helpers import ROOT

    code = (
        "import sys; sys.modules['filelock'] = None\n"
        "from scalekit_auth.cli import main\n"
        "sys.exit(main(['config', 'gmail', 'gmail_u3134a', '--offline']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert_one_clean_line(proc.stderr)
    assert "'filelock' is not installed" in proc.stderr and f"pip install -r {ROOT / 'requirements.txt'}" in proc.stderr


def test_several_services_print_one_token_per_line_in_order(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    skill.configure("slack", "slack_x7y9z")
    skill.configure("github", "github_demo")
    emulator.seed("gmail_u3134a", "agent", access_token="tok-gmail")
    emulator.seed("slack_x7y9z", "agent", access_token="tok-slack")
    emulator.seed("github_demo", "agent", access_token="tok-github")
    proc = skill.run("slack", "github", "gmail")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "tok-slack\ntok-github\ntok-gmail\n"


def test_several_services_fail_as_a_whole_with_a_line_per_failure(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a")
    skill.configure("slack", "slack_x7y9z")
    emulator.seed("gmail_u3134a", "agent", access_token="tok-gmail")
    proc = skill.run("gmail", "slack", "notion")
    assert proc.returncode == 3  # mixed causes: 4 for slack, 3 for notion; setup comes first
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert "2 of 3 services failed" in proc.stderr
    assert "  slack: Authorization needed" in proc.stderr
    assert "  notion: 'notion' is not configured" in proc.stderr
    assert "gmail:" not in proc.stderr
