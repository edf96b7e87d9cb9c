"""Messages, `doctor` fixes and --help name the command the way the user can run it: `scalekit-auth ...`
only when that is this copy on PATH, else `python3 /abs/path/to/skill/scalekit-auth ...` (a drop-in copy)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from scalekit_auth import cli, invocation

from .helpers import ROOT, ship_to

NAMES = [c.name for c in cli.COMMANDS]


def test_messages_name_a_drop_in_copy_by_its_path(tmp_path):
    copy = ship_to(tmp_path / "skills" / "scalekit-auth")
    state = tmp_path / "state"
    env = {
        "PATH": "/usr/bin:/bin",  # no scalekit-auth on it
        "HOME": str(tmp_path),
        "SCALEKIT_AUTH_DIR": str(state),
        "SCALEKIT_AUTH_AGENT": "0",
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(copy / "scalekit-auth"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )

    status = run("status", "gmail")
    assert f"python3 {copy}/scalekit-auth config gmail <connection_name>" in status.stdout + status.stderr
    doctor = run("doctor")
    assert f"python3 {copy}/scalekit-auth config gmail <connection_name>" in doctor.stdout
    assert run("status", "--bogus").stderr.split()[:4] == ["usage:", "python3", f"{copy}/scalekit-auth", "status"]

    # On PATH (a symlink to this copy's script, as an install would make): the short name.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scalekit-auth").symlink_to(copy / "scalekit-auth")
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    status = run("status", "gmail")
    assert "run: scalekit-auth config gmail <connection_name>" in status.stdout + status.stderr
    assert "python3 " not in status.stdout + status.stderr


def test_runnable_prefers_the_path_only_for_this_copy(tmp_path):
    script = invocation.script_path()
    assert invocation.runnable({"PATH": str(tmp_path)}) == f"python3 {script}"
    other = tmp_path / "scalekit-auth"  # another copy's script on PATH is not this one
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert invocation.runnable({"PATH": str(tmp_path)}) == f"python3 {script}"
    other.unlink()
    other.symlink_to(script)
    assert invocation.runnable({"PATH": str(tmp_path)}) == "scalekit-auth"


# `scalekit-auth agent: ...` is a label (who speaks), not a command to run.
COMMAND_WORDS = r"scalekit-auth (?:{})\b(?!:)".format("|".join(re.escape(n) for n in NAMES))


def _string_parts(tree: ast.AST):
    """Every literal string in a module, and each literal piece of an f-string, minus docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                docstrings.add(id(node.body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_message_spells_out_scalekit_auth_COMMAND():  # noqa: N802
    """Messages get the command from invocation.command(), never a literal `scalekit-auth config ...`."""
    found = []
    for path in sorted((ROOT / "scalekit_auth").glob("*.py")):
        tree = ast.parse(path.read_text())
        for line, text in _string_parts(tree):
            if re.search(COMMAND_WORDS, text):
                found.append(f"{path.name}:{line}: {text.strip()[:90]}")
    assert found == []
