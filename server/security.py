"""Who may change what: the bearer token, cross-site requests, body caps, safe headers.

A pure ASGI middleware (not BaseHTTPMiddleware): uploads stream through it untouched.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    ),
]


def is_upload(method: str, path: str) -> bool:
    """`POST /api/apps/{app}/builds`: the one request whose body is not capped here."""
    parts = path.split("/")
    return (
        method == "POST"
        and len(parts) == 5
        and parts[1:3] == ["api", "apps"]
        and (parts[4] == "builds")
    )


class Guard:
    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        refusal = self._refusal(method, scope["path"], headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        if method in SAFE_METHODS:
            return None
        if not _same_origin(headers):
            return 403, "cross-site request refused (its Origin is not this server)"
        if self.token is not None:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            # compare_digest takes as long whatever the mismatch: no timing oracle.
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.token):
                return 401, "this server needs 'Authorization: Bearer TOKEN' to change anything"
        length = headers.get("content-length")
        if length is not None and not is_upload(method, path):
            if not length.isdigit():
                return 400, "bad Content-Length"
            if int(length) > self.max_body:
                return 413, f"request body over the limit of {self.max_body} bytes"
        return None


def _same_origin(headers: dict[str, str]) -> bool:
    """A browser names the page a request comes from (Origin, or Sec-Fetch-Site): it must
    be this server. Clients that are not browsers send neither and are let through (the
    token is what guards them)."""
    if headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == headers.get("host", "")


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
                *([(b"www-authenticate", b"Bearer")] if status == 401 else []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
