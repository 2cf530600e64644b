"""Intake's admin web UI: server-rendered pages on the same store and access control as the
HTTP API (a session opened with an API key acts with that key's org and role)."""
