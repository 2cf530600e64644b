"""The eraser's pure decisions, without infrastructure: how a plan cuts keys into chunks,
how fast a throttled job may go, in which order a restore puts rows back, what a
verification result means, and what the sealed records open to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.eraser import domain, sealing
from services.eraser.models import Held, Job
from services.eraser.retention_rules import Stats, completed
from shared.crypto import CryptoError, new_data_key
from shared.datamap import load_datamap
from shared.events.jobs import Item
from shared.platform import ERASE, HIDE, detach_op

pytestmark = pytest.mark.unit
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


def _job(**fields: Any) -> Job:
    base: dict[str, Any] = dict(
        job_id=uuid.uuid4(), org_id="org", status="erasing", total=10, done=4,
        per_table={"users": 1, "messages": 3, "payments": 0}, verification=None,
        subject_hash="h", wave=0, waves=3, recovery_window_days=7, erasing_since=None,
        purge_after=None, purged_at=None, wrapped_key=None, sealed_request=None,
        needs_review=[], restored_rows=0,
    )  # fmt: skip
    return Job(**(base | fields))


def test_chunks_cut_a_page_in_order_and_object_tables_get_small_chunks() -> None:
    dm = load_datamap(SAMPLE)
    assert domain.chunk_size(dm, "users", ERASE, 1000) == 1000
    assert domain.chunk_size(dm, "media_objects", ERASE, 1000) == domain.OBJECT_BATCH
    # A detach moves no object: full-size chunks.
    assert domain.chunk_size(dm, "media_objects", detach_op(0), 1000) == 1000
    rows = domain.chunk_rows(7, 2, "users", [str(i) for i in range(5)], 2, ERASE)
    assert rows == [
        (7, 2, "users", ["0", "1"], ERASE),
        (8, 2, "users", ["2", "3"], ERASE),
        (9, 2, "users", ["4"], ERASE),
    ]
    assert domain.page_size(1000) == 20_000 and domain.page_size(30_000) == 30_000


def test_throttle_waits_for_the_rate_and_never_more_than_a_minute() -> None:
    assert domain.throttle_wait(100, 0.0, 0.0) == 0.0  # no limit
    assert domain.throttle_wait(100, 10.0, 4.0) == 6.0
    assert domain.throttle_wait(100, 10.0, 20.0) == 0.0  # behind the rate: no wait
    assert domain.throttle_wait(10_000, 1.0, 0.0) == 60.0


def test_restore_puts_parents_back_first_and_detached_links_last() -> None:
    waves = [["messages"], ["users"]]  # children first when erasing
    records = [
        Held(1, "messages", ["m"], b"", ERASE),
        Held(2, "users", ["u"], b"", ERASE),
        Held(0, "messages", ["d"], b"", detach_op(0)),
    ]
    order = [r.chunk_no for r in domain.restore_order(records, waves)]
    assert order == [2, 1, 0]
    assert domain.wanted_items(None) is None  # the whole job
    asked = [Item(table="users", key="2"), Item(table="users", key="9")]
    assert domain.wanted_items(asked) == {"users": ["2", "9"]}
    pairs = [("1", "{}"), ("2", "{}")]
    assert domain.chosen_rows(pairs, "users", None) == pairs
    assert domain.chosen_rows(pairs, "users", {"users": ["2"]}) == [("2", "{}")]
    review = domain.not_held({"users": ["2", "9"]}, {("users", "2")})
    assert review == [
        {"kind": "row", "table": "users", "key": "9", "reason": "not held by this erasure"}
    ]


def test_the_hide_step_is_restored_last_onto_its_row() -> None:
    """The user row's chunk holds it as hidden: the row back first, then the hidden values."""
    waves = [["messages"], ["users"]]
    records = [
        Held(domain.HIDE_CHUNK, "users", ["u"], b"", HIDE),
        Held(0, "messages", ["d"], b"", detach_op(0)),
        Held(1, "messages", ["m"], b"", ERASE),
        Held(2, "users", ["u"], b"", ERASE),
    ]
    order = [r.chunk_no for r in domain.restore_order(records, waves)]
    assert order == [2, 1, 0, domain.HIDE_CHUNK]


def test_verification_verdicts() -> None:
    assert domain.rows_ok({}, 0) and not domain.rows_ok({"users": 1}, 0)
    assert domain.rows_ok({"users": 2}, 2) and not domain.rows_ok({"users": 3}, 2)
    found, ok = domain.objects_verdict(["a", "b"], ["a", "b"], [], 2, "soft_delete")
    assert ok and found == {"objects_checked": 2, "objects_remaining": 0, "quarantined_objects": 2}
    assert not domain.objects_verdict(["a"], ["a"], ["a"], 1, "soft_delete")[1]
    assert not domain.objects_verdict(["a"], ["a"], [], 1, "purge")[1]  # purge empties it


def test_review_items_after_the_soft_delete() -> None:
    scan = {"hits": [{"table": "notes", "column": "body", "key": "5"}], "skipped": []}
    verification = {"rows_remaining": {"users": 1}, "scan": scan}
    review = domain.soft_delete_review([], verification, 0)
    assert review == [
        {"kind": "rows_remaining", "tables": {"users": 1}},
        {"kind": "trace", "table": "notes", "column": "body", "key": "5"},
    ]
    failed = [{"kind": "chunk", "table": "notes", "chunk": 3, "rows": 2, "error": "x"}]
    # A table already up for review raises no trace item; nor does anything after a restore.
    assert domain.soft_delete_review(failed, verification, 0) == failed
    lost = {"rows_remaining": {}, "objects_error": "bucket gone", "scan": scan}
    assert domain.soft_delete_review([], lost, 3) == [
        {"kind": "objects_unverified", "error": "bucket gone"}
    ]


def test_notice_context_names_the_tables_and_the_dates() -> None:
    when = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    ctx = domain.hidden_context(_job(), when)
    assert ctx["tables"] == "messages: 3, users: 1"
    assert ctx["restorable_until"] == "2030-01-02 03:04 UTC" and ctx["final_on"] == "2030-01-02"
    since = when - timedelta(seconds=2)
    event = domain.batch_event("users", 4, 0, 4, 10, since, when)
    assert event.rows_per_second == 2.0 and event.eta_seconds == 3.0


def test_sealed_request_and_rows_open_only_with_their_job_key() -> None:
    master = new_data_key()
    job_id = uuid.uuid4()
    request = sealing.SealedRequest("subject", {"email": "a@example.com"}, None)
    wrapped, sealed = sealing.new_job_key(master, job_id, request)
    job = _job(job_id=job_id, wrapped_key=wrapped, sealed_request=sealed)
    key = sealing.unwrap_job_key(master, job)
    assert sealing.open_request(key, job) == request
    blob = sealing.seal_rows(key, job_id, 4, ["1", "2"], ['{"id": 1}', '{"id": 2}'])
    assert sealing.open_rows(key, job_id, Held(4, "users", ["1", "2"], blob)) == [
        ("1", '{"id": 1}'),
        ("2", '{"id": 2}'),
    ]
    with pytest.raises(CryptoError):  # bound to its chunk: not readable as another one
        sealing.open_rows(key, job_id, Held(5, "users", ["1", "2"], blob))
    with pytest.raises(sealing.KeyDestroyed):
        sealing.unwrap_job_key(master, _job(job_id=job_id, wrapped_key=None))


def test_retention_report_reviews_errors_then_rows_left_and_kept() -> None:
    stats = Stats(planned={"events": 5}, done=5, remaining={"events": 1}, kept={"events": 2})
    cutoff = datetime(2030, 1, 1, tzinfo=UTC)
    report = completed(stats, "metrics", cutoff)
    kinds = [r["kind"] for r in report.needs_review]
    assert kinds == ["rows_remaining", "rows_kept"]
    assert report.total == 5 and report.verification["ok"] is False
    stats.errors.append({"kind": "table", "table": "events", "error": "boom"})
    kinds = [r["kind"] for r in completed(stats, "metrics", cutoff).needs_review]
    assert kinds == ["table", "rows_kept"]
