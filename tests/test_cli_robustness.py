"""No traceback, no hang, the exit code a shell user expects: on the normal path and through the agent.

Each case runs twice: with a warm token agent (the fast path, standard library only) and
without one (SCALEKIT_AUTH_AGENT=0, everything in-process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .helpers import ROOT, popen_as_in_a_terminal

LOOKUP = "rpc.GetConnectedAccountAuth"


@pytest.fixture(params=["agent", "in-process"])
def mode(request, skill, emulator):
    skill.use(emulator)
    skill.configure("gmail", "gmail_u3134a", "mess")
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token")
    env = {}
    if request.param == "agent":
        skill.monkeypatch.delenv("SCALEKIT_AUTH_AGENT")  # this mode is about the agent
        started = subprocess.run(
            [sys.executable, str(ROOT / "scalekit-auth"), "agent", "start"], capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr
    else:
        env["SCALEKIT_AUTH_AGENT"] = "0"
    return {**os.environ, **env}


def run(env, *args: str, shell_redirect: str = "", **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "scalekit-auth"), *args]
    if shell_redirect:  # e.g. '>&-' to start it with stdout closed
        command = ["/bin/sh", "-c", '"$@" ' + shell_redirect, "sh", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, **kwargs)


def clean(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "gmail-token" not in proc.stderr


def test_stdout_closed(mode):
    proc = subprocess.run(
        ["/bin/sh", "-c", f'"{sys.executable}" "{ROOT / "get_token.py"}" gmail >&-'],
        capture_output=True, text=True, timeout=120, env=mode,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    clean(proc)
    assert "stdout" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_stdout_full(mode):
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "get_token.py"), "gmail"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, env=mode,
        )  # fmt: skip
    assert proc.returncode == 1
    clean(proc)
    assert "cannot write to stdout" in proc.stderr and "No space left" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_reader_went_away(mode):
    """The pipe's reader is gone before the token is written (`get_token.py gmail | head -c0`)."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "get_token.py"), "gmail"],
            stdout=write_fd, stderr=subprocess.PIPE, text=True, timeout=120, env=mode,
        )  # fmt: skip
    finally:
        os.close(write_fd)
    assert proc.returncode == 1
    clean(proc)
    assert proc.stderr == "", proc.stderr  # like any Unix filter: quiet on a closed pipe


@pytest.mark.parametrize(
    ("command", "code", "phrase"),
    [
        (["/nonexistent/tool"], 127, "not found"),
        (["no-such-command-anywhere"], 127, "not found"),
        (["/etc"], 126, "cannot run"),
        (["/etc/hostname"], 126, "cannot run"),
        (["x" * 300], 126, "too long"),  # a name longer than any file system allows
    ],
)
def test_exec_of_a_command_that_cannot_run(mode, command, code, phrase):
    proc = run(mode, "exec", "gmail", "--", *command)
    assert proc.returncode == code, proc.stderr
    clean(proc)
    assert phrase in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_exec_without_a_command_is_a_usage_error(mode):
    proc = run(mode, "exec", "gmail", "--")
    assert proc.returncode == 2, proc.stderr
    clean(proc)


def test_ctrl_c_while_waiting_for_scalekit(mode, emulator):
    emulator.seed("gmail_u3134a", "mess", access_token="gmail-token-2")  # a fresh lookup is needed
    if mode.get("SCALEKIT_AUTH_AGENT") != "0":
        subprocess.run([sys.executable, str(ROOT / "scalekit-auth"), "agent", "stop"], timeout=120, env=mode)
        subprocess.run([sys.executable, str(ROOT / "scalekit-auth"), "agent", "start"], timeout=120, env=mode)
    emulator.set_latency(600)  # held at Scalekit until the test ends
    before = emulator.counters().get(LOOKUP, 0) + emulator.counters().get("oauth_token", 0)
    proc = popen_as_in_a_terminal(
        [sys.executable, str(ROOT / "get_token.py"), "gmail"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mode,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while emulator.counters().get(LOOKUP, 0) + emulator.counters().get("oauth_token", 0) == before:
        assert time.monotonic() < deadline and proc.poll() is None, "the call never reached Scalekit"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        emulator.set_latency(0)
    assert proc.returncode == 130, err
    assert out == "" and "interrupted" in err and "Traceback" not in err, err
