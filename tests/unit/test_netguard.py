"""Callback targets: every numeric form and range refused, by name; public ones allowed;
the address checked is the address dialled (a second DNS answer never matters)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from ipaddress import IPv4Address, ip_address
from typing import Any

import httpcore
import httpx
import pytest

from shared.netguard import (
    CallbackRefused,
    GuardedTransport,
    Policy,
    Refused,
    check_url,
    parse_host,
    refusal,
)

pytestmark = pytest.mark.unit

LOOPBACK = IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "host, expected",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("10.0.258", "10.0.1.2"),
        ("0", "0.0.0.0"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("127.0.0.1.example.com", None),
        ("0x7f.example", None),
    ],
)
def test_numeric_hosts_are_read_as_the_os_reads_them(host: str, expected: str | None) -> None:
    parsed = parse_host(host)
    assert parsed == (ip_address(expected) if expected else None)


@pytest.mark.parametrize(
    "host, rule",
    [
        ("08.0.0.1", "malformed numeric host"),
        ("256.0.0.1", "malformed numeric host"),
        ("1.2.3.4.5", "malformed numeric host"),
        ("4294967296", "malformed numeric host"),
        ("1.2.65536", "malformed numeric host"),
        ("fe80::1%eth0", "scoped IPv6 address (zone id)"),
        ("fe80::1:::", "malformed IPv6 address"),
    ],
)
def test_malformed_numeric_hosts_are_refused(host: str, rule: str) -> None:
    with pytest.raises(Refused) as exc:
        parse_host(host)
    assert exc.value.rule == rule


@pytest.mark.parametrize(
    "address, rule",
    [
        ("0.0.0.0", "this-network address (0.0.0.0/8)"),
        ("0.1.2.3", "this-network address (0.0.0.0/8)"),
        ("10.1.2.3", "private address (RFC 1918)"),
        ("172.16.0.1", "private address (RFC 1918)"),
        ("172.31.255.255", "private address (RFC 1918)"),
        ("192.168.1.1", "private address (RFC 1918)"),
        ("100.64.0.1", "carrier-grade NAT address (100.64.0.0/10)"),
        ("100.127.255.254", "carrier-grade NAT address (100.64.0.0/10)"),
        ("127.0.0.1", "loopback address"),
        ("127.255.0.9", "loopback address"),
        ("169.254.169.254", "cloud metadata address"),
        ("169.254.1.1", "link-local address"),
        ("192.0.0.170", "IETF protocol assignment (192.0.0.0/24)"),
        ("192.0.2.1", "documentation address"),
        ("198.51.100.1", "documentation address"),
        ("203.0.113.1", "documentation address"),
        ("198.18.0.1", "benchmarking address (198.18.0.0/15)"),
        ("224.0.0.1", "multicast address"),
        ("239.255.255.250", "multicast address"),
        ("240.0.0.1", "reserved address (240.0.0.0/4)"),
        ("255.255.255.255", "broadcast address"),
        ("::", "unspecified address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "IPv4-mapped IPv6 address embedding a loopback address"),
        ("::ffff:169.254.169.254", "IPv4-mapped IPv6 address embedding a cloud metadata address"),
        (
            "::ffff:0:10.0.0.1",
            "IPv4-translated IPv6 address embedding a private address (RFC 1918)",
        ),
        ("::127.0.0.1", "IPv4-compatible IPv6 address embedding a loopback address"),
        ("::10.0.0.1", "IPv4-compatible IPv6 address embedding a private address (RFC 1918)"),
        ("64:ff9b::7f00:1", "NAT64 IPv6 address embedding a loopback address"),
        ("64:ff9b::a9fe:a9fe", "NAT64 IPv6 address embedding a cloud metadata address"),
        (
            "64:ff9b::100.64.0.1",
            "NAT64 IPv6 address embedding a carrier-grade NAT address (100.64.0.0/10)",
        ),
        ("64:ff9b:1::1", "local-use NAT64 address (64:ff9b:1::/48)"),
        ("2002:7f00:1::1", "6to4 IPv6 address embedding a loopback address"),
        ("2002:c0a8:101::", "6to4 IPv6 address embedding a private address (RFC 1918)"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel address"),
        ("2001:db8::1", "documentation address"),
        ("100::1", "discard-only address (100::/64)"),
        ("fc00::1", "unique local address (fc00::/7)"),
        ("fd00:ec2::254", "unique local address (fc00::/7)"),
        ("fe80::1", "link-local address"),
        ("fec0::1", "site-local address (fec0::/10)"),
        ("ff02::1", "multicast address"),
    ],
)
def test_internal_addresses_are_refused_by_rule(address: str, rule: str) -> None:
    assert refusal(ip_address(address)) == rule


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2a00:1450:4001:81c::200e",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ip_address(address)) is None


def _resolver(*answers: list[str]) -> Any:
    calls: list[str] = []
    queue = list(answers)

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    "url, rule",
    [
        ("https://127.1/cb", "loopback address"),
        ("https://2130706433/cb", "loopback address"),
        ("https://0x7f000001/cb", "loopback address"),
        ("https://0177.0.0.1/cb", "loopback address"),
        ("https://100.64.0.1/cb", "carrier-grade NAT address (100.64.0.0/10)"),
        ("https://[::ffff:7f00:1]/cb", "IPv4-mapped IPv6 address embedding a loopback address"),
        ("https://[fe80::1%25eth0]/cb", "scoped IPv6 address (zone id)"),
        ("https://localhost./cb", "internal host name"),
        ("https://LOCALHOST:8443/cb", "internal host name"),
        ("https://api.localhost/cb", "internal host name"),
        ("https://db.internal/cb", "internal host name"),
        ("https://printer.local./cb", "internal host name"),
        ("ftp://example.com/cb", "not an http(s) URL"),
        ("https:///cb", "URL without a host"),
        ("https://example.com:99999/cb", "malformed URL"),
    ],
)
async def test_urls_are_refused_without_asking_dns(url: str, rule: str) -> None:
    resolve = _resolver(["93.184.216.34"])
    with pytest.raises(Refused) as exc:
        await check_url(url, Policy(resolver=resolve))
    assert exc.value.rule == rule
    assert resolve.calls == []


async def test_a_name_is_refused_if_any_answer_is_internal() -> None:
    resolve = _resolver(["93.184.216.34", "10.0.0.7"])
    with pytest.raises(Refused) as exc:
        await check_url("https://mixed.example/cb", Policy(resolver=resolve))
    assert exc.value.rule == "resolves to an internal address: private address (RFC 1918)"
    resolve = _resolver(["2606:4700::1111", "::ffff:169.254.169.254"])
    with pytest.raises(Refused, match="cloud metadata"):
        await check_url("https://v6.example/cb", Policy(resolver=resolve))


async def test_a_public_name_passes_and_an_unresolvable_one_is_refused() -> None:
    resolve = _resolver(["93.184.216.34", "2606:4700::1111"])
    found = await check_url("https://ok.example./cb", Policy(resolver=resolve))
    assert [str(a) for a in found] == ["93.184.216.34", "2606:4700::1111"]
    assert resolve.calls == ["ok.example"]

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(Refused, match="host does not resolve"):
        await check_url("https://nowhere.example/cb", Policy(resolver=nxdomain))

    async def silent(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["93.184.216.34"]

    with pytest.raises(Refused, match=r"host does not resolve \(TimeoutError\)"):
        await check_url("https://slow.example/cb", Policy(resolver=silent, resolve_timeout=0.05))


async def test_the_dev_allow_list_admits_its_networks_only() -> None:
    policy = Policy.from_list(["127.0.0.0/8"])
    assert await check_url("http://127.0.0.1:8080/cb", policy) == [LOOPBACK]
    assert await check_url("http://127.1:8080/cb", policy) == [LOOPBACK]
    with pytest.raises(Refused, match="private"):
        await check_url("http://10.0.0.1/cb", policy)
    with pytest.raises(Refused, match="cloud metadata"):
        await check_url("http://169.254.169.254/cb", policy)


class Dialled(Exception):
    pass


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records where the transport dials, then fails the connection (no network here)."""

    def __init__(self) -> None:
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append((host, port))
        raise httpcore.ConnectError("recorded")


async def test_the_transport_dials_the_checked_address_not_a_second_answer() -> None:
    """DNS rebinding: the first answer is public, every later one internal. The transport
    asks once per request and dials what it checked."""
    resolve = _resolver(["93.184.216.34"], ["127.0.0.1"])
    backend = RecordingBackend()
    transport = GuardedTransport(Policy(resolver=resolve), backend=backend)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match="recorded"):
            await client.post("https://rebind.example/cb", content=b"{}")
        assert backend.dialled == [("93.184.216.34", 443)]
        assert resolve.calls == ["rebind.example"]
        # The next request asks again, gets the internal answer and is refused, undialled.
        with pytest.raises(CallbackRefused) as exc:
            await client.post("https://rebind.example/cb", content=b"{}")
        assert exc.value.rule == "resolves to an internal address: loopback address"
        assert backend.dialled == [("93.184.216.34", 443)]


async def test_the_transport_refuses_before_dialling() -> None:
    backend = RecordingBackend()
    transport = GuardedTransport(Policy(resolver=_resolver(["8.8.8.8"])), backend=backend)
    async with httpx.AsyncClient(transport=transport) as client:
        for url in ("https://0x7f000001/", "https://[::ffff:10.0.0.1]:8443/", "http://localhost./"):
            with pytest.raises(CallbackRefused):
                await client.post(url, content=b"{}")
    assert backend.dialled == []
