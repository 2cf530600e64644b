"""Connectors (docs/datamap.md): the subject's data outside the platform database.

- `revoke_tokens`, at the plan, before the first wave: each token the subject's rows of a
  mapped table hold is revoked at the authorisation server (RFC 7009), while those rows are
  still there to read it from.
- `open_manual_tasks`, at the plan: a task per `manual` connector, mailed to its assignee.
- `call_http`, at the purge (the erasure is final; a restored job never calls): a signed
  POST of the subject's identities to each HTTP connector.

Each call is retried with backoff on answers that may succeed later, through the SSRF-guarded
client. Its outcome is recorded once per job and connector (a recorded call is not made again)
and reported (`ConnectorCalled`); a failure is one of the job's review items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.eraser import connector_rules as rules
from services.eraser import domain, store
from services.eraser.deps import EraserDeps
from services.eraser.models import ConnectorCall, Job
from services.eraser.sealing import SealedRequest, open_request
from shared import netguard, signing
from shared.datamap import HttpConnector, OAuthRevocation
from shared.events.progress import ConnectorCalled, ManualTasksOpened
from shared.events.topics import NOTIFICATIONS, PROGRESS
from shared.notices import job_notice

Attempt = Callable[[], Awaitable[httpx.Response]]


async def revoke_tokens(deps: EraserDeps, job: Job) -> None:
    done = {c.connector for c in await store.connector_calls(deps.lethe, job.job_id)}
    for name, c in deps.datamap.connectors.items():
        if isinstance(c, OAuthRevocation) and name not in done:
            await _record(deps, job, await _revoke_all(deps, job, name, c))


async def call_http(deps: EraserDeps, job: Job, request: SealedRequest) -> None:
    done = {c.connector for c in await store.connector_calls(deps.lethe, job.job_id)}
    for name, c in deps.datamap.connectors.items():
        if isinstance(c, HttpConnector) and name not in done:
            await _record(deps, job, await _call_one(deps, job, request, name, c))


async def open_manual_tasks(deps: EraserDeps, job: Job) -> None:
    """One task per `manual` connector: reported (intake keeps the tasks and holds the job
    until each is closed) and mailed to its assignee, with the subject's identities. Under
    fixed event ids: sent again on a redelivered plan, each is kept and mailed once."""
    tasks = rules.manual_tasks(deps.datamap)
    if not tasks:
        return
    opened = domain.job_event(job, ManualTasksOpened(tasks=tasks))
    await deps.emit(PROGRESS, domain.stable(opened, "ManualTasksOpened"))
    request = open_request(deps.job_key(job), job)
    for t in tasks:
        context = rules.task_context(t, request.scope, job.org_id, request.identities)
        notice = job_notice(
            "manual_task",
            actor=domain.ACTOR,
            job_id=job.job_id,
            org_id=job.org_id,
            subject_hash=job.subject_hash,
            to=t.assignee,
            context=context,
            audience="assignee",
            once=f"manual_task:{t.task}",
        )
        await deps.emit(NOTIFICATIONS, notice)


async def results(deps: EraserDeps, job: Job) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job's connector outcomes (for its verification) and review items (failures)."""
    calls = await store.connector_calls(deps.lethe, job.job_id)
    return rules.outcomes(calls), rules.review_items(calls)


async def _record(deps: EraserDeps, job: Job, call: ConnectorCall) -> None:
    await store.record_call(deps.lethe, job.job_id, call)
    event = ConnectorCalled(**call.__dict__)
    env = domain.stable(domain.job_event(job, event), f"ConnectorCalled:{call.connector}")
    await deps.emit(PROGRESS, env)


async def _call_one(
    deps: EraserDeps, job: Job, request: SealedRequest, name: str, c: HttpConnector
) -> ConnectorCall:
    body = rules.erase_body(job.job_id, job.org_id, name, request.scope, request.identities)
    secret = deps.connector_env.get(c.secret_env, "")
    http = _client(deps)

    async def attempt() -> httpx.Response:
        headers = {
            "content-type": "application/json",
            signing.HEADER: signing.sign(secret, body),  # a fresh timestamp per attempt
            signing.EVENT_HEADER: str(rules.call_id(job.job_id, name)),
        }
        return await netguard.post_within(
            http, c.url, deps.connector_timeout, content=body, headers=headers
        )

    code, attempts = await _with_retries(deps, attempt)
    return ConnectorCall(name, "http", "done" if code is None else "failed", code, attempts)


async def _revoke_all(deps: EraserDeps, job: Job, name: str, c: OAuthRevocation) -> ConnectorCall:
    """Every token of the planned rows of the connector's table, a chunk of rows at a time,
    `connector_concurrency` requests at once."""
    table = deps.datamap.tables[c.table]
    env = deps.connector_env
    auth = (env.get(c.client_id_env, ""), env.get(c.client_secret_env, ""))
    gate = asyncio.Semaphore(deps.connector_concurrency)
    http = _client(deps)

    async def revoke(token: str, hint: str) -> tuple[str | None, int]:
        async def attempt() -> httpx.Response:
            data = {"token": token, "token_type_hint": hint}
            return await netguard.post_within(
                http, c.endpoint, deps.connector_timeout, data=data, auth=auth
            )

        async with gate:
            return await _with_retries(deps, attempt)

    found, attempts, codes = 0, 0, list[str]()
    async for keys in store.planned_keys(deps.lethe, job.job_id, c.table):
        async with deps.platform.acquire() as conn:
            rows = await store.token_values(
                conn, c.table, table, deps.pk_types[c.table], list(c.tokens), keys
            )
        pairs = [(r[col], hint) for r in rows for col, hint in c.tokens.items() if r[col]]
        found += len(pairs)
        for code, n in await asyncio.gather(*(revoke(str(t), h) for t, h in pairs)):
            attempts = max(attempts, n)
            if code is not None:
                codes.append(code)
    outcome = "failed" if codes else "done"
    first = codes[0] if codes else None
    return ConnectorCall(name, "oauth_revocation", outcome, first, attempts, found, len(codes))


async def _with_retries(deps: EraserDeps, attempt: Attempt) -> tuple[str | None, int]:
    """(None, attempts) once an attempt is answered 2xx; (code, attempts) when the answer is
    final (a 4xx other than 408/425/429, a refused target) or the attempts are spent."""
    for n in range(1, deps.connector_attempts + 1):
        code: str | None
        try:
            response = await attempt()
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            code, again = rules.error_code(exc)
        else:
            code = rules.status_code(response.status_code)
            again = rules.retryable(response.status_code)
        if code is None or not again or n == deps.connector_attempts:
            return code, n
        await asyncio.sleep(rules.backoff(n, deps.connector_backoff))
    raise AssertionError("connector_attempts is at least 1")


def _client(deps: EraserDeps) -> httpx.AsyncClient:
    if deps.http is None:
        raise RuntimeError("the eraser was built without a connector client")
    return deps.http
