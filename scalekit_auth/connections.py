"""connections.json: which Scalekit connection (and default identifier) serves each service.

Reading is strict and every problem is reported with the file, the key and the fix.
Writing is atomic (temp file + rename in the same folder) under a cross-process lock,
and keeps every other entry and any keys this version does not know.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .display import printable
from .errors import ConfigurationError
from .invocation import command

FILE_NAME = "connections.json"
MAX_FILE_BYTES = 1 << 20
LOCK_TIMEOUT = 10.0

_SERVICE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# Scalekit's own rules, from the buf.validate options in the SDK's protobuf descriptors
# (scalekit/v1/connected_accounts: `connector` and `identifier` of every connected-account
# request); tests/test_validation.py reads them there and fails when they change.
CONNECTION_NAME_PATTERN = r"^[a-zA-Z0-9_: -]*$"
CONNECTION_NAME_MAX = 400
IDENTIFIER_MAX = 100
_CONNECTION_RE = re.compile(CONNECTION_NAME_PATTERN)
EXAMPLE = '{"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess"}}'


def normalize_service(name: object, where: str = "service name") -> str:
    """Lower-case and check a service name such as `gmail` or `google-calendar`."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"The {where} is empty; use a short name such as 'gmail'.")
    service = name.strip().lower()
    if not _SERVICE_RE.match(service):
        raise ConfigurationError(
            f"The {where} {name!r} is not valid: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (e.g. 'gmail', 'google-calendar')."
        )
    return service


def _require_text(value: object, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"The {where} must be a string (text), not {_json_type(value)}: {value!r:.60}.")


def check_connection_name(name: object, where: str = "connection name") -> str:
    """A connection name as Scalekit accepts it: letters, digits, '_', ':', '-' and spaces, up to 400."""
    _require_text(name, where)
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"The {where} is empty: copy it from the Scalekit dashboard (e.g. 'gmail_u3134a').")
    value = name.strip()
    if len(value) > CONNECTION_NAME_MAX or not _CONNECTION_RE.match(value):
        raise ConfigurationError(
            f"The {where} {printable(value[:80], False)!r}{'...' if len(value) > 80 else ''} is not valid: Scalekit "
            f"connection names use letters, digits, '_', ':', '-' and spaces (up to {CONNECTION_NAME_MAX}), e.g. "
            "'gmail_u3134a'. Copy it exactly from the dashboard."
        )
    return value


def check_identifier(value: object, where: str = "identifier") -> str:
    _require_text(value, where)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"The {where} is empty: use the user's name or e-mail (e.g. 'mess').")
    ident = value.strip()
    if len(ident) > IDENTIFIER_MAX:
        raise ConfigurationError(
            f"The {where} is {len(ident)} characters long; Scalekit allows at most {IDENTIFIER_MAX}."
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in ident):
        raise ConfigurationError(f"The {where} {value!r} contains control characters; use plain text.")
    return ident


@dataclass(frozen=True)
class ConnectionEntry:
    """One service's entry: its Scalekit connection name and optional default identifier."""

    service: str
    connection_name: str
    identifier: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    hosts: tuple[str, ...] = ()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def read_raw(path: Path) -> dict[str, Any]:
    """The file's JSON object as-is; {} when the file does not exist or is empty."""
    from .safefile import read_small_file

    data = read_small_file(path, MAX_FILE_BYTES, "service connections")
    if data is None:
        return {}
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text. Save it as UTF-8, for example: {EXAMPLE}") from None
    if not text.strip():
        return {}
    try:
        raw = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as err:
        hint = " (JSON allows no trailing commas or comments)" if err.msg.startswith(("Expecting", "Illegal")) else ""
        raise ConfigurationError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}{hint}. "
            f"Expected something like {EXAMPLE}"
        ) from None
    except (ValueError, RecursionError) as err:
        raise ConfigurationError(f"{path} is not usable JSON: {err}. Expected something like {EXAMPLE}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(
            f"{path} must hold a JSON object mapping service names to entries, not a {_json_type(raw)}. "
            f"Example: {EXAMPLE}"
        )
    return raw


def _json_type(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def parse_entries(raw: Mapping[str, Any], path: Path) -> dict[str, ConnectionEntry]:
    """Validate every entry; the first problem raises ConfigurationError naming file and key."""
    entries: dict[str, ConnectionEntry] = {}
    for key, value in raw.items():
        where = f"{path}: service {key!r}"
        service = normalize_service(key, where=f"service name {key!r} in {path}")
        if service in entries:
            raise ConfigurationError(f"{path} lists '{service}' twice (names are not case-sensitive); keep one.")
        if not isinstance(value, dict):
            raise ConfigurationError(
                f'{where} must be an object like {{"connection_name": "gmail_u3134a"}}, not a {_json_type(value)}.'
            )
        if "connection_name" not in value:
            raise ConfigurationError(
                f'{where} has no "connection_name". Add the Scalekit connection name, '
                f"or run: {command('config', service, '<connection_name>')}"
            )
        connection_name = check_connection_name(value["connection_name"], where=f'"connection_name" of {where}')
        identifier = value.get("identifier")
        if identifier is not None:
            identifier = check_identifier(identifier, where=f'"identifier" of {where}')
        hosts = _check_hosts(value.get("hosts", []), service, where)
        extra = {k: v for k, v in value.items() if k not in ("connection_name", "identifier")}
        entries[service] = ConnectionEntry(service, connection_name, identifier, extra, hosts)
    return entries


def _check_hosts(value: Any, service: str, where: str) -> tuple[str, ...]:
    """`"hosts": ["api.example.com", "example.com/api"]`: URL patterns that mean this service."""
    from .services import parse_pattern

    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise ConfigurationError(f'"hosts" of {where} must be a list of strings like ["api.example.com"].')
    for text in value:
        try:
            parse_pattern(text, service)
        except ValueError as err:
            raise ConfigurationError(f'"hosts" of {where}: {err}.') from None
    return tuple(value)


def load(path: Path) -> dict[str, ConnectionEntry]:
    """All entries of connections.json (empty when the file does not exist)."""
    return parse_entries(read_raw(path), path)


def _write_target(path: Path) -> Path:
    """Where a write must go: through a symlink to its target (a dotfiles repo, say), so the link stays."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _cannot_write(path: Path, err: OSError | None = None) -> ConfigurationError:
    import errno

    folder = path.parent
    code = err.errno if err is not None else None
    if code == errno.EROFS or (err is None and read_only_fs(folder)):
        why = f"{folder} is on a read-only file system"
    elif code in (errno.EACCES, errno.EPERM, None):
        why = f"{folder} is read-only for you (permission denied)"
    else:
        why = (err.strerror if err is not None else None) or "unknown error"
    return ConfigurationError(
        f"Cannot write {path}: {why}. Make the folder writable, or keep the skill's state elsewhere "
        "with SCALEKIT_AUTH_DIR=/a/writable/folder."
    )


def read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def write_lock(path: Path):
    if not os.access(path.parent, os.W_OK):  # a clear message now, not a lock timeout in 10 s
        raise _cannot_write(path)
    from .bootstrap import import_or_explain

    filelock = import_or_explain("filelock", "filelock")
    FileLock, Timeout = filelock.FileLock, filelock.Timeout  # noqa: N806 - class aliases

    lock = FileLock(str(path.with_name(f".{path.name}.lock")), timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigurationError(f"{path} is locked by another scalekit-auth process; try again in a moment.") from None
    except OSError as err:
        raise _cannot_write(path, err) from None
    return lock


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    """Write JSON beside the target, flush it to disk, then rename over the target."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class Change:
    """What a write did: the entry before (None if new) and after (None if removed)."""

    service: str
    before: ConnectionEntry | None
    after: ConnectionEntry | None

    def describe(self) -> str:
        def show(e: ConnectionEntry) -> str:
            return f"{e.connection_name}" + (f" (identifier {e.identifier})" if e.identifier else "")

        if self.before is None and self.after is not None:
            return f"added {self.service} -> {show(self.after)}"
        if self.after is None and self.before is not None:
            return f"removed {self.service} (was {show(self.before)})"
        if self.before == self.after and self.after is not None:
            return f"unchanged {self.service} -> {show(self.after)}"
        assert self.before is not None and self.after is not None
        return f"updated {self.service}: {show(self.before)} -> {show(self.after)}"


class MovedError(Exception):
    """The file stopped being the one in use while we waited for its lock (`migrate` ran): try again."""


def _check_current(still_current: Callable[[], bool] | None) -> None:
    if still_current is not None and not still_current():
        raise MovedError


def save(
    path: Path,
    service: str,
    connection_name: str,
    identifier: str | None = None,
    still_current: Callable[[], bool] | None = None,
) -> Change:
    """Add or update one service, keeping everything else in the file.

    `still_current` is asked once the lock is held; False raises MovedError (nothing written)."""
    service = normalize_service(service)
    connection_name = check_connection_name(connection_name)
    if identifier is not None:
        identifier = check_identifier(identifier)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(f"Cannot create {path.parent}: {err.strerror}.") from None
    path = _write_target(path)
    with write_lock(path):
        _check_current(still_current)
        raw = read_raw(path)
        entries = parse_entries(raw, path)
        before = entries.get(service)
        # keep the user's spelling of the key and any unknown fields
        key = next((k for k in raw if k.strip().lower() == service), service)
        entry = dict(raw.get(key) or {})
        entry["connection_name"] = connection_name
        if identifier is not None:
            entry["identifier"] = identifier
        raw[key] = entry
        after = parse_entries({key: entry}, path)[service]
        if before != after or before is None:
            _write_or_explain(path, raw)
        return Change(service, before, after)


def remove(path: Path, service: str, still_current: Callable[[], bool] | None = None) -> Change:
    """Delete one service's entry; an unknown service raises ConfigurationError."""
    service = normalize_service(service)
    path = _write_target(path)
    with write_lock(path):
        _check_current(still_current)
        raw = read_raw(path)
        entries = parse_entries(raw, path)
        if service not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise ConfigurationError(f"'{service}' is not in {path} (configured: {known}).")
        key = next(k for k in raw if k.strip().lower() == service)
        del raw[key]
        _write_or_explain(path, raw)
        return Change(service, entries[service], None)


def _write_or_explain(path: Path, raw: dict[str, Any]) -> None:
    try:
        _atomic_write(path, raw)
    except OSError as err:
        raise _cannot_write(path, err) from None
