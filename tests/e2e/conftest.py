"""The five services as processes, started once per module by one fixture, `services`.

A module lays environment variables over the services' with a module-level
`SERVICES_ENV = {...}`; a module that replaces a service (replicas, a slow exporter) stops it
with `services.stop(name)` and starts its own with `services.start(...)`, which are stopped
with the stack. `api_url` and `client` are intake's URL and an HTTP client on it.

Each module's stack joins consumer groups of its own (`LETHE_KAFKA_GROUP_PREFIX`, the
`group_prefix` fixture: the module name and a random suffix), which start at the end of every
topic: a stack never takes another module's messages, nor resumes at its offsets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from deploy.local.stack import REPO_ROOT, SERVICES, service_env, start_services
from tests.helpers import stop_together


@dataclass
class Services:
    """A running stack: intake's URL, and the processes a module started beside it."""

    ep: infra.Endpoints
    state_dir: Path
    url: str
    group_prefix: str
    started: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a service of this stack gets (`service_env`), with `extra` laid over it."""
        groups = {"LETHE_KAFKA_GROUP_PREFIX": self.group_prefix}
        return {**service_env(self.ep, self.port), **groups, **(extra or {})}

    def start(self, name: str, service: str, extra: Mapping[str, str] | None = None) -> int:
        """Start `python -m services.<service>` as process `name`; its pid."""
        argv = [sys.executable, "-m", f"services.{service}"]
        pid = infra.start_process(name, argv, self.env(extra), self.state_dir, cwd=REPO_ROOT)
        self.started.append(name)
        return pid

    def stop(self, name: str) -> None:
        infra.stop_process(name, self.state_dir)

    def log(self, name: str) -> str:
        return (self.state_dir / "logs" / f"{name}.log").read_text()


@pytest.fixture(scope="module")
def services(
    request: pytest.FixtureRequest, prepared: infra.Endpoints, state_dir: Path, group_prefix: str
) -> Iterator[Services]:
    """The five services, started once for the module (in its own consumer groups) and
    stopped after it."""
    overlay: dict[str, str] = {
        "LETHE_KAFKA_GROUP_PREFIX": group_prefix,
        **getattr(request.module, "SERVICES_ENV", {}),
    }
    saved = {k: os.environ.get(k) for k in overlay}
    os.environ.update(overlay)  # laid over the environment of the started services
    stack: Services | None = None
    try:
        url = start_services(prepared, state_dir)
        stack = Services(prepared, state_dir, url, group_prefix)
        yield stack
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        started = stack.started if stack is not None else []
        stop_together(state_dir, [*started, *reversed(SERVICES)])


@pytest.fixture(scope="module")
def api_url(services: Services) -> str:
    return services.url


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as c:
        yield c
