"""Shared fixtures: a running emulator per test, and an isolated skill folder (plain helpers: helpers.py).

gRPC reads its trusted roots once per process, so every emulator in the test run
shares one CA, and the CA variables are set before any test makes a channel.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time

import pytest

from .helpers import ROOT, Skill, StandIn, agent_processes, stop_agents, wait_for_agents_to_exit

sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import CertificateAuthority, Emulator  # noqa: E402

_CA = CertificateAuthority.shared()
for _name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
    os.environ[_name] = str(_CA.bundle_path)
os.environ["SCALEKIT_EMULATOR_CA_DIR"] = str(_CA.directory)
# Shell calls start a token agent by themselves; in tests only those about the agent may (they
# opt in by removing this). Every process started from here carries the session marker, so the
# check at the end of the session finds any agent a test left behind.
os.environ["SCALEKIT_AUTH_AGENT"] = "0"
os.environ.setdefault("SCALEKIT_TEST_SESSION", f"{os.getpid()}-{time.time():.0f}")
# Every test's runtime folder (where agents put their sockets) lives in this one per session. An
# agent inherits only an allowlist of variables (not the session marker above), but always its
# XDG_RUNTIME_DIR: that is how the check at the end of the session finds the ones left behind.
SESSION_RUNTIME = os.path.join("/tmp", "sks-" + os.environ["SCALEKIT_TEST_SESSION"])  # short: socket paths
os.makedirs(SESSION_RUNTIME, exist_ok=True)
os.chmod(SESSION_RUNTIME, 0o711)  # others may pass through (the "another user" tests), not list it


def _of_this_session(environ: str) -> bool:
    lines = environ.split("\n")
    marker = "SCALEKIT_TEST_SESSION=" + os.environ["SCALEKIT_TEST_SESSION"]
    return marker in lines or any(line.startswith(f"XDG_RUNTIME_DIR={SESSION_RUNTIME}/") for line in lines)


# Emulators the tests are done with, stopping in the background; the session waits for them at its end.
_STOPPING: list[threading.Thread] = []


@pytest.fixture
def emulator():
    """A fresh emulator with the default connections; stopped after the test.

    In the background: its HTTP servers take a poll interval each to notice the stop (0.2 to 0.4 s), a
    third of the suite's time when every test waited for that."""
    emu = Emulator().start()
    try:
        yield emu
    finally:
        stopping = threading.Thread(target=emu.stop, name="emulator-stop", daemon=True)
        stopping.start()
        _STOPPING.append(stopping)


@pytest.fixture
def sdk(emulator):
    """A real ScalekitClient pointed at the emulator."""
    from scalekit.client import ScalekitClient

    client = ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)
    yield client
    client.core_client.grpc_secure_channel.close()


@pytest.fixture
def skill(tmp_path, monkeypatch):
    """An empty skill folder; no Scalekit credentials anywhere; no IDENTITY.md."""
    keep = ("SCALEKIT_EMULATOR_CA_DIR", "SCALEKIT_AUTH_AGENT", "SCALEKIT_TEST_SESSION")
    for name in list(os.environ):
        if (name.startswith("SCALEKIT_") and name not in keep) or name.startswith("OPENCLAW_"):
            monkeypatch.delenv(name)
    home = tmp_path / "user-home"  # no ~/.openclaw, ~/.config or ~/.cache of the real user
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "skill"
    folder.mkdir()
    monkeypatch.setenv("SCALEKIT_AUTH_DIR", str(folder))
    monkeypatch.setenv("SCALEKIT_IDENTITY_FILE", str(tmp_path / "IDENTITY.md"))
    runtime = tempfile.mkdtemp(prefix="ska-", dir=SESSION_RUNTIME)  # short: Unix socket paths are limited
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield Skill(folder, monkeypatch)
    from scalekit_auth import agent, api

    api.close()
    agent.stop()
    ours = f"XDG_RUNTIME_DIR={runtime}"
    stop_agents(lambda environ: ours in environ.split("\n"))  # any other one started under it
    wait_for_agents_to_exit(lambda environ: ours in environ.split("\n"))
    shutil.rmtree(runtime, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """No test may leave an agent behind: find them (by the session marker), stop them, and fail."""
    for stopping in _STOPPING:
        stopping.join(timeout=30)
    if hasattr(session.config, "workerinput"):
        return  # the controller checks once every worker is done
    deadline = time.monotonic() + 10  # one stopped by the last test may still be shutting down
    while time.monotonic() < deadline and any(_of_this_session(environ) for _, environ in agent_processes()):
        time.sleep(0.1)
    left = stop_agents(_of_this_session)
    shutil.rmtree(SESSION_RUNTIME, ignore_errors=True)
    if left:
        session.config.stash_left_agents = left
        print(f"\nscalekit-auth tests: {len(left)} token agent(s) left running (pids {left}); stopped them", flush=True)
        session.exitstatus = 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the test item (for screenshots on failure)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def api(skill, emulator):
    """gmail configured (identifier mess, the stand-in's host listed), an ACTIVE account, the stand-in."""
    skill.use(emulator)
    emulator.seed("gmail_u3134a", "mess", access_token="token-1")
    stand_in = StandIn(lambda: emulator.account("gmail_u3134a", "mess")["access_token"])
    host = stand_in.url.removeprefix("http://")
    skill.connections_file.write_text(
        json.dumps({"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess", "hosts": [f"{host}/gmail"]}})
    )
    yield stand_in
    stand_in.stop()
