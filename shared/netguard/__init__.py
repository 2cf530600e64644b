"""Outgoing callbacks (OpenDSR status callbacks, webhooks) reach only public addresses:
resolve, check every address, connect to the checked one, within a total deadline."""

from shared.netguard.addresses import Refused, parse_host, refusal
from shared.netguard.guard import (
    Policy,
    Resolver,
    check_literal,
    check_url,
    resolve_checked,
    split_url,
)
from shared.netguard.transport import (
    CallbackRefused,
    GuardedTransport,
    PinnedBackend,
    guarded_client,
    post_within,
)

__all__ = [
    "CallbackRefused",
    "GuardedTransport",
    "PinnedBackend",
    "Policy",
    "Refused",
    "Resolver",
    "check_literal",
    "check_url",
    "guarded_client",
    "parse_host",
    "post_within",
    "refusal",
    "resolve_checked",
    "split_url",
]
