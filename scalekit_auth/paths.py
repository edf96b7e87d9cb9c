"""Where things live: the user's state folder, the skill folder, and the agent's private runtime directory.

Standard library `os` only: the agent client imports this on the fast path.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~9 ms to import; this path must stay lean

if TYPE_CHECKING:
    from collections.abc import Mapping

SKILL_DIR_VAR = "SCALEKIT_AUTH_DIR"
IDENTITY_FILE_VAR = "SCALEKIT_IDENTITY_FILE"
AGENT_VAR = "SCALEKIT_AUTH_AGENT"

#: Every variable that changes which token a call returns; an agent serves a caller only
#: when these (hashed) match its own.
SETTINGS_CONTEXT_VARS = (
    "SCALEKIT_ENV_URL",
    "SCALEKIT_ENVIRONMENT_URL",
    "SCALEKIT_CLIENT_ID",
    "SCALEKIT_CLIENT_SECRET",
    "SCALEKIT_TIMEOUT",
    "SCALEKIT_CACHE",
    "SCALEKIT_CACHE_MARGIN",
    "SCALEKIT_CACHE_TTL",
    "SCALEKIT_CACHE_MAX",
    "SCALEKIT_USER_VERIFY_URL",
)
#: Whom the Scalekit client trusts and how it gets there (grpc, requests): they decide answers too.
TRANSPORT_VARS = (
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    *("http_proxy", "https_proxy", "no_proxy", "all_proxy", "grpc_proxy"),
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "GRPC_PROXY"),
)
CONTEXT_VARS = SETTINGS_CONTEXT_VARS + TRANSPORT_VARS

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Every variable that changes which folder holds the user's files.
STATE_VARS = (
    SKILL_DIR_VAR,
    "XDG_CONFIG_HOME",
    "HOME",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_HOME",
    "OPENCLAW_SHELL",
    "OPENCLAW_CLI",
)
#: The files a user keeps (never shipped with the skill): they live in the state folder.
STATE_FILES = (".env", "connections.json")


def _sha256_hex(data: bytes) -> str:
    """SHA-256 without importing hashlib (and OpenSSL) on the fast path: the interpreter's built-in
    implementation (_sha2 from 3.12, _sha256 before), else hashlib."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found]
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef]
        except ImportError:
            from hashlib import sha256  # type: ignore[assignment]
    return sha256(data).hexdigest()


def home(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return os.path.abspath(env.get("HOME", "").strip() or os.path.expanduser("~"))


def expand(path: str, environ: Mapping[str, str] | None = None) -> str:
    """An absolute path, with a leading ~ meaning $HOME of `environ`."""
    if path == "~" or path.startswith("~/"):
        path = home(environ) + path[1:]
    return os.path.abspath(path)


def openclaw_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """OpenClaw's state folder, as OpenClaw resolves it (src/config/state-dir.ts).

    $OPENCLAW_STATE_DIR; else ~/.openclaw if it exists; else a legacy ~/.clawdbot if that
    exists; else ~/.openclaw. `~` is $OPENCLAW_HOME when set. (`openclaw --profile X` sets
    OPENCLAW_STATE_DIR=~/.openclaw-X for everything it runs.)
    """
    env = os.environ if environ is None else environ
    override = env.get("OPENCLAW_STATE_DIR", "").strip()
    if override:
        return expand(override, env)
    base = os.path.abspath(env.get("OPENCLAW_HOME", "").strip() or home(env))
    for name in (".openclaw", ".clawdbot"):
        if os.path.isdir(os.path.join(base, name)):
            return os.path.join(base, name)
    return os.path.join(base, ".openclaw")


def under_openclaw(environ: Mapping[str, str] | None = None) -> bool:
    """True when OpenClaw runs us (it sets OPENCLAW_SHELL/OPENCLAW_CLI) or is set up for this user."""
    env = os.environ if environ is None else environ
    if any(env.get(name, "").strip() for name in ("OPENCLAW_STATE_DIR", "OPENCLAW_SHELL", "OPENCLAW_CLI")):
        return True
    return os.path.isdir(openclaw_state_dir(env))


#: Why the state folder is the one it is (state_choice).
CHOSEN_BY_VARIABLE = SKILL_DIR_VAR
OPENCLAW_FOLDER = "OpenClaw's state folder"
CONFIG_FOLDER = "your config folder"
KEPT_CONFIG_FOLDER = "your config folder, in use since before OpenClaw"


def config_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """$XDG_CONFIG_HOME/scalekit-auth (~/.config/scalekit-auth): the state folder without OpenClaw."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "").strip() or os.path.join(home(env), ".config")
    return os.path.join(expand(base, env), "scalekit-auth")


def openclaw_skill_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """<OpenClaw's state folder>/scalekit-auth: the state folder under OpenClaw."""
    return os.path.join(openclaw_state_dir(environ), "scalekit-auth")


def holds_state(folder: str) -> bool:
    """Whether folder holds the user's .env or connections.json."""
    return any(os.path.lexists(os.path.join(folder, name)) for name in STATE_FILES)


def state_choice(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(the state folder, why that one): where the user's .env and connections.json belong, outside
    the skill folder so they survive updates.

    $SCALEKIT_AUTH_DIR if set. Under OpenClaw <OpenClaw state folder>/scalekit-auth, except while
    that holds no files and the config folder does: files saved before OpenClaw was installed stay
    in use (a folder once chosen stays chosen) until `scalekit-auth migrate` moves them. Else
    $XDG_CONFIG_HOME/scalekit-auth (~/.config/scalekit-auth).
    """
    env = os.environ if environ is None else environ
    override = env.get(SKILL_DIR_VAR, "").strip()
    if override:
        return expand(override, env), CHOSEN_BY_VARIABLE
    config = config_state_dir(env)
    if not under_openclaw(env):
        return config, CONFIG_FOLDER
    openclaw = openclaw_skill_state_dir(env)
    if holds_state(openclaw) or not holds_state(config):
        return openclaw, OPENCLAW_FOLDER
    return config, KEPT_CONFIG_FOLDER


def state_dir(environ: Mapping[str, str] | None = None) -> str:
    """The state folder (see state_choice)."""
    return state_choice(environ)[0]


def legacy_dir() -> str | None:
    """The skill folder itself, when this package sits in one (the original layout kept files there)."""
    if os.path.exists(os.path.join(_PACKAGE_PARENT, "SKILL.md")):
        return _PACKAGE_PARENT
    return None


#: In the state folder: the files `migrate` copied there but could not delete (a read-only skill
#: folder or config folder), one line each: `sha256:<hex> <size> <real path>` (tab-separated, the
#: path with %, tab and line breaks %-escaped). Such a file is never read again while it holds what
#: was moved: matched by place and content, not by inode, which a remount or a container restart
#: can change (overlayfs, bind mounts), nor by mtime, which `cp -p` or an unpacked archive keeps.
MIGRATED_FILE = ".migrated"
_MIGRATED_LIMIT = 64 * 1024
#: A file larger than this was never moved by migrate (which compares at most 1 MiB).
_CONTENT_LIMIT = 1 << 20


def _escape(path: str) -> str:
    return path.replace("%", "%25").replace("\t", "%09").replace("\n", "%0A").replace("\r", "%0D")


def _unescape(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%09", "\t").replace("%25", "%")


def _read_regular(path: str, limit: int) -> bytes | None:
    """Up to limit bytes of the regular file at path (None: missing, not regular, larger, unreadable).
    Non-blocking open: a FIFO planted under the name is never waited on."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return None if size > limit else b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def migration_record(path: str) -> tuple[str, int, str] | None:
    """(real path, size, sha256 hex) of the file at path, as MIGRATED_FILE records it; None when it
    is not a regular file of at most 1 MiB."""
    data = _read_regular(path, _CONTENT_LIMIT)
    if data is None:
        return None
    return (os.path.realpath(path), len(data), _sha256_hex(data))


def migration_line(record: tuple[str, int, str]) -> str:
    """record as one line of MIGRATED_FILE (no line break)."""
    real, size, digest = record
    return f"sha256:{digest}\t{size}\t{_escape(real)}"


def migration_records(state: str) -> frozenset[tuple[str, int, str]]:
    """The records in state/MIGRATED_FILE (empty when there is none, or it is not a small regular
    file); lines that do not parse (comments, a torn write) are skipped."""
    data = _read_regular(os.path.join(state, MIGRATED_FILE), _MIGRATED_LIMIT)
    if not data:
        return frozenset()
    found = set()
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        fields = line.split("\t", 2)
        if len(fields) != 3 or not fields[0].startswith("sha256:") or not fields[1].isdigit():
            continue
        digest = fields[0][len("sha256:") :]
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            found.add((_unescape(fields[2]), int(fields[1]), digest))
    return frozenset(found)


def recorded(path: str, records: frozenset[tuple[str, int, str]]) -> bool:
    """Whether the file at path is one `migrate` moved (same place, same content); cheap when not."""
    if not records:
        return False
    real = os.path.realpath(path)
    sizes = {size for where, size, _ in records if where == real}
    if not sizes:
        return False
    try:
        if os.stat(path).st_size not in sizes:
            return False
    except (OSError, ValueError):
        return False
    return migration_record(path) in records


def migrated(path: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `migrate` moved the file at path into the state folder and could not delete it: then
    it is never read again (its copy in the state folder is the one in use)."""
    return recorded(path, migration_records(state_dir(environ)))


def _legacy_present(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    legacy = legacy_dir()
    if legacy is None or os.path.abspath(state_dir(env)) == legacy:
        return []
    return [os.path.join(legacy, name) for name in STATE_FILES if os.path.lexists(os.path.join(legacy, name))]


def legacy_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The user's files still in the skill folder (original layout), unless SCALEKIT_AUTH_DIR points
    there; a file `migrate` already moved (left behind in a read-only folder) is not one of them."""
    present = _legacy_present(environ)
    if not present:
        return []
    done = migration_records(state_dir(environ))
    return [path for path in present if not recorded(path, done)] if done else present


def migrated_leftovers(environ: Mapping[str, str] | None = None) -> list[str]:
    """The skill folder's files that `migrate` moved but could not delete (never read again)."""
    present = _legacy_present(environ)
    if not present:
        return []
    done = migration_records(state_dir(environ))
    return [path for path in present if recorded(path, done)]


def connections_path(environ: Mapping[str, str] | None = None) -> str:
    """The connections.json in use: the state folder's; while only the skill folder has one
    (original layout, until `scalekit-auth migrate`), that one."""
    env = os.environ if environ is None else environ
    state = os.path.join(state_dir(env), "connections.json")
    if os.path.lexists(state):
        return state
    legacy = legacy_dir()
    if legacy is not None and not env.get(SKILL_DIR_VAR, "").strip():
        old = os.path.join(legacy, "connections.json")
        if os.path.lexists(old) and not migrated(old, env):
            return old
    return state


def skill_dir(environ: Mapping[str, str] | None = None) -> str:
    """The state folder (kept under this name: the agent's socket and context are keyed by it)."""
    return state_dir(environ)


def identity_path(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(the IDENTITY.md that names the agent, why that one), as OpenClaw finds the agent's workspace.

    SCALEKIT_IDENTITY_FILE if set. Inside an OpenClaw exec (OPENCLAW_SHELL=exec) the working
    directory is the agent's own workspace, so it comes first when it holds an IDENTITY.md that
    is yours and lies in OpenClaw's state folder (a cloned repository elsewhere must not pick
    whose account is used). Then OPENCLAW_WORKSPACE_DIR, $OPENCLAW_STATE_DIR/workspace,
    ~/.openclaw-<profile>/workspace for OPENCLAW_PROFILE, and ~/.openclaw/workspace. A workspace
    configured in openclaw.json (`agents.defaults.workspace`) comes before the state-folder ones,
    as OpenClaw itself uses it (exec exports no workspace variable).
    """
    env = os.environ if environ is None else environ
    override = env.get(IDENTITY_FILE_VAR, "").strip()
    if override:
        return expand(override, env), IDENTITY_FILE_VAR
    configured = configured_workspace(env)  # read once: both steps below use it
    if env.get("OPENCLAW_SHELL", "").strip() == "exec":
        found = _workspace_identity_in_cwd(env, configured)
        if found:
            return found, "the working directory of this OpenClaw exec (the agent's workspace)"
    explicit = env.get("OPENCLAW_WORKSPACE_DIR", "").strip()
    if explicit:
        return os.path.join(expand(explicit, env), "IDENTITY.md"), "OPENCLAW_WORKSPACE_DIR"
    if configured:
        return os.path.join(expand(configured, env), "IDENTITY.md"), "agents.defaults.workspace in openclaw.json"
    state = env.get("OPENCLAW_STATE_DIR", "").strip()
    if state:
        return os.path.join(expand(state, env), "workspace", "IDENTITY.md"), "OPENCLAW_STATE_DIR"
    profile = env.get("OPENCLAW_PROFILE", "").strip()
    if profile and profile.lower() != "default":
        return os.path.join(home(env), f".openclaw-{profile}", "workspace", "IDENTITY.md"), "OPENCLAW_PROFILE"
    return os.path.join(openclaw_state_dir(env), "workspace", "IDENTITY.md"), "OpenClaw's default workspace"


#: openclaw.json is small; a larger file is not read (nothing in it is worth megabytes of parsing).
OPENCLAW_CONFIG_MAX = 1 << 20


def configured_workspace(environ: Mapping[str, str] | None = None) -> str | None:
    """`agents.defaults.workspace` from OpenClaw's openclaw.json (JSON5), or None when it is not set
    or the file cannot be read as JSON5. Only a file that is ours and not writable by others counts."""
    env = os.environ if environ is None else environ
    path = os.path.join(openclaw_state_dir(env), "openclaw.json")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000) or st.st_size > OPENCLAW_CONFIG_MAX or st.st_mode & 0o022:
            return None
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            return None
        raw = os.read(fd, OPENCLAW_CONFIG_MAX + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = json5_loads(raw.decode("utf-8", errors="replace"))
    agents = data.get("agents") if isinstance(data, dict) else None
    defaults = agents.get("defaults") if isinstance(agents, dict) else None
    workspace = defaults.get("workspace") if isinstance(defaults, dict) else None
    return workspace.strip() if isinstance(workspace, str) and workspace.strip() else None


def json5_loads(text: str) -> object:
    """The JSON5 that config files use (comments, trailing commas, unquoted keys, single-quoted
    strings), read by turning it into JSON; None when it is not that."""
    out: list[str] = []
    i, n = 0, len(text)
    ident = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$"
    while i < n:
        c = text[i]
        if c in "\"'":
            j, chunk = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    chunk.append(text[j : j + 2])
                    j += 2
                    continue
                chunk.append('\\"' if text[j] == '"' else text[j])
                j += 1
            if j >= n:
                return None
            out.append('"' + "".join(chunk).replace("\\'", "'") + '"')
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                return None
            i = end + 2
        elif c in ident and (not out or out[-1] in "{,") and _key_follows(text, i, ident):
            j = i
            while j < n and text[j] in ident:
                j += 1
            out.append('"' + text[i:j] + '"')
            i = j
        elif c in "}]":
            while out and out[-1] == ",":  # a trailing comma
                out.pop()
            out.append(c)
            i += 1
        elif c in " \t\r\n":
            i += 1
        else:
            out.append(c)
            i += 1
    import json

    try:
        return json.loads("".join(out))
    except ValueError:
        return None


def _key_follows(text: str, i: int, ident: str) -> bool:
    j = i
    while j < len(text) and text[j] in ident:
        j += 1
    while j < len(text) and text[j] in " \t\r\n":
        j += 1
    return j < len(text) and text[j] == ":"


def _workspace_identity_in_cwd(env: Mapping[str, str], configured: str | None) -> str | None:
    try:
        cwd = os.path.realpath(os.getcwd())
        candidate = os.path.join(cwd, "IDENTITY.md")
        st = os.stat(candidate)
    except OSError:
        return None
    roots = {os.path.realpath(openclaw_state_dir(env))}
    explicit = env.get("OPENCLAW_WORKSPACE_DIR", "").strip()
    if explicit:
        roots.add(os.path.realpath(expand(explicit, env)))
    if configured:
        roots.add(os.path.realpath(expand(configured, env)))
    inside = any(cwd == root or cwd.startswith(root + os.sep) for root in roots)
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return candidate if inside and mine and not st.st_mode & 0o022 else None


def _file_identity(path: str) -> str:
    """Which file is at `path` now (device, inode, size, modification time), or '-' for none."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def context_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every file whose contents may decide an answer: the state folder's and the skill folder's
    .env and connections.json, the state folder's record of migrated files, OpenClaw's .env and
    the IDENTITY.md that names the agent."""
    env = os.environ if environ is None else environ
    state = state_dir(env)
    files = [os.path.join(state, name) for name in (*STATE_FILES, MIGRATED_FILE)]
    legacy = legacy_dir()
    if legacy is not None:
        files += [os.path.join(legacy, name) for name in STATE_FILES]
    files.append(os.path.join(openclaw_state_dir(env), ".env"))
    files.append(identity_path(env)[0])
    return files


def context_fingerprint(environ: Mapping[str, str] | None = None) -> str:
    """A hash of everything that decides which token a call gets (the secret is hashed, never sent).

    The copy of the skill answering (its folder), the resolved folders (the state folder,
    OpenClaw's folder, the IDENTITY.md, which may depend on the working directory), the identity
    of every file read (context_files: a copy with its own .env or connections.json is another
    context), and the settings, TLS trust and proxy variables. Folders enter resolved, not as
    the variables that name them, so an agent started elsewhere still serves the same caller."""
    env = os.environ if environ is None else environ
    parts = [_PACKAGE_PARENT, skill_dir(env), openclaw_state_dir(env), identity_path(env)[0]]
    parts += [_file_identity(path) for path in context_files(env)]
    parts += [f"{name}={env.get(name, '')}" for name in CONTEXT_VARS]
    return _sha256_hex("\0".join(parts).encode())


#: A Unix socket's path fits in sun_path: 108 bytes on Linux, 104 on macOS and the BSDs, with a NUL.
SOCKET_PATH_MAX = 103
_SOCKET_NAME_LEN = len("agent-") + 12 + len(".sock")


def runtime_dir(environ: Mapping[str, str] | None = None) -> str:
    """The agent's private directory: $XDG_RUNTIME_DIR/scalekit-auth, else (none, or a path so long
    a socket in it would not fit) /tmp/scalekit-auth-<uid>."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_RUNTIME_DIR", "").strip()
    if base and os.path.isdir(base):
        candidate = os.path.join(os.path.abspath(base), "scalekit-auth")
        if len(os.fsencode(candidate)) + 1 + _SOCKET_NAME_LEN <= SOCKET_PATH_MAX:
            return candidate
    return os.path.join("/tmp", f"scalekit-auth-{os.getuid()}")  # noqa: S108 - private, 0700, owner-checked


def agent_socket(environ: Mapping[str, str] | None = None) -> str:
    """The socket of the agent serving this state folder from this copy of the skill (one agent
    each: two copies of the skill never share one)."""
    key = skill_dir(environ) + "\0" + _PACKAGE_PARENT
    name = "agent-" + _sha256_hex(key.encode())[:12] + ".sock"
    return os.path.join(runtime_dir(environ), name)


def agent_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(AGENT_VAR, "").strip().lower() not in ("0", "false", "no", "off")
