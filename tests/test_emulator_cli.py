"""The emulator's command line as a new user meets it: the README's recipe never touches the user's own
files, and a drop-in copy on a Python without the packages explains how to get them (no traceback)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, ship_to


def readme_recipe() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Offline testing with the Scalekit emulator") :]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_the_readme_recipe_runs_in_a_throwaway_folder(tmp_path):
    home = tmp_path / "home"  # the user's own: .config, .openclaw, a state folder holding their files
    state = home / ".config" / "scalekit-auth"
    state.mkdir(parents=True)
    (state / "connections.json").write_text('{"gmail": {"connection_name": "mine"}}')
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    recipe = readme_recipe().replace(".venv/bin/python", sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "OPENCLAW_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}:{env['PATH']}", TMPDIR=str(tmp_path))
    logs = tmp_path.parent / f"{tmp_path.name}-recipe.out", tmp_path.parent / f"{tmp_path.name}-recipe.err"
    with logs[0].open("w") as stdout, logs[1].open("w") as stderr:  # files: a background job holds no pipe open
        proc = subprocess.Popen(
            ["bash", "-e", "-c", recipe], cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        try:
            proc.wait(timeout=180)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the emulator, if the recipe stopped before its kill
            except ProcessLookupError:
                pass
    out, err = logs[0].read_text(), logs[1].read_text()
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith("emu_"), out  # the token get_token.py printed
    after = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert after == before  # nothing of the user's read-write state was written, nothing new in their home
    assert [p.name for p in tmp_path.iterdir()] == ["home"]  # and the throwaway folder is gone


def base_python_without_the_packages() -> str:
    python = getattr(sys, "_base_executable", sys.executable)
    found = subprocess.run([python, "-c", "import grpc"], capture_output=True, timeout=60)
    if found.returncode == 0 or python == sys.executable:
        pytest.skip(f"no interpreter without grpc here ({python})")
    return python


def test_a_drop_in_copy_without_the_packages_explains_how_to_get_them(tmp_path):
    python = base_python_without_the_packages()
    copy = ship_to(tmp_path / "skills" / "scalekit-auth")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "PYTHON"))}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), SCALEKIT_AUTH_AUTOINSTALL="0")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [python, "-m", "scalekit_auth.emulator", *args],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    helped = run("--help")  # no package needed to read the help, which says what a run needs
    assert helped.returncode == 0 and "Traceback" not in helped.stderr, helped.stderr
    assert helped.stdout.startswith("usage: python3 -m scalekit_auth.emulator") and "requirements.txt" in helped.stdout

    ran = run("--seed", "gmail_u3134a:mess:ACTIVE")
    assert ran.returncode == 3, ran.stderr
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith("python3 -m scalekit_auth.emulator: ")
    assert f"{copy}/requirements.txt" in ran.stderr and "SCALEKIT_AUTH_AUTOINSTALL" in ran.stderr, ran.stderr
