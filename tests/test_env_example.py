"""The credentials template points at the state folder the code uses, and ships with ClawHub too:
ClawHub drops dot-files, so `env.example` is a copy of `.env.example` that says the same."""

from __future__ import annotations

import re
from pathlib import Path

from scalekit_auth import config, paths

from .helpers import ROOT, shipped_files

TEMPLATES = (ROOT / ".env.example", ROOT / "env.example")


def test_a_non_dot_copy_ships_and_says_the_same():
    shipped = shipped_files()
    assert "env.example" in shipped and ".env.example" not in shipped
    assert TEMPLATES[0].read_text() == TEMPLATES[1].read_text()


def test_it_names_the_state_folder_not_the_skill_folder():
    text = TEMPLATES[1].read_text()
    assert "same folder" not in text
    for needed in ("$SCALEKIT_AUTH_DIR", "~/.openclaw/scalekit-auth/.env", "~/.config/scalekit-auth/.env", "doctor"):
        assert needed in text, needed


def test_the_folders_it_names_are_the_ones_the_code_uses(tmp_path):
    text = TEMPLATES[1].read_text()

    def named(folder: str) -> str:
        return "~/" + str(Path(folder).relative_to(tmp_path)) + "/.env"

    env = {"HOME": str(tmp_path)}
    assert named(paths.state_dir(env)) == "~/.config/scalekit-auth/.env"
    assert named(paths.state_dir(env)) in text
    (tmp_path / ".openclaw").mkdir()
    assert named(paths.state_dir(env)) == "~/.openclaw/scalekit-auth/.env"
    assert named(paths.state_dir(env)) in text
    assert paths.state_dir({**env, "SCALEKIT_AUTH_DIR": str(tmp_path / "x")}) == str(tmp_path / "x")


def test_every_variable_it_sets_is_a_setting():
    names = re.findall(r"^#? ?(SCALEKIT_\w+)=", TEMPLATES[1].read_text(), re.MULTILINE)
    assert names and set(names) <= set(config.SETTINGS_VARS), names
