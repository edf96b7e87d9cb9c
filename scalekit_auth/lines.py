"""The fast path's plain form of the agent protocol: one request line, and an answer line
`OK<TAB>token<TAB>...` or `NO`. Part of protocol.py (which re-exports it), kept apart so that
`get_token.py` compiles and loads only this much on its fast path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~9 ms to import; the fast path must stay lean

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Bumped whenever a message changes shape; both sides refuse any other version.
PROTOCOL = 2
#: The longest token (and text field) either side accepts.
MAX_TEXT = 64 * 1024


def lines_request(context: str, services: Sequence[str]) -> bytes:
    """A token request answered with one line `OK<TAB>token<TAB>...` (or `NO`); `services` are plain
    names (letters, digits, `_.-`), so they need no escaping."""
    names = ", ".join(f'"{s}"' for s in services)
    return (
        f'{{"v": {PROTOCOL}, "context": "{context}", "op": "token", "services": [{names}], '
        '"identifier": null, "force_refresh": false, "format": "lines"}'
    ).encode()


def plain_token(token: object) -> bool:
    """A token the plain form may carry: printable ASCII without spaces or tabs, at most MAX_TEXT."""
    return (
        isinstance(token, str)
        and 0 < len(token) <= MAX_TEXT
        and token.isascii()
        and token.isprintable()
        and (" " not in token)
    )


def lines_answer(tokens: Sequence[object]) -> bytes:
    """The agent's plain answer: OK and the tokens, or NO when any is not plain (the caller's full path
    then asks again and reports it properly)."""
    if not tokens or not all(plain_token(t) for t in tokens):
        return b"NO"
    return ("OK\t" + "\t".join(tokens)).encode()  # type: ignore[arg-type]


def parse_lines(line: bytes | None, count: int) -> list[bytes] | None:
    """The tokens of a plain answer, or None (NO, malformed, or the wrong number of tokens)."""
    if line is None or not line.startswith(b"OK\t"):
        return None
    tokens = line[3:].split(b"\t")
    if len(tokens) != count:
        return None
    for token in tokens:
        if not 0 < len(token) <= MAX_TEXT or any(b < 0x21 or b > 0x7E for b in token):
            return None
    return tokens
