"""Intake's use cases, each written once and called by every entry point (REST, web form,
OpenDSR, Kafka). Each takes a `UnitOfWork` and raises `errors.ServiceError` subclasses that
the entry points word for their audience (HTTP status, web page, RequestRejected)."""
