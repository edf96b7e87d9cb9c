"""`scalekit-auth migrate` is crash-safe.

Crash-safe: a `kill -9` at the worst moment (the copy of .env written, not yet in place) leaves
no copy of the secret outside the folders that held it (Linux: the copy has no name until it is
complete), or, where unnamed files are not available, one 0600 file with migrate's own name in
the state folder that the next `migrate` removes; the next `migrate` then completes the move.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import run_script, ship_to


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
