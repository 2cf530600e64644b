"""Lethe's common package: settings, events, Kafka, Postgres, S3, telemetry, hashing."""
