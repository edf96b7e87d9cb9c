"""`scalekit-auth migrate`: move .env and connections.json out of the skill folder into the state folder.

The original layout kept them beside SKILL.md, where `clawhub update` deletes them. Each file
is copied (mode kept, flushed to disk) to a temporary name in the state folder, renamed into
place only if nothing is there yet, and only then removed from the skill folder; under the
same lock `config` takes, so no write is lost to a concurrent `config`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

FILES = (".env", "connections.json")


@dataclass(frozen=True)
class Moved:
    name: str
    source: Path
    target: Path
    outcome: str  # "moved", "same" (identical copy there; old one removed), "kept" (old one left: read-only)


#: Both files are small; anything larger (or not a regular file: a FIFO, /dev/zero) is not "the same".
_COMPARE_LIMIT = 1 << 20


def _same(a: Path, b: Path) -> bool:
    from .safefile import read_small_file

    try:
        first = read_small_file(a, _COMPARE_LIMIT, "a file to move")
        second = read_small_file(b, _COMPARE_LIMIT, "a file already in the state folder")
    except (OSError, ConfigurationError):
        return False
    return first is not None and first == second


def _copy_into_place(source: Path, target: Path) -> None:
    """Copy source to target without ever replacing an existing target (link(2) refuses to)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, source.stat().st_mode & 0o777)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: rename, after checking again
            if target.exists():
                raise FileExistsError(str(target)) from None
            os.rename(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def move_state(source_dir: Path, target_dir: Path) -> list[Moved]:
    """Move the user's files from source_dir (a skill folder) to target_dir; refuse to overwrite a different file."""
    from .connections import _lock

    if source_dir.resolve() == target_dir.resolve():
        return []
    present = [name for name in FILES if (source_dir / name).is_file()]
    if not present:
        return []
    for name in present:
        if (source_dir / name).is_symlink():
            raise ConfigurationError(
                f"{source_dir / name} is a symbolic link; move the file it points to yourself, or set "
                f"SCALEKIT_AUTH_DIR to its folder."
            )
    try:
        target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            f"Cannot create {target_dir}: {err.strerror}. Make it writable, or choose another folder with "
            "SCALEKIT_AUTH_DIR."
        ) from None
    conflicts = [n for n in present if os.path.lexists(target_dir / n) and not _same(source_dir / n, target_dir / n)]
    if conflicts:
        listed = " and ".join(str(target_dir / n) for n in conflicts)
        raise ConfigurationError(
            f"Not moving: {listed} already there, different from the copy in {source_dir}. Merge them by hand "
            f"(keep the one you want in {target_dir}), then delete the old copy."
        )
    done: list[Moved] = []
    with ExitStack() as locks:
        locks.enter_context(_lock(target_dir / "connections.json"))
        if os.access(source_dir, os.W_OK):
            locks.enter_context(_lock(source_dir / "connections.json"))
        for name in present:
            source, target = source_dir / name, target_dir / name
            outcome = "same"
            if os.path.lexists(target):
                if not _same(source, target):  # checked again under the lock: `config` may have written it
                    raise ConfigurationError(
                        f"Not moving: {target} already there, different from the copy in {source_dir}. Merge them "
                        f"by hand (keep the one you want in {target_dir}), then delete the old copy."
                    )
            else:
                try:
                    _copy_into_place(source, target)
                except FileExistsError:
                    if not _same(source, target):
                        raise ConfigurationError(
                            f"{target} appeared while moving; compare it with {source} and keep one."
                        ) from None
                except OSError as err:
                    raise ConfigurationError(f"Cannot write {target}: {err.strerror}.") from None
                outcome = "moved"
            try:
                source.unlink()
            except OSError:
                outcome = "kept"
            done.append(Moved(name, source, target, outcome))
    return done
