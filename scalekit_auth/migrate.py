"""`scalekit-auth migrate`: move .env and connections.json into the state folder they belong in.

From the skill folder (move_state): the original layout kept them beside SKILL.md, where
`clawhub update` deletes them. Each file is copied (mode kept, flushed to disk) to a temporary
name in the state folder, renamed into place only if nothing is there yet, and only then removed
from the skill folder; under the same lock `config` takes, so no write is lost to a concurrent
`config`.

From the config folder into OpenClaw's (move_folder): files saved before OpenClaw was installed
stay in use until moved (paths.state_choice). They are copied into a new folder beside
OpenClaw's, which is then renamed into place in one step, so every reader sees either the old
folder in use or the new one complete.
"""

from __future__ import annotations

import errno
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
    from .connections import write_lock

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
        locks.enter_context(write_lock(target_dir / "connections.json"))
        if os.access(source_dir, os.W_OK):
            locks.enter_context(write_lock(source_dir / "connections.json"))
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


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def move_folder(source_dir: Path, target_dir: Path) -> list[Moved]:
    """Move the user's files from source_dir to target_dir, which must not exist yet or be empty.

    The files are copied (modes kept, flushed to disk) into a temporary folder beside target_dir,
    which is renamed to target_dir (atomic: rename(2) replaces only a missing or empty folder);
    only then are they removed from source_dir. Under the lock `config` takes in source_dir: a
    `config` waiting there finds, once it has the lock, that the file moved, and writes the new one.
    """
    from .connections import write_lock

    present = [name for name in FILES if os.path.lexists(source_dir / name)]
    if not present:
        return []
    for name in present:
        if (source_dir / name).is_symlink() or not (source_dir / name).is_file():
            raise ConfigurationError(
                f"{source_dir / name} is not a plain file; move it to {target_dir} yourself, or set "
                f"SCALEKIT_AUTH_DIR to {source_dir}."
            )
    parent = target_dir.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(f"Cannot create {parent}: {err.strerror}.") from None
    with ExitStack() as locks:
        if os.access(source_dir, os.W_OK):
            locks.enter_context(write_lock(source_dir / "connections.json"))
        staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.", suffix=".tmp", dir=parent))
        try:
            for name in present:
                try:
                    _copy_into_place(source_dir / name, staging / name)
                except OSError as err:
                    raise ConfigurationError(f"Cannot copy {source_dir / name} to {parent}: {err.strerror}.") from None
            _fsync_dir(staging)
            os.chmod(staging, source_dir.stat().st_mode & 0o777)
            try:
                os.rename(staging, target_dir)
            except OSError as err:
                if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise ConfigurationError(
                        f"Not moving: {target_dir} already exists and is not an empty folder. Move what is in it "
                        f"away (or merge {source_dir}'s files into it by hand), then run migrate again."
                    ) from None
                raise ConfigurationError(f"Cannot create {target_dir}: {err.strerror}.") from None
            _fsync_dir(parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        done = []
        for name in present:
            source = source_dir / name
            try:
                source.unlink()
                outcome = "moved"
            except OSError:
                outcome = "kept"
            done.append(Moved(name, source, target_dir / name, outcome))
    return done
