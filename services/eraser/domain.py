"""The eraser's decisions, pure: no await, no SQL, no I/O.

What an erasure is made of (the service modules in services/eraser/service/ do the I/O):

- **Keys** (services/eraser/sealing.py): each job's own key seals its request and rows.
- **Plan**: detaches first (wave 0), then each table's own action in its wave; keys are
  cut into chunks of `batch_size` (fewer for tables holding object keys).
- **Events and notices** about a job, built here and emitted by the service.
- **Verdicts**: what a verification result means (rows left, objects where expected, traces
  the scan found) and which review items it raises.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.eraser.models import ChunkRow, Held, Job
from services.eraser.sealing import SealedRequest
from shared.datamap import DataMap
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.notifications import Audience
from shared.events.progress import BatchErased
from shared.notices import job_notice, request_notice
from shared.platform import ERASE, HIDE, detach_op
from shared.resolver import Resolver, Subject

ACTOR = Actor(kind="service", id="eraser")
OBJECT_BATCH = 50  # rows per chunk of a table holding S3 object keys
PAGE_KEYS = 20_000  # keys per round trip (and COPY) while planning
# The restoration record of the map's `hide` step (chunks are numbered from 0).
HIDE_CHUNK = -1
# Identity kinds worth looking for in free text: a bare user id ("42") would match anything.
SCANNED_KINDS = ("email", "phone", "external_id")


# ------------------------------------------------------------------ events and notices


def job_event(job: Job, payload: Payload, trace: dict[str, str] | None = None) -> Envelope:
    return make_event(
        payload,
        actor=ACTOR,
        job_id=job.job_id,
        org_id=job.org_id,
        subject_hash=job.subject_hash,
        trace=trace,
    )


def stable(env: Envelope, name: str) -> Envelope:
    """The event with an id fixed by its job and `name`: sent again after a failed publish (the
    handler redelivered, the state already moved), it is the same event, which every consumer
    keeps once (the audit trail, the job's timeline, the notifier's deliveries)."""
    assert env.job_id is not None
    return env.model_copy(update={"event_id": uuid.uuid5(env.job_id, name)})


def request_event(src: Envelope, payload: Payload) -> Envelope:
    """An event about the job a request (or command) names, before or without its record."""
    return make_event(
        payload, actor=ACTOR, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
    )


def notice(
    job: Job,
    request: SealedRequest | None,
    template: str,
    context: dict[str, Any],
    *,
    audience: Audience | None = None,
    once: str | None = None,
) -> Envelope:
    """A notice about the job, once: to its requester, or to the owners when it has none."""
    return job_notice(
        template,
        actor=ACTOR,
        job_id=job.job_id,
        org_id=job.org_id,
        subject_hash=job.subject_hash,
        to=request.requester_email if request else None,
        context=context,
        status_link=request.status_link if request else None,
        audience=audience,
        once=once or template,
    )


def notice_of_request(env: Envelope, template: str, context: dict[str, Any]) -> Envelope:
    """A notice before the job record holds the sealed request (from the request itself)."""
    return request_notice(env, template, context, job_type="erasure", actor=ACTOR)


def batch_event(
    table: str,
    rows: int,
    objects: int,
    done: int,
    total: int,
    since: datetime | None,
    now: datetime,
) -> BatchErased:
    elapsed = max((now - since).total_seconds(), 1e-3) if since else 1e-3
    rate = done / elapsed
    return BatchErased(
        table=table,
        rows=rows,
        objects=objects,
        done=done,
        total=total,
        rows_per_second=round(rate, 1),
        eta_seconds=round((total - done) / rate, 1) if rate > 0 else None,
    )


def throttle_wait(done: int, rows_per_second: float, elapsed: float) -> float:
    """Seconds to wait so that `done` rows took at least `done / rows_per_second` (at most 60)."""
    if rows_per_second <= 0:
        return 0.0
    return max(0.0, min(done / rows_per_second - elapsed, 60.0))


# ------------------------------------------------------------------ the plan

# (wave, table, op, (key SQL, args)): one table's part of the plan.
PlanStep = tuple[int, str, str, tuple[str, list[object]]]


def plan_steps(
    dm: DataMap, resolver: Resolver, subject: Subject, tables: list[str], waves: list[list[str]]
) -> list[PlanStep]:
    """Detaches first (wave 0): a link into a row that goes is nulled or moved to the
    tombstone before that row is deleted. Then each table's own action, in its wave."""
    steps: list[PlanStep] = []
    for table, index, rel in dm.detaches(tables):
        steps.append((0, table, detach_op(index), resolver.detach_sql(table, rel, subject)))
    for wave_no, wave_tables in enumerate(waves):
        for table in wave_tables:
            if dm.tables[table].action != "keep":
                steps.append((wave_no, table, ERASE, resolver.key_text_sql(table, subject)))
    return steps


def chunk_size(dm: DataMap, table: str, op: str, batch_size: int) -> int:
    if op == ERASE and dm.tables[table].object_key_column is not None:
        # Each row may move an object (one S3 copy each): smaller chunks keep a batch short,
        # spread the copies over the replicas and hide rows sooner.
        return min(batch_size, OBJECT_BATCH)
    return batch_size


def page_size(size: int) -> int:
    """Large pages: one round trip and one COPY per PAGE_KEYS keys, chunked after."""
    return size * max(1, PAGE_KEYS // size)


def step_label(table: str, op: str) -> str:
    return table if op == ERASE else f"{table} ({op.replace(':', ' ')})"


def chunk_rows(
    first_no: int, wave: int, table: str, page: list[str], size: int, op: str
) -> list[ChunkRow]:
    return [
        (first_no + i, wave, table, page[j : j + size], op)
        for i, j in enumerate(range(0, len(page), size))
    ]


# ------------------------------------------------------------------ restore


def wanted_items(items: list[Any] | None) -> dict[str, list[str]] | None:
    """A restore's items (table, key) by table; None: the whole job."""
    if items is None:
        return None
    by_table: dict[str, list[str]] = {}
    for it in items:
        by_table.setdefault(it.table, []).append(it.key)
    return by_table


def restore_order(records: list[Held], waves: list[list[str]]) -> list[Held]:
    """Rows back with the rows they link to first; detached links next (their targets are
    back by then); the hide step's values last, onto the rows put back before them (a chunk
    holds the row as it was hidden)."""
    wave_of = {t: i for i, tables in enumerate(waves) for t in tables}

    def rank(r: Held) -> int:
        return 0 if r.op == ERASE else 2 if r.op == HIDE else 1

    return sorted(records, key=lambda r: (rank(r), -wave_of.get(r.table_name, 0), r.chunk_no))


def chosen_rows(
    pairs: list[tuple[str, str]], table: str, items: dict[str, list[str]] | None
) -> list[tuple[str, str]]:
    wanted = {k for k, _ in pairs} if items is None else set(items.get(table, ()))
    return [(k, r) for k, r in pairs if k in wanted]


def not_held(
    items: dict[str, list[str]] | None, found: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Review items for asked-for rows no record of this erasure holds."""
    return [
        {"kind": "row", "table": t, "key": k, "reason": "not held by this erasure"}
        for t, ks in (items or {}).items()
        for k in ks
        if (t, k) not in found
    ]


# ------------------------------------------------------------------ verdicts


def objects_verdict(
    originals: list[str], checked: list[str], present: list[str], quarantined: int, phase: str
) -> tuple[dict[str, Any], bool]:
    """Objects where expected: none left in place; in quarantine all (none after the purge)."""
    expected_q = 0 if phase == "purge" else len(originals)
    result = {
        "objects_checked": len(checked),
        "objects_remaining": len(present),
        "quarantined_objects": quarantined,
    }
    return result, not present and quarantined == expected_q


def rows_ok(left: dict[str, int], restored_rows: int) -> bool:
    """Rows put back on purpose (restore) are live again; only more than those is a failure."""
    return sum(left.values()) <= restored_rows if restored_rows else not left


def trace_items(
    verification: dict[str, Any], review: list[dict[str, Any]], restored_rows: int
) -> list[dict[str, Any]]:
    """Review items for traces the scan found (where, never the value). Not for tables whose
    rows are already up for review (a chunk that failed), nor after a restore (rows put
    back on purpose carry the identities again). And one when the objects could not be
    checked (the bucket out of reach): where they are is not known, someone must look."""
    items: list[dict[str, Any]] = []
    if verification.get("objects_error"):
        items.append({"kind": "objects_unverified", "error": verification["objects_error"]})
    if restored_rows:
        return items
    scan = verification.get("scan", {})
    reviewed = {r.get("table") for r in review}
    items += [
        {"kind": "trace", "table": h["table"], "column": h["column"], "key": h["key"]}
        for h in scan.get("hits", [])
        if h["table"] not in reviewed
    ]
    if scan.get("skipped"):
        items.append({"kind": "scan_incomplete", "skipped": scan["skipped"]})
    return items


def soft_delete_review(
    failed: list[dict[str, Any]], verification: dict[str, Any], restored_rows: int
) -> list[dict[str, Any]]:
    """Failed chunks, rows left behind (when no chunk failed), then the scan's traces."""
    review = list(failed)
    if verification["rows_remaining"] and not review:
        review.append({"kind": "rows_remaining", "tables": verification["rows_remaining"]})
    review.extend(trace_items(verification, review, restored_rows))
    return review


def hidden_context(job: Job, purge_after: datetime) -> dict[str, Any]:
    """What is hidden, restorable until when, final on which date."""
    return {
        "job_type": "erasure",
        "rows": job.done,
        "tables": ", ".join(f"{t}: {n}" for t, n in sorted(job.per_table.items()) if n),
        "restorable_until": purge_after.strftime("%Y-%m-%d %H:%M UTC"),
        "final_on": purge_after.strftime("%Y-%m-%d"),
    }
