"""The connections gRPC service: ListAppConnections, the environment's app connections (what
`client.connection.list_app_connections` asks), built on the SDK's own generated servicer base."""

from __future__ import annotations

from scalekit.v1.connections import connections_pb2 as pb
from scalekit.v1.connections.connections_pb2_grpc import ConnectionServiceServicer

from .servicer import _page, rpc
from .state import Connection, EmulatorError, World

#: ListAppConnectionsRequest.page_size: buf.validate `uint32 {lte: 30}` in the SDK's descriptors.
MAX_PAGE_SIZE = 30
#: Without a page size: not documented; a short page, so a client that ignores next_page_token shows.
DEFAULT_PAGE_SIZE = 10

_TYPES = {
    "oauth": pb.OAUTH,
    "static": pb.API_KEY,
    "google_dwd": pb.GOOGLE_DWD,
    "trusted_idp": pb.TRUSTED_IDP,
    "org_wide": pb.OAUTH,
}


def connection_message(conn: Connection) -> pb.ListConnection:
    """One connection as ListAppConnections lists it: `key_id` is the name every other call takes."""
    return pb.ListConnection(
        id="conn_" + conn.name,
        key_id=conn.name,
        provider_key=conn.provider_key,
        type=_TYPES[conn.kind],
        status=pb.ConnectionStatus.Value(conn.status),
        enabled=conn.enabled,
        auth_mode=pb.ConnectionAuthMode.Value(conn.auth_mode),
    )


class ConnectionService(ConnectionServiceServicer):
    """The one ConnectionService RPC this skill uses."""

    def __init__(self, world: World) -> None:
        self.world = world

    @rpc
    def ListAppConnections(self, request, context):
        if request.page_size > MAX_PAGE_SIZE:
            raise EmulatorError(
                "INVALID_ARGUMENT", f"validation error: page_size: value must be less than or equal to {MAX_PAGE_SIZE}"
            )
        found = self.world.list_connections(
            provider=request.provider if request.HasField("provider") else None,
            query=request.query if request.HasField("query") else None,
        )
        page, nxt, prev = _page(found, request.page_size or DEFAULT_PAGE_SIZE, request.page_token)
        return pb.ListAppConnectionsResponse(
            connections=[connection_message(c) for c in page],
            next_page_token=nxt,
            prev_page_token=prev,
            total_size=len(found),
        )
