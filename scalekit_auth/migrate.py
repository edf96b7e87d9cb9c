"""`scalekit-auth migrate`: move .env and connections.json into the state folder they belong in.

From the skill folder (move_state): the original layout kept them beside SKILL.md, where
`clawhub update` deletes them. Each file is copied (mode kept, flushed to disk) into the state
folder, given its name there only if nothing is there yet, and only then removed from the skill
folder; under the same lock `config` takes, so no write is lost to a concurrent `config`.

From the config folder into OpenClaw's (move_folder): files saved before OpenClaw was installed
stay in use until moved (paths.state_choice). They are copied into a new folder beside
OpenClaw's, which is then renamed into place in one step, so every reader sees either the old
folder in use or the new one complete.

Crash safety: a copy is made in the destination folder only, as an unnamed file (Linux
O_TMPFILE) that gets its name when complete, so a crash leaves nothing; where that is not
available, as a named file, 0600 from its creation, called `.scalekit-migrate-*.tmp`, which the
next `migrate` removes (remove_leftovers), with the staging folders of an interrupted
move_folder and the `.<name>.XXXXXXXX.tmp` files of earlier versions.

Final: a source that cannot be deleted (a read-only folder) is recorded, by place and content, in
the state folder (paths.MIGRATED_FILE); every reader skips it from then on (paths.legacy_files,
paths.connections_path, config.env_files, doctor) and a second `migrate` has nothing to do.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import ConfigurationError

FILES = (".env", "connections.json")

#: The names of migrate's temporary files and folders; anything so named is a crash's leftover.
TEMP_PREFIX = ".scalekit-migrate-"
TEMP_SUFFIX = ".tmp"
#: What earlier versions left after a crash: `..env.k3j2h1g0.tmp` (tempfile.mkstemp's 8 characters)
#: in the state folder, `.scalekit-auth.k3j2h1g0.tmp` (a staging folder) beside OpenClaw's.
_OLD_TEMP = re.compile(r"\.(\.env|connections\.json|scalekit-auth)\.[a-z0-9_]{8}\.tmp")


@dataclass(frozen=True)
class Moved:
    name: str
    source: Path
    target: Path
    #: "moved"; "same" (identical copy there; old one removed); "kept" (old one left, read-only
    #: folder: recorded, never read again); "earlier" (kept by an earlier migrate: nothing to do).
    outcome: str


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


def _fill(fd: int, source: Path) -> None:
    """Copy source into the open file fd and flush it to disk."""
    with open(source, "rb") as src:
        while chunk := src.read(65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    os.fsync(fd)


def _unnamed_file(folder: Path) -> int | None:
    """An unnamed file in folder (O_TMPFILE, mode 0600) for writing, or None where there is no such thing."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # an old kernel, or a file system without it
        raise


def _copy_into_place(source: Path, target: Path) -> None:
    """Copy source to target without ever replacing an existing target (link(2) refuses to).

    The copy is written in target's folder only, 0600 until it has its name, then given the
    source's mode: unnamed where the system allows (nothing left by a crash), else named
    TEMP_PREFIX...TEMP_SUFFIX (removed on the way out, or by the next migrate)."""
    mode = source.stat().st_mode & 0o777
    fd = _unnamed_file(target.parent)
    if fd is not None:
        try:
            _fill(fd, source)
            try:
                os.link(f"/proc/self/fd/{fd}", target)
            except FileExistsError:
                raise
            except OSError:
                pass  # no /proc: copy again, the named way
            else:
                os.fchmod(fd, mode)
                _fsync_dir(target.parent)
                return
        finally:
            os.close(fd)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}-", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        _fill(fd, source)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: rename, after checking again
            if os.path.lexists(target):
                raise FileExistsError(str(target)) from None
            os.rename(tmp, target)
        os.fchmod(fd, mode)
        _fsync_dir(target.parent)
    finally:
        os.close(fd)
        if os.path.lexists(tmp):
            os.unlink(tmp)


def leftovers(folder: Path, *, folders: bool = False) -> list[Path]:
    """migrate's temporary files in folder (with folders=True, its staging folders) left by a crash."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for name in names:
        ours = name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)
        if not ours and not _OLD_TEMP.fullmatch(name):
            continue
        try:
            is_dir = stat.S_ISDIR(os.lstat(folder / name).st_mode)
        except OSError:
            continue
        if is_dir == folders:
            found.append(folder / name)
    return found


def remove_leftovers(folder: Path, *, folders: bool = False) -> list[Path]:
    """Remove what leftovers() finds; the ones removed. Files: under the lock `config` and migrate
    take in folder (when it can be taken), so a copy still being written is never removed.
    Staging folders: without a lock; a migrate staging there at the same moment then fails at its
    rename with a message, its source files untouched."""
    from .connections import write_lock

    found = leftovers(folder, folders=folders)
    if not found:
        return []
    removed = []
    with ExitStack() as locks:
        if not folders and os.access(folder, os.W_OK):
            locks.enter_context(write_lock(folder / "connections.json"))
        for path in leftovers(folder, folders=folders):  # again, under the lock
            try:
                if folders:
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError as err:
                raise ConfigurationError(
                    f"Cannot remove {path} (left by an interrupted migrate): {err.strerror}. Delete it yourself."
                ) from None
            removed.append(path)
    return removed


def _record_migrated(state: Path, sources: list[Path]) -> None:
    """Add sources (files left behind in a read-only folder) to state/paths.MIGRATED_FILE, atomically.
    Called under the lock of state's connections.json."""
    marker = state / paths.MIGRATED_FILE
    lines = [
        "# scalekit-auth migrate: moved to this folder, left behind (read-only folder), never read again",
        *sorted(paths.migration_line(record) for record in paths.migration_records(str(state))),
    ]
    for source in sources:
        record = paths.migration_record(str(source))
        if record is not None and paths.migration_line(record) not in lines:
            lines.append(paths.migration_line(record))
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{marker.name}-", suffix=TEMP_SUFFIX, dir=state)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, marker)
        _fsync_dir(state)
    except OSError as err:
        listed = " and ".join(str(s) for s in sources)
        raise ConfigurationError(
            f"Copied {listed} into {state}, but could not note that the old copy is not to be read "
            f"({err.strerror}); it is still read. Delete it yourself."
        ) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _record_if_any(target_dir: Path, kept: list[Path]) -> None:
    if kept:
        _record_migrated(target_dir, kept)


def move_state(source_dir: Path, target_dir: Path) -> list[Moved]:
    """Move the user's files from source_dir (a skill folder) to target_dir; refuse to overwrite a different file."""
    from .connections import write_lock

    if source_dir.resolve() == target_dir.resolve():
        return []
    done_before = paths.migration_records(str(target_dir))
    earlier = [
        name for name in FILES if (source_dir / name).is_file() and paths.recorded(str(source_dir / name), done_before)
    ]
    present = [name for name in FILES if (source_dir / name).is_file() and name not in earlier]
    done: list[Moved] = [Moved(name, source_dir / name, target_dir / name, "earlier") for name in earlier]
    if not present:
        return done
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
    kept: list[Path] = []
    with ExitStack() as locks:
        locks.enter_context(write_lock(target_dir / "connections.json"))
        if os.access(source_dir, os.W_OK):
            locks.enter_context(write_lock(source_dir / "connections.json"))
        locks.callback(_record_if_any, target_dir, kept)  # also when a later file fails
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
                kept.append(source)
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
        staging = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target_dir.name}-", suffix=TEMP_SUFFIX, dir=parent))
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
    kept = [item.source for item in done if item.outcome == "kept"]
    if kept:
        with write_lock(target_dir / "connections.json"):
            _record_migrated(target_dir, kept)
    return done
