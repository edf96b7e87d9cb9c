"""The user's files (.env, connections.json) live outside the skill folder and survive reinstalls.

Where: $SCALEKIT_AUTH_DIR; under OpenClaw <OpenClaw state folder>/scalekit-auth; else
~/.config/scalekit-auth. A skill folder in the original layout (files beside SKILL.md) keeps
working until `scalekit-auth migrate` moves them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalekit_auth import paths

from .helpers import ROOT, run_script, ship_to


def run(skill_dir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The `scalekit-auth` of an installed copy, with exactly `env`."""
    return run_script(skill_dir / "scalekit-auth", *args, env=env, inherit=False)


@pytest.fixture
def home(tmp_path):
    """A user's home, and a clean environment for child processes run as that user."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    env["SCALEKIT_AUTH_AGENT"] = "0"  # about files, not the agent
    (tmp_path / "run").mkdir(mode=0o700)
    for name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SCALEKIT_EMULATOR_CA_DIR"):
        env[name] = os.environ[name]
    return home, env


# -- where ----------------------------------------------------------------------------------


def test_the_state_folder_follows_openclaw_then_the_config_home(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    env = {"HOME": str(home)}
    assert paths.state_dir(env) == str(home / ".config" / "scalekit-auth")  # no OpenClaw here
    assert paths.state_dir({**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}) == str(tmp_path / "cfg" / "scalekit-auth")
    # run by OpenClaw's exec tool (it sets OPENCLAW_SHELL=exec), even before ~/.openclaw exists
    assert paths.state_dir({**env, "OPENCLAW_SHELL": "exec"}) == str(home / ".openclaw" / "scalekit-auth")
    (home / ".clawdbot").mkdir()  # an older install's folder, used by OpenClaw when ~/.openclaw is absent
    assert paths.state_dir(env) == str(home / ".clawdbot" / "scalekit-auth")
    (home / ".openclaw").mkdir()
    assert paths.state_dir(env) == str(home / ".openclaw" / "scalekit-auth")
    assert paths.state_dir({**env, "OPENCLAW_STATE_DIR": str(tmp_path / "oc")}) == str(
        tmp_path / "oc" / "scalekit-auth"
    )
    other = tmp_path / "other-home"
    (other / ".openclaw").mkdir(parents=True)
    assert paths.state_dir({**env, "OPENCLAW_HOME": str(other)}) == str(other / ".openclaw" / "scalekit-auth")
    assert paths.state_dir({**env, "SCALEKIT_AUTH_DIR": "~/mine"}) == str(home / "mine")


@pytest.mark.parametrize("name", ["connections.json", ".env"])
def test_a_config_folder_in_use_stays_in_use_when_openclaw_arrives(tmp_path, name):
    """Files saved before OpenClaw was installed are not dropped when ~/.openclaw appears (until `migrate`)."""
    home = tmp_path / "h"
    home.mkdir()
    for env, config in (
        ({"HOME": str(home)}, home / ".config" / "scalekit-auth"),
        ({"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}, tmp_path / "cfg" / "scalekit-auth"),
    ):
        config.mkdir(parents=True)
        (config / name).write_text("{}\n")
        assert paths.state_dir(env) == str(config)
        (home / ".openclaw").mkdir(exist_ok=True)
        assert paths.state_dir(env) == str(config)
        assert paths.state_dir({**env, "OPENCLAW_SHELL": "exec"}) == str(config)
        (home / ".openclaw" / "scalekit-auth").mkdir(exist_ok=True)  # an empty folder holds no state
        assert paths.state_dir(env) == str(config)
        (home / ".openclaw" / "scalekit-auth" / "connections.json").write_text("{}\n")  # once it does, it wins
        assert paths.state_dir(env) == str(home / ".openclaw" / "scalekit-auth")
        shutil.rmtree(home / ".openclaw")


def test_a_pip_installed_package_uses_the_config_home(tmp_path):
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "scalekit_auth", site / "scalekit_auth")
    code = "from scalekit_auth import paths; print(paths.skill_dir())"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    out = subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(tmp_path / "cfg" / "scalekit-auth"), out.stderr


# -- survives a reinstall -----------------------------------------------------------------------


def test_reinstalling_the_skill_loses_no_connection(home, tmp_path):
    user_home, env = home
    (user_home / ".openclaw").mkdir()
    skill = ship_to(user_home / ".openclaw" / "workspace" / "skills" / "scalekit-auth")
    done = run(skill, "config", "gmail", "gmail_u3134a", "--offline", env=env)
    assert done.returncode == 0, done.stderr
    state = user_home / ".openclaw" / "scalekit-auth"
    assert str(state / "connections.json") in done.stdout + done.stderr
    assert not (skill / "connections.json").exists()
    assert (state.stat().st_mode & 0o777) == 0o700

    shutil.rmtree(skill)  # what `clawhub update --force` does before unpacking the new version
    ship_to(skill)
    listed = run(skill, "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["connection_name"] for row in json.loads(listed.stdout)] == ["gmail_u3134a"]


def test_the_credentials_can_live_in_the_state_folder(home, emulator):
    user_home, env = home
    state = user_home / ".config" / "scalekit-auth"
    state.mkdir(parents=True)
    (state / ".env").write_text(
        f"SCALEKIT_ENVIRONMENT_URL={emulator.url}\nSCALEKIT_CLIENT_ID={emulator.client_id}\n"
        f"SCALEKIT_CLIENT_SECRET={emulator.client_secret}\n"
    )
    os.chmod(state / ".env", 0o600)
    (state / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess"}}')
    emulator.seed("gmail_u3134a", "mess", access_token="from-the-state-folder")
    skill = ship_to(Path(env["HOME"]).parent / "skill")
    done = subprocess.run(
        [sys.executable, str(skill / "get_token.py"), "gmail"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "from-the-state-folder\n"), done.stderr


def test_connections_saved_before_openclaw_survive_its_install_and_migrate_moves_them(home, tmp_path):
    user_home, env = home
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    done = run(skill, "config", "gmail", "gmail_u3134a", "--offline", env=env)
    assert done.returncode == 0, done.stderr
    config = user_home / ".config" / "scalekit-auth"
    (config / ".env").write_text("SCALEKIT_CLIENT_ID=from-before\n")
    os.chmod(config / ".env", 0o600)
    before = {name: (config / name).read_bytes() for name in (".env", "connections.json")}

    (user_home / ".openclaw").mkdir()  # OpenClaw is installed
    listed = run(skill, "list", "--json", env=env)
    assert [row["service"] for row in json.loads(listed.stdout)] == ["gmail"], listed.stdout + listed.stderr
    openclaw = user_home / ".openclaw" / "scalekit-auth"
    doctor = run(skill, "doctor", env=env)
    assert f"ok    state folder: {config} (your config folder, in use since before OpenClaw" in doctor.stdout, (
        doctor.stdout
    )
    assert f"warn  state folder: {openclaw} holds no files yet" in doctor.stdout, doctor.stdout
    assert f"scalekit-auth migrate (moves them to {openclaw})" in doctor.stdout
    assert f"ok    .env: {config / '.env'}" in doctor.stdout  # the .env in use is the one checked

    moved = run(skill, "migrate", env=env)
    assert moved.returncode == 0, moved.stderr
    for name, data in before.items():
        assert (openclaw / name).read_bytes() == data
        assert not (config / name).exists()
        assert f"moved {config / name} -> {openclaw / name}" in moved.stdout + moved.stderr
    assert (openclaw / ".env").stat().st_mode & 0o777 == 0o600
    assert openclaw.stat().st_mode & 0o777 == 0o700
    assert not [p.name for p in openclaw.parent.iterdir() if p.name.endswith(".tmp")]  # no staging folder left
    listed = run(skill, "list", "--json", env=env)
    assert [row["service"] for row in json.loads(listed.stdout)] == ["gmail"], listed.stderr
    doctor = run(skill, "doctor", env=env)
    assert f"ok    state folder: {openclaw} (OpenClaw's state folder)" in doctor.stdout, doctor.stdout
    assert "warn  state folder" not in doctor.stdout, doctor.stdout
    again = run(skill, "migrate", env=env)
    assert again.returncode == 0 and "Nothing to move" in again.stdout + again.stderr


def test_migrate_never_replaces_a_folder_openclaw_already_has(tmp_path):
    from scalekit_auth.errors import ConfigurationError
    from scalekit_auth.migrate import move_folder

    old, new = tmp_path / "cfg" / "scalekit-auth", tmp_path / "oc" / "scalekit-auth"
    old.mkdir(parents=True)
    (old / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}\n')
    new.mkdir(parents=True)
    (new / "notes.txt").write_text("someone's\n")
    with pytest.raises(ConfigurationError, match="Not moving"):
        move_folder(old, new)
    assert (old / "connections.json").exists() and (new / "notes.txt").exists()
    assert not (new / "connections.json").exists()
    assert sorted(p.name for p in new.parent.iterdir()) == ["scalekit-auth"]  # no staging folder left


def test_doctor_names_config_folder_files_openclaws_folder_hides(home, tmp_path):
    user_home, env = home
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    config, openclaw = user_home / ".config" / "scalekit-auth", user_home / ".openclaw" / "scalekit-auth"
    for folder in (config, openclaw):
        folder.mkdir(parents=True)
        (folder / "connections.json").write_text("{}\n")
    doctor = run(skill, "doctor", env=env)
    assert f"ok    state folder: {openclaw} (OpenClaw's state folder)" in doctor.stdout, doctor.stdout
    assert f"warn  state folder: {config / 'connections.json'} is not read" in doctor.stdout, doctor.stdout


# -- the original layout, and moving out of it ----------------------------------------------------


def _legacy_skill(tmp_path: Path) -> Path:
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    (skill / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}\n')
    (skill / ".env").write_text("SCALEKIT_CLIENT_ID=legacy-id\n")
    os.chmod(skill / ".env", 0o600)
    os.chmod(skill / "connections.json", 0o640)
    return skill


def test_the_original_layout_keeps_working_and_doctor_says_how_to_move(home, tmp_path):
    _, env = home
    skill = _legacy_skill(tmp_path)
    listed = run(skill, "list", "--json", env=env)
    assert [row["service"] for row in json.loads(listed.stdout)] == ["gmail"], listed.stderr
    doctor = run(skill, "doctor", env=env)
    assert f"warn  state folder: {skill / '.env'} and {skill / 'connections.json'} still in the skill folder" in (
        doctor.stdout
    ), doctor.stdout
    assert "scalekit-auth migrate" in doctor.stdout
    assert f"ok    connections.json: {skill / 'connections.json'}" in doctor.stdout


def test_migrate_moves_the_files_and_keeps_their_modes(home, tmp_path):
    user_home, env = home
    skill = _legacy_skill(tmp_path)
    before = {name: (skill / name).read_bytes() for name in (".env", "connections.json")}
    done = run(skill, "migrate", env=env)
    assert done.returncode == 0, done.stderr
    state = user_home / ".config" / "scalekit-auth"
    for name, data in before.items():
        assert (state / name).read_bytes() == data
        assert not (skill / name).exists()
        assert f"moved {skill / name} -> {state / name}" in done.stdout + done.stderr
    assert (state / ".env").stat().st_mode & 0o777 == 0o600
    assert (state / "connections.json").stat().st_mode & 0o777 == 0o640
    assert not [p.name for p in state.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind
    listed = run(skill, "list", "--json", env=env)
    assert [row["service"] for row in json.loads(listed.stdout)] == ["gmail"], listed.stderr
    doctor = run(skill, "doctor", env=env)
    assert f"ok    state folder: {state}" in doctor.stdout, doctor.stdout
    again = run(skill, "migrate", env=env)
    assert again.returncode == 0 and "Nothing to move" in again.stdout + again.stderr


def test_migrate_never_overwrites_a_different_file(home, tmp_path):
    user_home, env = home
    skill = _legacy_skill(tmp_path)
    state = user_home / ".config" / "scalekit-auth"
    state.mkdir(parents=True)
    (state / "connections.json").write_text('{"slack": {"connection_name": "slack_x"}}\n')
    done = run(skill, "migrate", env=env)
    assert done.returncode == 3, done.stderr
    assert "Not moving" in done.stderr and "Traceback" not in done.stderr
    assert json.loads((state / "connections.json").read_text()) == {"slack": {"connection_name": "slack_x"}}
    assert (skill / "connections.json").exists() and (skill / ".env").exists()
