"""Files: a crash mid-write loses nothing, writes keep the mode, a readable .env is warned about once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from scalekit_auth import connections
from scalekit_auth.broker import TokenBroker

from .conftest import ROOT

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
