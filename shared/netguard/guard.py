"""Resolve a callback URL's host and check every address it resolves to.

Only the addresses checked here are ever connected to (see `transport`), so a DNS answer
that changes between the check and the connection (rebinding) cannot reach inside.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.netguard.addresses import (
    IPAddress,
    IPNetwork,
    Refused,
    check_name,
    parse_host,
    parse_networks,
    refusal,
)

# host, port -> the addresses it resolves to (text, as getaddrinfo gives them).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Policy:
    """`allowed`: internal networks callbacks may reach anyway (development and tests only:
    a production deployment leaves it empty)."""

    allowed: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver
    resolve_timeout: float = 5.0  # a slow resolver never holds a submission longer

    @classmethod
    def from_list(cls, networks: list[str]) -> Policy:
        return cls(allowed=parse_networks(networks))


def split_url(url: str) -> tuple[str, str, int]:
    """scheme, host (no brackets, lower case), port; Refused if not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("malformed URL") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("not an http(s) URL")
    host = parts.hostname or ""
    if not host:
        raise Refused("URL without a host")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def check_literal(host: str, policy: Policy) -> IPAddress | None:
    """Checks that need no DNS: the address a numeric host names (returned), or the name
    rules (None: a name, to be resolved)."""
    ip = parse_host(host)
    if ip is None:
        if not policy.allowed:  # a development allow-list lets `localhost` resolve and pass
            check_name(host)
        return None
    if (why := refusal(ip, policy.allowed)) is not None:
        raise Refused(why)
    return ip


async def resolve_checked(host: str, port: int, policy: Policy) -> list[IPAddress]:
    """Every address `host` resolves to, each allowed by `policy`; Refused if any is not
    (one internal answer is enough: a client may pick any of them)."""
    literal = check_literal(host, policy)
    if literal is not None:
        return [literal]
    try:
        async with asyncio.timeout(policy.resolve_timeout):
            answers = await policy.resolver(host.rstrip("."), port)
    except OSError as exc:  # TimeoutError too
        raise Refused("host does not resolve", type(exc).__name__) from None
    found: list[IPAddress] = []
    for text in answers:
        ip = parse_host(text)  # getaddrinfo answers numeric text; zone ids refused
        if ip is None:
            raise Refused("resolver answered a name")
        if (why := refusal(ip, policy.allowed)) is not None:
            raise Refused(f"resolves to an internal address: {why}")
        if ip not in found:
            found.append(ip)
    if not found:
        raise Refused("host does not resolve")
    return found


async def check_url(url: str, policy: Policy) -> list[IPAddress]:
    """The addresses `url` may be called at; Refused, naming the rule, if none may."""
    _, host, port = split_url(url)
    return await resolve_checked(host, port, policy)
