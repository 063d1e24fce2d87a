"""Who may reach the HTTP side: Host, token, Origin, body size and security headers.

The guard is one pure ASGI middleware, so every route (the page, REST,
`/ws`, the docs) passes the same checks in the same order, and a refusal
never reaches an endpoint. A `/ws` handshake is refused with a real HTTP
status (the ASGI WebSocket Denial Response extension) where the server
supports it, so a script sees 401 or 403 rather than an opaque close.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = ("/healthz", "/static/")
"""Reachable without the token: the liveness probe, and the page's own CSS and script."""
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def cookie_name(scope: Scope) -> str:
    """One cookie per HTTP port: browsers share cookies across the ports of a host."""
    server = scope.get("server") or ("", 0)
    return f"webchat_token_{server[1]}"


def origin_of(scope: Scope, headers: Headers) -> str:
    """The origin this request was made to: scheme, host and port, as a browser writes it."""
    scheme = {"ws": "http", "wss": "https"}.get(scope["scheme"], scope["scheme"])
    return f"{scheme}://{headers.get('host', '')}".lower()


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def host_name(header: str) -> str:
    """The name in a Host header, without its port or an IPv6 address's brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")]
    return header.partition(":")[0]


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """Is this a Host webchat serves? DNS rebinding points an attacker's name at us, and
    its page then sends that name as Host (and as Origin), so without a token only names
    we know get in: loopback names, `--http-host`, `--allow-host`. An address typed as
    an address cannot be rebound, so any IP literal is fine, as are RFC 6761's
    `*.localhost` names, which browsers never ask DNS for."""
    if header is None or "*" in names:
        return True
    name = host_name(header)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name in names or name == "localhost" or name.endswith(".localhost")
    return True


class Guard:
    """Token, Origin and body-size checks, and security headers on every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_origins: Iterable[str],
        max_body: int,
        hosts: Iterable[str] = (),
        large_bodies: Mapping[str, int] | None = None,
        view_token: str | None = None,
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.view_token = view_token.encode() if view_token else None
        self.hosts = frozenset(host_name(h) if h != "*" else h for h in hosts)
        self.allowed_origins = frozenset(normalise_origin(o) for o in allowed_origins)
        self.max_body = max_body
        self.large_bodies = dict(large_bodies or {})
        """Paths that take more than `max_body`, with their own limit (a file upload)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self._host_ok(scope):
            host = Headers(scope=scope).get("host", "")
            why = (
                f"Host {host} is not a name webchat serves; if you reach it by that name, "
                f"start webchat with --allow-host {host_name(host)} (or set a --token)"
            )
            if scope["type"] == "websocket":
                await self._deny(scope, send, PlainTextResponse(why, 403))
            else:
                await JSONResponse({"detail": why}, 403)(scope, receive, _with_headers(send, None))
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _host_ok(self, scope: Scope) -> bool:
        """With a token the token guards every route, so any Host is fine."""
        return self.token is not None or host_allowed(Headers(scope=scope).get("host"), self.hosts)

    def _presented(self, scope: Scope, headers: Headers) -> tuple[bytes | None, bool]:
        """The token the request carries, and whether it came in the query string."""
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            return authorization[7:].strip().encode(), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query:
            return query["token"][-1].encode(), True
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except CookieError:  # a malformed Cookie header carries no token
            return None, False
        morsel = cookies.get(cookie_name(scope))
        return (morsel.value.encode() if morsel else None), False

    def _authorised(self, scope: Scope, headers: Headers) -> tuple[bool, bool]:
        """(allowed, set a cookie): constant-time, whatever the lengths. A view token is
        allowed too, and marks the request read-only (`viewer`)."""
        if self.token is None or scope["path"].startswith(OPEN_PATHS):
            return True, False
        given, from_query = self._presented(scope, headers)
        ok = given is not None and hmac.compare_digest(given, self.token)
        if not ok and given is not None and self.view_token is not None:
            ok = hmac.compare_digest(given, self.view_token)
            scope.setdefault("state", {})[VIEWER] = ok
        return ok, ok and from_query

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(scope, headers, origin):
            why = f"origin {origin} may not open this WebSocket; start webchat with --allow-origin"
            await self._deny(scope, send, PlainTextResponse(why, 403))
            return
        if not self._authorised(scope, headers)[0]:
            await self._deny(scope, send, PlainTextResponse(UNAUTHORISED, 401))
            return
        await self.app(scope, receive, send)

    def _origin_allowed(self, scope: Scope, headers: Headers, origin: str) -> bool:
        wanted = normalise_origin(origin)
        return wanted == origin_of(scope, headers) or wanted in self.allowed_origins

    @staticmethod
    async def _deny(scope: Scope, send: Send, response: Response) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            await response(scope, _no_receive, send)
        else:
            reason = bytes(response.body).decode()
            await send({"type": "websocket.close", "code": 1008, "reason": reason})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        allowed, set_cookie = self._authorised(scope, headers)
        if not allowed:
            response = JSONResponse(
                {"detail": UNAUTHORISED}, 401, headers={"www-authenticate": "Bearer"}
            )
            await response(scope, receive, _with_headers(send, None))
            return
        if viewer(scope) and scope["method"] not in READ_METHODS:
            refused = JSONResponse({"detail": VIEW_ONLY}, 403)
            await refused(scope, receive, _with_headers(send, None))
            return
        limit = self.large_bodies.get(scope["path"], self.max_body)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _too_large(limit)(scope, receive, _with_headers(send, None))
            return
        cookie = self._cookie(scope) if set_cookie else None
        plain = _with_headers(send, None)
        state = {"started": False, "refused": False}

        async def sending(message: Message) -> None:
            if state["refused"]:
                return  # the 413 went out already; the app's own answer is dropped
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await _with_headers(send, cookie)(message)

        async def over_limit() -> None:
            """A chunked body has no Content-Length to check: count it as it arrives, and
            past the limit answer 413 at once and tell the app the client has gone."""
            if not state["started"]:
                state["refused"] = True
                await _too_large(limit)(scope, receive, plain)

        await self.app(scope, _limited(receive, limit, over_limit), sending)

    def _cookie(self, scope: Scope) -> bytes:
        """The token the page was opened with, never more: a view-only link's cookie must
        not carry the full token."""
        token = self.view_token if viewer(scope) else self.token
        assert token is not None
        secure = "; Secure" if scope["scheme"] == "https" else ""
        return (
            f"{cookie_name(scope)}={token.decode()}; Path=/; HttpOnly; SameSite=Strict{secure}"
        ).encode()


VIEWER = "webchat.viewer"
"""Set in the scope's state for a request made with `--view-token`: it may read, not act."""
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
VIEW_ONLY = (
    "this is a view-only link (--view-token): it can read the transcript and the live log, "
    "not send or change anything; ask for the full link (--token)"
)


def viewer(scope: Scope) -> bool:
    return bool(scope.get("state", {}).get(VIEWER))


UNAUTHORISED = (
    "a token is needed: add ?token=TOKEN to the page's URL, or send Authorization: Bearer "
    "TOKEN; TOKEN is the --token (or WEBCHAT_TOKEN) webchat was started with, or the one "
    "its start-up line printed when it made one"
)


def _too_large(limit: int) -> Response:
    return JSONResponse({"detail": f"the request body is over {limit} bytes"}, 413)


async def _no_receive() -> Message:
    raise RuntimeError("a denial response reads nothing")


def _limited(receive: Receive, limit: int, over_limit: Callable[[], Awaitable[None]]) -> Receive:
    seen = 0

    async def receiving() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                await over_limit()
                return {"type": "http.disconnect"}
        return message

    return receiving


def _with_headers(send: Send, cookie: bytes | None) -> Send:
    """Security headers on every response; the strict CSP on HTML ones."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra: list[tuple[bytes, bytes]] = list(HEADERS)
            present = dict(message.get("headers", []))
            html = present.get(b"content-type", b"").startswith(b"text/html")
            if html and b"content-security-policy" not in present:
                extra.append((b"content-security-policy", PAGE_CSP.encode()))
            if cookie is not None:
                extra.append((b"set-cookie", cookie))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending
