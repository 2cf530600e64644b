"""`lethe webhooks ...`: signed status callbacks per organisation; `contacts_app`: the
owners mailed per organisation (to be registered as `lethe contacts`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from urllib.parse import urlparse

import typer
from rich.table import Table

from services.cli.common import console, settings
from services.notifier import store
from services.notifier.domain import recipient_key
from shared import netguard
from shared.db import create_pool
from shared.events import Actor, Payload, make_event
from shared.events.notifications import OwnerContactChanged, WebhookRegistered, WebhookRemoved
from shared.events.topics import AUDIT
from shared.kafka import create_broker, publish_event
from shared.settings import require_secrets

app = typer.Typer(help="Signed webhooks (status callbacks) per organisation.")
contacts_app = typer.Typer(help="Owner contacts mailed per organisation.")
T = TypeVar("T")
OPERATOR = Actor(kind="operator", id="cli")


def _audit(payload: Payload, org_id: str | None) -> None:
    """Configuration changes go into the audit trail like every other action."""

    async def go() -> None:
        broker = create_broker(settings().kafka_bootstrap_servers, service="cli")
        await broker.start()
        try:
            await publish_event(broker, AUDIT, make_event(payload, actor=OPERATOR, org_id=org_id))
        finally:
            await broker.stop()

    asyncio.run(go())


def _run(fn: Callable[..., Awaitable[T]], *args: object) -> T:
    async def go() -> T:
        pool = await create_pool(settings().database_url)
        try:
            return await fn(pool, *args)
        finally:
            await pool.close()

    return asyncio.run(go())


@app.command("add")
def webhooks_add(
    org: Annotated[str, typer.Option("--org", help="Organisation id")],
    url: Annotated[str, typer.Option("--url", help="https URL receiving the POSTs")],
) -> None:
    """Register a URL; prints its signing secret once (HMAC-SHA256, header Lethe-Signature)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise typer.BadParameter("--url must be an absolute http(s) URL")
    _check_target(url, parsed.scheme == "http")
    hook = _run(store.add_webhook, org, url)
    _audit(WebhookRegistered(webhook_id=str(hook.id), host=parsed.hostname or ""), org)
    console.print(f"webhook {hook.id} for {org}: every job state change is POSTed to {url}")
    console.print("signing secret (shown once; verify t=...,v1=... in Lethe-Signature):")
    print(hook.secret)


def _check_target(url: str, plain_http: bool) -> None:
    """The notifier would refuse this URL at send time: refuse it now, naming the rule.
    Plain http only to a network in LETHE_CALLBACK_ALLOWED_NETWORKS (development)."""
    policy = netguard.Policy.from_list(settings().callback_allowed_networks)
    try:
        found = asyncio.run(netguard.check_url(url, policy))
    except netguard.Refused as exc:
        raise typer.BadParameter(f"--url refused: {exc}") from None
    if plain_http and not all(any(ip in net for net in policy.allowed) for ip in found):
        raise typer.BadParameter("use https (plain http only to an allowed development network)")


@app.command("list")
def webhooks_list(
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation")] = None,
) -> None:
    """The registered webhooks (secrets not shown)."""
    table = Table("id", "org", "url")
    for hook in _run(store.webhooks, org):
        table.add_row(str(hook.id), hook.org_id, hook.url)
    console.print(table)


@app.command("remove")
def webhooks_remove(hook_id: Annotated[uuid.UUID, typer.Argument(help="Webhook id")]) -> None:
    """Stop calling a webhook."""
    org = _run(store.remove_webhook, hook_id)
    if org is None:
        console.print(f"no active webhook {hook_id}", style="bold red")
        raise typer.Exit(1)
    _audit(WebhookRemoved(webhook_id=str(hook_id)), org)
    console.print(f"webhook {hook_id} removed")


@contacts_app.command("add")
def contacts_add(
    org: Annotated[str, typer.Option("--org", help="Organisation id")],
    email: Annotated[str, typer.Option("--email", help="Owner's address")],
) -> None:
    """Mail this owner the templates in LETHE_NOTIFY_OWNER_TEMPLATES."""
    _run(store.add_contact, org, email)
    _audit(OwnerContactChanged(change="added", contact=_contact(email)), org)
    console.print(f"{org}: owner contact added")


@contacts_app.command("list")
def contacts_list(org: Annotated[str, typer.Option("--org", help="Organisation id")]) -> None:
    for address in _run(store.owner_emails, org):
        print(address)


@contacts_app.command("remove")
def contacts_remove(
    org: Annotated[str, typer.Option("--org", help="Organisation id")],
    email: Annotated[str, typer.Option("--email", help="Owner's address")],
) -> None:
    if not _run(store.remove_contact, org, email):
        console.print("no such contact", style="bold red")
        raise typer.Exit(1)
    _audit(OwnerContactChanged(change="removed", contact=_contact(email)), org)
    console.print(f"{org}: owner contact removed")


def _contact(email: str) -> str:
    s = settings()
    require_secrets(s, "subject_hash_key")  # the notifier's key, or the contact never matches
    return recipient_key(s.subject_hash_key.get_secret_value().encode(), email)
