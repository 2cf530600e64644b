"""Webhooks (`lethe webhooks add`): on every state change of an organisation's job, a signed
JSON body is POSTed to each of its webhooks, off the Kafka consumer's path and fairly across
organisations. Decisions in `domain`, I/O in `service`, the SQL in `store`; the subscription
is the notifier's (services/notifier/handlers.py)."""

from services.notifier.webhooks.service import Dispatcher, WebhookDeps, enqueue

__all__ = ["Dispatcher", "WebhookDeps", "enqueue"]
