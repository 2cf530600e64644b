"""The request body limit, enforced on the bytes as they arrive (Content-Length or chunked):
an ASGI middleware that reads the body before anything else sees the request, answers 413 as
soon as it passes `max_body_bytes` (before authentication, before a route reads it), and
hands the app the body it read."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Refusal = Callable[[Scope, int, str], ASGIApp]  # (scope, status, message) -> the answer


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: Callable[[Scope], int], refuse: Refusal) -> None:
        self.app, self.limit, self.refuse = app, limit, refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        too_large = f"body larger than {limit} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await self.refuse(scope, 413, too_large)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self.refuse(scope, 413, too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read, as one message; then the client's own messages (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
