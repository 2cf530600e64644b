"""Kafka, Postgres, MinIO and an SMTP sink as containers (testcontainers), for the test suite.

`started(state_dir, repo)` gives the same `infra.Endpoints` as deploy/local/infra.py:
- Kafka: confluentinc/cp-kafka in KRaft mode (no ZooKeeper);
- Postgres: postgres image with the `lethe` and `platform` databases;
- S3: MinIO. MinIO wants a secret of 8+ characters, so the S3 credentials are set in this
  process's environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, read by LetheSettings and
  inherited by the services the tests start) while the containers run, then restored;
- SMTP: a python image running deploy/local/smtp_sink.py (aiosmtpd), with `state_dir/mail`
  bind-mounted as its mail directory and run as this user, so `Endpoints.mail_dir` holds the
  .eml files as with local processes. A bind mount needs an engine that shares this
  filesystem: with a remote engine (DOCKER_HOST tcp:// or ssh://) the mail-dir contract
  cannot be met and `started` refuses.

testcontainers is imported here only, so the other modes never need it.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from deploy.local import infra

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.1"
POSTGRES_IMAGE = "postgres:16-alpine"
MINIO_IMAGE = "minio/minio:RELEASE.2024-10-13T13-34-11Z"
PYTHON_IMAGE = "python:3.11-slim"
S3_ACCESS_KEY, S3_SECRET_KEY = "lethe-test", "lethe-test-secret"
PG_PASSWORD = "lethe-test"
SMTP_PORT = 2525
SINK_START_TIMEOUT = 120.0  # includes pip installing aiosmtpd in the container


class ContainersError(RuntimeError):
    """The containers cannot give what the tests need; the message says why."""


def refuse_remote_engine(env: Mapping[str, str]) -> None:
    """The SMTP sink writes into a bind-mounted host directory: refuse a remote engine."""
    host = env.get("DOCKER_HOST", "")
    if host and not host.startswith(("unix://", "npipe://")):
        raise ContainersError(
            f"DOCKER_HOST={host} is a remote Docker engine: the SMTP sink's bind-mounted mail "
            "directory (Endpoints.mail_dir) would be on that machine, not here. Use a local "
            "engine, or LETHE_TEST_INFRA=processes."
        )


@contextmanager
def _s3_credentials() -> Iterator[None]:
    new = {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}
    saved = {k: os.environ.get(k) for k in new}
    os.environ.update(new)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _module(name: str) -> Any:
    """testcontainers.<name>: the path every 4.x has (newer ones warn it moved to .community)."""
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(f"testcontainers.{name}")


def _postgres(stack: ExitStack) -> tuple[str, str]:
    PostgresContainer = _module("postgres").PostgresContainer
    pg = PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password=PG_PASSWORD, dbname="lethe", driver=None
    )
    stack.enter_context(pg)
    code, out = pg.exec(["psql", "-U", "postgres", "-d", "lethe", "-c", "CREATE DATABASE platform"])
    if code != 0:
        raise ContainersError(f"creating the platform database failed: {out!r}")
    base = f"postgresql://postgres:{PG_PASSWORD}@{pg.get_container_host_ip()}"
    base += f":{pg.get_exposed_port(5432)}"
    return f"{base}/lethe", f"{base}/platform"


def _kafka(stack: ExitStack) -> str:
    KafkaContainer = _module("kafka").KafkaContainer
    kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
    kafka.with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
    kafka.with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    stack.enter_context(kafka)
    return str(kafka.get_bootstrap_server())


def _minio(stack: ExitStack) -> str:
    MinioContainer = _module("minio").MinioContainer
    minio = MinioContainer(MINIO_IMAGE, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY)
    stack.enter_context(minio)
    return f"http://{minio.get_container_host_ip()}:{minio.get_exposed_port(9000)}"


def _smtp_sink(stack: ExitStack, repo: Path, mail_dir: Path) -> tuple[str, int]:
    from testcontainers.core.container import DockerContainer

    sink = (
        DockerContainer(PYTHON_IMAGE)
        .with_volume_mapping(str(repo / "deploy/local/smtp_sink.py"), "/sink/smtp_sink.py", "ro")
        .with_volume_mapping(str(mail_dir), "/mail", "rw")
        .with_kwargs(user=f"{os.getuid()}:{os.getgid()}")
        .with_env("HOME", "/tmp")
        .with_env("PYTHONPATH", "/tmp/deps")
        .with_exposed_ports(SMTP_PORT)
        .with_command(
            [
                "sh",
                "-c",
                "pip install -q --target /tmp/deps 'aiosmtpd>=1.4,<2' && exec python "
                f"/sink/smtp_sink.py --host 0.0.0.0 --port {SMTP_PORT} --mail-dir /mail",
            ]
        )
    )
    stack.enter_context(sink)
    _wait_for_log(sink, b"SMTP sink listening", SINK_START_TIMEOUT)
    return sink.get_container_host_ip(), int(sink.get_exposed_port(SMTP_PORT))


def _wait_for_log(container: Any, text: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out, err = container.get_logs()
        if text in out:
            return
        container.get_wrapped_container().reload()
        if container.get_wrapped_container().status == "exited":
            raise ContainersError(f"SMTP sink container exited: {(out + err).decode()[-2000:]}")
        time.sleep(0.5)
    raise ContainersError(f"SMTP sink container not ready after {timeout:.0f}s")


@contextmanager
def started(state_dir: Path, repo: Path) -> Iterator[infra.Endpoints]:
    """Start the four containers, yield their endpoints, stop and remove them afterwards."""
    refuse_remote_engine(os.environ)
    mail_dir = state_dir / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        database_url, platform_database_url = _postgres(stack)
        kafka = _kafka(stack)
        s3 = _minio(stack)
        smtp_host, smtp_port = _smtp_sink(stack, repo, mail_dir)
        stack.enter_context(_s3_credentials())
        yield infra.Endpoints(
            kafka_bootstrap_servers=kafka,
            database_url=database_url,
            platform_database_url=platform_database_url,
            s3_endpoint_url=s3,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            mail_dir=mail_dir,
        )
