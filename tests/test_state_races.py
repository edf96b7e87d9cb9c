"""Regressions found by attacking the state folder, the identity and the first-run install.

Each test here failed before its fix: the agent answering for another agent's identity, a
`config` lost to a concurrent `migrate`, `migrate` deleting a file that was not the same,
hanging on a FIFO, a loose umask locking users out of their private environment, a broken
~/.openclaw/.env stopping calls that did not need it, and a long-lived process not noticing
~/.openclaw appear.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from scalekit_auth import bootstrap, migrate, paths
from scalekit_auth.broker import TokenBroker
from scalekit_auth.errors import ConfigurationError

from .helpers import ROOT, run_script


def _run(args, env, cwd):
    return run_script("scalekit-auth", *args, env=env, cwd=cwd, inherit=False)


def test_the_agent_never_answers_with_another_agents_identity(tmp_path, emulator):
    home = tmp_path / "home"
    alice_ws, bob_ws = home / ".openclaw" / "workspace", home / ".openclaw" / "workspace-bob"
    for ws, name in ((alice_ws, "alice"), (bob_ws, "bob")):
        ws.mkdir(parents=True)
        (ws / "IDENTITY.md").write_text(f"- **Name:** {name}\n")
    state = home / ".openclaw" / "scalekit-auth"
    state.mkdir()
    (state / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}')
    emulator.seed("gmail_u3134a", "alice", access_token="ALICE-TOKEN")
    emulator.seed("gmail_u3134a", "bob", access_token="BOB-TOKEN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "OPENCLAW_"))}
    runtime = tempfile.mkdtemp(prefix="ska-", dir="/tmp")  # short: Unix socket paths are limited
    env.update(HOME=str(home), OPENCLAW_SHELL="exec", XDG_RUNTIME_DIR=runtime)
    env.update(emulator.env)
    try:
        started = _run(["agent", "start"], env, alice_ws)  # started from alice's workspace
        assert started.returncode == 0, started.stderr
        assert _run(["token", "gmail"], env, alice_ws).stdout == "ALICE-TOKEN\n"
        assert _run(["token", "gmail"], env, bob_ws).stdout == "BOB-TOKEN\n"
    finally:
        _run(["agent", "stop"], env, alice_ws)
        shutil.rmtree(runtime, ignore_errors=True)


def test_an_identity_file_outside_openclaws_folders_is_not_trusted(tmp_path):
    home, repo = tmp_path / "home", tmp_path / "cloned-repo"
    (home / ".openclaw" / "workspace").mkdir(parents=True)
    (home / ".openclaw" / "workspace" / "IDENTITY.md").write_text("- Name: alice\n")
    repo.mkdir()
    (repo / "IDENTITY.md").write_text("- Name: ceo\n")
    code = "from scalekit_auth import identity; print(identity.agent_name()[0])"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "OPENCLAW_SHELL": "exec", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "alice", out.stderr


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    """A skill folder in the original layout (connections.json beside SKILL.md), and its state folder."""
    skill = tmp_path / "skill"
    skill.mkdir()
    (skill / "SKILL.md").write_text("---\nname: x\n---\n")
    (skill / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}\n')
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", str(skill))
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    return skill, Path(paths.state_dir(env)), env


def test_a_config_waiting_for_migrate_writes_where_the_file_went(legacy):
    skill, state, env = legacy
    broker = TokenBroker(environ=env)
    assert broker.connections_file == skill / "connections.json"
    import filelock

    held = filelock.FileLock(str(skill / ".connections.json.lock"))
    held.acquire()  # as `migrate` does, before moving the file
    result = {}
    writer = threading.Thread(target=lambda: result.update(change=broker.configure_connection("slack", "slack_x")))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while not (skill / ".connections.json.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        state.mkdir(parents=True)  # the move itself, done while the lock is held
        migrate._copy_into_place(skill / "connections.json", state / "connections.json")
        (skill / "connections.json").unlink()
    finally:
        held.release()
    writer.join(60)
    assert json.loads((state / "connections.json").read_text()) == {
        "gmail": {"connection_name": "gmail_u3134a"},
        "slack": {"connection_name": "slack_x"},
    }
    assert not (skill / "connections.json").exists()


def test_migrate_rechecks_under_the_lock_and_never_deletes_a_different_file(legacy, monkeypatch):
    skill, state, _ = legacy
    state.mkdir(parents=True)
    from scalekit_auth import connections

    original = connections.write_lock

    def lock_then_config_writes(path):
        held = original(path)
        if path.parent == state and not (state / "connections.json").exists():
            (state / "connections.json").write_text('{"slack": {"connection_name": "slack_x"}}\n')
        return held

    monkeypatch.setattr(connections, "write_lock", lock_then_config_writes)
    with pytest.raises(ConfigurationError, match="Not moving"):
        migrate.move_state(skill, state)
    assert (skill / "connections.json").exists()  # the user's file is still there


def test_migrate_does_not_hang_on_a_fifo_in_the_state_folder(legacy):
    skill, state, env = legacy
    state.mkdir(parents=True)
    os.mkfifo(state / "connections.json")
    with pytest.raises(ConfigurationError, match="Not moving"):
        migrate.move_state(skill, state)


def test_a_legacy_connections_file_is_still_read_when_the_state_folder_has_only_env(legacy):
    skill, state, env = legacy
    state.mkdir(parents=True)
    (state / ".env").write_text("SCALEKIT_TIMEOUT=5\n")
    broker = TokenBroker(environ=env)
    assert list(broker.connections()) == ["gmail"]
    assert paths.legacy_files(env) == [str(skill / "connections.json")]


def test_a_long_lived_process_follows_openclaw_appearing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    broker = TokenBroker(environ={"HOME": str(home)})
    assert broker.directory == home / ".config" / "scalekit-auth"
    (home / ".openclaw" / "scalekit-auth").mkdir(parents=True)
    assert broker.directory == home / ".openclaw" / "scalekit-auth"


def test_a_broken_openclaw_env_file_does_not_stop_calls_that_do_not_need_it(tmp_path, emulator):
    home = tmp_path / "home"
    (home / ".openclaw" / "scalekit-auth").mkdir(parents=True)
    os.mkfifo(home / ".openclaw" / ".env")
    (home / ".openclaw" / "scalekit-auth" / "connections.json").write_text(
        '{"gmail": {"connection_name": "gmail_u3134a"}}'
    )
    emulator.seed("gmail_u3134a", "agent", access_token="still-works")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "SCALEKIT_AUTH_AGENT": "0", **emulator.env}
    done = _run(["token", "gmail"], env, tmp_path)
    assert (done.returncode, done.stdout) == (0, "still-works\n"), done.stderr


def test_a_loose_umask_does_not_lock_the_user_out_of_the_private_environment(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    folder = Path(bootstrap.private_env(env))
    folder.mkdir(mode=0o775)
    os.chmod(folder, 0o775)  # what `python -m venv` leaves with umask 002
    assert bootstrap.private_env(env) == str(folder)
    assert folder.stat().st_mode & 0o777 == 0o700


def test_each_requirements_version_gets_its_own_environment(tmp_path, monkeypatch):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = bootstrap.env_dir(env)
    other = tmp_path / "requirements.txt"
    other.write_text(Path(bootstrap.REQUIREMENTS).read_text() + "# another version\n")
    monkeypatch.setattr(bootstrap, "REQUIREMENTS", str(other))
    assert bootstrap.env_dir(env) != first
    assert Path(bootstrap.env_dir(env)).parent == Path(first).parent


def test_doctor_reports_the_most_pressing_failure_not_the_first(skill):
    skill.connections_file.write_text("[1, 2]")  # a configuration problem (3)...
    port_holder = __import__("socket").socket()
    port_holder.bind(("127.0.0.1", 0))
    port = port_holder.getsockname()[1]  # ...and no route to Scalekit (5), which doctor checks first
    try:
        done = _run(
            ["doctor"],
            {
                **os.environ,
                "SCALEKIT_ENV_URL": f"https://127.0.0.1:{port}",
                "SCALEKIT_CLIENT_ID": "i",
                "SCALEKIT_CLIENT_SECRET": "s",
            },
            ROOT,
        )
    finally:
        port_holder.close()
    assert "fail  network:" in done.stdout and "fail  connections.json:" in done.stdout
    assert done.returncode == 3, done.stdout
