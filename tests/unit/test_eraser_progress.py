"""Progress of an erasure, summed: at most one event per interval, the first and the last
batch always reported, every batch's rows and objects counted in exactly once, under its
own table."""

from __future__ import annotations

import uuid

import pytest

from services.eraser.deps import EraserDeps
from services.eraser.progress import Progress, Report

pytestmark = pytest.mark.unit
TOTAL = 2100


def _add(p: Progress, table: str, rows: int, objects: int, done: int, now: float) -> list[Report]:
    return p.add(table, rows, objects, done=done, total=TOTAL, now=now, interval=1.0)


def test_batches_within_the_interval_are_summed_into_the_next_report() -> None:
    p = Progress()
    assert _add(p, "messages", 100, 2, 100, 0.0) == [("messages", 100, 2)]  # the first
    assert _add(p, "messages", 100, 0, 200, 0.3) == []
    assert _add(p, "messages", 100, 1, 300, 0.6) == []
    assert _add(p, "messages", 100, 0, 400, 1.1) == [("messages", 300, 1)]
    assert _add(p, "messages", 1700, 0, TOTAL, 1.2) == [("messages", 1700, 0)]  # the last


def test_a_new_table_first_reports_what_is_pending_of_the_one_before() -> None:
    p = Progress()
    _add(p, "media_objects", 50, 50, 50, 0.0)
    assert _add(p, "media_objects", 50, 49, 100, 0.2) == []
    assert _add(p, "messages", 1000, 0, 1100, 0.4) == [("media_objects", 50, 49)]
    assert _add(p, "messages", 900, 0, 2000, 1.5) == [("messages", 1900, 0)]


def test_interval_zero_reports_every_batch() -> None:
    p = Progress()
    reports = [p.add("t", 10, 0, done=10 * i, total=100, now=0.0, interval=0) for i in (1, 2, 3)]
    assert reports == [[("t", 10, 0)]] * 3


def test_deps_report_a_job_once_a_second_and_its_last_batch_exactly() -> None:
    now = [0.0]
    deps = EraserDeps.__new__(EraserDeps)  # only the progress fields are used here
    deps.progress, deps.progress_seconds, deps.clock = {}, 1.0, lambda: now[0]
    job = uuid.uuid4()
    reported = []
    for i in range(1, 101):  # 100 batches of 10 rows, one every 1/32 s
        now[0] = i / 32
        reported += EraserDeps.batch_reports(deps, job, "t", 10, 0, done=10 * i, total=1000)
    # The first at once, then one a second (batches 33, 65 and 97), and the last exactly.
    assert [r[1] for r in reported] == [10, 320, 320, 320, 30]
    assert job not in deps.progress  # forgotten once complete
