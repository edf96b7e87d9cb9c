"""The Makefile as the README documents it: `make demo PYTHON=python3.13` (or PYTHON=3.13) picks that
version even where `python3.13` on PATH is a pyenv shim of a version that is not active, and `make demo`
installs only what the demo needs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from scalekit_auth import MIN_PYTHON

from .helpers import ROOT
from .test_python_versions import installed_pythons

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

SUPPORTED = [(version, path) for version, path in installed_pythons() if version >= MIN_PYTHON]


def dry_run(target: str, tmp_path, **variables: str) -> list[str]:
    """`make -n TARGET` with a virtual environment that does not exist yet: every command it would run."""
    args = [f"{k}={v}" for k, v in {"VENV": str(tmp_path / "venv"), **variables}.items()]
    proc = subprocess.run(["make", "-n", target, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def resolved(python: str, tmp_path) -> str:
    """The interpreter `make demo PYTHON=...` makes its virtual environment with."""
    line = next(line for line in dry_run("demo", tmp_path, PYTHON=python) if " -m venv " in line)
    return shlex.split(line)[0]


def version_of(python: str) -> tuple[int, int] | None:
    proc = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        return None
    major, minor = proc.stdout.split(".")
    return int(major), int(minor)


@pytest.mark.system  # the other Pythons of scripts/pythons
@pytest.mark.parametrize("version", [v for v, _ in SUPPORTED], ids=lambda v: f"{v[0]}.{v[1]}")
@pytest.mark.parametrize("form", ["python{}", "{}"])
def test_python_names_a_version_that_is_installed(tmp_path, version, form):
    name = form.format(f"{version[0]}.{version[1]}")
    assert version_of(resolved(name, tmp_path)) == version, name


def test_a_path_is_used_as_given(tmp_path):
    _, path = SUPPORTED[-1]
    assert resolved(path, tmp_path) == path


def test_make_demo_installs_only_what_the_demo_needs(tmp_path):
    demo = dry_run("demo", tmp_path)
    installs = [line for line in demo if " pip install " in line and " -r " in line]
    assert [shlex.split(line)[-1] for line in installs] == ["requirements.txt"], demo
    assert any(line.endswith("-m scalekit_auth demo") for line in demo)
    lint = [shlex.split(line)[-1] for line in dry_run("lint", tmp_path) if " pip install " in line and " -r " in line]
    assert lint == ["requirements.txt", "requirements-dev.txt"]


def test_the_readme_says_what_make_demo_and_make_test_download():
    readme = (ROOT / "README.md").read_text()
    said = readme[readme.index("**What they download.**") : readme.index("### Supported Pythons")]
    for needed in ("`requirements.txt`", "`requirements-dev.txt`", "`.tools/`", "Node 24", "`openclaw` npm", "minutes"):
        assert needed in said, needed
    size = re.search(r"~(\d+) MB", (ROOT / "scripts" / "openclaw-cli").read_text())
    assert size and f"about {size[1]} MB" in said  # the same figure as the script that downloads it
    for package in re.findall(r"need\+=\((\S+)\)", (ROOT / "scripts" / "system-deps").read_text()):
        assert f"`{package.removesuffix('-venv')}`" in said, package  # python3-venv: "`python3` with venv"
