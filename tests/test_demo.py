"""The embedded demo: the whole flow on a local emulator, with no Scalekit account."""

from __future__ import annotations


def test_demo_walks_the_whole_flow(skill):
    # A user's real credentials in the environment must neither be used nor disturbed.
    proc = skill.cli("demo", env={"SCALEKIT_CLIENT_SECRET": "a-real-secret-must-not-be-used"})
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())  # the demo wraps long lines
    for step in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert step in out
    assert "ConfigurationError" in out
    assert "scalekit-auth config gmail gmail_u3134a" in out
    assert "Open this link to connect it" in out
    assert "stdout is exactly the token" in out
    assert "a-real-secret-must-not-be-used" not in out
    assert not skill.connections_file.exists(), "the demo must not touch the real skill folder"


def test_demo_for_another_service(skill):
    proc = skill.cli("demo", "--service", "slack")
    assert proc.returncode == 0, proc.stderr
    assert "scalekit-auth config slack slack_x7y9z" in proc.stdout


def test_the_demo_leaves_no_agent_behind(skill):
    """Its temp folder and emulator are gone when it ends: an agent serving them would be a zombie."""
    from .helpers import agent_processes

    def demo_agents() -> set[int]:
        return {pid for pid, environ in agent_processes() if "scalekit-auth-demo-" in environ}

    before = demo_agents()  # another run's, if any
    skill.monkeypatch.delenv("SCALEKIT_AUTH_AGENT")  # as a user runs it: shell calls may start agents
    proc = skill.cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert not demo_agents() - before
