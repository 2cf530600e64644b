"""OpenDSR status callbacks, the decisions (pure): which state changes call back, the rows
recorded for them, where each goes, when a failure is retried or given up, and what the
audit trail says. Specification: opengdpr/OpenDSR, specification.md, sections 8.5-8.8."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from services.notifier.domain import ACTOR
from shared import netguard, opendsr
from shared.events import Envelope, make_event
from shared.events.opendsr import OpenDSRCallbackFailed, OpenDSRCallbackSent

if TYPE_CHECKING:
    from services.notifier.store import Callback, NewRow
    from shared.readmodels.opendsr import Target


def url_ref(url: str) -> tuple[str, str]:
    """How a URL is named in errors and audit rows: its host and a hash, never the URL."""
    return urlsplit(url).hostname or "-", hashlib.sha256(url.encode()).hexdigest()[:16]


def endpoint(url: str) -> str:
    """What deliveries are isolated by: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def job_status(env: Envelope) -> str | None:
    """The OpenDSR job status this progress event moves its job to; None: no state change
    (or not a job's event), nothing to call back."""
    if env.job_id is None or not opendsr.status_changes(env.type, env.payload):
        return None
    return opendsr.status_after(env.type, env.payload)


def new_rows(env: Envelope, found: Target, status: str, deadline: datetime) -> list[NewRow]:
    """Section 8.5: one callback per URL for this state change, with the body sent."""
    assert env.job_id is not None
    done = env.payload.get("done")
    link = env.payload.get("results_url")  # the controller's export link (ExportReady)
    facts = opendsr.JobFacts(
        controller_id=found.org_id,
        subject_request_id=found.subject_request_id,
        job_status=status,
        expected_completion_time=found.expected_completion_time,
        api_version=found.api_version,
        results_count=done if isinstance(done, int) else None,
        results_url=link if isinstance(link, str) else None,
    )
    request_status = opendsr.request_status(status)
    return [
        (
            env.event_id,
            url,
            env.job_id,
            found.org_id,
            env.subject_hash,
            found.subject_request_id,
            request_status,
            endpoint(url),
            opendsr.dumps(opendsr.callback_body(facts, url)),
            deadline,
        )
        for url in found.urls
    ]


def failure(host: str, digest: str, exc: BaseException, code: int | None) -> str:
    """A failed attempt, named by host and hash (never the URL) and the error's kind."""
    error = f"callback to {host} ({digest}): {type(exc).__name__}"
    error += f" {code}" if code else ""
    return error + (f" ({exc.rule})" if isinstance(exc, netguard.CallbackRefused) else "")


def _audit(cb: Callback, payload: OpenDSRCallbackSent | OpenDSRCallbackFailed) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=cb.job_id, org_id=cb.org_id, subject_hash=cb.subject_hash
    )


def sent_event(cb: Callback, code: int) -> Envelope:
    host, digest = url_ref(cb.url)
    return _audit(
        cb,
        OpenDSRCallbackSent(
            progress_event_id=str(cb.event_id),
            subject_request_id=cb.subject_request_id or "-",
            request_status=cb.request_status,
            url_host=host,
            url_hash=digest,
            http_status=code,
        ),
    )


def failed_event(cb: Callback, error: str) -> Envelope:
    host, digest = url_ref(cb.url)
    return _audit(
        cb,
        OpenDSRCallbackFailed(
            progress_event_id=str(cb.event_id),
            subject_request_id=cb.subject_request_id or "-",
            request_status=cb.request_status,
            url_host=host,
            url_hash=digest,
            error=error[:500],
        ),
    )
