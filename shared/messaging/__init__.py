"""Lethe's concerns around FastStream routers, each written once: reliable delivery (retries,
dead-lettering, give-up hooks), the audit copy of published events, and the AsyncAPI document
built from the services' routers."""

from shared.messaging.audit_copy import AuditCopy
from shared.messaging.delivery import Delivery, GiveUp, Policy, RecordsFailed, dead_letter

__all__ = ["AuditCopy", "Delivery", "GiveUp", "Policy", "RecordsFailed", "dead_letter"]
