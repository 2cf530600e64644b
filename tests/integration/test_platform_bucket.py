"""The platform's media bucket, on real S3: created at start in development, refused at start
elsewhere, and reported by /readyz under its own name (a missing bucket once hung jobs at
100 % while /readyz said "s3 ok")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from faststream import FastStream

from deploy.local.parts.common import free_port
from services.eraser.app import create_app as create_eraser
from services.eraser.settings import EraserSettings
from services.exporter.app import create_app as create_exporter
from services.exporter.settings import ExporterSettings
from shared.startup import StartupError
from tests.helpers import eventually
from tests.production import PRODUCTION_SECRETS

pytestmark = pytest.mark.integration


def _free_port() -> int:
    return free_port()  # this xdist worker's own block (deploy/local/parts/common.py)


def _eraser(**kw: Any) -> FastStream:
    return create_eraser(EraserSettings(**kw))


def _exporter(**kw: Any) -> FastStream:
    return create_exporter(ExporterSettings(**kw))


@pytest.mark.parametrize("make_app", [_eraser, _exporter], ids=["eraser", "exporter"])
async def test_missing_bucket_is_created_in_dev_and_readyz_names_it_when_it_goes(
    make_app: Callable[..., FastStream], base_settings: dict[str, Any], s3: Any
) -> None:
    bucket = f"test-platform-{uuid.uuid4().hex[:10]}"
    port = _free_port()
    app = make_app(**base_settings, platform_bucket=bucket, ops_port=port, shutdown_grace_seconds=5)

    async def readyz(client: httpx.AsyncClient, want: int) -> dict[str, Any] | None:
        r = await client.get("/readyz")
        return dict(r.json()) if r.status_code == want else None

    async with app, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        await s3.head_bucket(Bucket=bucket)  # created at start (development settings)
        ready = await eventually(lambda: readyz(client, 200), timeout=90, what="ready")
        assert ready["checks"][f"s3:{bucket}"] == "ok"

        await s3.delete_bucket(Bucket=bucket)
        down = await eventually(lambda: readyz(client, 503), timeout=30, what="unready")
        problem = down["checks"][f"s3:{bucket}"]
        assert f"bucket '{bucket}' does not exist" in problem, problem
        assert all(v == "ok" for k, v in down["checks"].items() if k != f"s3:{bucket}"), down


async def test_outside_development_a_missing_bucket_stops_the_eraser_naming_it(
    base_settings: dict[str, Any], s3: Any
) -> None:
    bucket = f"test-platform-{uuid.uuid4().hex[:10]}"
    app = _eraser(**base_settings, platform_bucket=bucket, env="production", **PRODUCTION_SECRETS)
    with pytest.raises(StartupError) as err:
        async with app:
            pass
    assert f"platform bucket '{bucket}' (LETHE_PLATFORM_BUCKET) does not exist" in str(err.value)
    with pytest.raises(ClientError):
        await s3.head_bucket(Bucket=bucket)  # not created
