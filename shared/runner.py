"""`python -m services.<name>`: build the service's settings and app, run until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from faststream import FastStream

from shared.health import arm_watchdog
from shared.settings import LetheSettings

S = TypeVar("S", bound=LetheSettings)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run(settings_cls: type[S], create_app: Callable[[S], FastStream]) -> None:
    configure_logging()
    settings = settings_cls()
    app = create_app(settings)
    # SIGTERM: the app drains (shared.health); the process is gone within the grace period.
    arm_watchdog(app, settings.shutdown_grace_seconds)
    asyncio.run(app.run())
