"""Reading the skill's small local files (.env, connections.json, IDENTITY.md) without surprises.

A FIFO would block the reader, /dev/zero would fill its memory (st_size is 0 for both, so a
size check on stat alone is no guard), and a directory or unreadable file gives errors that
name the wrong cause. Here a file is opened without blocking, checked to be a regular file
on the open descriptor, and read up to a limit. Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import ConfigurationError

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_small_file(path: Path, limit: int, what: str) -> bytes | None:
    """The file's bytes; None when it does not exist. ConfigurationError, naming the path and
    the reason, for anything that is not a readable regular file of at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise ConfigurationError(
                f"{path} ({what}) is a symbolic link to a missing file; fix or remove it."
            ) from None
        return None
    except OSError as err:
        raise ConfigurationError(_why(path, what, err)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise ConfigurationError(
                f"{path} ({what}) is not a regular file: it is {kind}. Replace it with a plain text file."
            )
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ConfigurationError(
                f"{path} ({what}) is larger than {limit} bytes; it should be a small text file. Is it the right file?"
            )
        return b"".join(chunks)
    except OSError as err:
        raise ConfigurationError(_why(path, what, err)) from None
    finally:
        os.close(fd)


def _why(path: Path, what: str, err: OSError) -> str:
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"Cannot read {path} ({what}): permission denied. Check its owner and mode (ls -l {path})."
    if err.errno == errno.ELOOP:
        return f"Cannot read {path} ({what}): too many symbolic links (a link to itself?)."
    if err.errno == errno.EISDIR:
        return f"{path} ({what}) is not a regular file: it is a directory. Replace it with a plain text file."
    return f"Cannot read {path} ({what}): {err.strerror or err}."
