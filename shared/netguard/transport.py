"""An httpx transport that connects only to checked addresses, and a total deadline.

`GuardedTransport` resolves and checks the request's host (`guard.resolve_checked`), then
lets httpcore connect, but its network backend ignores the name it is given and dials the
checked addresses instead. Everything else stays tied to the name: the Host header, TLS SNI
and certificate verification, the connection pool's key. No proxy from the environment is
used (a proxy would resolve the name again).
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend

from shared.netguard.addresses import IPAddress, Refused
from shared.netguard.guard import Policy, resolve_checked

# (host, port) of the request being sent, and the addresses checked for it.
_PINNED: contextvars.ContextVar[tuple[str, int, list[IPAddress]] | None] = contextvars.ContextVar(
    "netguard_pinned", default=None
)


class CallbackRefused(httpx.ConnectError):
    """The target is not one Lethe calls; `rule` names why (recorded with the failure)."""

    def __init__(self, refused: Refused, request: httpx.Request) -> None:
        super().__init__(f"callback target refused: {refused}", request=request)
        self.rule = refused.rule


class PinnedBackend(AsyncNetworkBackend):
    """Dials the addresses checked for this request, never the name httpcore passes."""

    def __init__(self, inner: AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        pinned = _PINNED.get()
        if pinned is None or (pinned[0], pinned[1]) != (host, port):
            raise httpcore.ConnectError(f"no checked address for {host}:{port}")
        error: Exception | None = None
        for ip in pinned[2]:  # each was checked: try them in the resolver's order
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not callback targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """Checks every request's target against `policy`; connects only to what it checked."""

    def __init__(
        self,
        policy: Policy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=None, max_keepalive_connections=20),
        backend: AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self.policy = policy
        old = self._pool
        assert isinstance(old, httpcore.AsyncConnectionPool)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=old._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise CallbackRefused(Refused("not an http(s) URL"), request)
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as httpcore dials it
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await resolve_checked(host, port, self.policy)
        except Refused as exc:
            raise CallbackRefused(exc, request) from None
        token = _PINNED.set((host, port, addresses))
        try:  # httpcore connects (if it must) inside this call, in this context
            return await super().handle_async_request(request)
        finally:
            _PINNED.reset(token)


def guarded_client(policy: Policy, **kwargs: Any) -> httpx.AsyncClient:
    """An AsyncClient for callbacks: the guarded transport, no redirects, no env proxies."""
    transport = kwargs.pop("transport", None) or GuardedTransport(policy)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False, **kwargs)


async def post_within(
    client: httpx.AsyncClient, url: str, deadline: float, **kwargs: Any
) -> httpx.Response:
    """POST and read the answer within `deadline` seconds in total (resolution, connect,
    TLS, upload, response body): a trickling endpoint cannot hold a delivery longer."""
    async with asyncio.timeout(deadline):
        return await client.post(url, **kwargs)
