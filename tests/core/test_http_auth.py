"""The cluster-token check for HTTP endpoints (http_auth.py): policy and ASGI middleware."""
from __future__ import annotations

import asyncio

import pytest

from ember._private import http_auth
from ember._private.http_auth import TokenAuthMiddleware, decide

TOKEN = "c0ffee" * 8


def test_decide_accepts_the_token_from_header_cookie_or_query_only():
    bearer = [(b"authorization", f"Bearer {TOKEN}".encode())]
    assert decide(TOKEN, "GET", "/", b"", bearer).allow
    assert decide(TOKEN, "POST", "/", b"", [("Authorization", f"bearer  {TOKEN} ")]).allow
    assert decide(TOKEN, "GET", "/", b"", [(b"cookie", f"a=1; ember_token={TOKEN}".encode())]).allow
    for headers in ([], [(b"authorization", b"Bearer wrong")],
                    [(b"authorization", f"Basic {TOKEN}".encode())],
                    [(b"cookie", b"ember_token=" + TOKEN[:-1].encode())],
                    [(b"cookie", f"other_token={TOKEN}".encode())],
                    [(b"x-ember-token", TOKEN.encode())]):
        assert not decide(TOKEN, "GET", "/", b"", headers).allow, headers
    assert not decide(TOKEN, "GET", "/", b"token=wrong", []).allow


def test_query_token_sets_the_cookie_and_leaves_the_url():
    d = decide(TOKEN, "GET", "/jobs/a%20b", f"x=1&token={TOKEN}&y=%2F".encode(), [])
    assert d.set_cookie and d.redirect == "/jobs/a%20b?x=1&y=%2F"
    assert d.query_string == b"x=1&y=%2F"
    d = decide(TOKEN, "GET", "/", f"token={TOKEN}".encode(), [])
    assert d.redirect == "/" and d.query_string == b""
    # Not a GET: served at once (no redirect), cookie set.
    d = decide(TOKEN, "POST", "/api/jobs", f"token={TOKEN}".encode(), [])
    assert d.allow and d.set_cookie and d.redirect is None
    # A token parameter is stripped even when wrong or when another credential let us in.
    assert decide(TOKEN, "GET", "/", b"token=guess&a=1", []).query_string == b"a=1"
    d = decide(TOKEN, "GET", "/", b"token=guess",
               [(b"authorization", f"Bearer {TOKEN}".encode())])
    assert d.allow and d.query_string == b"" and not d.set_cookie


def test_cookie_is_http_only_and_secure_over_https():
    plain = http_auth.cookie_header(TOKEN, secure=False).decode()
    assert plain.startswith(f"ember_token={TOKEN};") and "HttpOnly" in plain
    assert "SameSite=Strict" in plain and "Secure" not in plain
    assert "; Secure" in http_auth.cookie_header(TOKEN, secure=True).decode()


def _run(app, scope: dict) -> list[dict]:
    """Drive one ASGI request; the messages the app sent."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _inner():
    seen: list[dict] = []

    async def app(scope, receive, send):
        seen.append(dict(scope))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"secret data"})

    return app, seen


def _scope(path="/", query=b"", headers=(), method="GET", kind="http", scheme="http"):
    return {"type": kind, "method": method, "path": path, "raw_path": path.encode(),
            "query_string": query, "headers": list(headers), "scheme": scheme, "root_path": ""}


def test_middleware_refuses_without_the_token_and_never_calls_the_app():
    app, seen = _inner()
    sent = _run(TokenAuthMiddleware(app, token=TOKEN), _scope("/metrics"))
    assert sent[0]["status"] == 401 and not seen
    assert (b"www-authenticate", b'Bearer realm="ember"') in sent[0]["headers"]
    assert b"secret" not in sent[1]["body"] and TOKEN.encode() not in sent[1]["body"]


def test_middleware_lets_the_token_in():
    app, seen = _inner()
    scope = _scope("/metrics", headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
    sent = _run(TokenAuthMiddleware(app, token=TOKEN), scope)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"secret data" and seen


def test_middleware_query_token_redirects_with_cookie_and_strips_the_scope():
    app, seen = _inner()
    scope = _scope("/", query=f"token={TOKEN}&tab=jobs".encode(), scheme="https")
    sent = _run(TokenAuthMiddleware(app, token=TOKEN), scope)
    start = sent[0]
    assert start["status"] == 303 and not seen
    headers = dict(start["headers"])
    assert headers[b"location"] == b"/?tab=jobs"
    assert headers[b"set-cookie"].startswith(f"ember_token={TOKEN};".encode())
    assert b"Secure" in headers[b"set-cookie"]
    # The server's own scope (what its access log prints) no longer holds the token.
    assert scope["query_string"] == b"tab=jobs"
    # A POST with ?token= is served directly, with the cookie added to the app's answer.
    app, seen = _inner()
    scope = _scope("/api", query=f"token={TOKEN}".encode(), method="POST")
    sent = _run(TokenAuthMiddleware(app, token=TOKEN), scope)
    assert sent[0]["status"] == 200 and seen and seen[0]["query_string"] == b""
    assert any(k == b"set-cookie" for k, _ in sent[0]["headers"])


def test_middleware_closes_unauthenticated_websockets_and_passes_lifespan():
    app, seen = _inner()
    sent = _run(TokenAuthMiddleware(app, token=TOKEN), _scope("/ws", kind="websocket"))
    assert sent == [{"type": "websocket.close", "code": 1008}] and not seen

    calls = []

    async def lifespan_app(scope, receive, send):
        calls.append(scope["type"])

    _run(TokenAuthMiddleware(lifespan_app, token=TOKEN), {"type": "lifespan"})
    assert calls == ["lifespan"]


def test_middleware_needs_a_token(monkeypatch):
    monkeypatch.delenv("EMBER_CLUSTER_TOKEN", raising=False)
    with pytest.raises(ValueError, match="needs the cluster token"):
        TokenAuthMiddleware(lambda *a: None)
    monkeypatch.setenv("EMBER_CLUSTER_TOKEN", TOKEN)
    assert TokenAuthMiddleware(lambda *a: None)._token == TOKEN


def test_auth_headers_pass_the_check():
    headers = [(k.lower(), v) for k, v in http_auth.auth_headers(TOKEN).items()]
    assert decide(TOKEN, "GET", "/", b"", headers).allow
