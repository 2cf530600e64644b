"""OpenDSR status callbacks (opengdpr/OpenDSR, specification.md, sections 8.5-8.8): on every
state change of a job that came in through `/opendsr`, the signed callback body is POSTed to
each of its `status_callback_urls`. Decisions in `domain`, I/O in `service`, the
subscription in `handlers`, the SQL in services/notifier/store.py."""

from services.notifier.lease import backoff_after
from services.notifier.opendsr.domain import endpoint, url_ref
from services.notifier.opendsr.handlers import GROUP, register
from services.notifier.opendsr.service import CallbackDeps, Dispatcher, enqueue

__all__ = [
    "GROUP",
    "CallbackDeps",
    "Dispatcher",
    "backoff_after",
    "endpoint",
    "enqueue",
    "register",
    "url_ref",
]
