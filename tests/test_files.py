"""Files: a crash mid-write loses nothing, writes keep the mode, a readable .env is warned about once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from scalekit_auth import connections
from scalekit_auth.broker import TokenBroker

from .helpers import ROOT

# Every file object opened for writing writes half, flushes, says so, and stalls: whatever
# the implementation, a kill -9 then lands in the middle of a write.
STALLING_WRITER = """
import builtins, io, os, sys, time
from pathlib import Path

class Stall:
    def __init__(self, fh):
        self._fh = fh
    def write(self, text):
        half = len(text) // 2
        self._fh.write(text[:half]); self._fh.flush()
        print("mid-write", flush=True)
        time.sleep(60)
        return self._fh.write(text[half:])
    def __getattr__(self, name):
        return getattr(self._fh, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)

real_open, real_fdopen = builtins.open, os.fdopen
def stalling_open(file, mode="r", *args, **kwargs):
    fh = real_open(file, mode, *args, **kwargs)
    return Stall(fh) if any(m in mode for m in "wax+") else fh
def stalling_fdopen(fd, mode="r", *args, **kwargs):
    fh = real_fdopen(fd, mode, *args, **kwargs)
    return Stall(fh) if any(m in mode for m in "wax+") else fh
builtins.open = io.open = stalling_open
os.fdopen = stalling_fdopen

from scalekit_auth import connections
connections.save(Path(sys.argv[1]), "slack", "slack_new")
"""


def test_kill_9_during_a_write_leaves_the_previous_content(tmp_path):
    path = tmp_path / "connections.json"
    original = json.dumps({"gmail": {"connection_name": "gmail_u3134a", "note": "x" * 5000}}, indent=2) + "\n"
    path.write_text(original)
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLING_WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "mid-write"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert path.read_text() == original
    # the lock died with the process: the next write goes through at once
    change = connections.save(path, "slack", "slack_x7y9z")
    assert change.after.connection_name == "slack_x7y9z"
    assert set(json.loads(path.read_text())) == {"gmail", "slack"}


def test_writes_keep_the_file_mode(tmp_path):
    path = tmp_path / "connections.json"
    path.write_text("{}")
    for mode in (0o600, 0o640, 0o644):
        os.chmod(path, mode)
        connections.save(path, "gmail", f"gmail_{mode:o}")
        assert path.stat().st_mode & 0o777 == mode


def test_a_readable_env_file_is_warned_about_once(skill, emulator, capsys):
    env_file = skill.path / ".env"
    env_file.write_text(
        f"SCALEKIT_ENV_URL={emulator.url}\nSCALEKIT_CLIENT_ID={emulator.client_id}\n"
        f"SCALEKIT_CLIENT_SECRET={emulator.client_secret}\n"
    )
    os.chmod(env_file, 0o644)
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent")
    broker = TokenBroker()
    for _ in range(5):
        broker.get_token("gmail", force_refresh=True)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert f"chmod 600 {env_file}" in err and "mode 644" in err
    assert emulator.client_secret not in err
    os.chmod(env_file, 0o600)
    broker.close()
    quiet = TokenBroker()
    quiet.get_token("gmail")
    assert "warning" not in capsys.readouterr().err
    quiet.close()


def test_a_private_env_file_from_the_shell_is_silent_and_a_readable_one_warns(skill, emulator):
    env_file = skill.path / ".env"
    env_file.write_text(
        f"SCALEKIT_ENV_URL={emulator.url}\nSCALEKIT_CLIENT_ID={emulator.client_id}\n"
        f"SCALEKIT_CLIENT_SECRET={emulator.client_secret}\n"
    )
    skill.configure("gmail", "gmail_u3134a")
    emulator.seed("gmail_u3134a", "agent", access_token="t1")
    os.chmod(env_file, 0o600)
    assert skill.run("gmail").stderr == ""
    os.chmod(env_file, 0o604)
    proc = skill.run("gmail")
    assert proc.returncode == 0 and proc.stdout == "t1\n"
    assert "readable by other users (mode 604)" in proc.stderr


# -- files that are not what they seem ---------------------------------------------------------

import pytest  # noqa: E402

from .helpers import run_script  # noqa: E402


def _make(kind: str, path):
    """Put something that is not a regular, readable file at `path`."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "dangling-symlink-loop":
        os.symlink(path, path)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "dangling-symlink-loop"])
@pytest.mark.parametrize("which", ["connections.json", ".env", "IDENTITY.md"])
def test_a_file_that_is_not_a_regular_file_is_named_not_read(skill, emulator, kind, which):
    """A FIFO would block, /dev/zero would fill memory, a directory gives a misleading error."""
    skill.use(emulator)
    if which != "connections.json":
        skill.configure("gmail", "gmail_u3134a", "mess" if which == ".env" else None)
    if which == ".env":
        for name in ("SCALEKIT_ENV_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET"):
            skill.monkeypatch.delenv(name)
    target = {"connections.json": skill.connections_file, ".env": skill.path / ".env"}.get(which, skill.identity_file)
    _make(kind, target)
    proc = run_script("get_token.py", "gmail", timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(target) in proc.stderr, proc.stderr
    assert "not a regular file" in proc.stderr or "symbolic links" in proc.stderr, proc.stderr


@pytest.mark.system
def test_an_unreadable_file_says_so(skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    os.chmod(skill.connections_file, 0)
    # nobody must be able to import the package: this checkout may sit in a private folder (mktemp -d)
    readable = Path(tempfile.mkdtemp(prefix="ska-pkg-", dir="/tmp"))
    os.chmod(readable, 0o755)
    shutil.copytree(ROOT / "scalekit_auth", readable / "scalekit_auth", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(  # as nobody: root reads anything
        ["/usr/bin/python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from scalekit_auth import connections; from pathlib import Path; "
         "import scalekit_auth.errors as e\n"
         "try:\n    connections.read_raw(Path(sys.argv[2]))\nexcept e.ConfigurationError as err:\n    print(err)",
         str(readable), str(skill.connections_file)],
        capture_output=True, text=True, timeout=120, user=65534, group=65534, cwd="/",
    ) if os.getuid() == 0 else None  # fmt: skip
    shutil.rmtree(readable, ignore_errors=True)
    if proc is None:
        pytest.skip("needs root to run as another user")
    assert "permission denied" in proc.stdout.lower(), proc.stdout + proc.stderr
    assert str(skill.connections_file) in proc.stdout


def test_config_through_a_symlink_updates_the_target(skill, tmp_path):
    real = tmp_path / "dotfiles" / "connections.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"slack": {"connection_name": "slack_x7y9z"}}))
    skill.connections_file.symlink_to(real)
    proc = run_script("scalekit-auth", "config", "gmail", "gmail_u3134a", "--offline", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert skill.connections_file.is_symlink()
    assert set(json.loads(real.read_text())) == {"slack", "gmail"}


@pytest.mark.skipif(os.getuid() != 0, reason="needs root for a read-only bind mount (CI runs as root)")
def test_config_in_a_read_only_folder_says_why(skill):
    skill.configure("slack", "slack_x7y9z")
    subprocess.run(["mount", "--bind", str(skill.path), str(skill.path)], check=True, timeout=60)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(skill.path)], check=True, timeout=60)
        proc = run_script("scalekit-auth", "config", "gmail", "gmail_u3134a", "--offline", timeout=120)
    finally:
        subprocess.run(["umount", str(skill.path)], check=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Cannot write" in proc.stderr and "read-only" in proc.stderr, proc.stderr
    assert set(json.loads(skill.connections_file.read_text())) == {"slack"}
