"""What the service benches share: their infrastructure (the caller's, or their own) and
their failure."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local import infra

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "PLATFORM_DATABASE_URL",
    "S3_ENDPOINT_URL",
    "SMTP_HOST",
    "SMTP_PORT",
)


class BenchError(RuntimeError):
    """The bench's result is wrong (data left behind or lost, a chain that does not verify)."""


@contextmanager
def infrastructure(needed: tuple[str, ...] = EXTERNAL) -> Iterator[tuple[infra.Endpoints, Path]]:
    """The endpoints named by the environment when all of `needed` are set, else our own in
    `.local/bench-<pid>` (stopped at the end); and the bench's state directory (its processes,
    their logs), removed at the end."""
    state_dir = REPO / ".local" / f"bench-{os.getpid()}"
    # Benches run on development keys (their services and workers inherit this).
    os.environ.setdefault("LETHE_ENV", "dev")
    own = not all(os.environ.get(k) for k in needed)
    if own:
        print(f"starting infrastructure in {state_dir}", file=sys.stderr)
        ep = infra.up(state_dir, REPO)
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        env = os.environ
        ep = infra.Endpoints(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", ""),
            database_url=env.get("DATABASE_URL", ""),
            platform_database_url=env.get("PLATFORM_DATABASE_URL", ""),
            s3_endpoint_url=env.get("S3_ENDPOINT_URL", ""),
            smtp_host=env.get("SMTP_HOST", ""),
            smtp_port=int(env.get("SMTP_PORT") or 0),
            mail_dir=state_dir / "mail",
        )
    try:
        yield ep, state_dir
    finally:
        if own:
            infra.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    xs = sorted(values)
    if not xs:
        raise BenchError("no values")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
