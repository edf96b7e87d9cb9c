"""`scalekit-auth migrate` is crash-safe and final.

Crash-safe: a `kill -9` at the worst moment (the copy of .env written, not yet in place) leaves
no copy of the secret outside the folders that held it (Linux: the copy has no name until it is
complete), or, where unnamed files are not available, one 0600 file with migrate's own name in
the state folder that the next `migrate` removes; the next `migrate` then completes the move.

Final: a file migrate copied but could not delete (a read-only skill folder) is never read
again: not its settings, not its connections, not by doctor; a second `migrate` has nothing to do.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import run_script, ship_to


def run(skill: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_script(skill / "scalekit-auth", *args, env=env, inherit=False)


@pytest.fixture
def home(tmp_path):
    """A user's home, and a clean environment for child processes run as that user."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    env["SCALEKIT_AUTH_AGENT"] = "0"
    (tmp_path / "run").mkdir(mode=0o700)
    for name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SCALEKIT_EMULATOR_CA_DIR"):
        env[name] = os.environ[name]
    return home, env


def _legacy_skill(tmp_path: Path, secret: str) -> Path:
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    (skill / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}\n')
    (skill / ".env").write_text(
        f"SCALEKIT_ENV_URL=https://acme.scalekit.com\nSCALEKIT_CLIENT_ID=legacy-id\nSCALEKIT_CLIENT_SECRET={secret}\n"
    )
    os.chmod(skill / ".env", 0o600)
    return skill


def _holding(root: Path, secret: str) -> list[Path]:
    """Every file under root whose bytes contain the secret."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
                found.append(path)
    return sorted(found)


@contextmanager
def read_only(folder: Path):
    """folder cannot be written (nor files in it deleted) for the duration; as root, a read-only bind mount."""
    if os.getuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, timeout=60)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, timeout=60)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True, timeout=60)
    else:
        os.chmod(folder, 0o500)
        try:
            yield
        finally:
            os.chmod(folder, 0o700)


# -- final: a file left behind is never read again -------------------------------------------------


def test_a_file_migrate_could_not_delete_is_never_read_again(home, tmp_path):
    user_home, env = home
    secret = f"legacy-secret-{uuid.uuid4().hex}"
    skill = _legacy_skill(tmp_path, secret)
    state = user_home / ".config" / "scalekit-auth"
    with read_only(skill):
        done = run(skill, "migrate", env=env)
        assert done.returncode == 0, done.stderr
        assert "could not be removed (read-only folder) and is no longer read" in done.stdout + done.stderr
        assert (skill / ".env").exists()  # still there: the folder is read-only

        # the user drops the secret from the new .env: it must not come back from the old one
        (state / ".env").write_text("SCALEKIT_ENV_URL=https://acme.scalekit.com\nSCALEKIT_CLIENT_ID=new-id\n")
        doctor = run(skill, "doctor", env=env)
        assert f".env: {skill / '.env'}" not in doctor.stdout, doctor.stdout
        assert "still in the skill folder" not in doctor.stdout, doctor.stdout
        assert "SCALEKIT_CLIENT_SECRET not set" in doctor.stdout, doctor.stdout
        assert f"{skill / '.env'} and {skill / 'connections.json'} moved to {state} by migrate" in doctor.stdout
        token = run(skill, "token", "gmail", env=env)
        assert token.returncode == 3 and "SCALEKIT_CLIENT_SECRET" in token.stderr, token.stderr

        # ... and a deleted connections.json does not come back from the old one either
        (state / "connections.json").unlink()
        listed = run(skill, "list", "--json", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout + listed.stderr

        again = run(skill, "migrate", env=env)
        assert again.returncode == 0, again.stderr
        assert "Nothing to move" in again.stdout + again.stderr and "earlier migrate" in again.stdout + again.stderr
    assert not (state / "connections.json").exists()  # nothing copied back


# -- crash-safe: kill -9 with the copy written but not yet in place ---------------------------------

#: `scalekit-auth migrate`, pausing (for the test's SIGKILL) at the link/rename that would give the
#: file named argv[4] its place; it first tells the test, on the pipe argv[2], the path it links from.
PAUSED_MIGRATE = r"""
import os, signal, sys
skill, ready, mode, pause_on = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path.insert(0, skill)
if mode == "named" and hasattr(os, "O_TMPFILE"):
    del os.O_TMPFILE  # as on a system without unnamed files
def pausing(real):
    def call(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == pause_on:
            os.write(ready, (os.fspath(src) + "\n").encode())
            while True:
                signal.pause()
        return real(src, dst, *args, **kwargs)
    return call
os.link, os.rename = pausing(os.link), pausing(os.rename)
from scalekit_auth.cli import main
sys.exit(main(["migrate"]))
"""


def _kill_when_paused(skill: Path, env: dict[str, str], mode: str, pause_on: str) -> str:
    """Run migrate until it is about to put `pause_on` in place, SIGKILL it there; the path it linked from."""
    ready, tell = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_MIGRATE, str(skill), str(tell), mode, pause_on],
        env=env,
        pass_fds=(tell,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(tell)
    try:
        said = b""
        while not said.endswith(b"\n"):
            # a guard against a hang, not a pace: the child writes as soon as it gets there, or exits (EOF)
            assert select.select([ready], [], [], 120)[0], "migrate never reached the pause"
            chunk = os.read(ready, 4096)
            if not chunk:
                out, err = proc.communicate(timeout=60)
                pytest.fail(f"migrate ended before the pause: {proc.returncode} {out!r} {err!r}")
            said += chunk
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        os.close(ready)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return said.decode().strip()


@pytest.mark.parametrize("mode", ["unnamed", "named"])
def test_kill_9_while_moving_the_env_file_leaves_no_copy_behind(home, tmp_path, mode):
    user_home, env = home
    secret = f"crash-secret-{uuid.uuid4().hex}"
    skill = _legacy_skill(tmp_path, secret)
    state = user_home / ".config" / "scalekit-auth"

    linked_from = _kill_when_paused(skill, env, mode, ".env")
    if mode == "unnamed":  # Linux: the copy had no name; with the process gone, it is gone
        assert linked_from.startswith("/proc/self/fd/"), linked_from
        assert _holding(tmp_path, secret) == [skill / ".env"]
    else:  # a named copy: in the state folder only, private from its creation, with migrate's own name
        leftover = Path(linked_from)
        assert leftover.parent == state and leftover.name.startswith(".scalekit-migrate-"), leftover
        assert leftover.stat().st_mode & 0o777 == 0o600
        assert _holding(tmp_path, secret) == sorted([skill / ".env", leftover])
        doctor = run(skill, "doctor", env=env)
        assert f"{leftover} left by an interrupted migrate" in doctor.stdout, doctor.stdout

    done = run(skill, "migrate", env=env)
    assert done.returncode == 0, done.stderr
    if mode == "named":
        assert f"removed {linked_from} (left by an interrupted migrate)" in done.stdout + done.stderr
    assert f"moved {skill / '.env'} -> {state / '.env'}" in done.stdout + done.stderr
    assert _holding(tmp_path, secret) == [state / ".env"]  # the one copy in use, nothing else
    assert (state / ".env").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in state.iterdir() if not p.name.endswith(".lock")) == [".env", "connections.json"]
    again = run(skill, "migrate", env=env)
    assert again.returncode == 0 and "Nothing to move" in again.stdout + again.stderr


def test_kill_9_while_moving_the_config_folder_into_openclaws_leaves_no_staging_folder(home, tmp_path):
    user_home, env = home
    secret = f"crash-secret-{uuid.uuid4().hex}"
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    config = user_home / ".config" / "scalekit-auth"
    config.mkdir(parents=True, mode=0o700)
    (config / ".env").write_text(f"SCALEKIT_CLIENT_SECRET={secret}\n")
    os.chmod(config / ".env", 0o600)
    (config / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}\n')
    (user_home / ".openclaw").mkdir()  # OpenClaw is installed: migrate moves the folder there
    openclaw = user_home / ".openclaw" / "scalekit-auth"

    staging = Path(_kill_when_paused(skill, env, "unnamed", "scalekit-auth"))
    assert staging.parent == openclaw.parent and staging.name.startswith(".scalekit-migrate-"), staging
    assert staging.stat().st_mode & 0o777 == 0o700  # the staging folder is private from its creation

    done = run(skill, "migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert f"removed {staging} (left by an interrupted migrate)" in done.stdout + done.stderr
    assert _holding(tmp_path, secret) == [openclaw / ".env"]
    assert sorted(p.name for p in openclaw.parent.iterdir()) == ["scalekit-auth"]


def test_leftovers_of_earlier_versions_are_removed(home, tmp_path):
    """Before this fix a crash left `..env.XXXXXXXX.tmp` (mkstemp's name) in the state folder."""
    user_home, env = home
    secret = f"old-secret-{uuid.uuid4().hex}"
    skill = _legacy_skill(tmp_path, secret)
    state = user_home / ".config" / "scalekit-auth"
    state.mkdir(parents=True, mode=0o700)
    old = state / "..env.k3j2h1g0.tmp"
    old.write_text(f"SCALEKIT_CLIENT_SECRET={secret}\n")
    kept = state / "notes.tmp"  # not migrate's: left alone
    kept.write_text("mine\n")
    done = run(skill, "migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert not old.exists() and kept.exists()
    assert _holding(tmp_path, secret) == [state / ".env"]


# -- the record: by place and content ------------------------------------------------------------


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    """A skill folder in the original layout (in process: this package's folder is pretended to be it)."""
    from scalekit_auth import paths

    skill = tmp_path / "skill"
    skill.mkdir()
    (skill / "SKILL.md").write_text("---\nname: x\n---\n")
    (skill / ".env").write_text("SCALEKIT_CLIENT_SECRET=old\n")
    (skill / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}\n')
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", str(skill))
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    state = Path(paths.state_dir(env))
    state.mkdir(parents=True)
    (state / ".env").write_text("SCALEKIT_CLIENT_ID=new\n")
    return skill, state, env


def test_a_moved_file_is_recognised_by_place_and_content_not_inode(legacy):
    from scalekit_auth import config, migrate, paths

    skill, state, env = legacy
    old_env = str(skill / ".env")
    assert old_env in paths.legacy_files(env)
    migrate._record_migrated(state, [skill / ".env"])
    assert paths.legacy_files(env) == [str(skill / "connections.json")]
    assert paths.migrated_leftovers(env) == [old_env]
    assert [str(p) for p in config.env_files(state, env)] == [str(state / ".env")]
    assert not migrate.leftovers(state)  # the record was written without leaving a temporary file

    # the same bytes in a new inode with a new mtime (a remount, a container restart, `cp`): still moved
    before = os.stat(old_env)
    copy = skill / "copy"
    copy.write_bytes((skill / ".env").read_bytes())
    os.replace(copy, skill / ".env")
    os.utime(skill / ".env", ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert os.stat(old_env).st_ino != before.st_ino
    assert old_env not in paths.legacy_files(env)

    # different bytes: a file migrate never saw, read (and reported) again
    (skill / ".env").write_text("SCALEKIT_CLIENT_SECRET=changed\n")
    assert old_env in paths.legacy_files(env)
    # the same bytes at another place are not this record
    other = skill.parent / "elsewhere"
    other.mkdir()
    (other / ".env").write_text("SCALEKIT_CLIENT_SECRET=old\n")
    assert not paths.recorded(str(other / ".env"), paths.migration_records(str(state)))


def test_the_record_survives_odd_paths_and_ignores_garbage(tmp_path):
    from scalekit_auth import migrate, paths

    state = tmp_path / "state"
    state.mkdir()
    odd = tmp_path / "a\tb\nc%09d"
    odd.mkdir()
    (odd / ".env").write_text("X=1\n")
    (state / paths.MIGRATED_FILE).write_text("garbage\nsha256:zz\t1\t/x\n\n")
    migrate._record_migrated(state, [odd / ".env"])
    assert paths.recorded(str(odd / ".env"), paths.migration_records(str(state)))
    assert len(paths.migration_records(str(state))) == 1
    (state / paths.MIGRATED_FILE).unlink()
    os.mkfifo(state / paths.MIGRATED_FILE)  # never waited on
    assert paths.migration_records(str(state)) == frozenset()
