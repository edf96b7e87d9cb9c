"""`scalekit-auth mcp`: a small MCP server (stdio) for MCP clients, built on the official MCP SDK.

Its five tools hand a model results, never a token: `status`, `authorize` (the link at once, or
a wait with progress), `request` (an API call with the token attached here, the answer
redacted), and Scalekit's own tools through `list_tools` / `run_tool`. Every schema costs the model
tokens on every turn, so the surface stays this small; the command line remains the skill's
primary path. Errors come back as MCP tool errors with the same text the command line prints.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from .display import printable
from .errors import AuthorizationError, BatchError, ScalekitAuthError

#: The most of an API answer a tool result carries (a model's context is not a download folder).
MCP_MAX_BYTES = 256 * 1024
INSTRUCTIONS = (
    "Call APIs of the user's connected accounts (Gmail, Slack, GitHub, Notion, ...) through Scalekit. "
    "Use `request` with the API's full https URL; you never see or need the token. If a result says "
    "authorization is needed, send the user the link it contains and call `authorize` with wait_seconds "
    "to wait for them."
)


def _road() -> Any:
    from .sources import road_for

    return road_for(None)


def _fail(err: BaseException) -> Exception:
    """A tool error with the command line's words (no traceback, no control characters)."""
    if isinstance(err, ScalekitAuthError):
        return ToolError(printable(str(err)))
    return ToolError(f"unexpected error ({err.__class__.__name__})")


def status(services: list[str] | None = None) -> list[dict[str, Any]]:
    """One entry per configured service (or those named): connected or not, and until when."""
    broker = _road().broker
    names = services or sorted(broker.connections())
    try:
        statuses, errors = broker.account_statuses(names), {}
    except BatchError as batch:  # one account listing per identifier and 20 connections
        statuses, errors = batch.results, batch.errors
    out: list[dict[str, Any]] = []
    for name in names:
        if name not in statuses:
            err = errors[name]
            if not isinstance(err, ScalekitAuthError):
                raise err
            out.append({"service": name, "status": "ERROR", "error": printable(str(err))})
            continue
        found = statuses[name]
        out.append(
            {
                "service": found.target.service,
                "identifier": found.target.identifier,
                "status": found.status or "NOT_CONNECTED",
                "expires_at": found.expires_at.isoformat() if found.expires_at else None,
            }
        )
    return out


def authorize_link(service: str, identifier: str | None = None) -> dict[str, Any]:
    """The account's state: connected, or a fresh authorization link for the user."""
    road = _road()
    try:
        creds = road.credentials([service], identifier)[0]
    except AuthorizationError as err:
        return {
            "service": err.service,
            "identifier": err.identifier,
            "status": err.status or "NOT_CONNECTED",
            "link": err.link,
            "link_expires_at": err.expires_at.isoformat() if err.expires_at else None,
            "next": "Send the user this link; then call authorize again with wait_seconds to wait for them.",
        }
    return {"service": creds.service, "identifier": creds.identifier, "status": "ACTIVE"}


def api_call(
    url: str,
    method: str = "GET",
    service: str | None = None,
    identifier: str | None = None,
    json_body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    from .request import api_request

    response = api_request(
        url,
        method=method,
        service=service,
        identifier=identifier,
        json=json_body,
        query=query,
        headers=headers,
        max_bytes=MCP_MAX_BYTES,
        road=_road(),
    )
    envelope = response.envelope()
    envelope.pop("saved_to", None)
    return envelope


def list_tools(service: str, query: str = "") -> list[dict[str, Any]]:
    return _road().broker.list_tools(service, None, query)


def run_tool(service: str, name: str, arguments: dict[str, Any], identifier: str | None = None) -> Any:
    return _road().broker.execute_tool(service, identifier, name, arguments)


def build_server() -> Any:
    """The MCPServer with its tools."""
    from . import __version__

    server: Any = MCPServer(name="scalekit-auth", version=__version__, instructions=INSTRUCTIONS)

    async def off_loop(fn: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args))
        except Exception as err:  # noqa: BLE001 - every failure becomes a tool error with our words
            raise _fail(err) from None

    @server.tool(name="status", description="Which services are connected (never returns a token).")
    async def status_tool(services: list[str] | None = None) -> str:
        return json.dumps(await off_loop(status, services))

    @server.tool(
        name="authorize",
        description=(
            "Connect a service account: returns a link for the user at once; with wait_seconds > 0, waits "
            "(reporting progress) until the user has authorized, then returns status ACTIVE."
        ),
    )
    async def authorize_tool(service: str, ctx: Context, identifier: str | None = None, wait_seconds: float = 0) -> str:
        state = await off_loop(authorize_link, service, identifier)
        if state["status"] == "ACTIVE" or wait_seconds <= 0:
            return json.dumps(state)
        await ctx.report_progress(0, wait_seconds, f"waiting for the user to open {state['link']}")
        waited = 0.0
        step = min(2.0, wait_seconds)
        while waited < wait_seconds:
            await anyio.sleep(step)
            waited += step
            state = await off_loop(authorize_link, service, identifier)
            if state["status"] == "ACTIVE":
                return json.dumps(state)
            await ctx.report_progress(min(waited, wait_seconds), wait_seconds, "still waiting for the user")
        state["timed_out"] = True
        return json.dumps(state)

    @server.tool(
        name="request",
        description=(
            "Call an API of a connected account with its token attached by scalekit-auth: give the full https "
            "URL. Returns status, headers and body (redacted); never the token. Needs authorization first? "
            "The error says so and carries the link."
        ),
    )
    async def request_tool(
        url: str,
        method: str = "GET",
        service: str | None = None,
        identifier: str | None = None,
        json_body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        return json.dumps(await off_loop(api_call, url, method, service, identifier, json_body, query, headers))

    @server.tool(
        name="list_tools",
        description="Scalekit's ready-made tools for a service (name, description, input schema), for run_tool.",
    )
    async def list_tools_tool(service: str, query: str = "") -> str:
        return json.dumps(await off_loop(list_tools, service, query))

    @server.tool(
        name="run_tool",
        description="Run one of Scalekit's tools (see list_tools) as the user's account; returns its result.",
    )
    async def run_tool_tool(
        service: str, name: str, arguments: dict[str, Any] | None = None, identifier: str | None = None
    ) -> str:
        return json.dumps(await off_loop(run_tool, service, name, arguments or {}, identifier))

    return server


def serve() -> int:
    """Run the server on stdio until the client hangs up."""
    build_server().run("stdio")
    return 0
