"""As OpenClaw sees the skill: its frontmatter, its paths, its workspace, its credentials.

The frontmatter is read three ways: as YAML, line by line with `metadata` as JSON (the way
OpenClaw's docs describe), and by the real OpenClaw CLI (`openclaw skills info --json`,
installed by scripts/openclaw-cli with the Node 24 it needs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalekit_auth import identity

from .helpers import ROOT, run_script, ship_to

LINE = re.compile(r"^([\w-]+):\s*(.*)$")
OPENCLAW_INSTALL_KINDS = {"brew": "formula", "node": "package", "go": "module", "uv": "package", "download": "url"}
CLAWHUB_INSTALL_KINDS = {"brew", "node", "go", "uv"}  # ClawHub drops `download` entries


def frontmatter_block(text: str) -> list[str]:
    lines = text.split("\n")
    assert lines[0] == "---", "SKILL.md must start with a --- line"
    end = lines.index("---", 1)
    return lines[1:end]


def frontmatter_by_lines(text: str) -> dict:
    """OpenClaw's documented reading: one `key: value` per line, `metadata` a JSON object."""
    fields = {}
    for line in frontmatter_block(text):
        match = LINE.match(line)
        assert match, f"not a single-line key: {line!r}"
        fields[match.group(1)] = match.group(2).strip()
    fields["metadata"] = json.loads(fields["metadata"])
    return fields


SKILL_TEXT = (ROOT / "SKILL.md").read_text(encoding="utf-8")


# -- frontmatter ---------------------------------------------------------------------------------


def test_the_frontmatter_reads_the_same_as_yaml_and_line_by_line():
    by_lines = frontmatter_by_lines(SKILL_TEXT)
    as_yaml = yaml.safe_load("\n".join(frontmatter_block(SKILL_TEXT)))
    assert as_yaml == by_lines
    assert by_lines["name"] == "scalekit-auth"
    assert 0 < len(by_lines["description"]) <= 160, len(by_lines["description"])


def test_the_openclaw_metadata_declares_what_the_platform_needs():
    meta = frontmatter_by_lines(SKILL_TEXT)["metadata"]["openclaw"]
    assert meta["emoji"] and meta["homepage"].startswith("https://")
    assert set(meta["os"]) == {"linux", "darwin"}  # Unix sockets, fcntl, peer credentials: not Windows
    assert meta["requires"]["bins"] == ["python3"]
    # The secret may live in a file OpenClaw does not read, so it is not a hard requirement
    # (requires.env would hide the skill, and with it the set-up help); primaryEnv lets
    # skills.entries.scalekit-auth.apiKey supply it.
    assert "env" not in meta["requires"]
    assert meta["primaryEnv"] == "SCALEKIT_CLIENT_SECRET"
    for entry in meta["install"]:
        assert entry["kind"] in CLAWHUB_INSTALL_KINDS, entry
        assert entry[OPENCLAW_INSTALL_KINDS[entry["kind"]]], entry
        assert entry["id"] and entry["label"] and entry["bins"]


def _variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.joinpath("scalekit_auth").rglob("*.py"), ROOT / "scalekit_helper.py", ROOT / "get_token.py"]:
        names |= set(re.findall(r"[\"'](SCALEKIT_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    # written for other programs by the emulator (`export ...` lines), never read by the skill
    return names - {"SCALEKIT_EMULATOR_ADMIN_URL", "SCALEKIT_EMULATOR_ADMIN_KEY"}


def test_every_variable_the_code_reads_is_declared_for_clawhub():
    meta = frontmatter_by_lines(SKILL_TEXT)["metadata"]["openclaw"]
    declared = {item["name"]: item for item in meta["envVars"]}
    assert set(declared) == _variables_read_by_the_code()
    required = {name for name, item in declared.items() if item["required"]}
    assert required == {"SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET", "SCALEKIT_ENVIRONMENT_URL"}
    assert all(item["description"] for item in declared.values())


# -- body ------------------------------------------------------------------------------------------


def test_every_path_in_skill_md_is_relative_to_the_skill_folder():
    body = SKILL_TEXT.split("\n---\n", 1)[1]
    assert "skills/scalekit-auth" not in SKILL_TEXT
    code = re.findall(r"```\w*\n(.*?)```", body, re.S) + re.findall(r"`([^`\n]+)`", body)
    commands = [target for span in code for target in re.findall(r"python3? (\S+)", span)]
    assert commands
    for target in commands:
        assert target.startswith("{baseDir}/"), target
        assert (ROOT / target.removeprefix("{baseDir}/")).exists(), target
    assert 'sys.path.insert(0, os.path.expanduser("{baseDir}"))' in body  # `~` in the path the model fills in


def test_skill_md_never_asks_for_a_secret_in_chat():
    body = SKILL_TEXT.lower()
    assert "do not ask for them in chat" in body
    assert "skills.entries" not in body or '"apikey"' in body
    assert "ask the user for those values" not in body


# -- workspace and IDENTITY.md ---------------------------------------------------------------------


def test_the_workspace_is_found_as_openclaw_finds_it(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home)}
    assert identity.identity_file(env) == home / ".openclaw" / "workspace" / "IDENTITY.md"
    assert identity.identity_file({**env, "OPENCLAW_PROFILE": "work"}) == (
        home / ".openclaw-work" / "workspace" / "IDENTITY.md"
    )
    assert identity.identity_file({**env, "OPENCLAW_STATE_DIR": str(tmp_path / "st")}) == (
        tmp_path / "st" / "workspace" / "IDENTITY.md"
    )
    both = {**env, "OPENCLAW_STATE_DIR": str(tmp_path / "st"), "OPENCLAW_WORKSPACE_DIR": str(tmp_path / "ws")}
    assert identity.identity_file(both) == tmp_path / "ws" / "IDENTITY.md"
    assert identity.identity_file({**both, "SCALEKIT_IDENTITY_FILE": "~/me.md"}) == home / "me.md"


def _identifier_seen(cwd: Path, env: dict[str, str]) -> str:
    """The identifier `list` reports for a service with no identifier of its own."""
    done = run_script("scalekit-auth", "list", "--json", env=env, cwd=cwd, inherit=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]["identifier"]


def test_an_openclaw_exec_uses_the_identity_of_the_agent_whose_workspace_it_runs_in(tmp_path):
    home, state = tmp_path / "home", tmp_path / "state"
    default_ws, second_ws = home / ".openclaw" / "workspace", home / ".openclaw" / "workspace-helper"
    for folder, text in ((default_ws, "- **Name:** Mess\n"), (second_ws, "- Name: Helper Bot\n")):
        folder.mkdir(parents=True)
        (folder / "IDENTITY.md").write_text(f"# IDENTITY.md - Who Am I?\n\n{text}")
    state.mkdir()
    (state / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}')
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "SCALEKIT_AUTH_DIR": str(state)}
    assert _identifier_seen(tmp_path, env) == "mess"  # a plain shell: the default workspace
    assert _identifier_seen(second_ws, env) == "mess"  # not run by OpenClaw: the cwd means nothing
    # OpenClaw runs exec commands in the agent's own workspace, with OPENCLAW_SHELL=exec
    assert _identifier_seen(second_ws, {**env, "OPENCLAW_SHELL": "exec"}) == "helper bot"
    assert _identifier_seen(tmp_path, {**env, "OPENCLAW_SHELL": "exec"}) == "mess"


def test_openclaws_own_identity_template_gives_no_name(tmp_path):
    template = (
        "# IDENTITY.md - Who Am I?\n\n_Fill this in during your first conversation. Make it yours._\n\n"
        "- **Name:**\n  _(pick something you like)_\n- **Creature:**\n"
        "  _(AI? robot? familiar? ghost in the machine? something weirder?)_\n- **Vibe:**\n"
        "  _(how do you come across? sharp? warm? chaotic? calm?)_\n- **Emoji:**\n"
        "  _(your signature \u2014 pick one that feels right)_\n"
    )
    path = tmp_path / "IDENTITY.md"
    path.write_text(template)
    name, source = identity.agent_name({"SCALEKIT_IDENTITY_FILE": str(path)})
    assert name == "agent" and "no 'Name:' line" in source
    path.write_text(template + "\n- Name: Clawd\n")  # what OpenClaw's own writer appends
    assert identity.agent_name({"SCALEKIT_IDENTITY_FILE": str(path)})[0] == "clawd"


# -- credentials the OpenClaw way ------------------------------------------------------------------


def _shell_env(home: Path) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run")}
    env["SCALEKIT_AUTH_AGENT"] = "0"  # these tests are about files and credentials, not the agent
    (home / "run").mkdir(mode=0o700, parents=True)
    for name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SCALEKIT_EMULATOR_CA_DIR"):
        env[name] = os.environ[name]
    return env


def test_credentials_in_openclaws_env_file_are_used_and_doctor_says_where(tmp_path, emulator):
    home = tmp_path / "home"
    openclaw = home / ".openclaw"
    (openclaw / "scalekit-auth").mkdir(parents=True)
    (openclaw / ".env").write_text(
        f"SCALEKIT_ENVIRONMENT_URL={emulator.url}\nSCALEKIT_CLIENT_ID={emulator.client_id}\n"
        f"SCALEKIT_CLIENT_SECRET={emulator.client_secret}\n"
    )
    os.chmod(openclaw / ".env", 0o600)
    (openclaw / "scalekit-auth" / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}')
    emulator.seed("gmail_u3134a", "agent", access_token="via-openclaw-env")
    env = _shell_env(home)
    token = subprocess.run(
        [sys.executable, str(ROOT / "get_token.py"), "gmail"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (token.returncode, token.stdout) == (0, "via-openclaw-env\n"), token.stderr
    doctor = subprocess.run(
        [sys.executable, str(ROOT / "scalekit-auth"), "doctor"], capture_output=True, text=True, env=env, timeout=60
    )
    assert f"SCALEKIT_CLIENT_SECRET from {openclaw / '.env'}" in doctor.stdout, doctor.stdout
    assert "credentials accepted" in doctor.stdout
    assert emulator.client_secret not in doctor.stdout + doctor.stderr


def test_missing_credentials_under_openclaw_point_to_its_config_not_the_chat(tmp_path):
    home = tmp_path / "home"
    (home / ".openclaw" / "scalekit-auth").mkdir(parents=True)
    (home / ".openclaw" / "scalekit-auth" / "connections.json").write_text('{"gmail": {"connection_name": "g"}}')
    done = subprocess.run(
        [sys.executable, str(ROOT / "get_token.py"), "gmail"], capture_output=True, text=True, env=_shell_env(home)
    )
    assert done.returncode == 3
    assert 'skills.entries."scalekit-auth"' in done.stderr and '"apiKey"' in done.stderr
    assert str(home / ".openclaw" / ".env") in done.stderr
    assert "never paste the secret into a chat" in done.stderr


# -- the real OpenClaw CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openclaw_cli() -> list[str]:
    """The real `openclaw` (installed once by scripts/openclaw-cli; `make test` runs that first)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "openclaw-cli")], capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _skills_info(cli: list[str], home: Path, *args: str) -> dict:
    env = {"PATH": f"{Path(cli[0]).parent}:/usr/bin:/bin", "HOME": str(home), "NO_COLOR": "1", "LANG": "C.UTF-8"}
    done = subprocess.run(
        [*cli, "skills", "info", "scalekit-auth", "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.mark.openclaw
def test_openclaw_finds_the_skill_eligible_with_its_install_option_emoji_and_key(openclaw_cli, tmp_path):
    home = tmp_path / "home"
    skill = ship_to(home / ".openclaw" / "workspace" / "skills" / "scalekit-auth")
    info = _skills_info(openclaw_cli, home)
    assert info["source"] == "openclaw-workspace" and info["baseDir"] == str(skill)
    assert info["eligible"] is True and info["modelVisible"] is True
    assert info["missing"] == {"bins": [], "anyBins": [], "env": [], "config": [], "os": []}
    assert info["emoji"] == "🔑" and info["primaryEnv"] == "SCALEKIT_CLIENT_SECRET"
    assert info["requirements"]["os"] == ["linux", "darwin"]
    assert [(o["kind"], o["bins"]) for o in info["install"]] == [("brew", ["python3"])]
    assert info["description"] == frontmatter_by_lines(SKILL_TEXT)["description"]

    # the user's secret set the OpenClaw way: still eligible, and OpenClaw accepts the config
    (home / ".openclaw" / "openclaw.json").write_text(
        json.dumps(
            {
                "skills": {
                    "entries": {
                        "scalekit-auth": {
                            "apiKey": "canary-secret",
                            "env": {"SCALEKIT_CLIENT_ID": "id", "SCALEKIT_ENVIRONMENT_URL": "https://x.scalekit.com"},
                        }
                    }
                }
            }
        )
    )
    configured = _skills_info(openclaw_cli, home)
    assert configured["eligible"] is True and configured["skillKey"] == "scalekit-auth"


@pytest.mark.openclaw
def test_openclaw_finds_a_global_install_under_another_folder_name(openclaw_cli, tmp_path):
    home = tmp_path / "home"
    skill = ship_to(home / ".openclaw" / "skills" / "scalekit-auth-1.4.0")  # a slug, not the name
    info = _skills_info(openclaw_cli, home)
    assert info["name"] == "scalekit-auth" and info["baseDir"] == str(skill)
    assert info["source"] == "openclaw-managed" and info["eligible"] is True
