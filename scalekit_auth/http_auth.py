"""Put the token where it is needed: `requests` and `httpx` auth, with one-shot 401 recovery.

On a 401 the cached token is dropped, a fresh one fetched, and the request re-sent once,
only when the token actually changed and the body can be sent again (no streams). A
second 401 goes back to the caller: never a loop. Only a 401 from the origin (scheme, host,
port) the token was attached for is retried: after a redirect to another host (or from https
to http) the 401 is not about our token, and that host must never be handed one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .bootstrap import import_or_explain
from .broker import TokenBroker
from .errors import URLRefusedError
from .logs import get_logger
from .sources import Road, road_for

if TYPE_CHECKING:
    import requests
else:
    # Through import_or_explain: on a bare Python the first use installs the skill's packages privately.
    requests = import_or_explain("requests", "requests")
from requests.auth import AuthBase  # noqa: E402 - after the line above has made requests importable

log = get_logger("scalekit_auth.http")

_RETRIED = "_scalekit_auth_retried"


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with default ports filled in: what must match for a token to go along.
    None for a URL no token may go to (services.parse_url refuses it): it matches no origin."""
    from .services import parse_url

    try:
        return parse_url(url, as_given=True).origin
    except URLRefusedError:
        return None


class _TokenSource:
    """What both auth classes share: which service and account, and the broker to ask."""

    def __init__(
        self,
        service: str | None = None,
        identifier: str | None = None,
        broker: TokenBroker | None = None,
        *,
        road: Road | None = None,
    ):
        self.service = service
        self.identifier = identifier
        self._broker = broker
        self._road = road

    def __repr__(self) -> str:
        return f"{type(self).__name__}(service={self.service!r}, identifier={self.identifier!r})"

    @property
    def road(self) -> Road:
        return self._road or road_for(self._broker)

    def _service_for(self, url: str) -> str:
        """The service whose token goes to `url`: the one named, or the URL's. Either way the URL must pass
        services.check_url (URLRefusedError otherwise), so no token goes where the URL rule forbids. The
        client sends `url` as it holds it: it must be absolute (as_given)."""
        target = self.road.broker.url_target(url, as_given=True)
        return self.service or self.road.broker.explain_unknown(target)


class ScalekitAuth(_TokenSource, AuthBase):
    """`requests` auth: `requests.get(url, auth=ScalekitAuth("gmail"))`.

    With no `service`, it is worked out from each request's URL (see service_for_url).
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        service = self._service_for(request.url or "")
        request.headers["Authorization"] = f"Bearer {self.road.token(service, self.identifier)}"
        request.register_hook("response", functools.partial(self._on_response, origin(request.url or "")))
        return request

    def _on_response(
        self, token_origin: tuple[str, str, int] | None, response: requests.Response, **kwargs: Any
    ) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, _RETRIED, False):
            return response
        if token_origin is None or origin(request.url or "") != token_origin:  # redirected elsewhere: not ours
            log.debug("401 not retried: it came from another origin than the token was sent to")
            return response
        if not _can_resend(request):
            log.debug("401 not retried: the request body cannot be sent again")
            return response
        service = self._service_for(request.url or "")
        old = request.headers.get("Authorization", "")
        self.road.invalidate(service, self.identifier)
        token = self.road.token(service, self.identifier, force_refresh=True)
        if f"Bearer {token}" == old:
            log.debug("401 not retried: Scalekit returned the same token")
            return response
        response.content  # noqa: B018 - drain so the connection can be reused
        response.close()
        retry = request.copy()
        retry.headers["Authorization"] = f"Bearer {token}"
        setattr(retry, _RETRIED, True)
        if retry.body is not None and hasattr(retry.body, "seek"):
            requests.utils.rewind_body(retry)
        new_response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return new_response


def _can_resend(request: requests.PreparedRequest) -> bool:
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    # A file-like body can be rewound when requests noted where it started.
    return hasattr(body, "seek") and isinstance(getattr(request, "_body_position", None), int)


def session(service: str | None = None, identifier: str | None = None) -> requests.Session:
    """A `requests.Session` that authenticates every request with the service's token."""
    s = requests.Session()
    s.auth = ScalekitAuth(service, identifier)
    return s


_httpx_class: Any = None


def httpx_auth(service: str | None = None, identifier: str | None = None, broker: TokenBroker | None = None):
    """The same as ScalekitAuth for `httpx` (imported only when this is called)."""
    global _httpx_class
    if _httpx_class is None:
        _httpx_class = _make_httpx_class()
    return _httpx_class(service, identifier, broker)


def _make_httpx_class():
    from .bootstrap import import_or_explain

    httpx = import_or_explain("httpx", "httpx")

    class ScalekitHttpxAuth(_TokenSource, httpx.Auth):
        """`httpx` auth: `httpx.get(url, auth=httpx_auth("gmail"))`; one retry on 401."""

        requires_request_body = False

        def auth_flow(self, request):
            service = self._service_for(str(request.url))
            token = self.road.token(service, self.identifier)
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401 or not isinstance(request.stream, httpx.ByteStream):
                return
            sent_to = origin(str(request.url))
            if sent_to is None or origin(str(response.request.url)) != sent_to:
                return  # the 401 came from where a redirect led, not from the token's origin
            self.road.invalidate(service, self.identifier)
            fresh = self.road.token(service, self.identifier, force_refresh=True)
            if fresh == token:
                return
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request

        async def async_auth_flow(self, request):
            """For httpx.AsyncClient: a cold token is fetched in a thread, never on the event loop."""
            from .aio import aget_token

            service = self._service_for(str(request.url))
            token = await aget_token(service, self.identifier, broker=self._broker)
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401 or not isinstance(request.stream, httpx.ByteStream):
                return
            sent_to = origin(str(request.url))
            if sent_to is None or origin(str(response.request.url)) != sent_to:
                return
            self.road.invalidate(service, self.identifier)
            fresh = await aget_token(service, self.identifier, force_refresh=True, broker=self._broker)
            if fresh == token:
                return
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request

    return ScalekitHttpxAuth
