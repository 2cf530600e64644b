"""Which addresses an outgoing callback may reach: pure parsing and rules, no I/O.

A host is judged the way the operating system would read it, not as text: `127.1`,
`2130706433`, `0x7f000001` and `0177.0.0.1` are all 127.0.0.1 to `inet_aton` (and so to
`getaddrinfo`), and an IPv6 address can carry an IPv4 one (v4-mapped, v4-compatible, NAT64,
6to4). Every rule has a name, so a refusal says which one applied.
"""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class Refused(ValueError):
    """A callback target Lethe will not call; `rule` names why (no address or URL in it)."""

    def __init__(self, rule: str, detail: str = "") -> None:
        super().__init__(f"{rule}{f' ({detail})' if detail else ''}")
        self.rule = rule


_V4_RULES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "this-network address (0.0.0.0/8)"),
    ("10.0.0.0/8", "private address (RFC 1918)"),
    ("172.16.0.0/12", "private address (RFC 1918)"),
    ("192.168.0.0/16", "private address (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT address (100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback address"),
    ("169.254.169.254/32", "cloud metadata address"),
    ("169.254.0.0/16", "link-local address"),
    ("192.0.0.0/24", "IETF protocol assignment (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation address"),
    ("198.51.100.0/24", "documentation address"),
    ("203.0.113.0/24", "documentation address"),
    ("192.88.99.0/24", "6to4 relay anycast address"),
    ("198.18.0.0/15", "benchmarking address (198.18.0.0/15)"),
    ("224.0.0.0/4", "multicast address"),
    ("255.255.255.255/32", "broadcast address"),
    ("240.0.0.0/4", "reserved address (240.0.0.0/4)"),
]
_V6_RULES: list[tuple[str, str]] = [
    ("::/128", "unspecified address"),
    ("::1/128", "loopback address"),
    ("64:ff9b:1::/48", "local-use NAT64 address (64:ff9b:1::/48)"),
    ("2001::/32", "Teredo tunnel address"),
    ("2001:db8::/32", "documentation address"),
    ("100::/64", "discard-only address (100::/64)"),
    ("fc00::/7", "unique local address (fc00::/7)"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "site-local address (fec0::/10)"),
    ("ff00::/8", "multicast address"),
]
V4_RULES = [(IPv4Network(n), rule) for n, rule in _V4_RULES]
V6_RULES = [(IPv6Network(n), rule) for n, rule in _V6_RULES]
# IPv6 ranges that carry an IPv4 address, and where it sits (bit offset from the right).
_EMBEDDING: list[tuple[IPv6Network, str, int]] = [
    (IPv6Network("::ffff:0:0/96"), "IPv4-mapped", 0),
    (IPv6Network("::ffff:0:0:0/96"), "IPv4-translated", 0),
    (IPv6Network("64:ff9b::/96"), "NAT64", 0),
    (IPv6Network("2002::/16"), "6to4", 80),
    (IPv6Network("::/96"), "IPv4-compatible", 0),
]
INTERNAL_NAMES = ("localhost", "local", "internal", "home.arpa", "localdomain")

_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


def _aton_part(label: str) -> int:
    """One `inet_aton` component: hex (0x..), octal (leading 0) or decimal."""
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)  # ValueError on 8 or 9: the OS refuses it too
    return int(label)


def parse_ipv4(host: str) -> IPv4Address | None:
    """`host` read as `inet_aton` reads it (1 to 4 parts, each decimal, octal or hex; the
    last fills the remaining bytes); None if it is a name. A host whose last label is
    numeric but which is not a valid address is refused: resolvers disagree about it."""
    labels = host.rstrip(".").split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    try:
        if len(labels) > 4 or not all(_NUMERIC_LABEL.match(x) for x in labels):
            raise ValueError(host)
        parts = [_aton_part(x) for x in labels]
        last_bits = 8 * (5 - len(parts))
        if any(p > 255 for p in parts[:-1]) or parts[-1] >= 1 << last_bits:
            raise ValueError(host)
        value = 0
        for p in parts[:-1]:
            value = value << 8 | p
        return IPv4Address(value << last_bits | parts[-1])
    except ValueError:
        raise Refused("malformed numeric host", "not a valid IPv4 address") from None


def parse_host(host: str) -> IPAddress | None:
    """The address a URL's host (as `urlsplit(...).hostname` gives it, brackets removed)
    names, in any numeric form; None for a DNS name."""
    if "%" in host:
        raise Refused("scoped IPv6 address (zone id)")
    if ":" in host:
        try:
            return IPv6Address(host)
        except ValueError:
            raise Refused("malformed IPv6 address") from None
    return parse_ipv4(host)


def check_name(host: str) -> None:
    """Names that mean this machine or the local network, whatever DNS says about them."""
    name = host.rstrip(".").lower()
    if not name:
        raise Refused("empty host")
    for suffix in INTERNAL_NAMES:
        if name == suffix or name.endswith("." + suffix):
            raise Refused("internal host name", f".{suffix}")


def embedded_ipv4(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the name of the scheme."""
    for net, kind, shift in _EMBEDDING:
        if ip in net and ip not in (IPv6Address("::"), IPv6Address("::1")):
            return kind, IPv4Address((int(ip) >> shift) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress, allowed: tuple[IPNetwork, ...] = ()) -> str | None:
    """The rule that forbids calling `ip`, or None when it is globally routable (or inside
    a network `allowed` explicitly, for development and tests)."""
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    if isinstance(ip, IPv6Address):
        if ip.scope_id:
            return "scoped IPv6 address (zone id)"
        inner = embedded_ipv4(ip)
        if inner is not None:
            kind, v4 = inner
            why = refusal(v4, allowed)
            return f"{kind} IPv6 address embedding a {why}" if why else None
        rules: list[tuple[IPv4Network, str]] | list[tuple[IPv6Network, str]] = V6_RULES
    else:
        rules = V4_RULES
    for net, rule in rules:
        if ip in net:
            return rule
    return None if ip.is_global else "address not globally routable"


def parse_networks(values: list[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)
