"""`python -m services.<name>`: build the service's settings and app, run until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from faststream import FastStream

from shared.settings import LetheSettings

S = TypeVar("S", bound=LetheSettings)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run(settings_cls: type[S], create_app: Callable[[S], FastStream]) -> None:
    configure_logging()
    app = create_app(settings_cls())
    asyncio.run(app.run())
