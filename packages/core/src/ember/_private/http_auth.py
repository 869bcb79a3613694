"""The cluster-token check for Ember's HTTP endpoints (dashboard, metrics, jobs API).

A request is let in when it carries the cluster token in any of:

* ``Authorization: Bearer <token>`` (scripts, ``curl -H``);
* the ``ember_token`` cookie;
* ``?token=<token>`` in the URL, once: the answer sets the cookie (HttpOnly,
  SameSite=Strict, Secure over https) and, for GET/HEAD, redirects (303) to the
  same URL without the token, so it leaves the address bar and the history.

Anything else gets 401 (a WebSocket is closed before it is accepted). Tokens are
compared in constant time. A ``token`` query parameter is removed from the
request's ``query_string`` in place, right or wrong, before the app or the
server's access log sees it.

:func:`decide` is the whole policy, a pure function; :class:`TokenAuthMiddleware`
applies it to any ASGI app (Starlette, FastAPI, or a bare one)::

    app = Starlette(routes=...)
    app.add_middleware(TokenAuthMiddleware, token=token)     # or: TokenAuthMiddleware(app, token)

For servers that are not ASGI (``http.server``), call :func:`decide` with the
request's method, path, query and headers and act on the :class:`Decision`.
Serve over TLS with ``tls.server_ssl_context(tls.load())`` when TLS is on.
"""
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import quote, unquote_plus

from .ids import TOKEN_ENV

TOKEN_COOKIE = "ember_token"
TOKEN_QUERY = "token"

_UNAUTHORIZED_BODY = (
    b"401 Unauthorized: this Ember endpoint needs the cluster token. Send the header "
    b"'Authorization: Bearer <token>', or open the page once with ?token=<token>. The token "
    b"is the file `token` in the head's session directory (or EMBER_CLUSTER_TOKEN).\n")


@dataclass(frozen=True)
class Decision:
    """What to do with one request.

    ``allow``: pass it to the app. ``query_string``: the query to pass on (the
    token removed), None if unchanged. ``set_cookie``: add the token cookie to
    the answer. ``redirect``: answer 303 to this location instead (with the
    cookie) rather than calling the app.
    """

    allow: bool
    query_string: bytes | None = None
    set_cookie: bool = False
    redirect: str | None = None


def _matches(supplied: str, token: bytes) -> bool:
    return hmac.compare_digest(supplied.encode("utf-8", "replace"), token)


def _header_values(headers: Iterable[tuple[Any, Any]], name: str) -> list[str]:
    out = []
    for k, v in headers:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        if k.lower() == name:
            out.append(v.decode("latin-1") if isinstance(v, bytes) else v)
    return out


def _split_query(query: bytes) -> tuple[list[str], list[bytes]]:
    """(values of ``token`` parameters, the other parameters as they came)."""
    tokens, kept = [], []
    for part in query.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        if unquote_plus(key.decode("latin-1")) == TOKEN_QUERY:
            tokens.append(unquote_plus(value.decode("latin-1")))
        else:
            kept.append(part)
    return tokens, kept


def decide(token: str, method: str, path: str, query_string: bytes,
           headers: Iterable[tuple[Any, Any]]) -> Decision:
    """Let the request in or not (see the module docstring). ``path`` is the raw
    (still percent-encoded) request path; ``headers`` are (name, value) pairs.

    >>> decide("s3cret", "GET", "/", b"", [(b"authorization", b"Bearer s3cret")]).allow
    True
    >>> decide("s3cret", "GET", "/", b"", []).allow
    False
    >>> decide("s3cret", "GET", "/jobs", b"token=s3cret&x=1", []).redirect
    '/jobs?x=1'
    """
    secret = token.encode()
    headers = list(headers)
    query_tokens, kept = _split_query(query_string)
    stripped = b"&".join(kept) if query_tokens else None

    for value in _header_values(headers, "authorization"):
        scheme, _, supplied = value.strip().partition(" ")
        if scheme.lower() == "bearer" and _matches(supplied.strip(), secret):
            return Decision(True, query_string=stripped)
    for value in _header_values(headers, "cookie"):
        for item in value.split(";"):
            name, _, supplied = item.strip().partition("=")
            if name == TOKEN_COOKIE and _matches(supplied.strip().strip('"'), secret):
                return Decision(True, query_string=stripped)
    if any(_matches(t, secret) for t in query_tokens):
        if method.upper() in ("GET", "HEAD"):
            location = path + ("?" + stripped.decode("latin-1") if stripped else "")
            return Decision(False, query_string=stripped, set_cookie=True, redirect=location)
        return Decision(True, query_string=stripped, set_cookie=True)
    return Decision(False, query_string=stripped)


def cookie_header(token: str, secure: bool) -> bytes:
    """The Set-Cookie value that carries the token (not readable by page scripts)."""
    value = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    return (value + ("; Secure" if secure else "")).encode("latin-1")


def auth_headers(token: str) -> dict[str, str]:
    """Headers a client sends to an Ember HTTP endpoint.

    >>> urllib.request.Request(url, headers=auth_headers(token))
    """
    return {"Authorization": f"Bearer {token}"}


Send = Callable[[dict], Awaitable[None]]


class TokenAuthMiddleware:
    """ASGI middleware: only requests with the cluster token reach ``app``.

    ``token`` defaults to $EMBER_CLUSTER_TOKEN (set in every process of a cluster).

    >>> app = TokenAuthMiddleware(app, token=token)
    """

    def __init__(self, app: Callable, token: str | None = None) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        if not token:
            raise ValueError("TokenAuthMiddleware needs the cluster token: pass token=, or run "
                             f"it in a process of the cluster ({TOKEN_ENV} set)")
        self.app = app
        self._token = token

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)   # lifespan events carry no request
            return
        raw_path = scope.get("raw_path")
        path = (raw_path.decode("latin-1") if raw_path
                else quote(scope.get("root_path", "") + scope.get("path", "/")))
        d = decide(self._token, scope.get("method", "GET"), path,
                   scope.get("query_string", b""), scope.get("headers", ()))
        if d.query_string is not None:
            scope["query_string"] = d.query_string   # in place: access logs read this dict
        secure = scope.get("scheme") in ("https", "wss")
        if d.redirect is not None:
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", d.redirect.encode("latin-1")),
                (b"set-cookie", cookie_header(self._token, secure)),
                (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not d.allow:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"www-authenticate", b'Bearer realm="ember"'),
                (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode())]})
            await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})
            return
        if d.set_cookie and kind == "http":
            cookie = cookie_header(self._token, secure)

            async def send_with_cookie(message: dict) -> None:
                if message.get("type") == "http.response.start":
                    message = {**message,
                               "headers": [*message.get("headers", ()), (b"set-cookie", cookie)]}
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)
