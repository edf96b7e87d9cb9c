"""The connected-accounts gRPC service, built on the SDK's own generated servicer base."""

from __future__ import annotations

import base64
import functools
import re
import secrets
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.wrappers_pb2 import BoolValue
from scalekit.v1.connected_accounts import connected_accounts_pb2 as pb
from scalekit.v1.connected_accounts.connected_accounts_pb2_grpc import ConnectedAccountServiceServicer
from scalekit.v1.tools import tools_pb2 as tools_pb
from scalekit.v1.tools.tools_pb2_grpc import ToolServiceServicer

from . import tools as catalog
from .state import Account, EmulatorError, World

#: ListTools: no documented default or limit (ours).
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
#: ListConnectedAccounts: "Default is typically 10"; the limit (below 100) is its buf.validate rule.
ACCOUNTS_DEFAULT_PAGE_SIZE = 10


def _ts(epoch: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(epoch * 1e9))
    return ts


_AUTH_TYPES = {
    "oauth": pb.OAUTH,
    "static": pb.API_KEY,
    "google_dwd": pb.GOOGLE_DWD,
    "trusted_idp": pb.TRUSTED_IDP,
    "org_wide": pb.OAUTH,
}


#: The TrustedIDPAuth fields Scalekit returns (secret_access_key and session_token stay server-side).
TRUSTED_IDP_RETURNED = ("db_user", "access_key_id")


def _status_enum(name: str) -> int:
    return pb.ConnectorStatus.Value(name)


def account_message(acc: Account, *, with_credentials: bool) -> pb.ConnectedAccount:
    """Render an account the way GetConnectedAccountAuth/Details answer."""
    msg = pb.ConnectedAccount(
        id=acc.id,
        identifier=acc.identifier,
        provider=acc.connection.provider,
        connector=acc.connection.name,
        connection_id="conn_" + acc.connection.name,
        status=_status_enum(acc.status),
        authorization_type=_AUTH_TYPES[acc.connection.kind],
        updated_at=_ts(acc.updated_at),
        is_org_wide_credential=acc.org_wide_credential,
    )
    if acc.token_expires_at:
        msg.token_expires_at.CopyFrom(_ts(acc.token_expires_at))
    if acc.last_used_at:
        msg.last_used_at.CopyFrom(_ts(acc.last_used_at))
    if with_credentials and acc.connection.kind == "google_dwd" and acc.access_token:
        dwd = pb.GoogleDWDAuth(subject=acc.identifier, access_token=acc.access_token, scopes=acc.scopes)
        if acc.token_expires_at:
            dwd.token_expires_at.CopyFrom(_ts(acc.token_expires_at))
        msg.authorization_details.google_dwd.CopyFrom(dwd)
    elif with_credentials and acc.connection.kind == "trusted_idp" and acc.static_details:
        # Scalekit keeps the federated secret key and session token to itself: "never returned in
        # public API responses" (the API reference); only the key id, db user and expiry come back.
        idp = pb.TrustedIDPAuth(**{k: v for k, v in acc.static_details.items() if k in TRUSTED_IDP_RETURNED})
        if acc.token_expires_at:
            idp.expiry.CopyFrom(_ts(acc.token_expires_at))
        msg.authorization_details.trusted_idp.CopyFrom(idp)
    elif with_credentials:
        if (acc.connection.kind == "oauth" or acc.org_wide_credential) and acc.access_token:
            msg.authorization_details.oauth_token.CopyFrom(
                pb.OauthToken(access_token=acc.access_token, refresh_token=acc.refresh_token, scopes=acc.scopes)
            )
        elif acc.connection.kind == "static" and acc.static_details:
            details = struct_pb2.Struct()
            details.update(acc.static_details)
            msg.authorization_details.static_auth.details.CopyFrom(details)
    return msg


def _list_item(acc: Account) -> pb.ConnectedAccountForList:
    item = pb.ConnectedAccountForList(
        id=acc.id,
        identifier=acc.identifier,
        provider=acc.connection.provider,
        connector=acc.connection.name,
        connection_id="conn_" + acc.connection.name,
        status=_status_enum(acc.status),
        authorization_type=_AUTH_TYPES[acc.connection.kind],
        updated_at=_ts(acc.updated_at),
        is_org_wide_credential=acc.org_wide_credential,
    )
    if acc.token_expires_at:
        item.token_expires_at.CopyFrom(_ts(acc.token_expires_at))
    return item


def _details_from(message: Any) -> tuple[dict | None, dict | None]:
    """(oauth, static) dicts from a Create/UpdateConnectedAccount message."""
    if not message.HasField("authorization_details"):
        return None, None
    details = message.authorization_details
    which = details.WhichOneof("details")
    if which == "oauth_token":
        tok = details.oauth_token
        return {"access_token": tok.access_token, "refresh_token": tok.refresh_token, "scopes": list(tok.scopes)}, None
    if which == "static_auth":
        return None, MessageToDict(details.static_auth.details)
    return None, None


def _bearer(context: grpc.ServicerContext) -> str:
    """The first `authorization` value: the SDK sends the current token first, a stale copy second."""
    for key, value in context.invocation_metadata():
        if key.lower() == "authorization" and isinstance(value, str):  # bytes only for "-bin" keys
            return value[7:] if value.lower().startswith("bearer ") else ""
    return ""


def _repeated(field: Any) -> bool:
    label = getattr(field, "label", None)  # newer protobuf: is_repeated
    return label == 3  # LABEL_REPEATED


_NUMBER_RULES = ("int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64")


def _string_problem(rule: Any, text: str) -> str | None:
    """What is wrong with `text` under buf.validate StringRules (length, pattern, prefix), or None."""
    if rule.HasField("min_len") and len(text) < rule.min_len:
        return f"value length must be at least {rule.min_len} characters"
    if rule.HasField("max_len") and len(text) > rule.max_len:
        return f"value length must be at most {rule.max_len} characters"
    if rule.HasField("pattern") and not re.search(rule.pattern, text):
        return f"value does not match regex pattern `{rule.pattern}`"
    if rule.HasField("prefix") and text and not text.startswith(rule.prefix):
        return f"value does not have prefix `{rule.prefix}`"
    return None


def _number_problem(rule: Any, value: int) -> str | None:
    """What is wrong with `value` under buf.validate number rules (lt, lte, gt, gte), or None."""
    if rule.HasField("lt") and not value < rule.lt:
        return f"value must be less than {rule.lt}"
    if rule.HasField("lte") and not value <= rule.lte:
        return f"value must be less than or equal to {rule.lte}"
    if rule.HasField("gt") and not value > rule.gt:
        return f"value must be greater than {rule.gt}"
    if rule.HasField("gte") and not value >= rule.gte:
        return f"value must be greater than or equal to {rule.gte}"
    return None


def check_request(message: Any, prefix: str = "") -> None:
    """Refuse a request the way Scalekit does: INVALID_ARGUMENT for any field that breaks the
    buf.validate rules in the SDK's own descriptors: `required`; string length, pattern and
    prefix; number bounds (ListConnectedAccounts' page_size `lt: 100`); repeated fields' item
    counts and each item's string rules (its connection_names: at most 20). As protovalidate
    does, a field with presence that is not set is not checked; set message fields (a ListTools
    filter) are checked in turn."""
    from buf.validate import validate_pb2

    for field in message.DESCRIPTOR.fields:
        rules = field.GetOptions().Extensions[validate_pb2.field]
        name = prefix + field.name
        problem = None
        if getattr(field, "is_repeated", False) or _repeated(field):
            items = getattr(message, field.name)
            if rules.HasField("repeated"):
                rule = rules.repeated
                if rule.HasField("max_items") and len(items) > rule.max_items:
                    problem = f"value must contain no more than {rule.max_items} item(s)"
                elif rule.HasField("min_items") and len(items) < rule.min_items:
                    problem = f"value must contain at least {rule.min_items} item(s)"
                elif rule.items.HasField("string"):
                    found = ((i, _string_problem(rule.items.string, t)) for i, t in enumerate(items))
                    first = next(((i, p) for i, p in found if p), None)
                    if first is not None:
                        name, problem = f"{name}[{first[0]}]", first[1]
            if problem:
                raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: {problem}")
            continue
        if field.type == field.TYPE_MESSAGE:
            if message.HasField(field.name):
                if field.message_type.full_name.startswith("scalekit."):
                    check_request(getattr(message, field.name), name + ".")
            elif rules.required:
                raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: value is required")
            continue
        if field.has_presence and not message.HasField(field.name) and not rules.required:
            continue
        value = getattr(message, field.name)
        if rules.required and not value:
            raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: value is required")
        kind = rules.WhichOneof("type")
        if field.type == field.TYPE_STRING and kind == "string":
            problem = _string_problem(rules.string, value)
        elif kind in _NUMBER_RULES:
            problem = _number_problem(getattr(rules, kind), value)
        if problem:
            raise EmulatorError("INVALID_ARGUMENT", f"validation error: {name}: {problem}")


def _abort_with_error_code(context: grpc.ServicerContext, code: str, message: str, error_code: str) -> None:
    """Abort with an ErrorInfo{error_code} detail, as Scalekit does where its docs name a code
    (the SDK reads it into the exception's error_code)."""
    from google.protobuf import any_pb2
    from google.rpc import status_pb2
    from grpc_status import rpc_status
    from scalekit.v1.errdetails.errdetails_pb2 import ErrorInfo

    detail = any_pb2.Any()
    detail.Pack(ErrorInfo(error_code=error_code))
    status = status_pb2.Status(code=getattr(grpc.StatusCode, code).value[0], message=message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))


def rpc(func: Callable) -> Callable:
    """Count the call, apply latency, check the bearer token and injected faults, map errors."""

    @functools.wraps(func)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        world = self.world
        name = func.__name__
        world.count("rpc_calls")
        world.count(f"rpc.{name}")
        world.delay()
        if not world.client_token_valid(_bearer(context)):
            world.count("rpc_unauthenticated")
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or expired access token")
        fault = world.take_fault(name)
        if fault is not None:
            context.abort(getattr(grpc.StatusCode, fault.code), fault.message or f"injected {fault.code}")
        try:
            check_request(request)
            return func(self, request, context)
        except EmulatorError as err:
            if err.error_code:
                _abort_with_error_code(context, err.code, err.message, err.error_code)
            context.abort(getattr(grpc.StatusCode, err.code), err.message)

    return wrapper


class ConnectedAccountService(ConnectedAccountServiceServicer):
    """The subset of Scalekit's ConnectedAccountService this skill and its tests use."""

    def __init__(self, world: World, link_url: Callable[[str], str], done_url: Callable[[], str]) -> None:
        self.world = world
        self.link_url = link_url
        self.done_url = done_url

    @rpc
    def GetConnectedAccountAuth(self, request, context):
        acc = self.world.lookup_with_refresh(request.connector, request.identifier, request.id)
        return pb.GetConnectedAccountByIdentifierResponse(connected_account=account_message(acc, with_credentials=True))

    @rpc
    def GetConnectedAccountDetails(self, request, context):
        acc = self.world.find(request.connector, request.identifier, request.id)
        details = account_message(acc, with_credentials=False)
        return pb.GetConnectedAccountByIdentifierResponse(connected_account=details)

    @rpc
    def GetConnectedAccount(self, request, context):
        acc = self.world.find(account_id=request.id)
        return pb.GetConnectedAccountResponse(connected_account=account_message(acc, with_credentials=False))

    @rpc
    def GetMagicLinkForConnectedAccount(self, request, context):
        connector, identifier = request.connector, request.identifier
        if request.id and not connector:
            acc = self.world.find(account_id=request.id)
            connector, identifier = acc.key
        link = self.world.create_link(connector, identifier, request.user_verify_url, request.state)
        return pb.GetMagicLinkForConnectedAccountResponse(link=self.link_url(link.token), expiry=_ts(link.expires_at))

    @rpc
    def VerifyConnectedAccountUser(self, request, context):
        self.world.verify_user(request.auth_request_id, request.identifier)
        return pb.VerifyConnectedAccountUserResponse(post_user_verify_redirect_url=self.done_url())

    @rpc
    def CreateConnectedAccount(self, request, context):
        oauth, static = _details_from(request.connected_account)
        acc = self.world.create(request.connector, request.identifier, oauth=oauth, static=static)
        return pb.CreateConnectedAccountResponse(connected_account=account_message(acc, with_credentials=True))

    @rpc
    def UpdateConnectedAccount(self, request, context):
        oauth, static = _details_from(request.connected_account)
        acc = self.world.update(request.connector, request.identifier, request.id, oauth=oauth, static=static)
        return pb.UpdateConnectedAccountResponse(connected_account=account_message(acc, with_credentials=True))

    @rpc
    def DeleteConnectedAccount(self, request, context):
        self.world.delete(request.connector, request.identifier, request.id)
        return pb.DeleteConnectedAccountResponse()

    @rpc
    def ListConnectedAccounts(self, request, context):
        """Filters as documented (connection_names: exact names, at most 20, not with connector);
        page_size below 100 (check_request), 10 when unset ("Default is typically 10")."""
        if request.connector and request.connection_names:
            raise EmulatorError("INVALID_ARGUMENT", "connection_names cannot be combined with connector")
        size = request.page_size or ACCOUNTS_DEFAULT_PAGE_SIZE
        matches = self.world.list(
            connector=request.connector,
            identifier=request.identifier,
            provider=request.provider,
            connection_names=list(request.connection_names),
            org_wide_credential=(
                request.is_org_wide_credential if request.HasField("is_org_wide_credential") else None
            ),
        )
        start = 0
        if request.page_token:
            try:
                start = int(base64.urlsafe_b64decode(request.page_token.encode()).decode())
            except ValueError:
                raise EmulatorError("INVALID_ARGUMENT", "page_token is not valid") from None
        page = matches[start : start + size]
        nxt = start + size
        prev = max(start - size, 0)
        return pb.ListConnectedAccountsResponse(
            connected_accounts=[_list_item(a) for a in page],
            total_size=len(matches),
            next_page_token=base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(matches) else "",
            prev_page_token=base64.urlsafe_b64encode(str(prev).encode()).decode() if start > 0 else "",
        )


# -- tools ----------------------------------------------------------------------------

_READINESS = {"ACTIVE": tools_pb.TOOL_READINESS_STATE_READY, "EXPIRED": tools_pb.TOOL_READINESS_STATE_NEEDS_REAUTH}
_TOOL_UPDATED_AT = 1767225600.0  # 2026-01-01: the catalog's fixed "last updated"


def _tool_message(tool: catalog.Tool, summary: bool) -> tools_pb.Tool:
    definition = struct_pb2.Struct()
    definition.update(tool.definition(summary))
    return tools_pb.Tool(
        id="tool_" + tool.name,
        provider=tool.provider.upper(),
        definition=definition,
        tags=[tool.provider],
        is_default=BoolValue(value=True),
        updated_at=_ts(_TOOL_UPDATED_AT),
    )


def _page(items: list, page_size: int, page_token: str) -> tuple[list, str, str]:
    """(page, next_page_token, prev_page_token) with the same opaque offsets as ListConnectedAccounts."""
    if page_size < 0:
        raise EmulatorError("INVALID_ARGUMENT", "page_size must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start = 0
    if page_token:
        try:
            start = int(base64.urlsafe_b64decode(page_token.encode()).decode())
        except ValueError:
            raise EmulatorError("INVALID_ARGUMENT", "page_token is not valid") from None
    nxt, prev = start + size, max(start - size, 0)
    return (
        items[start : start + size],
        base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(items) else "",
        base64.urlsafe_b64encode(str(prev).encode()).decode() if start > 0 else "",
    )


def _tool_error(context: grpc.ServicerContext, code: str, tool_error_code: str, message: str, execution_id: str):
    """Abort as Scalekit does when the provider refused a tool call: the gRPC code, and an ErrorInfo
    detail with error_code TOOL_ERROR and a ToolErrorInfo (what the SDK turns into ScalekitTool*)."""
    from google.protobuf import any_pb2
    from google.rpc import status_pb2
    from grpc_status import rpc_status
    from scalekit.v1.errdetails.errdetails_pb2 import ErrorInfo, ToolErrorInfo

    info = ErrorInfo(
        error_code="TOOL_ERROR",
        tool_error_info=ToolErrorInfo(
            execution_id=execution_id, tool_error_message=message, tool_error_code=tool_error_code
        ),
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(grpc.StatusCode, code).value[0], message=message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))


class ToolService(ToolServiceServicer):
    """ListTools, SearchTools and ExecuteTool over the catalog in emulator/tools.py."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _connection_tools(self, connector: str) -> list[catalog.Tool]:
        provider = self.world.connection(connector).provider
        return [t for t in catalog.CATALOG if t.provider == provider]

    @rpc
    def ListTools(self, request, context):
        f = request.filter
        found = list(catalog.CATALOG)
        if f.connector:
            found = self._connection_tools(f.connector)
        if f.provider:
            found = [t for t in found if t.provider == f.provider.lower()]
        if f.tool_name:
            found = [t for t in found if t.name in set(f.tool_name)]
        if f.query:
            found = [t for t in found if catalog.matches(t, f.query) == 1.0]
        found.sort(key=lambda t: t.name)
        summary = f.HasField("summary") and f.summary.value
        page, nxt, prev = _page(found, request.page_size, request.page_token)
        return tools_pb.ListToolsResponse(
            tools=[_tool_message(t, summary) for t in page],
            tool_names=[t.name for t in page],
            total_size=len(found),
            next_page_token=nxt,
            prev_page_token=prev,
        )

    @rpc
    def SearchTools(self, request, context):
        if request.top_k < 0:
            raise EmulatorError("INVALID_ARGUMENT", "top_k must not be negative")
        top_k = min(request.top_k or 10, 50)
        scored = [(catalog.matches(t, request.query), t) for t in catalog.CATALOG]
        ranked = sorted(((s, t) for s, t in scored if s > 0), key=lambda st: (-st[0], st[1].name))
        out = []
        for score, tool in ranked[:top_k]:
            item = tools_pb.SearchedTool(
                name=tool.name, provider=tool.provider.upper(), description=tool.description, score=score
            )
            if request.identifier:
                for acc in self.world.list(identifier=request.identifier, provider=tool.provider):
                    item.connections.add(
                        connection_name=acc.connection.name,
                        connected_account_id=acc.id,
                        readiness_state=_READINESS.get(acc.status, tools_pb.TOOL_READINESS_STATE_NEEDS_CONNECTION),
                    )
            out.append(item)
        return tools_pb.SearchToolsResponse(tools=out)

    @rpc
    def ExecuteTool(self, request, context):
        args = MessageToDict(request.params) if request.HasField("params") else {}
        entry = {
            "tool_name": request.tool_name,
            "connection_name": request.connector,
            "identifier": request.identifier,
            "input": args,
            "outcome": "refused",
            "execution_id": "",
            "result": None,
        }
        try:
            if request.connected_account_id:
                acc = self.world.find(account_id=request.connected_account_id)
                entry["connection_name"], entry["identifier"] = acc.key
            acc = self.world.usable_account(entry["connection_name"], entry["identifier"])
            tool = catalog.BY_NAME.get(request.tool_name)
            if tool is None:
                raise EmulatorError("INVALID_ARGUMENT", f"tool '{request.tool_name}' not found")
            if tool.provider != acc.connection.provider:
                raise EmulatorError(
                    "INVALID_ARGUMENT", f"tool '{tool.name}' is not a tool of connection '{acc.connection.name}'"
                )
            catalog.validate_input(tool, args)
        except EmulatorError:
            self.world.log("tools", entry)
            raise
        execution_id = "exec_" + secrets.token_hex(8)
        entry["execution_id"] = execution_id
        armed = self.world.take_tool_fault()
        if armed is not None:
            entry["outcome"] = "tool_error"
            self.world.log("tools", entry)
            _tool_error(context, armed.code, armed.tool_error_code, armed.message, execution_id)
        result = tool.run(acc, args)
        entry.update(outcome="ok", result=result)
        self.world.log("tools", entry)
        data = struct_pb2.Struct()
        data.update(result)
        return tools_pb.ExecuteToolResponse(data=data, execution_id=execution_id)
