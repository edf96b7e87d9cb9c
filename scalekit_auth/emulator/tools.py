"""A small tool catalog for the emulator's ToolService: a few tools per provider, with JSON input
schemas, whose results are computed from the emulated account (never its credentials).

Names follow Scalekit's catalog (gmail_get_profile, gmail_fetch_mails, gmail_send_message,
slack_auth_test, slack_send_message, github_user_get_authenticated); schemas and results are
this emulator's own, shaped like the providers' APIs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .state import Account, EmulatorError


@dataclass(frozen=True)
class Tool:
    name: str
    provider: str
    description: str
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    run: Callable[[Account, dict[str, Any]], dict[str, Any]] = lambda acc, args: {}

    @property
    def input_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": self.properties, "required": list(self.required)}

    def definition(self, summary: bool = False) -> dict[str, Any]:
        if summary:
            return {"name": self.name, "description": self.description}
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}

    def words(self) -> set[str]:
        text = f"{self.name.replace('_', ' ')} {self.description}".lower()
        return {w.strip(".,:;()'\"") for w in text.split()}


def _seed(acc: Account) -> int:
    return int.from_bytes(hashlib.sha256(f"{acc.connection.name}/{acc.identifier}".encode()).digest()[:4], "big")


def _address(acc: Account) -> str:
    return acc.identifier if "@" in acc.identifier else f"{acc.identifier}@example.com"


def _mailbox(acc: Account) -> list[dict[str, Any]]:
    """Eight messages per account, the even ones unread; the same every time."""
    base = _seed(acc)
    return [
        {
            "id": f"{base + i:x}",
            "threadId": f"{base + i // 2:x}",
            "snippet": f"Message {i + 1} for {acc.identifier}",
            "labelIds": ["INBOX", "UNREAD"] if i % 2 == 0 else ["INBOX"],
        }
        for i in range(8)
    ]


def _gmail_profile(acc: Account, args: dict[str, Any]) -> dict[str, Any]:
    return {"emailAddress": _address(acc), "messagesTotal": 8, "threadsTotal": 4, "historyId": str(_seed(acc))}


def _gmail_fetch(acc: Account, args: dict[str, Any]) -> dict[str, Any]:
    messages = _mailbox(acc)
    query = str(args.get("query") or "")
    if "is:unread" in query:
        messages = [m for m in messages if "UNREAD" in m["labelIds"]]
    limit = int(args.get("max_results") or 100)
    return {"messages": messages[:limit], "resultSizeEstimate": len(messages)}


def _gmail_send(acc: Account, args: dict[str, Any]) -> dict[str, Any]:
    ident = secrets.token_hex(8)
    return {"id": ident, "threadId": ident, "labelIds": ["SENT"], "from": _address(acc), "to": args["to"]}


def _slack_auth_test(acc: Account, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "user": acc.identifier, "user_id": f"U{_seed(acc):08X}", "team": "Emulated workspace"}


def _slack_send(acc: Account, args: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "channel": args["channel"], "ts": f"{_seed(acc)}.000100", "message": {"text": args["text"]}}


def _github_user(acc: Account, args: dict[str, Any]) -> dict[str, Any]:
    return {"login": acc.identifier, "id": _seed(acc), "type": "User"}


CATALOG: tuple[Tool, ...] = (
    Tool(
        "gmail_fetch_mails",
        "gmail",
        "Fetch emails from the connected Gmail account, optionally filtered with a Gmail search query.",
        {
            "query": {"type": "string", "description": "Gmail search syntax, e.g. 'is:unread'"},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 500, "description": "How many to return"},
        },
        run=_gmail_fetch,
    ),
    Tool(
        "gmail_get_profile",
        "gmail",
        "Get the Gmail profile of the connected account: its address and message and thread counts.",
        run=_gmail_profile,
    ),
    Tool(
        "gmail_send_message",
        "gmail",
        "Send an email message from the connected Gmail account.",
        {
            "to": {"type": "string", "description": "Recipient address(es), comma-separated"},
            "subject": {"type": "string"},
            "body": {"type": "string"},
            "cc": {"type": "string"},
        },
        ("to", "subject", "body"),
        run=_gmail_send,
    ),
    Tool(
        "slack_auth_test",
        "slack",
        "Check the Slack connection and tell which user and workspace it acts as.",
        run=_slack_auth_test,
    ),
    Tool(
        "slack_send_message",
        "slack",
        "Send a message to a Slack channel as the connected user.",
        {"channel": {"type": "string", "description": "Channel ID or name"}, "text": {"type": "string"}},
        ("channel", "text"),
        run=_slack_send,
    ),
    Tool(
        "github_user_get_authenticated",
        "github",
        "Get the GitHub user the connection acts as.",
        run=_github_user,
    ),
)
BY_NAME = {t.name: t for t in CATALOG}

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def validate_input(tool: Tool, args: dict[str, Any]) -> None:
    """INVALID_ARGUMENT for a missing required field or a value of the wrong type or range
    (properties the schema does not name are accepted, as schema_version/tool_version are)."""
    for name in tool.required:
        if args.get(name) in (None, ""):
            raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: value is required")
    for name, value in args.items():
        spec = tool.properties.get(name)
        if spec is None:
            continue
        if not _TYPES[spec["type"]](value):
            raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: must be of type {spec['type']}")
        if "minimum" in spec and value < spec["minimum"] or "maximum" in spec and value > spec["maximum"]:
            raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: out of range")


def matches(tool: Tool, query: str) -> float:
    """The share of the query's words found in the tool's name and description (0 to 1)."""
    terms = [w for w in query.lower().split() if len(w) > 1]
    if not terms:
        return 0.0
    words = tool.words()
    return sum(1 for t in terms if t in words) / len(terms)
