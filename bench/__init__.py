"""Benchmarks against real Postgres and S3: `python -m bench.<name>` (see bench/README.md)."""
