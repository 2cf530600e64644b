"""Progress of an erasure, summed: at most one event per interval, the first and the last
batch always reported, and the rows and objects of every batch counted in exactly once."""

from __future__ import annotations

import uuid

import pytest

from services.eraser.deps import EraserDeps
from services.eraser.progress import Progress

pytestmark = pytest.mark.unit


def test_batches_within_the_interval_are_summed_into_the_next_report() -> None:
    p = Progress()
    assert p.add(100, 2, done=100, total=1000, now=0.0, interval=1.0) == (100, 2)  # first
    assert p.add(100, 0, done=200, total=1000, now=0.3, interval=1.0) is None
    assert p.add(100, 1, done=300, total=1000, now=0.6, interval=1.0) is None
    assert p.add(100, 0, done=400, total=1000, now=1.1, interval=1.0) == (300, 1)
    assert p.add(600, 0, done=1000, total=1000, now=1.2, interval=1.0) == (600, 0)  # last


def test_interval_zero_reports_every_batch() -> None:
    p = Progress()
    reports = [p.add(10, 0, done=10 * i, total=100, now=0.0, interval=0) for i in range(1, 4)]
    assert reports == [(10, 0)] * 3


def test_deps_report_a_job_once_a_second_and_its_last_batch_exactly() -> None:
    now = [0.0]
    deps = EraserDeps.__new__(EraserDeps)  # only the progress fields are used here
    deps.progress, deps.progress_seconds, deps.clock = {}, 1.0, lambda: now[0]
    job = uuid.uuid4()
    reported = []
    for i in range(1, 101):  # 100 batches of 10 rows over 2.5 seconds
        now[0] = i * 0.025
        r = EraserDeps.batch_to_report(deps, job, 10, 0, done=10 * i, total=1000)
        if r is not None:
            reported.append(r[0])
    assert len(reported) == 4  # at 0.025 s, 1.025 s, 2.025 s and the last batch
    assert sum(reported) == 1000
    assert job not in deps.progress  # forgotten once complete
